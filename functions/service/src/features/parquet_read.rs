//! Parquet reading with the `parquet` crate's low-level column readers (no
//! Arrow): flat schemas of BOOLEAN, INT32, INT64, FLOAT, DOUBLE and
//! BYTE_ARRAY (strings) columns, optional or required.
//!
//! [`ParquetChunks`] reads `chunk_rows` rows at a time from the current row
//! group's column readers, which decode page by page, so memory stays at one
//! chunk plus one page per column whatever the file or row-group size.
//!
//! Kinds: numeric physical types are numeric (a `Text` hint formats them);
//! strings are text (a `Numeric` hint parses them). A floating-point `NaN`
//! is a missing value (pandas writes missing floats that way); `inf` is an error.

use super::csv_parse::{
    not_a_number, shown, Builders, ColBuf, LocalError, LocalRowError, Mode, Plan,
};
use super::error::{FeatureError, FeatureResult};
use super::number::{parse_cell, CellNumber};
use super::options::{ColumnHint, ReadOptions};
use churn_model::Table;
use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReader;
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};

/// One cell as decoded.
enum Cell<'a> {
    Missing,
    Float(f64),
    Int(i64),
    Bool(bool),
    Bytes(&'a [u8]),
}

/// Streams a Parquet file in chunks of rows.
pub(crate) struct ParquetChunks<R: ChunkReader + 'static> {
    file: SerializedFileReader<R>,
    location: String,
    /// All leaf column names, in file order.
    pub names: Vec<String>,
    /// Index in `names` and plan of each column read.
    selected: Vec<(usize, Plan)>,
    max_defs: Vec<i16>,
    row_group: usize,
    readers: Vec<ColumnReader>,
    rows_left_in_group: usize,
    chunk_rows: usize,
    mode: Mode,
}

impl<R: ChunkReader + 'static> ParquetChunks<R> {
    /// Opens `reader` and decides each column's plan.
    ///
    /// # Errors
    /// [`FeatureError::Parquet`] for an unreadable file or a nested/repeated
    /// column or an unsupported physical type.
    pub(crate) fn open(
        reader: R,
        location: &str,
        options: &ReadOptions,
        mode: Mode,
    ) -> FeatureResult<Self> {
        let file =
            SerializedFileReader::new(reader).map_err(|e| FeatureError::parquet(location, e))?;
        let schema = file.metadata().file_metadata().schema_descr_ptr();
        let mut names = Vec::new();
        let mut selected = Vec::new();
        let mut max_defs = Vec::new();
        for (i, col) in schema.columns().iter().enumerate() {
            if col.max_rep_level() > 0 || col.path().parts().len() > 1 {
                return Err(FeatureError::Parquet {
                    location: location.to_string(),
                    message: format!(
                        "column {:?} is nested or repeated; only flat tables are supported",
                        col.path().string()
                    ),
                });
            }
            let name = col.name().to_string();
            let physical = col.physical_type();
            let plan = match options.hint_for(&name) {
                Some(ColumnHint::Skip) => Plan::Skip,
                Some(ColumnHint::Numeric) => Plan::Numeric,
                Some(ColumnHint::Text) => Plan::Text,
                None if physical == PhysicalType::BYTE_ARRAY => Plan::Text,
                None => Plan::Numeric,
            };
            if plan != Plan::Skip {
                if !matches!(
                    physical,
                    PhysicalType::BOOLEAN
                        | PhysicalType::INT32
                        | PhysicalType::INT64
                        | PhysicalType::FLOAT
                        | PhysicalType::DOUBLE
                        | PhysicalType::BYTE_ARRAY
                ) {
                    return Err(FeatureError::Parquet {
                        location: location.to_string(),
                        message: format!(
                            "column {name:?} has physical type {physical}, which is not read"
                        ),
                    });
                }
                selected.push((i, plan));
                max_defs.push(col.max_def_level());
            }
            names.push(name);
        }
        Ok(ParquetChunks {
            file,
            location: location.to_string(),
            names,
            selected,
            max_defs,
            row_group: 0,
            readers: Vec::new(),
            rows_left_in_group: 0,
            chunk_rows: options.chunk_rows.max(1),
            mode,
        })
    }

    /// Total rows in the file (from the footer).
    pub(crate) fn total_rows(&self) -> usize {
        self.file.metadata().file_metadata().num_rows().max(0) as usize
    }

    /// The next chunk of at most `chunk_rows` rows (`None` at the end), with
    /// `first_row` set, and bad rows (lenient mode) with rows relative to the chunk.
    ///
    /// # Errors
    /// [`FeatureError::Parquet`] for corrupt data; in strict mode
    /// [`FeatureError::Cell`] for a cell that does not fit its column.
    pub(crate) fn next_chunk(
        &mut self,
        first_row: usize,
        max_rows: usize,
    ) -> FeatureResult<Option<(Table, Vec<LocalRowError>)>> {
        while self.rows_left_in_group == 0 {
            if self.row_group >= self.file.num_row_groups() {
                return Ok(None);
            }
            let rg = self
                .file
                .get_row_group(self.row_group)
                .map_err(|e| FeatureError::parquet(&self.location, e))?;
            self.rows_left_in_group = rg.metadata().num_rows().max(0) as usize;
            let mut readers = Vec::with_capacity(self.selected.len());
            for (i, _) in &self.selected {
                readers.push(
                    rg.get_column_reader(*i)
                        .map_err(|e| FeatureError::parquet(&self.location, e))?,
                );
            }
            drop(rg);
            self.readers = readers;
            self.row_group += 1;
        }
        let want = self.chunk_rows.min(max_rows).min(self.rows_left_in_group);
        // Builders over all names; unselected columns are skipped.
        let mut plan = vec![Plan::Skip; self.names.len()];
        for (i, p) in &self.selected {
            plan[*i] = *p;
        }
        let mut b = Builders::new(plan, want);
        let mut defs: Vec<i16> = Vec::with_capacity(want);
        for (k, reader) in self.readers.iter_mut().enumerate() {
            let (i, plan) = self.selected[k];
            let max_def = self.max_defs[k];
            let mut row = 0usize;
            let mut errors: Vec<LocalRowError> = Vec::new();
            let col = &mut b.cols[i];
            let read = read_batch(reader, max_def, want, &mut defs, &mut |cell| {
                let r = row;
                row += 1;
                if let Err(message) = push_cell(col, plan, cell) {
                    errors.push(LocalRowError {
                        row: r,
                        column: Some(i),
                        message,
                    });
                }
            })
            .map_err(|e| FeatureError::parquet(&self.location, e))?;
            if read != want {
                return Err(FeatureError::Parquet {
                    location: self.location.clone(),
                    message: format!(
                        "column {:?} has {read} values where the row group promises {want}",
                        self.names[i]
                    ),
                });
            }
            if let Some(first) = errors.first() {
                if self.mode == Mode::Strict {
                    return Err(super::csv_bulk::local_error(
                        LocalError::Cell {
                            row: first.row,
                            column: i,
                            message: first.message.clone(),
                        },
                        first_row - 1,
                        &self.names,
                        &self.location,
                    ));
                }
            }
            b.row_errors.extend(errors);
        }
        b.rows = want;
        self.rows_left_in_group -= want;
        // One report per row, in row order.
        let mut row_errors = std::mem::take(&mut b.row_errors);
        row_errors.sort_by_key(|e| e.row);
        row_errors.dedup_by_key(|e| e.row);
        Ok(Some((b.into_table(&self.names, first_row), row_errors)))
    }
}

/// Reads all rows of a Parquet source in strict mode.
///
/// # Errors
/// As [`ParquetChunks::open`] and [`ParquetChunks::next_chunk`].
pub(crate) fn read_parquet<R: ChunkReader + 'static>(
    reader: R,
    location: &str,
    options: &ReadOptions,
) -> FeatureResult<Table> {
    let mut chunks = ParquetChunks::open(reader, location, options, Mode::Strict)?;
    let total = chunks.total_rows();
    let mut table: Option<Table> = None;
    let mut next_row = 1;
    while let Some((t, _)) = chunks.next_chunk(next_row, usize::MAX)? {
        next_row += t.n_rows();
        match &mut table {
            None => {
                let mut t = t;
                for c in &mut t.columns {
                    reserve(&mut c.values, total);
                }
                table = Some(t);
            }
            Some(all) => append(all, t),
        }
    }
    Ok(table.unwrap_or_else(|| {
        // No rows: still return the columns, empty.
        let plan: Vec<Plan> = chunks.names.iter().map(|_| Plan::Skip).collect();
        let mut b = Builders::new(plan, 0);
        for (i, p) in &chunks.selected {
            b.plan[*i] = *p;
            b.cols[*i] = match p {
                Plan::Text => ColBuf::Text(Vec::new()),
                _ => ColBuf::Num(Vec::new()),
            };
        }
        b.into_table(&chunks.names, 1)
    }))
}

fn reserve(values: &mut churn_model::ColumnValues, total: usize) {
    use churn_model::ColumnValues::*;
    match values {
        Numeric(v) => v.reserve(total.saturating_sub(v.len())),
        Text(v) => v.reserve(total.saturating_sub(v.len())),
    }
}

/// Appends `more`'s columns to `all`'s (same names and kinds, as both come
/// from one file or from parts checked to match).
pub(crate) fn append(all: &mut Table, more: Table) {
    use churn_model::ColumnValues::*;
    for (a, m) in all.columns.iter_mut().zip(more.columns) {
        match (&mut a.values, m.values) {
            (Numeric(a), Numeric(m)) => a.extend_from_slice(&m),
            (Text(a), Text(m)) => a.extend(m),
            // Kinds are fixed per column by the plan; never mixed.
            _ => {}
        }
    }
}

/// Stores one decoded cell in `col`; `Err` describes a cell that does not fit.
fn push_cell(col: &mut ColBuf, plan: Plan, cell: Cell<'_>) -> Result<(), String> {
    match col {
        ColBuf::Skip => Ok(()),
        ColBuf::Num(v) => {
            let x = match cell {
                Cell::Missing => f64::NAN,
                Cell::Float(x) if x.is_nan() => f64::NAN,
                Cell::Float(x) if x.is_infinite() => {
                    v.push(f64::NAN);
                    return Err(super::csv_parse::non_finite(&x.to_string()));
                }
                Cell::Float(x) => x,
                Cell::Int(i) => i as f64,
                Cell::Bool(b) => f64::from(u8::from(b)),
                Cell::Bytes(bytes) => match parse_cell(bytes) {
                    CellNumber::Missing => f64::NAN,
                    CellNumber::Finite(x) => x,
                    CellNumber::NonFinite => {
                        v.push(f64::NAN);
                        return Err(super::csv_parse::non_finite(&shown(bytes.trim_ascii())));
                    }
                    CellNumber::NotNumber => {
                        v.push(f64::NAN);
                        let _ = plan;
                        return Err(not_a_number(bytes));
                    }
                },
            };
            v.push(x);
            Ok(())
        }
        ColBuf::Text(v) => {
            v.push(match cell {
                Cell::Missing => None,
                Cell::Float(x) if x.is_nan() => None,
                Cell::Float(x) => Some(x.to_string()),
                Cell::Int(i) => Some(i.to_string()),
                Cell::Bool(b) => Some(b.to_string()),
                Cell::Bytes([]) => None,
                Cell::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            });
            Ok(())
        }
    }
}

/// Reads up to `n` records of one column, calling `sink` once per record
/// in order. Returns the number of records read.
fn read_batch(
    reader: &mut ColumnReader,
    max_def: i16,
    n: usize,
    defs: &mut Vec<i16>,
    sink: &mut dyn FnMut(Cell<'_>),
) -> parquet::errors::Result<usize> {
    macro_rules! typed {
        ($r:expr, $conv:expr) => {{
            let mut values = Vec::with_capacity(n);
            let mut total = 0;
            while total < n {
                defs.clear();
                values.clear();
                let (records, _, _) = $r.read_records(n - total, Some(defs), None, &mut values)?;
                if records == 0 {
                    break;
                }
                let mut k = 0;
                for r in 0..records {
                    if max_def == 0 || defs[r] == max_def {
                        sink($conv(&values[k]));
                        k += 1;
                    } else {
                        sink(Cell::Missing);
                    }
                }
                total += records;
            }
            Ok(total)
        }};
    }
    match reader {
        ColumnReader::BoolColumnReader(r) => typed!(r, |v: &bool| Cell::Bool(*v)),
        ColumnReader::Int32ColumnReader(r) => typed!(r, |v: &i32| Cell::Int(i64::from(*v))),
        ColumnReader::Int64ColumnReader(r) => typed!(r, |v: &i64| Cell::Int(*v)),
        ColumnReader::FloatColumnReader(r) => typed!(r, |v: &f32| Cell::Float(f64::from(*v))),
        ColumnReader::DoubleColumnReader(r) => typed!(r, |v: &f64| Cell::Float(*v)),
        ColumnReader::ByteArrayColumnReader(r) => {
            typed!(r, bytes_cell)
        }
        _ => Err(parquet::errors::ParquetError::General(
            "unsupported physical type".to_string(),
        )),
    }
}

fn bytes_cell(v: &parquet::data_type::ByteArray) -> Cell<'_> {
    Cell::Bytes(v.data())
}
