//! Writers: a [`Table`] to CSV or Parquet (`churn generate --out`), and the
//! CSV cell and Parquet row-group pieces the scores file
//! ([`super::scores_write`]) shares.
//!
//! CSV cells are quoted only when they must be (`,`, `"`, line ends);
//! numbers use Rust's shortest round-trip form, so reading a written file
//! gives back the same `f64`s. Missing values are empty cells (CSV) or nulls
//! (Parquet: every column is OPTIONAL DOUBLE or OPTIONAL UTF-8 BYTE_ARRAY).

use super::error::{FeatureError, FeatureResult};
use super::uri::Format;
use churn_model::{ColumnValues, Table};
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

/// Rows per Parquet row group: small enough that a streaming reader's pages stay small.
pub(crate) const ROW_GROUP_ROWS: usize = 65_536;

/// Writes `table` to `path`, as CSV or Parquet by the extension.
///
/// # Errors
/// [`FeatureError::UnsupportedFormat`] for another extension,
/// [`FeatureError::InvalidTable`] for ragged columns, [`FeatureError::Io`].
pub fn write_table(table: &Table, path: &Path) -> FeatureResult<()> {
    let location = path.display().to_string();
    let rows = table.n_rows();
    if let Some(c) = table.columns.iter().find(|c| c.values.len() != rows) {
        return Err(FeatureError::InvalidTable {
            location,
            message: format!(
                "column {:?} has {} rows, the first column {rows}",
                c.name,
                c.values.len()
            ),
        });
    }
    let file = std::fs::File::create(path).map_err(|e| FeatureError::io("create", &location, e))?;
    match Format::from_name(&location) {
        Some(Format::Csv) => {
            let mut w = BufWriter::with_capacity(1 << 20, file);
            write_csv(table, &mut w).map_err(|e| FeatureError::io("write", &location, e))?;
            w.flush()
                .map_err(|e| FeatureError::io("write", &location, e))
        }
        Some(Format::Parquet) => {
            write_parquet(table, file).map_err(|e| FeatureError::io("write", &location, e))
        }
        None => Err(FeatureError::UnsupportedFormat {
            location,
            message: "the output name must end in .csv or .parquet".to_string(),
        }),
    }
}

/// Writes `table` as CSV (header, then one line per row).
///
/// # Errors
/// The writer's I/O errors.
pub fn write_csv(table: &Table, w: &mut impl Write) -> std::io::Result<()> {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    write_record(w, names.iter().copied())?;
    let mut line = Vec::with_capacity(256);
    let mut num = Vec::with_capacity(32);
    for row in 0..table.n_rows() {
        line.clear();
        for (j, c) in table.columns.iter().enumerate() {
            if j > 0 {
                line.push(b',');
            }
            match &c.values {
                ColumnValues::Numeric(v) => {
                    let x = v[row];
                    if !x.is_nan() {
                        num.clear();
                        write!(num, "{x}")?;
                        line.extend_from_slice(&num);
                    }
                }
                ColumnValues::Text(v) => {
                    if let Some(s) = &v[row] {
                        push_cell(&mut line, s);
                    }
                }
            }
        }
        line.push(b'\n');
        w.write_all(&line)?;
    }
    Ok(())
}

/// Appends one CSV cell, quoted when needed.
pub(crate) fn push_cell(line: &mut Vec<u8>, s: &str) {
    // Leading or trailing whitespace is quoted so readers keep it (what
    // `s.trim() != s` says, from the two ends only).
    let padded = s.chars().next().is_some_and(char::is_whitespace)
        || s.chars().next_back().is_some_and(char::is_whitespace);
    if padded || s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        line.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                line.push(b'"');
            }
            line.push(b);
        }
        line.push(b'"');
    } else {
        line.extend_from_slice(s.as_bytes());
    }
}

pub(crate) fn write_record<'a>(
    w: &mut impl Write,
    cells: impl Iterator<Item = &'a str>,
) -> std::io::Result<()> {
    let mut line = Vec::new();
    for (j, s) in cells.enumerate() {
        if j > 0 {
            line.push(b',');
        }
        push_cell(&mut line, s);
    }
    line.push(b'\n');
    w.write_all(&line)
}

/// Writes `table` as Parquet to `sink`.
///
/// # Errors
/// Parquet encoding or I/O errors.
pub fn write_parquet<W: Write + Send>(table: &Table, sink: W) -> parquet::errors::Result<()> {
    let mut writer = parquet_writer(table, sink)?;
    let rows = table.n_rows();
    if rows == 0 {
        // One empty row group, so readers see the schema and zero rows.
        write_row_group(&mut writer, table, 0..0)?;
    }
    let mut start = 0;
    while start < rows {
        let end = (start + ROW_GROUP_ROWS).min(rows);
        write_row_group(&mut writer, table, start..end)?;
        start = end;
    }
    writer.close()?;
    Ok(())
}

/// A Parquet writer whose schema has `table`'s columns: numeric columns as
/// OPTIONAL DOUBLE, text columns as OPTIONAL UTF-8 BYTE_ARRAY, Snappy pages.
pub(crate) fn parquet_writer<W: Write + Send>(
    table: &Table,
    sink: W,
) -> parquet::errors::Result<SerializedFileWriter<W>> {
    let mut fields = Vec::new();
    for c in &table.columns {
        let t = match c.values {
            ColumnValues::Numeric(_) => Type::primitive_type_builder(&c.name, PhysicalType::DOUBLE)
                .with_repetition(Repetition::OPTIONAL)
                .build()?,
            ColumnValues::Text(_) => {
                Type::primitive_type_builder(&c.name, PhysicalType::BYTE_ARRAY)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(Some(LogicalType::String))
                    .build()?
            }
        };
        fields.push(Arc::new(t));
    }
    let schema = Arc::new(
        Type::group_type_builder("schema")
            .with_fields(fields)
            .build()?,
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    SerializedFileWriter::new(sink, schema, props)
}

/// Writes rows `range` of `table` as one row group of `writer` (whose schema
/// came from a table with the same columns).
pub(crate) fn write_row_group<W: Write + Send>(
    writer: &mut SerializedFileWriter<W>,
    table: &Table,
    range: std::ops::Range<usize>,
) -> parquet::errors::Result<()> {
    let mut rg = writer.next_row_group()?;
    for c in &table.columns {
        let Some(mut col) = rg.next_column()? else {
            break;
        };
        match &c.values {
            ColumnValues::Numeric(v) => {
                let slice = &v[range.clone()];
                let defs: Vec<i16> = slice.iter().map(|x| i16::from(!x.is_nan())).collect();
                let present: Vec<f64> = slice.iter().copied().filter(|x| !x.is_nan()).collect();
                col.typed::<DoubleType>()
                    .write_batch(&present, Some(&defs), None)?;
            }
            ColumnValues::Text(v) => {
                let slice = &v[range.clone()];
                let defs: Vec<i16> = slice.iter().map(|x| i16::from(x.is_some())).collect();
                let present: Vec<ByteArray> = slice
                    .iter()
                    .flatten()
                    .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&present, Some(&defs), None)?;
            }
        }
        col.close()?;
    }
    rg.close()?;
    Ok(())
}
