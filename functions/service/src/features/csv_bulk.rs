//! Whole-file CSV parsing for training: the bytes are split into
//! line-aligned parts parsed in parallel (on the rayon pool), then the
//! columns are concatenated.
//!
//! Kind inference per column: each part parses `Infer` columns as numbers
//! and restarts itself with the column as text at the first non-number. If
//! parts disagree, the parts that read the column as numbers are parsed
//! again with it as text, so the original cell text is kept (`007` stays
//! `007`). A part that meets a quote aborts the parallel read and the file is
//! parsed on one thread with quotes allowed.

use super::csv_parse::{
    non_finite, parse_header, plan_for, Builders, ColBuf, LocalError, Mode, Pass, Plan, Stop,
};
use super::error::{FeatureError, FeatureResult};
use super::options::ReadOptions;
use churn_model::{Column, Table};
use std::path::Path;

/// Below this many bytes a file is parsed on one thread.
const MIN_PARALLEL_BYTES: usize = 1 << 20;

fn header_error(location: &str, message: String) -> FeatureError {
    FeatureError::Header {
        location: location.to_string(),
        message,
    }
}

/// Parses a complete CSV file held in memory; returns the table and the
/// reader's notes (a detected delimiter).
///
/// # Errors
/// [`FeatureError::Header`], [`FeatureError::Ragged`] or
/// [`FeatureError::Cell`] naming `location`, the row and the column.
pub(crate) fn parse_csv(
    buf: &[u8],
    location: &str,
    options: &ReadOptions,
) -> FeatureResult<(Table, Vec<String>)> {
    let header = match parse_header(buf, true) {
        Ok(Some(h)) => h,
        Ok(None) => unreachable!("a final buffer always yields a header or an error"),
        Err(message) => return Err(header_error(location, message)),
    };
    let notes: Vec<String> = header.delimiter_note(location).into_iter().collect();
    let (names, body_start, delimiter) = (header.names, header.end, header.delimiter);
    let plan = plan_for(&names, options);
    let body = &buf[body_start..];
    let threads = if body.len() < MIN_PARALLEL_BYTES {
        1
    } else {
        // One part per thread of the current pool (sized once by the binary).
        rayon::current_num_threads()
    };
    if threads > 1 {
        let bounds = split_points(body, threads);
        let slices: Vec<&[u8]> = bounds.windows(2).map(|w| &body[w[0]..w[1]]).collect();
        let results: Vec<PartResult> = {
            use rayon::prelude::*;
            let context = crate::blocking::TraceContext::current();
            slices
                .par_iter()
                .map(|part| context.run(|| parse_part(part, plan.clone(), false, delimiter)))
                .collect()
        };
        // A quote somewhere: a line end may hide inside quotes, so the split is not safe.
        if !results.iter().any(|r| matches!(r, Ok(None))) {
            let table = merge(
                slices.into_iter().zip(results).collect(),
                &names,
                &plan,
                delimiter,
                location,
            )?;
            return Ok((table, notes));
        }
    }
    let result = parse_part(body, plan.clone(), true, delimiter);
    let table = merge(vec![(body, result)], &names, &plan, delimiter, location)?;
    Ok((table, notes))
}

/// Offsets splitting `body` into about `parts` pieces at line ends.
fn split_points(body: &[u8], parts: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    for k in 1..parts {
        let target = (body.len() * k / parts).max(*bounds.last().unwrap_or(&0));
        match memchr::memchr(b'\n', &body[target..]) {
            Some(i) => bounds.push(target + i + 1),
            None => break,
        }
    }
    bounds.push(body.len());
    bounds.dedup();
    bounds
}

/// Reads and parses a local CSV file. On unix the file is memory-mapped:
/// the parser threads read the page cache directly, with no copy into one
/// buffer first and page faults taken in parallel.
///
/// # Errors
/// As [`parse_csv`], plus [`FeatureError::Io`].
pub(crate) fn read_csv_file(
    path: &Path,
    location: &str,
    options: &ReadOptions,
) -> FeatureResult<(Table, Vec<String>)> {
    let io = |e: std::io::Error| FeatureError::io("read", location, e);
    let file = std::fs::File::open(path).map_err(|e| FeatureError::io("open", location, e))?;
    let len = file.metadata().map_err(io)?.len() as usize;
    #[cfg(unix)]
    if len > 0 {
        let map = super::mmap::map(&file).map_err(io)?;
        return parse_csv(&map, location, options);
    }
    drop(file);
    let bytes = std::fs::read(path).map_err(io)?;
    parse_csv(&bytes, location, options)
}

type PartResult = Result<Option<Builders>, LocalError>;

/// Rows in `part`, estimated from the line length of its first 256 KiB, so
/// column vectors are allocated about once.
fn estimate_rows(part: &[u8]) -> usize {
    let sample = &part[..part.len().min(256 * 1024)];
    let lines = memchr::memchr_iter(b'\n', sample).count().max(1);
    let per_line = (sample.len() / lines).max(1);
    part.len() / per_line + part.len() / per_line / 50 + 16
}

/// Parses `part` to completion, restarting on kind switches.
/// `Ok(None)` means a quote was met with quotes forbidden.
fn parse_part(part: &[u8], mut plan: Vec<Plan>, allow_quotes: bool, delimiter: u8) -> PartResult {
    let estimate = estimate_rows(part);
    let pass = Pass {
        buf: part,
        delimiter,
        is_final: true,
        allow_quotes,
        mode: Mode::Strict,
        max_rows: usize::MAX,
    };
    let mut scratch = Vec::new();
    loop {
        let mut b = Builders::new(plan.clone(), estimate);
        match pass.run(0, &mut b, &mut scratch)? {
            (_, Stop::Done) => return Ok(Some(b)),
            (_, Stop::SwitchToText(j)) => plan[j] = Plan::Text,
            (_, Stop::Quote) => return Ok(None),
            (_, Stop::NeedMore) => unreachable!("final passes never need more"),
        }
    }
}

/// Reconciles kinds across parts, reports errors with file-wide row
/// numbers, and concatenates the columns.
fn merge(
    parts: Vec<(&[u8], PartResult)>,
    names: &[String],
    plan: &[Plan],
    delimiter: u8,
    location: &str,
) -> FeatureResult<Table> {
    let mut done: Vec<(&[u8], Builders)> = Vec::with_capacity(parts.len());
    let mut offset = 0;
    for (bytes, result) in parts {
        match result {
            Ok(Some(b)) => {
                offset += b.rows;
                done.push((bytes, b));
            }
            Ok(None) => unreachable!("quote aborts are handled before merging"),
            Err(e) => return Err(local_error(e, offset, names, location)),
        }
    }
    // Final kinds: text if any part needed text.
    let final_plan: Vec<Plan> = (0..plan.len())
        .map(|j| {
            if done.iter().any(|(_, b)| b.plan[j] == Plan::Text) {
                Plan::Text
            } else {
                plan[j]
            }
        })
        .collect();
    for (bytes, b) in &mut done {
        if b.plan != final_plan {
            match parse_part(bytes, final_plan.clone(), true, delimiter) {
                Ok(Some(again)) => *b = again,
                Ok(None) => unreachable!("quotes are allowed"),
                // The same bytes parsed once without error; a text column cannot add one.
                Err(e) => return Err(local_error(e, 0, names, location)),
            }
        }
    }
    // A non-finite cell in a column that stayed numeric.
    let mut offset = 0;
    for (_, b) in &done {
        for (j, nf) in b.non_finite.iter().enumerate() {
            if let (Some((row, cell)), Plan::Numeric | Plan::Infer) = (nf, final_plan[j]) {
                return Err(FeatureError::Cell {
                    location: location.to_string(),
                    row: offset + row + 1,
                    column: names[j].clone(),
                    message: non_finite(cell),
                });
            }
        }
        offset += b.rows;
    }
    let total: usize = done.iter().map(|(_, b)| b.rows).sum();
    // Each column's pieces, in part order.
    let mut pieces: Vec<Vec<ColBuf>> = names.iter().map(|_| Vec::new()).collect();
    for (_, b) in done {
        for (column, piece) in pieces.iter_mut().zip(b.cols) {
            column.push(piece);
        }
    }
    // Columns are concatenated side by side on the pool.
    use rayon::prelude::*;
    let columns: Vec<Option<Column>> = names
        .par_iter()
        .zip(pieces)
        .zip(&final_plan)
        .map(|((name, pieces), plan)| concatenated(name, pieces, *plan, total))
        .collect();
    Ok(Table::new(columns.into_iter().flatten().collect()))
}

/// One column from its pieces (`total` rows), `None` for a skipped one.
fn concatenated(name: &str, pieces: Vec<ColBuf>, plan: Plan, total: usize) -> Option<Column> {
    let name = name.to_string();
    match plan {
        Plan::Skip => None,
        Plan::Text => {
            let texts = pieces.into_iter().filter_map(|p| match p {
                ColBuf::Text(v) => Some(v),
                _ => None,
            });
            Some(Column::text(name, joined(texts, total)))
        }
        Plan::Numeric | Plan::Infer => {
            let numbers = pieces.into_iter().filter_map(|p| match p {
                ColBuf::Num(v) => Some(v),
                _ => None,
            });
            Some(Column::numeric(name, joined(numbers, total)))
        }
    }
}

/// `pieces` end to end, reusing the first one's allocation (grown once to `total`).
fn joined<T>(pieces: impl Iterator<Item = Vec<T>>, total: usize) -> Vec<T> {
    let mut out = Vec::new();
    for v in pieces {
        if out.is_empty() {
            out = v;
            out.reserve(total.saturating_sub(out.len()));
        } else {
            out.extend(v);
        }
    }
    out
}

/// A part-local strict error as a [`FeatureError`] with the file-wide row.
pub(crate) fn local_error(
    e: LocalError,
    offset: usize,
    names: &[String],
    location: &str,
) -> FeatureError {
    match e {
        LocalError::Ragged { row, found } => FeatureError::Ragged {
            location: location.to_string(),
            row: offset + row + 1,
            expected: names.len(),
            found,
        },
        LocalError::Cell {
            row,
            column,
            message,
        } => FeatureError::Cell {
            location: location.to_string(),
            row: offset + row + 1,
            column: names.get(column).cloned().unwrap_or_default(),
            message,
        },
    }
}
