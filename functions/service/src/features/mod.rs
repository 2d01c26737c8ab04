//! Feature sources: tables of customer features from CSV or Parquet, local
//! or on S3, read whole (training) or streamed in chunks (rescoring), and
//! the writers for generated tables and batch score files.
//!
//! # Layout
//! - [`uri`]: `FeatureUri` (local path or `s3://bucket/key`, prefixes) and `Format`.
//! - [`options`]: `ReadOptions` and `ColumnHint` (forced kinds, skipped columns).
//! - [`error`]: `FeatureError` (names location, row, column) and `RowError`.
//! - `number`: allocation-free number parsing for CSV cells.
//! - `csv_parse`: the CSV record parser shared by whole reads and streams.
//! - `csv_bulk`: parallel whole-file CSV parsing with kind inference.
//! - `csv_chunks`: one CSV source as a stream of chunks, parsed ahead in parallel.
//! - `mmap`: read-only file maps for whole-file reads (unix).
//! - `parquet_read`: Parquet column readers (no Arrow), whole or chunked.
//! - `parts`: resolving a URI to its ordered parts (directory / S3 prefix listing).
//! - `source`: [`FeatureSources`], the port handlers read through (local paths and `s3://`, S3 client built on first use).
//! - [`read`]: `read_table` (whole table) and `read_local_file`.
//! - [`stream`]: `TableStream` / `TableChunk` (constant-memory chunks).
//! - [`write`]: `write_table` (CSV/Parquet) and the Parquet row-group writer.
//! - [`scores_write`]: `ScoresWriter`, the batch scores file (CSV/Parquet).

mod csv_bulk;
mod csv_chunks;
mod csv_parse;
pub mod error;
#[cfg(unix)]
mod mmap;
mod number;
pub mod options;
mod parquet_read;
mod parts;
pub mod read;
pub mod sample_read;
pub mod scores_write;
mod source;
pub mod stream;
pub mod uri;
pub mod write;

pub use error::{FeatureError, FeatureResult, RowError};
pub use options::{ColumnHint, ReadOptions};
pub use read::{
    read_local_file, read_local_file_with_notes, read_table, read_table_with_notes, NotedTable,
};
pub use sample_read::{sample_stream, SampledTable};
pub use scores_write::{ScoresBlock, ScoresWriter, SCORES_HEADER};
pub use source::FeatureSources;
pub use stream::{TableChunk, TableStream};
pub use uri::{FeatureUri, Format};
pub use write::{write_csv, write_parquet, write_table};
