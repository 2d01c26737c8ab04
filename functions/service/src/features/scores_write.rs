//! The batch scores file: `customer_id,churn_probability,risk_band,reason_1,reason_2,reason_3`,
//! as CSV or Parquet (chosen by the output name in [`ScoresWriter::create`]).
//!
//! Both keep memory constant whatever the number of customers: CSV lines go
//! straight to a buffered writer; Parquet rows are buffered up to one row
//! group ([`ROW_GROUP_ROWS`]) and written out. Reasons are text cells
//! `feature is value (typical t)`, the same words in both formats; in
//! Parquet a customer with fewer than three reasons has nulls, in CSV empty cells.

use super::error::{FeatureError, FeatureResult};
use super::uri::Format;
use super::write::{parquet_writer, push_cell, write_record, write_row_group, ROW_GROUP_ROWS};
use churn_model::{Column, ColumnValues, Score, Table};
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
        line: Vec<u8>,
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
            sink: Sink::Csv {
                out,
                line: Vec::with_capacity(256),
            },
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

    /// Writes the scores of `rows`, in order. CSV lines are formatted on
    /// the thread pool (formatting is most of the cost of a scores file),
    /// in pieces written in order, so the bytes are those of [`Self::write`]
    /// row after row.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn write_all(&mut self, rows: &[(String, Score)]) -> std::io::Result<()> {
        use rayon::prelude::*;
        /// Rows formatted by one task: big enough to amortize the task.
        const PIECE: usize = 512;
        match &mut self.sink {
            Sink::Csv { out, .. } => {
                let pieces: Vec<Vec<u8>> = rows
                    .par_chunks(PIECE)
                    .map(|piece| {
                        let mut buf = Vec::with_capacity(piece.len() * 192);
                        let mut text = String::new();
                        for (id, score) in piece {
                            csv_line(&mut buf, &mut text, id, score);
                        }
                        buf
                    })
                    .collect();
                pieces.iter().try_for_each(|p| out.write_all(p))
            }
            Sink::Parquet { .. } => rows.iter().try_for_each(|(id, s)| self.write(id, s)),
        }
    }

    /// Writes one customer's score.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn write(&mut self, customer_id: &str, score: &Score) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Csv { out, line } => {
                line.clear();
                csv_line(line, &mut String::new(), customer_id, score);
                out.write_all(line)
            }
            Sink::Parquet { writer, pending } => {
                let cols = &mut pending.columns;
                push_text(&mut cols[0], Some(customer_id.to_string()));
                if let ColumnValues::Numeric(v) = &mut cols[1].values {
                    v.push(score.churn_probability);
                }
                push_text(&mut cols[2], Some(score.risk_band.to_string()));
                for k in 0..3 {
                    push_text(
                        &mut cols[3 + k],
                        score.reasons.get(k).map(|r| r.to_string()),
                    );
                }
                if pending.n_rows() >= ROW_GROUP_ROWS {
                    flush_row_group(writer, pending)?;
                }
                Ok(())
            }
        }
    }

    /// Writes what is buffered, finishes the file and returns the inner writer.
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn finish(self) -> std::io::Result<W> {
        match self.sink {
            Sink::Csv { mut out, .. } => {
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

/// Appends one CSV line of the scores file to `line` (`text` is scratch).
fn csv_line(line: &mut Vec<u8>, text: &mut String, customer_id: &str, score: &Score) {
    use std::fmt::Write as _;
    push_cell(line, customer_id);
    line.push(b',');
    // Six decimals are plenty for a probability and keep the file small.
    let p = churn_model::decimal::fixed(score.churn_probability, 6);
    line.extend_from_slice(p.as_str().as_bytes());
    line.push(b',');
    line.extend_from_slice(score.risk_band.as_str().as_bytes());
    for k in 0..3 {
        line.push(b',');
        if let Some(r) = score.reasons.get(k) {
            text.clear();
            let _ = write!(text, "{r}");
            push_cell(line, text);
        }
    }
    line.push(b'\n');
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
