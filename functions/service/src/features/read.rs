//! Whole-table reads for training: every part of a source into one [`Table`].
//!
//! A local file is read into memory once (one `read`, no per-line I/O) and
//! parsed in parallel; an S3 object is downloaded whole, since training needs
//! all rows in memory anyway. Parts of a prefix must have the same columns in
//! the same order; a column that is text in one part and numeric in another
//! is read as text everywhere.

use super::csv_bulk::{parse_csv, read_csv_file};
use super::error::{FeatureError, FeatureResult};
use super::options::{ColumnHint, ReadOptions};
use super::parquet_read::{append, read_parquet};
use super::parts::{resolve, Part};
use super::uri::{FeatureUri, Format};
use crate::blocking;
use churn_model::{ColumnValues, Table};
use std::path::Path;
use std::time::Instant;

/// A table and what its reader noted: columns it did not read (Parquet
/// dates, nested columns), a detected delimiter. One sentence each.
pub type NotedTable = (Table, Vec<String>);

/// Reads a whole table from a local path or `s3://` URI (file or prefix).
///
/// Parsing runs on a blocking thread (inside the caller's span), so the
/// async runtime stays responsive; each part parsed is logged there.
/// The reader's notes are logged; [`read_table_with_notes`] returns them.
///
/// # Errors
/// [`FeatureError`] naming the part, and the row and column for bad cells.
pub async fn read_table(
    uri: &FeatureUri,
    s3: Option<&aws_sdk_s3::Client>,
    options: &ReadOptions,
) -> FeatureResult<Table> {
    let (table, notes) = read_table_with_notes(uri, s3, options).await?;
    for note in notes {
        tracing::info!(%note, "reader note");
    }
    Ok(table)
}

/// As [`read_table`], with the reader's notes (each once, in part order).
///
/// # Errors
/// As [`read_table`].
pub async fn read_table_with_notes(
    uri: &FeatureUri,
    s3: Option<&aws_sdk_s3::Client>,
    options: &ReadOptions,
) -> FeatureResult<NotedTable> {
    let parts = resolve(uri, s3).await?;
    let mut tables: Vec<(Part, Table)> = Vec::with_capacity(parts.len());
    let mut notes: Vec<String> = Vec::new();
    for part in parts {
        let (table, part_notes) = read_part(&part, s3, options).await?;
        notes.extend(part_notes);
        tables.push((part, table));
    }
    // Columns that are text in some part are text in all.
    let text_somewhere: Vec<String> = tables
        .iter()
        .flat_map(|(_, t)| t.columns.iter())
        .filter(|c| matches!(c.values, ColumnValues::Text(_)))
        .map(|c| c.name.clone())
        .collect();
    let mut out: Option<(String, Table)> = None;
    for (part, mut table) in tables {
        let needs_text = table.columns.iter().any(|c| {
            matches!(c.values, ColumnValues::Numeric(_)) && text_somewhere.contains(&c.name)
        });
        if needs_text {
            let mut forced = options.clone();
            for name in &text_somewhere {
                if table.column(name).is_some() {
                    forced.hints.insert(name.clone(), ColumnHint::Text);
                }
            }
            table = read_part(&part, s3, &forced).await?.0;
        }
        match &mut out {
            None => out = Some((part.location(), table)),
            Some((first, all)) => {
                let a: Vec<&str> = all.columns.iter().map(|c| c.name.as_str()).collect();
                let b: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                if a != b {
                    return Err(FeatureError::PartMismatch {
                        location: part.location(),
                        first: first.clone(),
                        message: format!("columns [{}] vs [{}]", b.join(", "), a.join(", ")),
                    });
                }
                append(all, table);
            }
        }
    }
    Ok((out.map(|(_, t)| t).unwrap_or_default(), notes))
}

/// Reads a whole local CSV or Parquet file (no directories), synchronously.
///
/// # Errors
/// As [`read_table`].
pub fn read_local_file(path: &Path, options: &ReadOptions) -> FeatureResult<Table> {
    read_local_file_with_notes(path, options).map(|(table, _)| table)
}

/// As [`read_local_file`], with the reader's notes.
///
/// # Errors
/// As [`read_table`].
pub fn read_local_file_with_notes(path: &Path, options: &ReadOptions) -> FeatureResult<NotedTable> {
    let location = path.display().to_string();
    match Format::from_name(&location) {
        Some(Format::Csv) => read_csv_file(path, &location, options),
        Some(Format::Parquet) => {
            let file =
                std::fs::File::open(path).map_err(|e| FeatureError::io("open", &location, e))?;
            read_parquet(file, &location, options)
        }
        None => Err(FeatureError::UnsupportedFormat {
            location,
            message: "the file name must end in .csv or .parquet".to_string(),
        }),
    }
}

async fn read_part(
    part: &Part,
    s3: Option<&aws_sdk_s3::Client>,
    options: &ReadOptions,
) -> FeatureResult<NotedTable> {
    let location = part.location();
    let options = options.clone();
    match part {
        Part::Local(path, _) => {
            let path = path.clone();
            blocking::run(move || {
                let started = Instant::now();
                let read = read_local_file_with_notes(&path, &options);
                log_part(&location, &read, started);
                read
            })
            .await
        }
        Part::S3 {
            bucket,
            key,
            format,
        } => {
            let client = s3.ok_or_else(|| FeatureError::io("read", &location, "no S3 client"))?;
            let resp = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| FeatureError::s3("get", &location, e))?;
            let bytes = resp
                .body
                .collect()
                .await
                .map_err(|e| FeatureError::io("download", &location, e))?
                .into_bytes();
            let format = *format;
            blocking::run(move || {
                let started = Instant::now();
                let read = match format {
                    Format::Csv => parse_csv(&bytes, &location, &options),
                    Format::Parquet => read_parquet(bytes, &location, &options),
                };
                log_part(&location, &read, started);
                read
            })
            .await
        }
    }
}

/// One line per part parsed (on the parsing thread, inside the invocation's
/// span): how big it was and how long parsing took (an S3 part's download
/// is not included).
fn log_part(location: &str, read: &FeatureResult<NotedTable>, started: Instant) {
    if let Ok((table, _)) = read {
        tracing::info!(
            part = %location,
            rows = table.n_rows(),
            columns = table.columns.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "part read"
        );
    }
}
