//! Streaming reads for rescoring: [`TableStream`] yields chunks of at most
//! `chunk_rows` rows in constant memory whatever the source size.
//!
//! - CSV, local: a buffer refilled from the file, whole records parsed
//!   several chunks at a time in parallel (`csv_chunks`).
//! - CSV, S3: the GetObject body is read as it arrives
//!   (`ByteStream::into_async_read` behind `tokio_util::io::SyncIoBridge`);
//!   the object is never held in memory whole.
//! - Parquet, local: one chunk at a time from the row group's column readers.
//! - Parquet, S3: the object is *spooled* to an anonymous temporary file
//!   (streamed, deleted on close), then read like a local file: Parquet needs
//!   random access to its footer and column chunks.
//!
//! Kinds are fixed before the first chunk: by the hints (rescoring passes the
//! model's features), otherwise inferred from the first megabyte. A cell that
//! does not fit its column, or a ragged row, does not stop the stream: the
//! chunk reports it in [`TableChunk::row_errors`].
//!
//! [`TableStream::next_chunk`] blocks; with S3 parts it must run on a
//! blocking thread (`crate::blocking::spawn`, which keeps the caller's span),
//! or use [`TableStream::spawn`]. Each part read is logged (`part read`).

use super::csv_chunks::CsvChunks;
use super::csv_parse::{LocalRowError, Mode};
use super::error::{FeatureError, FeatureResult, RowError};
use super::options::ReadOptions;
use super::parquet_read::ParquetChunks;
use super::parts::{resolve, resolve_local, Part};
use super::uri::{FeatureUri, Format};
use churn_model::Table;
use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

/// A chunk of a streamed source.
#[derive(Debug, Clone)]
pub struct TableChunk {
    /// The rows; `first_row` is the 1-based row within `part` of the first one.
    pub table: Table,
    /// Rows that could not be read (still present in `table` with missing
    /// values so row numbers stay contiguous); skip them.
    pub row_errors: Vec<RowError>,
    /// The file or object the rows come from.
    pub part: Arc<str>,
    /// How many parts the source has (to say which one in messages when > 1).
    pub parts: usize,
    /// What the reader noted on opening the part (columns it did not read,
    /// a detected delimiter); on the part's first chunk only.
    pub notes: Vec<String>,
}

/// Chunks of a local file or `s3://` source, part after part.
pub struct TableStream {
    parts: VecDeque<Part>,
    n_parts: usize,
    options: ReadOptions,
    s3: Option<(aws_sdk_s3::Client, tokio::runtime::Handle)>,
    current: Option<(Arc<str>, PartReader)>,
    /// Column names of the first part's chunks: every part must match.
    columns: Option<(String, Vec<String>)>,
    /// Notes of the part just opened, for its first chunk.
    notes: Vec<String>,
    /// Rows read from the current part and when it was opened (its log line).
    part_rows: usize,
    part_started: Instant,
}

enum PartReader {
    Csv(CsvChunks<Box<dyn Read + Send>>),
    Parquet(ParquetChunks<std::fs::File>, usize),
}

impl TableStream {
    /// Resolves `uri` to its parts (listing an S3 prefix); opens nothing yet.
    ///
    /// # Errors
    /// As the listing: [`FeatureError::NoParts`], [`FeatureError::Io`],
    /// [`FeatureError::UnsupportedFormat`], [`FeatureError::InvalidUri`].
    pub async fn open(
        uri: &FeatureUri,
        s3: Option<aws_sdk_s3::Client>,
        options: ReadOptions,
    ) -> FeatureResult<TableStream> {
        let parts = resolve(uri, s3.as_ref()).await?;
        let handle = tokio::runtime::Handle::current();
        Ok(TableStream {
            n_parts: parts.len(),
            parts: parts.into(),
            options,
            s3: s3.map(|c| (c, handle)),
            current: None,
            columns: None,
            notes: Vec::new(),
            part_rows: 0,
            part_started: Instant::now(),
        })
    }

    /// A stream over one local file or directory (no async runtime needed).
    ///
    /// # Errors
    /// As [`TableStream::open`].
    pub fn open_local(path: &std::path::Path, options: ReadOptions) -> FeatureResult<TableStream> {
        let parts = resolve_local(path)?;
        Ok(TableStream {
            n_parts: parts.len(),
            parts: parts.into(),
            options,
            s3: None,
            current: None,
            columns: None,
            notes: Vec::new(),
            part_rows: 0,
            part_started: Instant::now(),
        })
    }

    /// The next chunk, or `None` after the last part.
    ///
    /// # Errors
    /// Fatal problems only: I/O, a bad header, a corrupt Parquet file, parts
    /// with different columns. Bad rows are reported in the chunk.
    pub fn next_chunk(&mut self) -> FeatureResult<Option<TableChunk>> {
        loop {
            if self.current.is_none() {
                let Some(part) = self.parts.pop_front() else {
                    return Ok(None);
                };
                self.part_started = Instant::now();
                self.part_rows = 0;
                let reader = self.open_part(&part)?;
                // Appended: a part that yields no rows passes its notes on.
                self.notes.extend(match &reader {
                    PartReader::Csv(c) => c.notes.clone(),
                    PartReader::Parquet(p, _) => p.notes.clone(),
                });
                self.current = Some((Arc::from(part.location()), reader));
            }
            let Some((location, reader)) = self.current.as_mut() else {
                continue;
            };
            let got = match reader {
                PartReader::Csv(c) => c.next_chunk(self.options.chunk_rows)?,
                PartReader::Parquet(p, next_row) => match p.next_chunk(*next_row, usize::MAX)? {
                    Some((t, errors)) => {
                        *next_row += t.n_rows();
                        Some((t, errors, p.names.clone()))
                    }
                    None => None,
                },
            };
            let Some((table, errors, names)) = got else {
                // On the reading thread: inside the caller's span when run by
                // `spawn`. `ms` is the time the part was open, waits for a
                // slow consumer included.
                tracing::info!(
                    part = %location,
                    rows = self.part_rows,
                    ms = self.part_started.elapsed().as_secs_f64() * 1e3,
                    "part read"
                );
                self.current = None;
                continue;
            };
            self.part_rows += table.n_rows();
            let location = location.clone();
            let names_read: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
            match &self.columns {
                None => self.columns = Some((location.to_string(), names_read)),
                Some((first, cols)) if *cols != names_read => {
                    return Err(FeatureError::PartMismatch {
                        location: location.to_string(),
                        first: first.clone(),
                        message: format!(
                            "columns [{}] vs [{}]",
                            names_read.join(", "),
                            cols.join(", ")
                        ),
                    })
                }
                Some(_) => {}
            }
            let row_errors = errors
                .into_iter()
                .map(|e| row_error(e, table.first_row, &names))
                .collect();
            return Ok(Some(TableChunk {
                table,
                row_errors,
                part: location,
                parts: self.n_parts,
                notes: std::mem::take(&mut self.notes),
            }));
        }
    }

    /// Runs the stream on a blocking thread (inside the caller's span) and
    /// hands chunks over a bounded channel (2 chunks in flight), so reading
    /// overlaps the consumer's work and memory stays bounded.
    pub fn spawn(mut self) -> tokio::sync::mpsc::Receiver<FeatureResult<TableChunk>> {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        crate::blocking::spawn(move || loop {
            match self.next_chunk() {
                Ok(Some(chunk)) => {
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });
        rx
    }

    fn open_part(&self, part: &Part) -> FeatureResult<PartReader> {
        let location = part.location();
        match (part, part.format()) {
            (Part::Local(path, _), Format::Csv) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| FeatureError::io("open", &location, e))?;
                Ok(PartReader::Csv(CsvChunks::new(
                    Box::new(file) as Box<dyn Read + Send>,
                    &location,
                    &self.options,
                )?))
            }
            (Part::Local(path, _), Format::Parquet) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| FeatureError::io("open", &location, e))?;
                Ok(PartReader::Parquet(
                    ParquetChunks::open(file, &location, &self.options, Mode::Lenient)?,
                    1,
                ))
            }
            (Part::S3 { bucket, key, .. }, format) => {
                let (client, handle) = self
                    .s3
                    .as_ref()
                    .ok_or_else(|| FeatureError::io("read", &location, "no S3 client"))?;
                let resp = handle
                    .block_on(client.get_object().bucket(bucket).key(key).send())
                    .map_err(|e| FeatureError::s3("get", &location, e))?;
                let _guard = handle.enter();
                let body = tokio_util::io::SyncIoBridge::new_with_handle(
                    resp.body.into_async_read(),
                    handle.clone(),
                );
                match format {
                    Format::Csv => Ok(PartReader::Csv(CsvChunks::new(
                        Box::new(body) as Box<dyn Read + Send>,
                        &location,
                        &self.options,
                    )?)),
                    Format::Parquet => {
                        let mut spool = tempfile::tempfile()
                            .map_err(|e| FeatureError::io("spool", &location, e))?;
                        let mut body = body;
                        std::io::copy(&mut body, &mut spool)
                            .map_err(|e| FeatureError::io("download", &location, e))?;
                        Ok(PartReader::Parquet(
                            ParquetChunks::open(spool, &location, &self.options, Mode::Lenient)?,
                            1,
                        ))
                    }
                }
            }
        }
    }
}

fn row_error(e: LocalRowError, first_row: usize, names: &[String]) -> RowError {
    let message = match e.column.and_then(|j| names.get(j)) {
        Some(name) => format!("column {name:?}: {}", e.message),
        None => e.message,
    };
    RowError {
        row: first_row + e.row,
        message,
    }
}
