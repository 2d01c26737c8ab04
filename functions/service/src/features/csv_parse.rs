//! The CSV record parser shared by whole-file reads and streams.
//!
//! It works on a byte buffer holding whole records (and maybe the start of
//! an incomplete one), appends cells straight into column builders, and
//! never allocates per numeric cell: numbers are parsed from the bytes in
//! place ([`fast_decimal`]). RFC 4180 quoting is supported (`"a,b"`, `""`
//! escapes, newlines inside quotes); `\n` and `\r\n` line ends; blank lines
//! are skipped and not counted as rows.
//!
//! The delimiter is the comma unless the header line has none: then a
//! header with semicolons or tabs (what spreadsheet exports in many locales
//! write) sets it, and the reader notes it ([`Header::delimiter_note`]).
//! Decimal commas are not guessed: `1,5` in a numeric column is an error.
//!
//! Whole-file reads split the buffer at line ends and parse the parts on
//! several threads with quotes *forbidden* (a line end inside quotes would
//! misalign the split); a part that meets a quote makes the caller re-parse
//! the file on one thread with quotes allowed.
//!
//! Why hand-written rather than `csv-core` with a fast float parser: the
//! rule is to keep this parser (and [`fast_decimal`]) only while it is at
//! least 1.3x faster than that pair on the 1M-row benchmark table. It is, so
//! it is kept. `examples/csv_core_arm.rs` is the other arm: the same
//! whole-table read (same memory map, same line-aligned split into one part
//! per rayon thread, same column building and kind inference) with records
//! from `csv_core::Reader` and numbers from `fast_float2::parse`; it asserts
//! that its table equals ours to the f64 bit before timing. Medians of 11
//! alternating rounds on the 2-core development machine (`bench/README.md`
//! has the command): all threads, ours 0.534 s vs the arm's 0.718 s, the arm
//! takes 1.34x as long (1.61x in a second clean run; CPU time 1.44x); one
//! thread (`RAYON_NUM_THREADS=1`), 0.676 s vs 1.013 s, 1.50x. The arm skips
//! our quote check on parallel parts, which only favours it. The margin is
//! smallest with all threads (ours gains less from the second core than the
//! arm does): re-run the arm after changing this parser or [`fast_decimal`].

use super::number::{fast_decimal, parse_cell, CellNumber};
use super::options::{ColumnHint, ReadOptions};
use churn_model::{Column, Table};

/// How a column is parsed in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    Numeric,
    Text,
    Skip,
    /// Numeric until a cell is not a number; then the pass stops with
    /// [`Stop::SwitchToText`] and the caller restarts it with `Text`.
    Infer,
}

/// Each column's plan from the read options' hints (no hint: infer).
pub(crate) fn plan_for(names: &[String], options: &ReadOptions) -> Vec<Plan> {
    names
        .iter()
        .map(|n| match options.hint_for(n) {
            Some(ColumnHint::Numeric) => Plan::Numeric,
            Some(ColumnHint::Text) => Plan::Text,
            Some(ColumnHint::Skip) => Plan::Skip,
            None => Plan::Infer,
        })
        .collect()
}

/// Values of one column collected so far.
#[derive(Debug)]
pub(crate) enum ColBuf {
    Num(Vec<f64>),
    Text(Vec<Option<String>>),
    Skip,
}

impl ColBuf {
    fn for_plan(plan: Plan, capacity: usize) -> ColBuf {
        match plan {
            Plan::Numeric | Plan::Infer => ColBuf::Num(Vec::with_capacity(capacity)),
            Plan::Text => ColBuf::Text(Vec::with_capacity(capacity)),
            Plan::Skip => ColBuf::Skip,
        }
    }

    fn truncate(&mut self, rows: usize) {
        match self {
            ColBuf::Num(v) => v.truncate(rows),
            ColBuf::Text(v) => v.truncate(rows),
            ColBuf::Skip => {}
        }
    }

    fn push_missing(&mut self) {
        match self {
            ColBuf::Num(v) => v.push(f64::NAN),
            ColBuf::Text(v) => v.push(None),
            ColBuf::Skip => {}
        }
    }
}

/// Strict passes fail on the first bad row; lenient passes record it in
/// [`Builders::row_errors`], store missing values, and go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Strict,
    Lenient,
}

/// Column builders of one pass.
#[derive(Debug)]
pub(crate) struct Builders {
    pub plan: Vec<Plan>,
    pub cols: Vec<ColBuf>,
    /// Rows completed.
    pub rows: usize,
    /// Per column, the first non-finite cell seen by an `Infer` column
    /// (0-based row in this pass, cell text): an error only if the column
    /// ends up numeric.
    pub non_finite: Vec<Option<(usize, String)>>,
    /// Lenient mode: bad rows, first problem of each.
    pub row_errors: Vec<LocalRowError>,
}

impl Builders {
    pub(crate) fn new(plan: Vec<Plan>, capacity: usize) -> Builders {
        let cols = plan
            .iter()
            .map(|p| ColBuf::for_plan(*p, capacity))
            .collect();
        let n = plan.len();
        Builders {
            plan,
            cols,
            rows: 0,
            non_finite: vec![None; n],
            row_errors: Vec::new(),
        }
    }

    fn rollback(&mut self, rows: usize) {
        for c in &mut self.cols {
            c.truncate(rows);
        }
        for nf in &mut self.non_finite {
            if nf.as_ref().is_some_and(|(r, _)| *r >= rows) {
                *nf = None;
            }
        }
        while self.row_errors.last().is_some_and(|e| e.row >= rows) {
            self.row_errors.pop();
        }
    }

    /// Moves the columns out into a table (skipped columns dropped).
    pub(crate) fn into_table(self, names: &[String], first_row: usize) -> Table {
        let mut columns = Vec::new();
        for (name, col) in names.iter().zip(self.cols) {
            match col {
                ColBuf::Num(v) => columns.push(Column::numeric(name.clone(), v)),
                ColBuf::Text(v) => columns.push(Column::text(name.clone(), v)),
                ColBuf::Skip => {}
            }
        }
        Table::starting_at(columns, first_row)
    }
}

/// A bad row seen by a lenient pass; `row` is 0-based within the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalRowError {
    pub row: usize,
    pub column: Option<usize>,
    pub message: String,
}

/// Why a pass stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// All records in the buffer were read, or `max_rows` was reached.
    Done,
    /// The rest of the buffer is an incomplete record; call again with more bytes.
    NeedMore,
    /// An `Infer` column met text (column index).
    SwitchToText(usize),
    /// A quote was met while quotes are forbidden.
    Quote,
}

/// A strict-mode failure; `row` is 0-based within the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LocalError {
    Ragged {
        row: usize,
        found: usize,
    },
    Cell {
        row: usize,
        column: usize,
        message: String,
    },
}

/// Longest cell text quoted back in an error message.
const MAX_SHOWN: usize = 40;

/// The cell text for an error message, shortened.
pub(crate) fn shown(cell: &[u8]) -> String {
    let s = String::from_utf8_lossy(cell);
    if s.chars().count() > MAX_SHOWN {
        let cut: String = s.chars().take(MAX_SHOWN).collect();
        format!("{cut}...")
    } else {
        s.into_owned()
    }
}

pub(crate) fn not_a_number(cell: &[u8]) -> String {
    format!("{:?} is not a number (the column is numeric)", shown(cell))
}

pub(crate) fn not_utf8(cell: &[u8]) -> String {
    format!(
        "{:?} is not valid UTF-8 text (save the file as UTF-8)",
        shown(cell)
    )
}

pub(crate) fn non_finite(cell: &str) -> String {
    format!("{cell:?} is not a finite number; leave the cell empty for a missing value")
}

/// Where a cell's content is.
enum Content {
    /// `buf[start..end]`.
    Slice(usize, usize),
    /// The scratch buffer (a quoted cell with `""` escapes).
    Scratch,
}

/// Result of reading one cell.
enum CellRead {
    /// Content and the index of the byte after the cell (a terminator or the end).
    Cell(Content, usize),
    Incomplete,
    Quote,
    /// Malformed quoting; index of the end of the record to resume from.
    Malformed(String),
}

/// One pass over `buf[start..]`.
pub(crate) struct Pass<'a> {
    pub buf: &'a [u8],
    /// The field delimiter (from the header, [`Header::delimiter`]).
    pub delimiter: u8,
    /// More bytes may follow `buf` (streams): an unterminated record is incomplete.
    pub is_final: bool,
    pub allow_quotes: bool,
    pub mode: Mode,
    pub max_rows: usize,
}

impl Pass<'_> {
    /// Parses records from `start` into `b`. Returns the index after the
    /// last complete record consumed and why the pass stopped.
    pub(crate) fn run(
        &self,
        start: usize,
        b: &mut Builders,
        scratch: &mut Vec<u8>,
    ) -> Result<(usize, Stop), LocalError> {
        let buf = self.buf;
        let n = buf.len();
        let mut pos = start;
        loop {
            if b.rows >= self.max_rows {
                return Ok((pos, Stop::Done));
            }
            if pos >= n {
                return Ok((
                    pos,
                    if self.is_final {
                        Stop::Done
                    } else {
                        Stop::NeedMore
                    },
                ));
            }
            // Blank lines are not rows.
            match buf[pos] {
                b'\n' => {
                    pos += 1;
                    continue;
                }
                b'\r' => {
                    if pos + 1 < n {
                        pos += if buf[pos + 1] == b'\n' { 2 } else { 1 };
                        continue;
                    }
                    if self.is_final {
                        return Ok((n, Stop::Done));
                    }
                    return Ok((pos, Stop::NeedMore));
                }
                _ => {}
            }
            let row = b.rows;
            match self.record(pos, row, b, scratch)? {
                RecordEnd::Next(next) => {
                    b.rows += 1;
                    pos = next;
                }
                RecordEnd::Incomplete => {
                    b.rollback(row);
                    return Ok((pos, Stop::NeedMore));
                }
                RecordEnd::Stop(stop) => {
                    b.rollback(row);
                    return Ok((pos, stop));
                }
            }
        }
    }

    fn record(
        &self,
        mut p: usize,
        row: usize,
        b: &mut Builders,
        scratch: &mut Vec<u8>,
    ) -> Result<RecordEnd, LocalError> {
        let buf = self.buf;
        let n = buf.len();
        let ncols = b.plan.len();
        for j in 0..ncols {
            let plan = b.plan[j];
            // Fast path: a plain number ending at a terminator.
            let mut end = None;
            if matches!(plan, Plan::Numeric | Plan::Infer) && p < n && buf[p] != b'"' {
                if let Some((v, e)) = fast_decimal(buf, p) {
                    if e < n && (buf[e] == self.delimiter || matches!(buf[e], b'\n' | b'\r')) {
                        if let ColBuf::Num(col) = &mut b.cols[j] {
                            col.push(v);
                        }
                        end = Some(e);
                    }
                }
            }
            let e = match end {
                Some(e) => e,
                None => match self.cell(p, scratch) {
                    CellRead::Cell(content, e) => {
                        let bytes: &[u8] = match content {
                            Content::Slice(s, t) => &buf[s..t],
                            Content::Scratch => scratch.as_slice(),
                        };
                        if let Some(stop) = self.store(j, row, bytes, b)? {
                            return Ok(RecordEnd::Stop(stop));
                        }
                        e
                    }
                    CellRead::Incomplete => return Ok(RecordEnd::Incomplete),
                    CellRead::Quote => return Ok(RecordEnd::Stop(Stop::Quote)),
                    CellRead::Malformed(message) => {
                        return self.bad_row(
                            b,
                            row,
                            p,
                            LocalError::Cell {
                                row,
                                column: j,
                                message,
                            },
                        );
                    }
                },
            };
            // The terminator after the cell.
            if e >= n {
                if !self.is_final {
                    return Ok(RecordEnd::Incomplete);
                }
                if j + 1 < ncols {
                    return self.bad_row(b, row, n, LocalError::Ragged { row, found: j + 1 });
                }
                return Ok(RecordEnd::Next(n));
            }
            match buf[e] {
                d if d == self.delimiter => {
                    if j + 1 == ncols {
                        let found = match self.count_rest(e + 1) {
                            Some((extra, _)) => ncols + extra,
                            None => return Ok(RecordEnd::Incomplete),
                        };
                        return self.bad_row(b, row, e + 1, LocalError::Ragged { row, found });
                    }
                    p = e + 1;
                }
                _ => {
                    // `\n`, or `\r` (alone or before `\n`).
                    let next = if buf[e] == b'\r' {
                        if e + 1 >= n && !self.is_final {
                            return Ok(RecordEnd::Incomplete);
                        }
                        if e + 1 < n && buf[e + 1] == b'\n' {
                            e + 2
                        } else {
                            e + 1
                        }
                    } else {
                        e + 1
                    };
                    if j + 1 < ncols {
                        return self.bad_row(b, row, e, LocalError::Ragged { row, found: j + 1 });
                    }
                    return Ok(RecordEnd::Next(next));
                }
            }
        }
        unreachable!("a record ends at its last column")
    }

    /// Strict: the error. Lenient: records it, replaces the row's cells by
    /// missing values (consumers skip the row anyway), and skips to the next record.
    fn bad_row(
        &self,
        b: &mut Builders,
        row: usize,
        from: usize,
        err: LocalError,
    ) -> Result<RecordEnd, LocalError> {
        if self.mode == Mode::Strict {
            return Err(err);
        }
        let Some((_, next)) = self.count_rest(from) else {
            return Ok(RecordEnd::Incomplete);
        };
        let ncols = b.plan.len();
        for c in &mut b.cols {
            c.truncate(row);
            c.push_missing();
        }
        let (column, message) = match err {
            LocalError::Ragged { found, .. } => {
                (None, format!("{found} fields, but the header has {ncols}"))
            }
            LocalError::Cell {
                column, message, ..
            } => (Some(column), message),
        };
        if b.row_errors.last().is_some_and(|e| e.row == row) {
            b.row_errors.pop();
        }
        b.row_errors.push(LocalRowError {
            row,
            column,
            message,
        });
        Ok(RecordEnd::Next(next))
    }

    /// Counts the fields from `from` to the end of the record and returns
    /// (fields, index after the record), or `None` if the record is incomplete.
    fn count_rest(&self, from: usize) -> Option<(usize, usize)> {
        let buf = self.buf;
        let n = buf.len();
        let mut fields = 1;
        let mut in_quotes = false;
        let mut i = from;
        while i < n {
            match buf[i] {
                b'"' => in_quotes = !in_quotes,
                d if d == self.delimiter && !in_quotes => fields += 1,
                b'\n' if !in_quotes => return Some((fields, i + 1)),
                _ => {}
            }
            i += 1;
        }
        if self.is_final {
            Some((fields, n))
        } else {
            None
        }
    }

    /// Reads the cell starting at `p`.
    fn cell(&self, p: usize, scratch: &mut Vec<u8>) -> CellRead {
        let buf = self.buf;
        let n = buf.len();
        if p < n && buf[p] == b'"' {
            if !self.allow_quotes {
                return CellRead::Quote;
            }
            return self.quoted(p, scratch);
        }
        let rest = &buf[p..];
        let found = if self.allow_quotes {
            memchr::memchr2(self.delimiter, b'\n', rest)
        } else {
            memchr::memchr3(self.delimiter, b'\n', b'"', rest)
        };
        let mut e = match found {
            Some(i) => p + i,
            None => n,
        };
        if e < n && buf[e] == b'"' {
            return CellRead::Quote;
        }
        // A `\r` before `\n` belongs to the line end, not the cell.
        if e < n && buf[e] == b'\n' && e > p && buf[e - 1] == b'\r' {
            e -= 1;
        }
        CellRead::Cell(Content::Slice(p, e), e)
    }

    fn quoted(&self, p: usize, scratch: &mut Vec<u8>) -> CellRead {
        let buf = self.buf;
        let n = buf.len();
        let mut i = p + 1;
        let mut escaped = false;
        scratch.clear();
        loop {
            let Some(q) = memchr::memchr(b'"', &buf[i..]).map(|k| i + k) else {
                return if self.is_final {
                    CellRead::Malformed("unterminated quoted field".to_string())
                } else {
                    CellRead::Incomplete
                };
            };
            if q + 1 < n && buf[q + 1] == b'"' {
                if !escaped {
                    scratch.extend_from_slice(&buf[p + 1..i]);
                    escaped = true;
                }
                scratch.extend_from_slice(&buf[i..q + 1]);
                i = q + 2;
                continue;
            }
            if q + 1 >= n && !self.is_final {
                return CellRead::Incomplete;
            }
            let e = q + 1;
            if e < n && buf[e] != self.delimiter && !matches!(buf[e], b'\n' | b'\r') {
                return CellRead::Malformed(
                    "unexpected character after a closing quote (quotes inside a quoted field are written \"\")"
                        .to_string(),
                );
            }
            if escaped {
                scratch.extend_from_slice(&buf[i..q]);
                return CellRead::Cell(Content::Scratch, e);
            }
            return CellRead::Cell(Content::Slice(p + 1, q), e);
        }
    }

    /// Stores one cell's content in column `j`.
    fn store(
        &self,
        j: usize,
        row: usize,
        bytes: &[u8],
        b: &mut Builders,
    ) -> Result<Option<Stop>, LocalError> {
        let plan = b.plan[j];
        match &mut b.cols[j] {
            ColBuf::Skip => {}
            ColBuf::Text(col) => {
                if bytes.is_empty() {
                    col.push(None);
                } else if let Ok(text) = std::str::from_utf8(bytes) {
                    col.push(Some(text.to_owned()));
                } else {
                    // Never a lossy guess: two ids differing only in bad bytes
                    // would become the same customer.
                    col.push(None);
                    self.bad_cell(b, row, j, not_utf8(bytes))?;
                }
            }
            ColBuf::Num(col) => match parse_cell(bytes) {
                CellNumber::Missing => col.push(f64::NAN),
                CellNumber::Finite(v) => col.push(v),
                CellNumber::NonFinite if plan == Plan::Infer => {
                    col.push(f64::NAN);
                    if b.non_finite[j].is_none() {
                        b.non_finite[j] = Some((row, shown(bytes.trim_ascii())));
                    }
                }
                CellNumber::NotNumber if plan == Plan::Infer => {
                    return Ok(Some(Stop::SwitchToText(j)));
                }
                bad => {
                    col.push(f64::NAN);
                    let message = if bad == CellNumber::NonFinite {
                        non_finite(&shown(bytes.trim_ascii()))
                    } else {
                        not_a_number(bytes)
                    };
                    self.bad_cell(b, row, j, message)?;
                }
            },
        }
        Ok(None)
    }

    /// A cell that does not fit its column: the error in strict mode; in
    /// lenient mode recorded once per record (at its first bad cell), and
    /// the pass goes on.
    fn bad_cell(
        &self,
        b: &mut Builders,
        row: usize,
        column: usize,
        message: String,
    ) -> Result<(), LocalError> {
        if self.mode == Mode::Strict {
            return Err(LocalError::Cell {
                row,
                column,
                message,
            });
        }
        if b.row_errors.last().is_none_or(|e| e.row != row) {
            b.row_errors.push(LocalRowError {
                row,
                column: Some(column),
                message,
            });
        }
        Ok(())
    }
}

enum RecordEnd {
    Next(usize),
    Incomplete,
    Stop(Stop),
}

/// A parsed header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub names: Vec<String>,
    /// Index in the buffer after the header.
    pub end: usize,
    pub delimiter: u8,
}

impl Header {
    /// A sentence for the reader's notes when the delimiter is not a comma.
    pub(crate) fn delimiter_note(&self, location: &str) -> Option<String> {
        let name = match self.delimiter {
            b',' => return None,
            b';' => "semicolons",
            b'\t' => "tabs",
            _ => "an unusual delimiter",
        };
        Some(format!(
            "{location}: the header has no commas, so fields are read as separated by {name}"
        ))
    }
}

/// The delimiter of a file whose header line is `line`: a comma when the
/// line has one outside quotes; else the more frequent of semicolon and tab;
/// else a comma (a one-column file).
fn detect_delimiter(line: &[u8]) -> u8 {
    let (mut commas, mut semicolons, mut tabs, mut quoted) = (0, 0, 0, false);
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            b'\t' if !quoted => tabs += 1,
            _ => {}
        }
    }
    if commas > 0 || (semicolons == 0 && tabs == 0) {
        b','
    } else if semicolons >= tabs {
        b';'
    } else {
        b'\t'
    }
}

/// The end of the line starting at `p` (index of its `\n`, or the buffer's
/// end), skipping line ends inside quotes; `None` when more bytes may follow.
fn header_line_end(buf: &[u8], p: usize, is_final: bool) -> Option<usize> {
    let mut quoted = false;
    for (i, &b) in buf.iter().enumerate().skip(p) {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => return Some(i),
            _ => {}
        }
    }
    is_final.then_some(buf.len())
}

/// Parses the header record at the start of `buf` (after an optional UTF-8
/// BOM) and detects the delimiter. Returns `None` when the header is not
/// complete yet (`is_final` false).
///
/// # Errors
/// A message when there is no header, a name is duplicated, or quoting is malformed.
pub(crate) fn parse_header(buf: &[u8], is_final: bool) -> Result<Option<Header>, String> {
    let mut p = if buf.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    // Leading blank lines are tolerated.
    while p < buf.len() && (buf[p] == b'\n' || buf[p] == b'\r') {
        p += 1;
    }
    if p >= buf.len() {
        return if is_final {
            Err("the file is empty (no header line)".to_string())
        } else {
            Ok(None)
        };
    }
    let Some(line_end) = header_line_end(buf, p, is_final) else {
        return Ok(None);
    };
    let delimiter = detect_delimiter(&buf[p..line_end]);
    let pass = Pass {
        buf,
        delimiter,
        is_final,
        allow_quotes: true,
        mode: Mode::Strict,
        max_rows: 1,
    };
    let mut names = Vec::new();
    let mut scratch = Vec::new();
    loop {
        let (text, e) = match pass.cell(p, &mut scratch) {
            CellRead::Cell(Content::Slice(s, t), e) => {
                (String::from_utf8_lossy(&buf[s..t]).into_owned(), e)
            }
            CellRead::Cell(Content::Scratch, e) => {
                (String::from_utf8_lossy(&scratch).into_owned(), e)
            }
            CellRead::Incomplete => return Ok(None),
            CellRead::Quote => unreachable!("quotes are allowed in the header"),
            CellRead::Malformed(m) => return Err(m),
        };
        let name = text.trim().to_string();
        let name = if name.is_empty() {
            // pandas writes its index with an empty name; keep such columns addressable.
            format!("unnamed_{}", names.len())
        } else {
            name
        };
        if names.contains(&name) {
            return Err(format!("column {name:?} appears twice"));
        }
        names.push(name);
        let header = |names, end| {
            Ok(Some(Header {
                names,
                end,
                delimiter,
            }))
        };
        if e >= buf.len() {
            if !is_final {
                return Ok(None);
            }
            return header(names, e);
        }
        match buf[e] {
            d if d == delimiter => p = e + 1,
            b'\r' if e + 1 < buf.len() && buf[e + 1] == b'\n' => return header(names, e + 2),
            b'\r' if e + 1 >= buf.len() && !is_final => return Ok(None),
            _ => return header(names, e + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_detected_from_the_header() {
        assert_eq!(detect_delimiter(b"id,plan;x"), b',');
        assert_eq!(detect_delimiter(b"id;plan;mrr"), b';');
        assert_eq!(detect_delimiter(b"id\tplan\tmrr"), b'\t');
        assert_eq!(detect_delimiter(b"\"a,b\";c"), b';');
        assert_eq!(detect_delimiter(b"only"), b',');
        let h = parse_header(b"\xEF\xBB\xBFid;plan\r\n1;a\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.names, ["id", "plan"]);
        assert_eq!(h.delimiter, b';');
        assert_eq!(h.end, 12);
        assert!(h.delimiter_note("f.csv").unwrap().contains("semicolons"));
        // A header split across buffers waits for its line end.
        assert_eq!(parse_header(b"id\tpl", false), Ok(None));
    }
}
