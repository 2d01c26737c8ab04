//! Batch scoring into a file: stream a feature source, score every row with
//! the given model, write `customer_id,churn_probability,risk_band,reason_1..3`.
//!
//! The chunk loop is [`ScoredStream`], the same one rescoring uses, so memory
//! stays constant and bad rows are reported (row numbers, exact count)
//! without stopping the run. Account attributes are not read: the file has
//! no place for them.
//!
//! The snapshot check judges the input from the same pass: the scores are
//! written to a hidden file beside `out` and renamed into place only when
//! the check passes (or `force` overrides it), so a refused input leaves no
//! scores file (and an existing one untouched).

use crate::features::FeatureSources;
use crate::features::{FeatureError, FeatureUri, Format, ScoresBlock, ScoresWriter};
use crate::handlers::error::{HandlerError, Refusal};
use crate::handlers::model::ScoringModel;
use crate::handlers::scored_stream::{FailedRow, RowScore, ScoredStream, CHUNK_ROWS};
use churn_model::check::{check_snapshot, CheckReport, CheckThresholds};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Knobs of a scoring run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreFileOptions {
    /// Id column of the input (default: the one the model was trained with).
    pub id_column: Option<String>,
    /// Rows per streamed chunk.
    pub chunk_rows: usize,
    /// The snapshot check's limits.
    pub check: CheckThresholds,
    /// Keep the scores even when the check refuses the input.
    pub force: bool,
}

impl Default for ScoreFileOptions {
    fn default() -> Self {
        ScoreFileOptions {
            id_column: None,
            chunk_rows: CHUNK_ROWS,
            check: CheckThresholds::default(),
            force: false,
        }
    }
}

/// What a scoring run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreFileSummary {
    /// Customers written to the output.
    pub scored: usize,
    /// Rows not scored (not in the output), first
    /// [`MAX_LISTED_FAILURES`](super::scored_stream::MAX_LISTED_FAILURES).
    pub failed_rows: Vec<FailedRow>,
    /// Exact number of rows not scored.
    pub failed_rows_count: usize,
    /// Model features with no column in the input: scored as missing
    /// (imputed with the training value) when `force` overrode the check's
    /// refusal.
    pub missing_feature_columns: Vec<String>,
    /// Scored rows with at least one value outside its feature's training
    /// range (valid, scored, but the model has not seen such values).
    #[serde(default)]
    pub out_of_range_rows: usize,
    /// What the reader noted: columns it ignored, a delimiter it detected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The snapshot check of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    /// The check refused the input and `force` overrode it.
    #[serde(default)]
    pub forced: bool,
}

/// Scores `input` with `model` into `out` (CSV or Parquet by its extension,
/// see [`ScoresWriter::create`]); `progress` is called
/// with the number of rows of each chunk read.
///
/// # Errors
/// [`HandlerError::Features`] when the input cannot be read (missing file,
/// bad header) or `out` has another extension or cannot be created or written;
/// [`HandlerError::BadRequest`] when the input has no id column;
/// [`HandlerError::Refused`] when the snapshot check refuses the input
/// (no scores file written). Bad rows are reported in the summary instead.
pub async fn handle_score_file(
    input: &FeatureUri,
    sources: &FeatureSources,
    model: &ScoringModel,
    out: &Path,
    options: &ScoreFileOptions,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<ScoreFileSummary, HandlerError> {
    let mut stream = ScoredStream::open(
        input,
        sources,
        model,
        options.id_column.as_deref(),
        options.chunk_rows,
        false,
    )
    .await?;
    let location = out.display().to_string();
    if Format::from_name(&location).is_none() {
        return Err(FeatureError::UnsupportedFormat {
            location,
            message: "the scores file name must end in .csv or .parquet".to_string(),
        }
        .into());
    }
    let staged = Staged::beside(out);
    let write_error = |e: std::io::Error| FeatureError::io("write", &location, e);
    let mut writer = ScoresWriter::create(&staged.path)?;
    let mut summary = ScoreFileSummary::default();
    // Each block's lines are formatted where it was scored, on the pool,
    // reasons written from the table without building them first; the
    // writer has a thread of its own, so the next chunk is scored while
    // the last one is written.
    let empty = writer.new_block(0);
    let new_block = |rows: usize| (empty.fresh(rows), 0usize);
    let add = |(block, scored): &mut (ScoresBlock, usize), row: RowScore<'_, '_>| {
        let c = row.compact;
        let reasons = row.reason_texts().map(|(text, _)| text);
        block.push(row.customer_id, c.churn_probability, c.risk_band, reasons);
        *scored += 1;
    };
    let (to_writer, blocks) = std::sync::mpsc::sync_channel::<Vec<ScoresBlock>>(4);
    let writing = crate::blocking::spawn(move || -> std::io::Result<()> {
        for chunk in blocks {
            chunk.into_iter().try_for_each(|b| writer.write_block(b))?;
        }
        writer.finish().map(drop)
    });
    let read = loop {
        let (rows, blocks) = match stream.next_chunk_into(new_block, add).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let mut chunk = Vec::with_capacity(blocks.len());
        for (block, scored) in blocks {
            summary.scored += scored;
            chunk.push(block);
        }
        if to_writer.send(chunk).is_err() {
            // The writer stopped on an error, which its result says.
            break Ok(());
        }
        progress(rows);
    };
    drop(to_writer);
    // A write error comes first: the chunks read after it were never written.
    crate::blocking::join(writing).await.map_err(write_error)?;
    read?;
    let totals = stream.finish();
    let report = check_snapshot(&model.artifact, &totals.counts, &options.check);
    if report.refused() {
        if !options.force {
            return Err(HandlerError::Refused(Box::new(Refusal {
                report,
                run_id: None,
                shard: false,
            })));
        }
        summary.forced = true;
    }
    staged
        .commit(out)
        .map_err(|e| FeatureError::io("rename", &location, e))?;
    summary.check = Some(report);
    summary.failed_rows = totals.failed.listed;
    summary.failed_rows_count = totals.failed.count;
    summary.missing_feature_columns = totals.missing_feature_columns;
    summary.out_of_range_rows = totals.out_of_range_rows;
    summary.notes = totals.notes;
    tracing::info!(
        out = %location,
        model_id = %model.artifact.model_id(),
        scored = summary.scored,
        failed_rows = summary.failed_rows_count,
        out_of_range_rows = summary.out_of_range_rows,
        "scoring done"
    );
    Ok(summary)
}

/// A file written under a hidden name beside its destination, removed
/// unless [`Staged::commit`] renames it into place.
struct Staged {
    path: PathBuf,
    committed: bool,
}

impl Staged {
    /// A hidden name in `out`'s directory ending like `out` (the writer
    /// picks the format by it).
    fn beside(out: &Path) -> Staged {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let hidden = format!(
            ".partial-{}-{:08x}-{name}",
            std::process::id(),
            rand::random::<u32>()
        );
        Staged {
            path: out.with_file_name(hidden),
            committed: false,
        }
    }

    /// Renames the file to `out` (replacing it).
    fn commit(mut self, out: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, out)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
