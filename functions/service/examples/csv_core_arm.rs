//! The benchmark arm the hand-written CSV and number parsers are measured
//! against: the same whole-table read as `read_local_file`, with records
//! split by `csv_core::Reader` and numbers parsed by `fast_float2::parse`.
//!
//! Everything around the parser is kept as ours does it, so the comparison
//! isolates the parser: the file is memory-mapped with sequential advice,
//! the body is cut into `rayon::current_num_threads()` line-aligned parts
//! (files below 1 MiB: one part) parsed in parallel on the rayon pool, and
//! the per-part columns are concatenated. Column kinds are inferred the same
//! way (numeric until a cell is not a number, then that part restarts with
//! the column as text; parts that disagree are parsed again as text), empty
//! numeric cells are `NaN`, non-finite numbers are refused in numeric
//! columns, rows with the wrong field count are refused.
//!
//! One difference favours the arm: ours refuses quotes in the parallel parts
//! (a line end inside quotes would misalign the split) and re-reads the file
//! on one thread when it meets one; csv-core does not say whether a field was
//! quoted, so the arm does no such check. The benchmark file has no quotes.
//!
//! Before timing, the arm's table is asserted equal to ours (same columns,
//! rows, text, and the same f64 bits in every numeric cell). Then the two
//! reads alternate (ours, arm, ours, arm, ...) and the medians of wall time
//! (the figure) and of process CPU time, with the ratios arm / ours, are
//! printed:
//!
//! ```sh
//! cargo run --release -p churn-service --example csv_core_arm -- /tmp/syn1m.csv [rounds]
//! RAYON_NUM_THREADS=1 cargo run --release -p churn-service --example csv_core_arm -- /tmp/syn1m.csv
//! ```

use anyhow::{bail, ensure, Context};
use churn_model::{Column, ColumnValues, Table};
use churn_service::features::{read_local_file, ReadOptions};
use csv_core::{ReadRecordResult, Reader};
use rayon::prelude::*;
use std::path::Path;
use std::time::Instant;

/// Below this many bytes a file is parsed on one thread (as ours).
const MIN_PARALLEL_BYTES: usize = 1 << 20;

/// How a column is parsed by one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Numeric until a cell is not a number (no column has a hint here).
    Infer,
    Text,
}

enum Values {
    Num(Vec<f64>),
    Text(Vec<Option<String>>),
}

/// One part's columns.
struct Part {
    kinds: Vec<Kind>,
    cols: Vec<Values>,
    rows: usize,
    /// Per column, the first non-finite number (row in the part): an error
    /// only if the column stays numeric, as ours.
    non_finite: Vec<Option<usize>>,
}

/// Why a part's pass stopped early.
enum PassEnd {
    /// Column `j` met a cell that is not a number.
    SwitchToText(usize),
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/syn1m.csv".into());
    let rounds: usize = args.next().map_or(Ok(7), |s| s.parse())?;
    ensure!(rounds >= 1, "rounds must be at least 1");
    let path = Path::new(&path);
    let options = ReadOptions::default();
    println!(
        "{}: {} parts (rayon threads), {rounds} rounds",
        path.display(),
        rayon::current_num_threads()
    );

    // Also warms the page cache for both sides before timing.
    let ours = read_local_file(path, &options)?;
    let arm = read_arm(path)?;
    assert_same(&ours, &arm)?;
    println!(
        "outputs identical: {} rows x {} columns (f64 bits of every numeric cell)",
        ours.n_rows(),
        ours.columns.len()
    );
    drop((ours, arm));

    let (mut t_ours, mut t_arm) = (Vec::new(), Vec::new());
    let (mut c_ours, mut c_arm) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Dropping the tables is left out of the timing (as read_bench does).
        let (a, ca, table) = timed(|| Ok(read_local_file(path, &options)?))?;
        drop(table);
        let (b, cb, table) = timed(|| read_arm(path))?;
        drop(table);
        eprintln!("round {round}: ours {a:.3} s (cpu {ca:.2} s), arm {b:.3} s (cpu {cb:.2} s)");
        t_ours.push(a);
        t_arm.push(b);
        c_ours.push(ca);
        c_arm.push(cb);
    }
    let (m_ours, m_arm) = (median(&mut t_ours), median(&mut t_arm));
    let (mc_ours, mc_arm) = (median(&mut c_ours), median(&mut c_arm));
    println!(
        "median wall: ours {m_ours:.3} s, arm {m_arm:.3} s, arm / ours = {:.2}",
        m_arm / m_ours
    );
    if mc_ours > 0.0 {
        println!(
            "median cpu:  ours {mc_ours:.2} s, arm {mc_arm:.2} s, arm / ours = {:.2}",
            mc_arm / mc_ours
        );
    }
    Ok(())
}

/// Runs `f`; returns its wall time, the process CPU time it used (user +
/// system, all threads; 0 where `/proc` is missing) and its result. CPU time
/// is printed too because on a shared machine other processes stretch the
/// wall time of both sides, while the work each side does stays put.
fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(f64, f64, T)> {
    let c0 = cpu_seconds();
    let t0 = Instant::now();
    let out = f()?;
    let wall = t0.elapsed().as_secs_f64();
    Ok((wall, cpu_seconds() - c0, out))
}

/// User + system time of this process so far, from `/proc/self/stat` (in
/// clock ticks, assumed 100 per second as on every Linux this runs on).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime: fields 14 and 15 of the line, the 12th and 13th after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    }
}

/// Same column names and kinds, same text, same f64 bits.
fn assert_same(ours: &Table, arm: &Table) -> anyhow::Result<()> {
    ensure!(ours.n_rows() == arm.n_rows(), "row counts differ");
    ensure!(
        ours.columns.len() == arm.columns.len(),
        "column counts differ"
    );
    for (a, b) in ours.columns.iter().zip(&arm.columns) {
        ensure!(a.name == b.name, "column {} vs {}", a.name, b.name);
        match (&a.values, &b.values) {
            (ColumnValues::Numeric(x), ColumnValues::Numeric(y)) => {
                if let Some(i) = (0..x.len()).find(|&i| x[i].to_bits() != y[i].to_bits()) {
                    bail!("{} row {}: {} vs {}", a.name, i + 1, x[i], y[i]);
                }
            }
            (ColumnValues::Text(x), ColumnValues::Text(y)) => {
                ensure!(x == y, "text column {} differs", a.name);
            }
            _ => bail!("column {} has different kinds", a.name),
        }
    }
    Ok(())
}

/// The arm's whole-table read of a local CSV file.
fn read_arm(path: &Path) -> anyhow::Result<Table> {
    let file = std::fs::File::open(path)?;
    // SAFETY: a private read-only map of a file this process opened and
    // nothing rewrites during the benchmark (ours maps it the same way).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let _ = map.advise(memmap2::Advice::Sequential);
    parse_arm(&map)
}

fn parse_arm(buf: &[u8]) -> anyhow::Result<Table> {
    let (names, body_start) = header(buf)?;
    let body = &buf[body_start..];
    let threads = if body.len() < MIN_PARALLEL_BYTES {
        1
    } else {
        rayon::current_num_threads()
    };
    let bounds = split_points(body, threads);
    let slices: Vec<&[u8]> = bounds.windows(2).map(|w| &body[w[0]..w[1]]).collect();
    let kinds = vec![Kind::Infer; names.len()];
    let results: Vec<anyhow::Result<Part>> = slices
        .par_iter()
        .map(|part| parse_part(part, kinds.clone()))
        .collect();
    let mut parts = Vec::with_capacity(results.len());
    for r in results {
        parts.push(r?);
    }
    // Final kinds: text if any part needed text; re-parse the parts that disagree.
    let final_kinds: Vec<Kind> = (0..names.len())
        .map(|j| {
            if parts.iter().any(|p| p.kinds[j] == Kind::Text) {
                Kind::Text
            } else {
                Kind::Infer
            }
        })
        .collect();
    for (bytes, p) in slices.iter().zip(&mut parts) {
        if p.kinds != final_kinds {
            *p = parse_part(bytes, final_kinds.clone())?;
        }
    }
    for p in &parts {
        for (j, nf) in p.non_finite.iter().enumerate() {
            if nf.is_some() && final_kinds[j] == Kind::Infer {
                bail!("column {}: a non-finite number", names[j]);
            }
        }
    }
    // Concatenate the parts' columns (moving the first piece, as ours).
    let total: usize = parts.iter().map(|p| p.rows).sum();
    let mut iters: Vec<_> = parts.into_iter().map(|p| p.cols.into_iter()).collect();
    let mut columns = Vec::with_capacity(names.len());
    for name in &names {
        let mut num: Option<Vec<f64>> = None;
        let mut text: Option<Vec<Option<String>>> = None;
        for it in &mut iters {
            match it.next().context("a part lacks a column")? {
                Values::Num(v) => match &mut num {
                    None => {
                        let mut v = v;
                        v.reserve(total.saturating_sub(v.len()));
                        num = Some(v);
                    }
                    Some(out) => out.extend_from_slice(&v),
                },
                Values::Text(v) => match &mut text {
                    None => {
                        let mut v = v;
                        v.reserve(total.saturating_sub(v.len()));
                        text = Some(v);
                    }
                    Some(out) => out.extend(v),
                },
            }
        }
        columns.push(match (num, text) {
            (Some(v), None) => Column::numeric(name.clone(), v),
            (None, Some(v)) => Column::text(name.clone(), v),
            _ => bail!("column {name}: parts of different kinds"),
        });
    }
    Ok(Table::new(columns))
}

/// The header's names and the offset of the body, read by csv-core.
fn header(buf: &[u8]) -> anyhow::Result<(Vec<String>, usize)> {
    let mut reader = Reader::new();
    let mut out = vec![0u8; buf.len().min(1 << 16)];
    let mut ends = vec![0usize; 1024];
    let (res, nin, _, nend) = reader.read_record(buf, &mut out, &mut ends);
    ensure!(res == ReadRecordResult::Record, "header: {res:?}");
    let mut names = Vec::with_capacity(nend);
    let mut start = 0;
    for &end in &ends[..nend] {
        names.push(String::from_utf8(out[start..end].to_vec())?);
        start = end;
    }
    Ok((names, nin))
}

/// Offsets splitting `body` into about `parts` pieces at line ends (as ours).
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

/// Rows in `part` estimated from its first 256 KiB (as ours), so the column
/// vectors are allocated about once.
fn estimate_rows(part: &[u8]) -> usize {
    let sample = &part[..part.len().min(256 * 1024)];
    let lines = memchr::memchr_iter(b'\n', sample).count().max(1);
    let per_line = (sample.len() / lines).max(1);
    part.len() / per_line + part.len() / per_line / 50 + 16
}

/// Parses `part` to completion, restarting when a column turns out to be text.
fn parse_part(part: &[u8], mut kinds: Vec<Kind>) -> anyhow::Result<Part> {
    let estimate = estimate_rows(part);
    loop {
        match pass(part, &kinds, estimate)? {
            Ok(p) => return Ok(p),
            Err(PassEnd::SwitchToText(j)) => kinds[j] = Kind::Text,
        }
    }
}

/// One pass of csv-core over `part` into fresh columns.
fn pass(part: &[u8], kinds: &[Kind], estimate: usize) -> anyhow::Result<Result<Part, PassEnd>> {
    let ncols = kinds.len();
    let mut cols: Vec<Values> = kinds
        .iter()
        .map(|k| match k {
            Kind::Infer => Values::Num(Vec::with_capacity(estimate)),
            Kind::Text => Values::Text(Vec::with_capacity(estimate)),
        })
        .collect();
    let mut non_finite = vec![None; ncols];
    let mut reader = Reader::new();
    // Unescaped bytes of the current record and its field ends; grown when
    // csv-core says they are full.
    let mut out = vec![0u8; 4096];
    let mut ends = vec![0usize; ncols + 1];
    let (mut pos, mut outlen, mut endlen, mut rows) = (0, 0, 0, 0);
    loop {
        let (res, nin, nout, nend) =
            reader.read_record(&part[pos..], &mut out[outlen..], &mut ends[endlen..]);
        pos += nin;
        outlen += nout;
        endlen += nend;
        match res {
            // At the end of the part the next call gets an empty input,
            // which ends the last record.
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
            ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
            ReadRecordResult::End => break,
            ReadRecordResult::Record => {
                ensure!(
                    endlen == ncols,
                    "row {}: {endlen} fields, the header has {ncols}",
                    rows + 1
                );
                let mut start = 0;
                for (j, &end) in ends[..ncols].iter().enumerate() {
                    let cell = &out[start..end];
                    start = end;
                    match &mut cols[j] {
                        Values::Num(col) => match number(cell) {
                            Cell::Missing => col.push(f64::NAN),
                            Cell::Finite(v) => col.push(v),
                            Cell::NonFinite => {
                                col.push(f64::NAN);
                                non_finite[j].get_or_insert(rows);
                            }
                            Cell::NotNumber => return Ok(Err(PassEnd::SwitchToText(j))),
                        },
                        Values::Text(col) => {
                            if cell.is_empty() {
                                col.push(None);
                            } else {
                                col.push(Some(std::str::from_utf8(cell)?.to_owned()));
                            }
                        }
                    }
                }
                rows += 1;
                outlen = 0;
                endlen = 0;
            }
        }
    }
    Ok(Ok(Part {
        kinds: kinds.to_vec(),
        cols,
        rows,
        non_finite,
    }))
}

enum Cell {
    Missing,
    Finite(f64),
    NonFinite,
    NotNumber,
}

/// A numeric cell by fast-float2, with ours' rules: blank is missing,
/// padding is allowed, `inf`/`NaN` are not finite numbers.
#[inline]
fn number(cell: &[u8]) -> Cell {
    let v = match fast_float2::parse::<f64, _>(cell) {
        Ok(v) => v,
        // Only off the common path: padded or blank cells, or text.
        Err(_) => {
            let trimmed = cell.trim_ascii();
            if trimmed.is_empty() {
                return Cell::Missing;
            }
            match fast_float2::parse::<f64, _>(trimmed) {
                Ok(v) => v,
                Err(_) => return Cell::NotNumber,
            }
        }
    };
    if v.is_finite() {
        Cell::Finite(v)
    } else {
        Cell::NonFinite
    }
}
