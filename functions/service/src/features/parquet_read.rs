//! Parquet reading with the `parquet` crate's low-level column readers (no
//! Arrow): flat schemas, optional or required columns, plain or
//! dictionary-encoded pages.
//!
//! Values are read by their *logical* type (or the legacy converted type),
//! never by the physical storage alone, so a writer's choice of encoding
//! cannot change a score:
//! - DECIMAL stored as INT32, INT64, FIXED_LEN_BYTE_ARRAY or BYTE_ARRAY is
//!   the unscaled integer divided by `10^scale`, rounded once to the nearest
//!   `f64` (as parsing its decimal text would be); as text it is the exact
//!   decimal (`1234.50`).
//! - Unsigned integers (UINT_8..UINT_64) are read as unsigned, never wrapped;
//!   signed ones of every width as they are; BOOLEAN is 0/1; FLOAT16, FLOAT
//!   and DOUBLE are numbers.
//! - Strings (UTF8, ENUM, JSON, plain BYTE_ARRAY) and UUIDs (as
//!   `8-4-4-4-12` hex) are text: categoricals or ids.
//! - DATE, TIME, TIMESTAMP, INTERVAL and INT96 columns are not inputs: one
//!   the caller did not ask for is skipped with a note ([`ParquetChunks::notes`]);
//!   one it asked for (a model feature or the id) is refused naming it, since
//!   a bare day or tick count would be scored as a number. Nested and
//!   repeated columns are treated the same way. The one exception: a DATE
//!   asked for as text (an account attribute such as a renewal date) is
//!   read as its ISO date, `YYYY-MM-DD`.
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
use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;

/// One cell as decoded.
enum Cell<'a> {
    Missing,
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Bytes(&'a [u8]),
    /// Unscaled value and scale.
    Decimal(i128, i32),
    Uuid(&'a [u8]),
    /// A DATE: days since 1970-01-01.
    Date(i64),
    /// A value that cannot be decoded (message).
    Bad(&'static str),
}

/// How a column's physical values turn into cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// As stored: integers signed, floats, booleans, bytes as text.
    Plain,
    /// Unsigned integer stored in INT32/INT64.
    Unsigned,
    Decimal {
        scale: i32,
    },
    Float16,
    Uuid,
    /// DATE (INT32 days since the epoch), read as text only.
    Date,
}

/// What a column's logical (or converted) type makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Logical {
    /// Read with this decoding; `text` when it is text by nature.
    Value { decode: Decode, text: bool },
    /// Dates and times (named), never a bare number.
    Temporal(&'static str),
    /// Anything else this reader does not interpret (named).
    Unsupported(String),
}

/// Classifies a column by its logical type, else its converted type.
fn logical_of(col: &ColumnDescriptor) -> Logical {
    let physical = col.physical_type();
    let value = |decode, text| Logical::Value { decode, text };
    let plain = value(Decode::Plain, physical == PhysicalType::BYTE_ARRAY);
    if physical == PhysicalType::INT96 {
        return Logical::Temporal("INT96 timestamp");
    }
    let decimal = |scale: i32, precision: i32| {
        let fits = match physical {
            PhysicalType::INT32 | PhysicalType::INT64 | PhysicalType::BYTE_ARRAY => true,
            PhysicalType::FIXED_LEN_BYTE_ARRAY => (1..=16).contains(&col.type_length()),
            _ => false,
        };
        if fits && precision <= 38 {
            value(Decode::Decimal { scale }, false)
        } else {
            Logical::Unsupported(format!(
                "DECIMAL({precision},{scale}) stored as {physical} (at most 38 digits in 16 bytes are read)"
            ))
        }
    };
    match col.logical_type_ref() {
        Some(LogicalType::Decimal(d)) => decimal(d.scale, d.precision),
        Some(LogicalType::Integer(i)) if !i.is_signed => value(Decode::Unsigned, false),
        Some(LogicalType::Integer(_)) => value(Decode::Plain, false),
        Some(LogicalType::Date) => Logical::Temporal("DATE"),
        Some(LogicalType::Time(_)) => Logical::Temporal("TIME"),
        Some(LogicalType::Timestamp(_)) => Logical::Temporal("TIMESTAMP"),
        Some(LogicalType::String | LogicalType::Enum | LogicalType::Json) => {
            value(Decode::Plain, true)
        }
        Some(LogicalType::Uuid) if col.type_length() == 16 => value(Decode::Uuid, true),
        Some(LogicalType::Float16) if col.type_length() == 2 => value(Decode::Float16, false),
        // Parquet's "null" type: every value missing.
        Some(LogicalType::Unknown) => plain,
        Some(other) => Logical::Unsupported(format!("logical type {other:?}")),
        None => match col.converted_type() {
            ConvertedType::DECIMAL => decimal(col.type_scale(), col.type_precision()),
            ConvertedType::UINT_8
            | ConvertedType::UINT_16
            | ConvertedType::UINT_32
            | ConvertedType::UINT_64 => value(Decode::Unsigned, false),
            ConvertedType::DATE => Logical::Temporal("DATE"),
            ConvertedType::TIME_MILLIS | ConvertedType::TIME_MICROS => Logical::Temporal("TIME"),
            ConvertedType::TIMESTAMP_MILLIS | ConvertedType::TIMESTAMP_MICROS => {
                Logical::Temporal("TIMESTAMP")
            }
            ConvertedType::INTERVAL => Logical::Temporal("INTERVAL"),
            ConvertedType::UTF8 | ConvertedType::ENUM | ConvertedType::JSON => {
                value(Decode::Plain, true)
            }
            ConvertedType::MAP
            | ConvertedType::MAP_KEY_VALUE
            | ConvertedType::LIST
            | ConvertedType::BSON => {
                Logical::Unsupported(format!("converted type {}", col.converted_type()))
            }
            _ => plain,
        },
    }
}

/// Streams a Parquet file in chunks of rows.
pub(crate) struct ParquetChunks<R: ChunkReader + 'static> {
    file: SerializedFileReader<R>,
    location: String,
    /// All leaf column names, in file order.
    pub names: Vec<String>,
    /// Index in `names` and plan of each column read.
    selected: Vec<(usize, Plan)>,
    /// Decoding of each selected column.
    decodes: Vec<Decode>,
    max_defs: Vec<i16>,
    /// Columns skipped because they cannot be inputs (dates, nested), one
    /// sentence each; for the caller's summary.
    pub notes: Vec<String>,
    row_group: usize,
    readers: Vec<ColumnReader>,
    rows_left_in_group: usize,
    chunk_rows: usize,
    mode: Mode,
}

impl<R: ChunkReader + 'static> ParquetChunks<R> {
    /// Opens `reader` and decides each column's plan.
    ///
    /// Columns that cannot be inputs (dates and times, nested or repeated,
    /// unknown types) are skipped with a note in [`ParquetChunks::notes`]
    /// unless `options` asks for them.
    ///
    /// # Errors
    /// [`FeatureError::Parquet`] for an unreadable file, or naming a column
    /// `options` asks for that cannot be an input.
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
        let mut decodes = Vec::new();
        let mut max_defs = Vec::new();
        let mut notes = Vec::new();
        for (i, col) in schema.columns().iter().enumerate() {
            let name = col.path().string();
            let hint = options.hint_for(&name);
            match column_plan(col, hint) {
                Ok(Some((plan, decode))) => {
                    selected.push((i, plan));
                    decodes.push(decode);
                    max_defs.push(col.max_def_level());
                }
                Ok(None) => {}
                Err(Unreadable { what, asked }) => {
                    if asked {
                        return Err(FeatureError::Parquet {
                            location: location.to_string(),
                            message: format!(
                                "column {name:?} is {what}, which cannot be a model feature or \
                                 the customer id (it is not read as a bare number); convert it \
                                 upstream or leave it out of the schema"
                            ),
                        });
                    }
                    notes.push(format!(
                        "{location}: column {name:?} ({what}) is not read: not a model input"
                    ));
                }
            }
            names.push(name);
        }
        Ok(ParquetChunks {
            file,
            location: location.to_string(),
            names,
            selected,
            decodes,
            max_defs,
            notes,
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
            let decode = self.decodes[k];
            let mut row = 0usize;
            let mut errors: Vec<LocalRowError> = Vec::new();
            let col = &mut b.cols[i];
            let read = read_batch(reader, decode, max_def, want, &mut defs, &mut |cell| {
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

/// Reads all rows of a Parquet source in strict mode; returns the table and
/// the reader's notes (columns not read).
///
/// # Errors
/// As [`ParquetChunks::open`] and [`ParquetChunks::next_chunk`].
pub(crate) fn read_parquet<R: ChunkReader + 'static>(
    reader: R,
    location: &str,
    options: &ReadOptions,
) -> FeatureResult<(Table, Vec<String>)> {
    let mut chunks = ParquetChunks::open(reader, location, options, Mode::Strict)?;
    let notes = std::mem::take(&mut chunks.notes);
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
    let table = table.unwrap_or_else(|| {
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
    });
    Ok((table, notes))
}

/// Reserves room for the footer's row count: a hint only, since a damaged
/// or hostile footer may claim any number (then the columns grow as read).
fn reserve(values: &mut churn_model::ColumnValues, total: usize) {
    use churn_model::ColumnValues::*;
    let _ = match values {
        Numeric(v) => v.try_reserve(total.saturating_sub(v.len())),
        Text(v) => v.try_reserve(total.saturating_sub(v.len())),
    };
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
                Cell::UInt(u) => u as f64,
                Cell::Bool(b) => f64::from(u8::from(b)),
                Cell::Decimal(unscaled, scale) => decimal_f64(unscaled, scale),
                Cell::Bad(message) => {
                    v.push(f64::NAN);
                    return Err(message.to_string());
                }
                Cell::Uuid(_) => {
                    v.push(f64::NAN);
                    return Err("a UUID is not a number (the column is numeric)".to_string());
                }
                Cell::Date(_) => {
                    v.push(f64::NAN);
                    return Err("a DATE is not a number (the column is numeric)".to_string());
                }
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
                Cell::UInt(u) => Some(u.to_string()),
                Cell::Bool(b) => Some(b.to_string()),
                Cell::Bytes([]) => None,
                Cell::Bytes(bytes) => match std::str::from_utf8(bytes) {
                    Ok(s) => Some(s.to_owned()),
                    Err(_) => {
                        v.push(None);
                        return Err(super::csv_parse::not_utf8(bytes));
                    }
                },
                Cell::Decimal(unscaled, scale) => Some(decimal_text(unscaled, scale)),
                Cell::Uuid(bytes) => Some(uuid_text(bytes)),
                Cell::Date(days) => Some(churn_model::attributes::date_from_epoch_days(days)),
                Cell::Bad(message) => {
                    v.push(None);
                    return Err(message.to_string());
                }
            });
            Ok(())
        }
    }
}

/// Reads up to `n` records of one column, calling `sink` once per record
/// in order. Returns the number of records read.
fn read_batch(
    reader: &mut ColumnReader,
    decode: Decode,
    max_def: i16,
    n: usize,
    defs: &mut Vec<i16>,
    sink: &mut dyn FnMut(Cell<'_>),
) -> parquet::errors::Result<usize> {
    macro_rules! typed {
        ($r:expr, $conv:expr) => {{
            let conv = $conv;
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
                        sink(conv(&values[k]));
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
    match (reader, decode) {
        (ColumnReader::BoolColumnReader(r), _) => typed!(r, |v: &bool| Cell::Bool(*v)),
        (ColumnReader::Int32ColumnReader(r), Decode::Unsigned) => {
            // Stored as the same 32 bits: reinterpret, never sign-extend.
            typed!(r, |v: &i32| Cell::UInt(u64::from(*v as u32)))
        }
        (ColumnReader::Int32ColumnReader(r), Decode::Decimal { scale }) => {
            typed!(r, |v: &i32| Cell::Decimal(i128::from(*v), scale))
        }
        (ColumnReader::Int32ColumnReader(r), Decode::Date) => {
            typed!(r, |v: &i32| Cell::Date(i64::from(*v)))
        }
        (ColumnReader::Int32ColumnReader(r), _) => {
            typed!(r, |v: &i32| Cell::Int(i64::from(*v)))
        }
        (ColumnReader::Int64ColumnReader(r), Decode::Unsigned) => {
            typed!(r, |v: &i64| Cell::UInt(*v as u64))
        }
        (ColumnReader::Int64ColumnReader(r), Decode::Decimal { scale }) => {
            typed!(r, |v: &i64| Cell::Decimal(i128::from(*v), scale))
        }
        (ColumnReader::Int64ColumnReader(r), _) => typed!(r, |v: &i64| Cell::Int(*v)),
        (ColumnReader::FloatColumnReader(r), _) => {
            typed!(r, |v: &f32| Cell::Float(f64::from(*v)))
        }
        (ColumnReader::DoubleColumnReader(r), _) => typed!(r, |v: &f64| Cell::Float(*v)),
        (ColumnReader::ByteArrayColumnReader(r), decode) => {
            typed!(
                r,
                borrowing(|v: &parquet::data_type::ByteArray| bytes_cell(v.data(), decode))
            )
        }
        (ColumnReader::FixedLenByteArrayColumnReader(r), decode) => {
            typed!(
                r,
                borrowing(|v: &parquet::data_type::FixedLenByteArray| bytes_cell(v.data(), decode))
            )
        }
        _ => Err(parquet::errors::ParquetError::General(
            "unsupported physical type".to_string(),
        )),
    }
}

/// Gives a closure the signature "cell borrows from the value" (closures
/// do not infer higher-ranked lifetimes on their own).
fn borrowing<T, F: for<'a> Fn(&'a T) -> Cell<'a>>(f: F) -> F {
    f
}

/// A byte-array value (variable or fixed length) under its decoding.
fn bytes_cell(bytes: &[u8], decode: Decode) -> Cell<'_> {
    match decode {
        Decode::Decimal { .. } if bytes.is_empty() => Cell::Bad("a DECIMAL value has no bytes"),
        Decode::Decimal { scale } => match be_i128(bytes) {
            Some(unscaled) => Cell::Decimal(unscaled, scale),
            None => Cell::Bad("a DECIMAL value wider than 16 bytes cannot be read"),
        },
        Decode::Float16 => match bytes {
            [lo, hi] => Cell::Float(f16_to_f64(u16::from_le_bytes([*lo, *hi]))),
            _ => Cell::Bad("a FLOAT16 value is not 2 bytes"),
        },
        Decode::Uuid => Cell::Uuid(bytes),
        Decode::Plain | Decode::Unsigned | Decode::Date => Cell::Bytes(bytes),
    }
}

/// Why a column in the file is not read.
struct Unreadable {
    /// What it is ("a Parquet DATE column").
    what: String,
    /// Whether the caller asked for it (a hint other than skip).
    asked: bool,
}

/// The plan and decoding of a column, `None` when it is skipped as asked.
/// A DATE asked for as text is read as ISO dates.
///
/// # Errors
/// [`Unreadable`] for a column that is no input (dates not asked for as
/// text, times, nested, unknown types).
fn column_plan(
    col: &ColumnDescriptor,
    hint: Option<ColumnHint>,
) -> Result<Option<(Plan, Decode)>, Unreadable> {
    if hint == Some(ColumnHint::Skip) {
        return Ok(None);
    }
    let asked = hint.is_some();
    if col.max_rep_level() > 0 || col.path().parts().len() > 1 {
        return Err(Unreadable {
            what: "a nested or repeated Parquet column".to_string(),
            asked,
        });
    }
    let (decode, text) = match logical_of(col) {
        Logical::Value { decode, text } => (decode, text),
        // A DATE asked for as text: its ISO date (an attribute, never a number).
        Logical::Temporal("DATE")
            if hint == Some(ColumnHint::Text) && col.physical_type() == PhysicalType::INT32 =>
        {
            return Ok(Some((Plan::Text, Decode::Date)));
        }
        Logical::Temporal(kind) => {
            return Err(Unreadable {
                what: format!("a Parquet {kind} column"),
                asked,
            })
        }
        Logical::Unsupported(what) => {
            return Err(Unreadable {
                what: format!("a Parquet {what} column"),
                asked,
            })
        }
    };
    let plan = match hint {
        Some(ColumnHint::Numeric) => Plan::Numeric,
        Some(ColumnHint::Text) => Plan::Text,
        _ if text
            || col.physical_type() == PhysicalType::FIXED_LEN_BYTE_ARRAY
                && decode == Decode::Plain =>
        {
            Plan::Text
        }
        _ => Plan::Numeric,
    };
    Ok(Some((plan, decode)))
}

/// A big-endian two's-complement integer of at most 16 significant bytes
/// (longer inputs must be sign extension), as Parquet stores decimals.
fn be_i128(bytes: &[u8]) -> Option<i128> {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0x00 };
    let (extra, rest) = bytes.split_at(bytes.len().saturating_sub(16));
    if extra.iter().any(|&b| b != fill) {
        return None;
    }
    let mut buf = [fill; 16];
    buf[16 - rest.len()..].copy_from_slice(rest);
    let v = i128::from_be_bytes(buf);
    // The sign of the kept bytes must agree with the dropped extension.
    (extra.is_empty() || (v < 0) == negative).then_some(v)
}

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `unscaled * 10^-scale` rounded once to the nearest `f64`: the same value
/// as parsing the decimal's text.
fn decimal_f64(unscaled: i128, scale: i32) -> f64 {
    // Both operands exact, so IEEE division rounds the true quotient once.
    if unscaled.unsigned_abs() <= 1 << 53 && (0..=22).contains(&scale) {
        return unscaled as f64 / POW10[scale as usize];
    }
    format!("{unscaled}e{}", -i64::from(scale))
        .parse()
        .unwrap_or(f64::NAN)
}

/// The exact decimal text of `unscaled * 10^-scale` (`-0.05`, `1234.50`, `1200`).
fn decimal_text(unscaled: i128, scale: i32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        if unscaled == 0 {
            return "0".to_string();
        }
        return format!(
            "{sign}{digits}{}",
            "0".repeat(scale.unsigned_abs() as usize)
        );
    }
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// A UUID's 16 bytes as lowercase `8-4-4-4-12` hex.
fn uuid_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// IEEE 754 half precision to `f64` (exact: every half value is an `f64`).
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_scale_exactly() {
        assert_eq!(decimal_f64(12345, 2), 123.45);
        assert_eq!(decimal_f64(-5, 2), -0.05);
        assert_eq!(decimal_f64(12, -3), 12000.0);
        // Beyond 2^53 the text path rounds once, like parsing the text.
        let big: i128 = 123_456_789_012_345_678_901_234_567;
        assert_eq!(
            decimal_f64(big, 9),
            "123456789012345678.901234567".parse::<f64>().unwrap()
        );
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(0, 2), "0.00");
        assert_eq!(decimal_text(12, -2), "1200");
        assert_eq!(decimal_text(7, 0), "7");
    }

    #[test]
    fn big_endian_twos_complement() {
        assert_eq!(be_i128(&[0x30, 0x39]), Some(12345));
        assert_eq!(be_i128(&[0xff, 0xfb]), Some(-5));
        assert_eq!(be_i128(&[]), Some(0));
        let mut long = vec![0xff; 4];
        long.extend_from_slice(&(-7i128).to_be_bytes());
        assert_eq!(be_i128(&long), Some(-7));
        let mut too_wide = vec![0x01];
        too_wide.extend_from_slice(&[0; 16]);
        assert_eq!(be_i128(&too_wide), None);
    }

    #[test]
    fn half_floats() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x3555), 0.333251953125);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert!(f16_to_f64(0x7c00).is_infinite());
        assert!(f16_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn uuids_are_hyphenated_hex() {
        let bytes: Vec<u8> = (0..16).collect();
        assert_eq!(uuid_text(&bytes), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }
}
