//! The streamed chunk-scoring loop shared by [`rescore`](super::rescore)
//! (scores into the flag store) and [`score_file`](super::score_file)
//! (scores into a CSV file).
//!
//! A [`ScoredStream`] reads a feature source chunk by chunk on a blocking
//! thread (at most two chunks in flight), scores each chunk with the model
//! crate's `Scorer` (the one scoring path, as in the API) in blocks of rows
//! on the thread pool, each block also counting its rows for the check and
//! handing its scored rows to the caller ([`ScoredStream::next_chunk_into`]:
//! a scores file formats its lines there), and hands back the scored
//! customers of the chunk ([`ScoredStream::next_chunk`]). Rows that cannot be read, have no valid
//! customer id (the one rule, [`churn_model::customer_id`]) or cannot be
//! scored (a value outside the model's domain among them) are recorded as
//! [`FailedRow`]s (first [`MAX_LISTED_FAILURES`], exact count) and never stop
//! the run. Rows with a value outside the training range are scored and
//! counted ([`StreamTotals::out_of_range_rows`]).
//!
//! Opened with attributes, each scored row also carries its account
//! attributes ([`ScoredRow::attributes`]) from the columns the artifact
//! records: a recorded column absent from the source is an error on the
//! first chunk (before the caller writes anything); a value that does not
//! parse (a renewal date that is no `YYYY-MM-DD`) is null for its row, which
//! is still scored, and counted per column ([`AttributeWarning`]).
//!
//! Every stream also gathers the snapshot check's counts
//! ([`SnapshotCounts`]: feature bins, missing and out-of-range values,
//! invalid rows, scores), so the check sees exactly the rows the run
//! scores; a stream opened [`without_reasons`](ScoredStream::without_reasons)
//! does only that (the check's own pass).

use crate::features::{FeatureSources, FeatureUri, ReadOptions};
use crate::handlers::error::HandlerError;
use crate::handlers::model::ScoringModel;
use churn_model::check::SnapshotCounts;
use churn_model::preprocess::FeaturePrep;
use churn_model::scoring::TOP_REASONS;
use churn_model::{
    AttributeColumns, AttributeReader, AttributeRole, Attributes, BoundTable, ColumnValues,
    CompactScore, ReasonText, Score,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// Most failed rows (and write failures) listed in a summary; the counts are exact.
pub const MAX_LISTED_FAILURES: usize = 100;
/// Rows per streamed chunk (and per flag-store batch). With the reader's
/// parse-ahead this bounds a rescore's working set: a 1M-row rescore into
/// SQLite peaks near 50 MiB (8192 rows: near 95 MiB, attribute strings and
/// flags being most of a row in flight).
pub const CHUNK_ROWS: usize = 4096;
/// Row numbers listed per [`AttributeWarning`]; the count is exact.
pub const MAX_LISTED_WARNING_ROWS: usize = 5;

/// Values of one attribute column that did not parse: the attribute is
/// null for those rows, which were scored all the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeWarning {
    pub column: String,
    pub role: AttributeRole,
    /// Rows with such a value.
    pub count: usize,
    /// The first [`MAX_LISTED_WARNING_ROWS`] of them (1-based data rows in their part).
    pub rows: Vec<usize>,
    /// What is wrong with them (the role's [`AttributeRole::invalid_message`]).
    pub message: String,
}

/// Attribute warnings by role, in role order.
#[derive(Debug, Clone, Default, PartialEq)]
struct AttributeWarnings(BTreeMap<AttributeRole, AttributeWarning>);

impl AttributeWarnings {
    fn push(&mut self, bad: &churn_model::InvalidAttribute, row: usize) {
        let w = self.0.entry(bad.role).or_insert_with(|| AttributeWarning {
            column: bad.column.clone(),
            role: bad.role,
            count: 0,
            rows: Vec::new(),
            message: bad.role.invalid_message().to_string(),
        });
        w.count += 1;
        if w.rows.len() < MAX_LISTED_WARNING_ROWS {
            w.rows.push(row);
        }
    }
}

/// A row that was not scored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRow {
    /// 1-based data row in its part.
    pub row: usize,
    /// The part (file or object) when the source has several.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub part: Option<String>,
    pub message: String,
}

/// Failed rows: the first [`MAX_LISTED_FAILURES`] and the exact count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailedRows {
    pub listed: Vec<FailedRow>,
    pub count: usize,
}

impl FailedRows {
    fn push(&mut self, row: usize, part: Option<&str>, message: String) {
        self.count += 1;
        if self.listed.len() < MAX_LISTED_FAILURES {
            self.listed.push(FailedRow {
                row,
                part: part.map(str::to_string),
                message,
            });
        }
    }
}

/// One scored customer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredRow {
    pub customer_id: String,
    pub score: Score,
    /// The row's account attributes (all `None` when the stream was opened
    /// without them or the model records none).
    pub attributes: Attributes,
}

/// The scored customers of one chunk.
#[derive(Debug, Clone)]
pub struct ScoredChunk {
    /// Data rows in the chunk (scored + failed).
    pub rows: usize,
    /// The scored rows, in row order.
    pub scored: Vec<ScoredRow>,
}

/// What a finished stream saw, beyond the scored rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamTotals {
    pub failed: FailedRows,
    /// Model features with no column in the source (scored as missing).
    pub missing_feature_columns: Vec<String>,
    /// Scored rows with at least one numeric value outside its training range.
    pub out_of_range_rows: usize,
    /// What the readers noted (ignored columns, a detected delimiter), once each.
    pub notes: Vec<String>,
    /// Attribute values that did not parse, per column (role order).
    pub attribute_warnings: Vec<AttributeWarning>,
    /// What the snapshot check needs of the rows read.
    pub counts: SnapshotCounts,
}

/// A feature source being scored chunk by chunk.
pub struct ScoredStream<'m> {
    model: &'m ScoringModel,
    id_column: String,
    chunks:
        tokio::sync::mpsc::Receiver<crate::features::FeatureResult<crate::features::TableChunk>>,
    failed: FailedRows,
    missing_feature_columns: Option<Vec<String>>,
    out_of_range_rows: usize,
    notes: Vec<String>,
    /// The attribute columns read (empty when not asked for).
    attributes: AttributeColumns,
    attribute_warnings: AttributeWarnings,
    counts: SnapshotCounts,
    /// Build each scored row's reasons (off for the check's own pass).
    reasons: bool,
}

impl<'m> ScoredStream<'m> {
    /// Opens `uri` for scoring with `model`; `id_column` defaults to the
    /// model's, `chunk_rows` is clamped to at least 1. With `attributes`,
    /// the artifact's attribute columns are read into each
    /// [`ScoredRow::attributes`]; without, they are not even parsed.
    ///
    /// # Errors
    /// [`HandlerError::Features`] when the source cannot be opened.
    pub async fn open(
        uri: &FeatureUri,
        sources: &FeatureSources,
        model: &'m ScoringModel,
        id_column: Option<&str>,
        chunk_rows: usize,
        attributes: bool,
    ) -> Result<ScoredStream<'m>, HandlerError> {
        let id_column = id_column.unwrap_or(&model.artifact.id_column).to_string();
        let attributes = if attributes {
            model.artifact.attributes.clone()
        } else {
            AttributeColumns::default()
        };
        let mut options = ReadOptions {
            chunk_rows: chunk_rows.max(1),
            ..ReadOptions::for_artifact(&model.artifact, &id_column)
        };
        if attributes.is_empty() {
            for (_, column) in model.artifact.attributes.mapped() {
                if options.hints.get(column) == Some(&crate::features::ColumnHint::Text)
                    && column != id_column
                    && !is_feature(model, column)
                {
                    options.hints.remove(column);
                }
            }
        }
        let chunks = sources.stream(uri, options).await?.spawn();
        Ok(ScoredStream {
            model,
            id_column,
            chunks,
            failed: FailedRows::default(),
            missing_feature_columns: None,
            out_of_range_rows: 0,
            notes: Vec::new(),
            attributes,
            attribute_warnings: AttributeWarnings::default(),
            counts: SnapshotCounts::new(&model.artifact),
            reasons: true,
        })
    }

    /// Scores without building reasons: the rows' scores and the check's
    /// counts only.
    pub fn without_reasons(mut self) -> Self {
        self.reasons = false;
        self
    }

    /// The snapshot check's counts so far.
    pub fn counts(&self) -> &SnapshotCounts {
        &self.counts
    }

    /// Scores the next chunk, `None` at the end.
    ///
    /// # Errors
    /// [`HandlerError::Features`] for a fatal read problem;
    /// [`HandlerError::BadRequest`] when the source has no id column, or
    /// lacks an attribute column the model records (when reading them).
    pub async fn next_chunk(&mut self) -> Result<Option<ScoredChunk>, HandlerError> {
        let Some((rows, blocks)) = self
            .next_chunk_into(Vec::with_capacity, |out, row| {
                out.push(ScoredRow {
                    customer_id: row.customer_id.to_string(),
                    score: row.score(),
                    attributes: row.attributes,
                });
            })
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ScoredChunk {
            rows,
            scored: blocks.into_iter().flatten().collect(),
        }))
    }

    /// Scores the next chunk into blocks of the caller's making, `None` at
    /// the end: the chunk's rows are split into blocks scored in parallel on
    /// the thread pool, each scored row handed to `add` with the block's
    /// output (made by `new_block(rows)`), and the blocks returned in row
    /// order with the number of data rows read. Everything the stream counts
    /// (failed rows, the check's counts, out-of-range rows, attribute
    /// warnings) is gathered per block and added in row order, so it comes
    /// out the same as one row after the other.
    ///
    /// # Errors
    /// As [`ScoredStream::next_chunk`].
    pub async fn next_chunk_into<B: Send>(
        &mut self,
        new_block: impl Fn(usize) -> B + Sync,
        add: impl Fn(&mut B, RowScore<'_, '_>) + Sync,
    ) -> Result<Option<(usize, Vec<B>)>, HandlerError> {
        use rayon::prelude::*;
        let Some(chunk) = self.chunks.recv().await else {
            return Ok(None);
        };
        let chunk = chunk?;
        let table = &chunk.table;
        let n = table.n_rows();
        if self.missing_feature_columns.is_none() {
            self.missing_feature_columns = Some(absent_features(self.model, table));
        }
        for note in &chunk.notes {
            if !self.notes.contains(note) {
                self.notes.push(note.clone());
            }
        }
        let part = (chunk.parts > 1).then_some(&*chunk.part);
        for e in &chunk.row_errors {
            self.failed.push(e.row, part, e.message.clone());
        }
        let ids = self.ids(&chunk)?;
        if let Some((role, column)) = self
            .attributes
            .mapped()
            .find(|(_, c)| table.column(c).is_none())
        {
            return Err(HandlerError::BadRequest(format!(
                "{}: no column {column:?}, which the model {} reads the accounts' {role} \
                 attribute from (its training data had it); add the column or retrain \
                 without it",
                chunk.part,
                self.model.artifact.model_id()
            )));
        }
        // Rows the reader could not read, by 0-based index (usually none).
        let unread: Vec<bool> = if chunk.row_errors.is_empty() {
            Vec::new()
        } else {
            let bad: HashSet<usize> = chunk.row_errors.iter().map(|e| e.row).collect();
            (0..n).map(|i| bad.contains(&table.row_number(i))).collect()
        };
        let context = BlockContext {
            model: self.model,
            table,
            bound: self.model.scorer.bind(table),
            ids,
            unread: &unread,
            attributes: self.attributes.reader(table),
            id_column: &self.id_column,
            reasons: self.reasons,
        };
        let blocks: Vec<Block<B>> = (0..n.div_ceil(BLOCK_ROWS))
            .into_par_iter()
            .map(|b| {
                let rows = b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(n);
                context.score_block(rows, &new_block, &add)
            })
            .collect();
        let failed_before = self.failed.count;
        let mut outputs = Vec::with_capacity(blocks.len());
        for block in blocks {
            for (row, message) in block.failed {
                self.failed.push(row, part, message);
            }
            for (bad, row) in &block.invalid_attributes {
                self.attribute_warnings.push(bad, *row);
            }
            self.out_of_range_rows += block.out_of_range_rows;
            // Counted for this model, as the stream's: the layouts agree.
            let _ = self.counts.merge(&block.counts);
            for (probability, band) in block.scores {
                self.counts.add_score(probability, band);
            }
            outputs.push(block.out);
        }
        let invalid = self.failed.count - failed_before;
        self.counts.add_rows(n as u64, invalid as u64);
        Ok(Some((n, outputs)))
    }

    /// The chunk's id column.
    fn ids<'c>(
        &self,
        chunk: &'c crate::features::TableChunk,
    ) -> Result<&'c [Option<String>], HandlerError> {
        match chunk.table.column(&self.id_column).map(|c| &c.values) {
            Some(ColumnValues::Text(v)) => Ok(v),
            _ => Err(HandlerError::BadRequest(format!(
                "{}: no id column {:?}",
                chunk.part, self.id_column
            ))),
        }
    }

    /// The failed rows so far.
    pub fn failed(&self) -> &FailedRows {
        &self.failed
    }

    /// Model features with no column in the source (scored as missing),
    /// as seen in its first chunk; empty before it.
    pub fn missing_feature_columns(&self) -> &[String] {
        self.missing_feature_columns.as_deref().unwrap_or_default()
    }

    /// Everything the run saw besides its scores, at the end.
    pub fn finish(self) -> StreamTotals {
        StreamTotals {
            failed: self.failed,
            missing_feature_columns: self.missing_feature_columns.unwrap_or_default(),
            out_of_range_rows: self.out_of_range_rows,
            notes: self.notes,
            attribute_warnings: self.attribute_warnings.0.into_values().collect(),
            counts: self.counts,
        }
    }
}

/// Rows of a chunk scored by one task of the pool: enough to amortize the
/// task, few enough that both cores share a chunk.
const BLOCK_ROWS: usize = 512;

/// What scoring one block needs of its chunk, shared by the pool's tasks.
struct BlockContext<'m, 't> {
    model: &'m ScoringModel,
    table: &'t churn_model::Table,
    bound: BoundTable<'t>,
    ids: &'t [Option<String>],
    /// Rows the reader could not read, by 0-based index (empty: none).
    unread: &'t [bool],
    attributes: AttributeReader<'t>,
    id_column: &'t str,
    reasons: bool,
}

/// One scored row as [`ScoredStream::next_chunk_into`] hands it over.
pub struct RowScore<'b, 't> {
    /// The validated customer id.
    pub customer_id: &'t str,
    pub compact: &'b CompactScore,
    /// The row's account attributes (all `None` when the stream reads none).
    pub attributes: Attributes,
    bound: &'b BoundTable<'t>,
    index: usize,
    reasons: bool,
}

impl<'b, 't> RowScore<'b, 't> {
    /// The row's reasons as text (with their contributions), straight from
    /// the table; none when the stream was opened
    /// [`without_reasons`](ScoredStream::without_reasons).
    pub fn reason_texts(&self) -> impl Iterator<Item = (ReasonText<'t>, f64)> + '_ {
        let n = if self.reasons { TOP_REASONS } else { 0 };
        self.bound.reason_texts(self.index, self.compact).take(n)
    }

    /// The full score, with its reasons built.
    pub fn score(&self) -> Score {
        let c = self.compact;
        Score {
            churn_probability: c.churn_probability,
            logit: c.logit,
            risk_band: c.risk_band,
            reasons: if self.reasons {
                self.bound.reasons(self.index, c)
            } else {
                Vec::new()
            },
            out_of_range: c.out_of_range,
        }
    }
}

/// What one block gave: the caller's output and what the stream counts.
struct Block<B> {
    out: B,
    /// (row number, message), in row order.
    failed: Vec<(usize, String)>,
    invalid_attributes: Vec<(churn_model::InvalidAttribute, usize)>,
    out_of_range_rows: usize,
    /// The block's cells counted for the check.
    counts: SnapshotCounts,
    /// Each scored row's probability and band, added to the stream's
    /// counts in row order (a sum of floats depends on its order).
    scores: Vec<(f64, churn_model::RiskBand)>,
}

impl BlockContext<'_, '_> {
    /// Scores rows `rows` (0-based) of the chunk: the one loop behind every
    /// streamed score.
    fn score_block<B>(
        &self,
        rows: std::ops::Range<usize>,
        new_block: &impl Fn(usize) -> B,
        add: &impl Fn(&mut B, RowScore<'_, '_>),
    ) -> Block<B> {
        let table = self.table;
        let unread = |i: usize| self.unread.get(i).copied().unwrap_or(false);
        let mut counts = SnapshotCounts::new(&self.model.artifact);
        counts.add_table_rows(&self.model.scorer, table, rows.clone(), |i| !unread(i));
        let mut block = Block {
            out: new_block(rows.len()),
            failed: Vec::new(),
            invalid_attributes: Vec::new(),
            out_of_range_rows: 0,
            counts,
            scores: Vec::with_capacity(rows.len()),
        };
        let scores = self.bound.score_rows(rows.clone());
        for (i, score) in rows.zip(scores) {
            if unread(i) {
                continue;
            }
            let row = table.row_number(i);
            let id = match churn_model::customer_id(self.ids[i].as_deref().unwrap_or("")) {
                Ok(id) => id,
                Err(e) => {
                    let message = format!("column {:?}: {e}", self.id_column);
                    block.failed.push((row, message));
                    continue;
                }
            };
            let compact = match score {
                Ok(c) => c,
                Err(e) => {
                    block.failed.push((row, e.to_string()));
                    continue;
                }
            };
            block.out_of_range_rows += usize::from(compact.out_of_range > 0);
            block
                .scores
                .push((compact.churn_probability, compact.risk_band));
            let (attributes, invalid) = self.attributes.row(i);
            block
                .invalid_attributes
                .extend(invalid.into_iter().map(|bad| (bad, row)));
            let scored = RowScore {
                customer_id: id,
                compact: &compact,
                attributes,
                bound: &self.bound,
                index: i,
                reasons: self.reasons,
            };
            add(&mut block.out, scored);
        }
        block
    }
}

/// Whether `column` is a feature of `model`.
fn is_feature(model: &ScoringModel, column: &str) -> bool {
    model
        .artifact
        .preprocessing
        .features
        .iter()
        .any(|f| match f {
            FeaturePrep::Numeric(p) => p.name == column,
            FeaturePrep::Categorical(p) => p.name == column,
        })
}

/// Model features with no column in `table`.
fn absent_features(model: &ScoringModel, table: &churn_model::Table) -> Vec<String> {
    model
        .artifact
        .preprocessing
        .features
        .iter()
        .map(|f| match f {
            FeaturePrep::Numeric(p) => p.name.as_str(),
            FeaturePrep::Categorical(p) => p.name.as_str(),
        })
        .filter(|name| table.column(name).is_none())
        .map(str::to_string)
        .collect()
}
