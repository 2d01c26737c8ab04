//! The batch scores file: `customer_id,churn_probability,risk_band,reason_1,reason_2,reason_3`,
//! as CSV or Parquet (chosen by the output name in [`ScoresWriter::create`]).
//!
//! Both keep memory constant whatever the number of customers: CSV lines go
//! straight to a buffered writer; Parquet rows are buffered up to one row
//! group ([`ROW_GROUP_ROWS`]) and written out. Reasons are text cells
//! `feature is value (typical t)`, the same words in both formats; in
//! Parquet a customer with fewer than three reasons has nulls, in CSV empty cells.
//!
//! Rows are formatted into a [`ScoresBlock`] apart from the writer (a
//! scoring stream fills one per block of rows on the thread pool) and
//! written in order with [`ScoresWriter::write_block`]; `ScoresBlock::push`
//! is the one place a row becomes text, from stored reasons or from
//! [`churn_model::ReasonText`]s read straight off the scored table.

use super::error::{FeatureError, FeatureResult};
use super::uri::Format;
use super::write::{parquet_writer, push_cell, write_record, write_row_group, ROW_GROUP_ROWS};
use churn_model::{Column, ColumnValues, ReasonText, RiskBand, Score, Table};
use parquet::file::writer::SerializedFileWriter;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Header of the scores file (the Parquet column names too).
pub const SCORES_HEADER: [&str; 6] = [
    "customer_id",
    "churn_probability",
    "risk_band",
    "reason_1",
    "reason_2",
    "reason_3",
];

/// Writes the batch scores file, one row per customer.
pub struct ScoresWriter<W: Write + Send> {
    sink: Sink<W>,
}

enum Sink<W: Write + Send> {
    Csv {
        out: W,
    },
    Parquet {
        /// Boxed: the writer is ten times the CSV variant's size.
        writer: Box<SerializedFileWriter<W>>,
        /// Rows not yet written, in the six columns of [`SCORES_HEADER`].
        pending: Table,
    },
}

impl ScoresWriter<BufWriter<File>> {
    /// Creates `path`, CSV or Parquet by its extension.
    ///
    /// # Errors
    /// [`FeatureError::UnsupportedFormat`] for a name not ending in `.csv` or
    /// `.parquet` (checked before anything is created);
    /// [`FeatureError::Io`] when the file cannot be created or written.
    pub fn create(path: &Path) -> FeatureResult<Self> {
        let location = path.display().to_string();
        let format =
            Format::from_name(&location).ok_or_else(|| FeatureError::UnsupportedFormat {
                location: location.clone(),
                message: "the scores file name must end in .csv or .parquet".to_string(),
            })?;
        let file = File::create(path).map_err(|e| FeatureError::io("create", &location, e))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        match format {
            Format::Csv => ScoresWriter::csv(out),
            Format::Parquet => ScoresWriter::parquet(out),
        }
        .map_err(|e| FeatureError::io("write", &location, e))
    }
}

impl<W: Write + Send> ScoresWriter<W> {
    /// A CSV scores file on `out`; writes the header.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn csv(mut out: W) -> std::io::Result<Self> {
        write_record(&mut out, SCORES_HEADER.iter().copied())?;
        Ok(ScoresWriter {
            sink: Sink::Csv { out },
        })
    }

    /// A Parquet scores file on `out`: `churn_probability` is DOUBLE, the
    /// other columns UTF-8 strings.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn parquet(out: W) -> std::io::Result<Self> {
        let pending = empty_scores_table();
        let writer = parquet_writer(&pending, out).map_err(std::io::Error::other)?;
        Ok(ScoresWriter {
            sink: Sink::Parquet {
                writer: Box::new(writer),
                pending,
            },
        })
    }

    /// An empty block of rows for this file, to fill apart from the writer
    /// (on the thread pool, say) and write with [`Self::write_block`].
    pub fn new_block(&self, rows: usize) -> ScoresBlock {
        ScoresBlock::with_room(matches!(self.sink, Sink::Csv { .. }), rows)
    }

    /// Writes a block's rows after those written before.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn write_block(&mut self, block: ScoresBlock) -> std::io::Result<()> {
        match (&mut self.sink, block) {
            (Sink::Csv { out }, ScoresBlock::Csv { lines, .. }) => out.write_all(&lines),
            (Sink::Parquet { writer, pending }, ScoresBlock::Rows(rows)) => {
                for row in rows {
                    push_row(pending, row);
                    if pending.n_rows() >= ROW_GROUP_ROWS {
                        flush_row_group(writer, pending)?;
                    }
                }
                Ok(())
            }
            _ => Err(std::io::Error::other(
                "a scores block made for another file format",
            )),
        }
    }

    /// Writes one customer's score.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn write(&mut self, customer_id: &str, score: &Score) -> std::io::Result<()> {
        let mut block = self.new_block(1);
        block.push(
            customer_id,
            score.churn_probability,
            score.risk_band,
            score.reasons.iter().map(ReasonText::of),
        );
        self.write_block(block)
    }

    /// Writes what is buffered, finishes the file and returns the inner writer.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn finish(self) -> std::io::Result<W> {
        match self.sink {
            Sink::Csv { mut out } => {
                out.flush()?;
                Ok(out)
            }
            Sink::Parquet {
                mut writer,
                mut pending,
            } => {
                if pending.n_rows() > 0 {
                    flush_row_group(&mut writer, &mut pending)?;
                }
                let mut out = (*writer).into_inner().map_err(std::io::Error::other)?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

/// Scored rows formatted for a scores file, in order: CSV lines, or a
/// Parquet file's cells. Made by [`ScoresWriter::new_block`].
pub enum ScoresBlock {
    Csv {
        lines: Vec<u8>,
        /// Scratch for a reason's text.
        text: String,
    },
    Rows(Vec<ScoresRow>),
}

/// One row of a Parquet scores file.
pub struct ScoresRow {
    customer_id: String,
    probability: f64,
    band: RiskBand,
    reasons: [Option<String>; 3],
}

impl ScoresBlock {
    /// An empty block for the same file format, with room for `rows`.
    pub fn fresh(&self, rows: usize) -> ScoresBlock {
        ScoresBlock::with_room(matches!(self, ScoresBlock::Csv { .. }), rows)
    }

    /// An empty block of CSV lines (`csv`) or Parquet rows with room for `rows`.
    fn with_room(csv: bool, rows: usize) -> ScoresBlock {
        if csv {
            ScoresBlock::Csv {
                lines: Vec::with_capacity(rows * 160),
                text: String::new(),
            }
        } else {
            ScoresBlock::Rows(Vec::with_capacity(rows))
        }
    }

    /// Adds one customer's row: the one place a scores row is formatted,
    /// whether its reasons come stored or straight from the scored table.
    pub fn push<'r>(
        &mut self,
        customer_id: &str,
        probability: f64,
        band: RiskBand,
        reasons: impl Iterator<Item = ReasonText<'r>>,
    ) {
        let mut reasons = reasons.take(3);
        match self {
            ScoresBlock::Csv { lines, text } => {
                push_cell(lines, customer_id);
                lines.push(b',');
                // Six decimals are plenty for a probability and keep the file small.
                let p = churn_model::decimal::fixed(probability, 6);
                lines.extend_from_slice(p.as_bytes());
                lines.push(b',');
                lines.extend_from_slice(band.as_str().as_bytes());
                for _ in 0..3 {
                    lines.push(b',');
                    if let Some(r) = reasons.next() {
                        text.clear();
                        let _ = r.write(text);
                        push_cell(lines, text);
                    }
                }
                lines.push(b'\n');
            }
            ScoresBlock::Rows(rows) => {
                let mut text = || {
                    reasons.next().map(|r| {
                        let mut t = String::new();
                        let _ = r.write(&mut t);
                        t
                    })
                };
                rows.push(ScoresRow {
                    customer_id: customer_id.to_string(),
                    probability,
                    band,
                    reasons: [text(), text(), text()],
                });
            }
        }
    }
}

fn push_row(pending: &mut Table, row: ScoresRow) {
    let cols = &mut pending.columns;
    push_text(&mut cols[0], Some(row.customer_id));
    if let ColumnValues::Numeric(v) = &mut cols[1].values {
        v.push(row.probability);
    }
    push_text(&mut cols[2], Some(row.band.as_str().to_string()));
    for (k, reason) in row.reasons.into_iter().enumerate() {
        push_text(&mut cols[3 + k], reason);
    }
}

fn empty_scores_table() -> Table {
    Table::new(
        SCORES_HEADER
            .iter()
            .map(|&name| match name {
                "churn_probability" => Column::numeric(name, Vec::new()),
                _ => Column::text(name, Vec::new()),
            })
            .collect(),
    )
}

fn push_text(column: &mut Column, value: Option<String>) {
    if let ColumnValues::Text(v) = &mut column.values {
        v.push(value);
    }
}

fn flush_row_group<W: Write + Send>(
    writer: &mut SerializedFileWriter<W>,
    pending: &mut Table,
) -> std::io::Result<()> {
    let rows = pending.n_rows();
    write_row_group(writer, pending, 0..rows).map_err(std::io::Error::other)?;
    for c in &mut pending.columns {
        match &mut c.values {
            ColumnValues::Numeric(v) => v.clear(),
            ColumnValues::Text(v) => v.clear(),
        }
    }
    Ok(())
}
