//! The snapshot check of a feature source: one streamed pass that reads
//! and scores every row (without reasons) to gather the check's counts,
//! then the verdict. `churn check` is this alone; a rescore runs it before
//! its writing pass, so no flag is written before the verdict, in constant
//! memory (a chunk at a time).
//!
//! A model feature with no column in the first chunk's part is known at
//! once: the pass stops there (fail fast) and the verdict refuses; its
//! `features_present` check says how many rows were read. (A later part of
//! a multi-part prefix without the column is found when that part is read.)

use crate::features::{FeatureSources, FeatureUri};
use crate::handlers::error::HandlerError;
use crate::handlers::model::ScoringModel;
use crate::handlers::scored_stream::{FailedRows, ScoredStream};
use churn_model::check::{check_snapshot, CheckReport, CheckThresholds, SnapshotCounts};

/// A checked snapshot.
#[derive(Debug, Clone)]
pub struct CheckedSnapshot {
    pub report: CheckReport,
    /// What the verdict was taken on.
    pub counts: SnapshotCounts,
    /// The rows that failed validation (first ones listed, exact count).
    pub failed: FailedRows,
    /// The pass stopped after the first chunk (a model feature has no column).
    pub stopped_early: bool,
}

/// Checks `uri` against `model` under `limits`, reading `chunk_rows` rows
/// at a time; `progress` gets each chunk's row count.
///
/// # Errors
/// As [`ScoredStream::open`] and [`ScoredStream::next_chunk`].
pub async fn check_source(
    uri: &FeatureUri,
    sources: &FeatureSources,
    model: &ScoringModel,
    limits: &CheckThresholds,
    chunk_rows: usize,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<CheckedSnapshot, HandlerError> {
    let mut stream = ScoredStream::open(uri, sources, model, None, chunk_rows, false)
        .await?
        .without_reasons();
    let mut stopped_early = false;
    while let Some(chunk) = stream.next_chunk().await? {
        progress(chunk.rows);
        if stream.counts().features.iter().any(|f| f.absent) {
            stopped_early = true;
            break;
        }
    }
    let totals = stream.finish();
    let mut report = check_snapshot(&model.artifact, &totals.counts, limits);
    if stopped_early {
        for c in report
            .checks
            .iter_mut()
            .filter(|c| c.name == "features_present")
        {
            c.detail.push_str(&format!(
                " (the check stopped after the first {} rows: an absent feature refuses \
                 whatever the rest holds)",
                totals.counts.rows
            ));
        }
    }
    Ok(CheckedSnapshot {
        report,
        counts: totals.counts,
        failed: totals.failed,
        stopped_early,
    })
}
