//! One CSV source read as a stream of chunks of at most `chunk_rows` rows.
//!
//! The source is read into a buffer; its whole records are cut every
//! `chunk_rows` line ends and the pieces parsed in parallel on the thread
//! pool with quotes forbidden (a line end inside quotes would misplace a
//! cut), then handed out in order. Kinds are fixed before the first chunk
//! (hints, or inferred from the first buffer), so every piece is parsed
//! alike. A buffer with a quote, a piece that fails, or a record longer than
//! the buffer goes through the one-chunk-at-a-time parser, which reports
//! errors with their row numbers; results are identical either way.

use super::csv_parse::{parse_header, plan_for, Builders, LocalRowError, Mode, Pass, Plan, Stop};
use super::error::{FeatureError, FeatureResult};
use super::options::ReadOptions;
use churn_model::Table;
use std::collections::VecDeque;
use std::io::Read;

/// Bytes read from a CSV source per refill.
const BUFFER_BYTES: usize = 1 << 20;
/// Bytes buffered per pool thread for parsing ahead (a chunk or more each):
/// enough to keep every thread parsing, small enough that the parsed rows
/// waiting to be scored stay a few MiB.
const AHEAD_BYTES_PER_THREAD: usize = 1 << 20;
/// The most the parse-ahead region grows to when chunks are larger than
/// the per-thread bytes (long rows, or many rows to a chunk).
const MAX_AHEAD_BYTES: usize = 32 << 20;

/// A CSV chunk: the rows, its bad rows, the header names (for messages).
type CsvChunk = (Table, Vec<LocalRowError>, Vec<String>);

/// Streams one CSV source.
pub(crate) struct CsvChunks<R: Read> {
    /// Chunks parsed ahead, handed out first, in order.
    ready: VecDeque<CsvChunk>,
    /// Parsing ahead failed once (a quote, a bad piece): the rest of the
    /// source goes one chunk at a time, instead of parsing the same
    /// buffer twice for every chunk.
    alone: bool,
    reader: R,
    location: String,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    names: Vec<String>,
    plan: Vec<Plan>,
    delimiter: u8,
    /// A detected delimiter, said once.
    pub notes: Vec<String>,
    next_row: usize,
    scratch: Vec<u8>,
    /// Chunks parsed one at a time (quotes, failures, a source's last
    /// bytes): few, when parsing ahead works.
    alone_chunks: usize,
    /// Bytes parsed ahead at a time: a chunk per pool thread, or more.
    ahead_bytes: usize,
}

impl<R: Read> CsvChunks<R> {
    /// Reads the header and decides the kinds.
    ///
    /// # Errors
    /// [`FeatureError::Io`], [`FeatureError::Header`].
    pub(crate) fn new(reader: R, location: &str, options: &ReadOptions) -> FeatureResult<Self> {
        let mut s = CsvChunks {
            ready: VecDeque::new(),
            alone: false,
            reader,
            location: location.to_string(),
            buf: vec![0; BUFFER_BYTES],
            ahead_bytes: BUFFER_BYTES.max(rayon::current_num_threads() * AHEAD_BYTES_PER_THREAD),
            start: 0,
            end: 0,
            eof: false,
            names: Vec::new(),
            plan: Vec::new(),
            delimiter: b',',
            notes: Vec::new(),
            next_row: 1,
            scratch: Vec::new(),
            alone_chunks: 0,
        };
        loop {
            match parse_header(&s.buf[s.start..s.end], s.eof) {
                Ok(Some(header)) => {
                    s.notes.extend(header.delimiter_note(location));
                    s.start += header.end;
                    s.names = header.names;
                    s.delimiter = header.delimiter;
                    break;
                }
                Ok(None) => s.fill()?,
                Err(message) => {
                    return Err(FeatureError::Header {
                        location: s.location.clone(),
                        message,
                    })
                }
            }
        }
        let mut plan = plan_for(&s.names, options);
        if plan.contains(&Plan::Infer) {
            // Infer from the first buffer: fill it, then parse its complete records.
            while !s.eof && s.end - s.start < BUFFER_BYTES / 2 {
                s.fill()?;
            }
            let pass = Pass {
                buf: &s.buf[s.start..s.end],
                delimiter: s.delimiter,
                is_final: s.eof,
                allow_quotes: true,
                mode: Mode::Lenient,
                max_rows: usize::MAX,
            };
            loop {
                let mut b = Builders::new(plan.clone(), 0);
                match pass.run(0, &mut b, &mut s.scratch) {
                    Ok((_, Stop::SwitchToText(j))) => plan[j] = Plan::Text,
                    _ => break,
                }
            }
            for p in &mut plan {
                if *p == Plan::Infer {
                    *p = Plan::Numeric;
                }
            }
        }
        s.plan = plan;
        Ok(s)
    }

    /// Reads more bytes after the unconsumed ones, growing the buffer when
    /// one record is larger than it.
    fn fill(&mut self) -> FeatureResult<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FeatureError::io("read", &self.location, e)),
            }
        }
    }

    /// The next chunk of at most `chunk_rows` rows.
    ///
    /// # Errors
    /// [`FeatureError::Io`], and a malformed record the lenient parser
    /// cannot skip, naming its row.
    pub(crate) fn next_chunk(&mut self, chunk_rows: usize) -> FeatureResult<Option<CsvChunk>> {
        let chunk_rows = chunk_rows.max(1);
        if self.ready.is_empty() && !self.alone && rayon::current_num_threads() > 1 {
            self.parse_ahead(chunk_rows)?;
        }
        match self.ready.pop_front() {
            Some(chunk) => Ok(Some(chunk)),
            None => self.next_chunk_alone(chunk_rows),
        }
    }

    /// Parses the buffer's whole records as several chunks in parallel into
    /// `ready`. Leaves everything to [`Self::next_chunk_alone`] (nothing
    /// consumed) when the buffer holds no whole chunk, or a piece meets a
    /// quote or fails.
    fn parse_ahead(&mut self, chunk_rows: usize) -> FeatureResult<()> {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads();
        // The region grows (doubling, up to a bound) until it holds a
        // chunk per thread: chunks are cut in rows, the region in bytes.
        let bounds = loop {
            self.fill_to(self.ahead_bytes)?;
            let bounds = chunk_bounds(&self.buf[self.start..self.end], chunk_rows, self.eof);
            if bounds.len() > threads || self.eof || self.ahead_bytes >= MAX_AHEAD_BYTES {
                break bounds;
            }
            self.ahead_bytes = (self.ahead_bytes * 2).min(MAX_AHEAD_BYTES);
        };
        let region = &self.buf[self.start..self.end];
        if bounds.len() < 2 {
            return Ok(());
        }
        let (plan, delimiter) = (&self.plan, self.delimiter);
        let parsed: Vec<Option<Builders>> = bounds
            .par_windows(2)
            .map(|w| {
                let mut b = Builders::new(plan.clone(), chunk_rows);
                let pass = Pass {
                    buf: &region[w[0]..w[1]],
                    delimiter,
                    // Each piece ends at a line end (or is the source's last bytes).
                    is_final: true,
                    allow_quotes: false,
                    mode: Mode::Lenient,
                    max_rows: usize::MAX,
                };
                match pass.run(0, &mut b, &mut Vec::new()) {
                    Ok((used, Stop::Done)) if used == w[1] - w[0] => Some(b),
                    _ => None,
                }
            })
            .collect();
        if parsed.iter().any(Option::is_none) {
            self.alone = true;
            return Ok(());
        }
        self.start += bounds[bounds.len() - 1];
        for mut b in parsed.into_iter().flatten() {
            if b.rows == 0 {
                continue;
            }
            let first_row = self.next_row;
            self.next_row += b.rows;
            let errors = std::mem::take(&mut b.row_errors);
            self.ready.push_back((
                b.into_table(&self.names, first_row),
                errors,
                self.names.clone(),
            ));
        }
        Ok(())
    }

    /// Reads until `want` bytes are buffered or the source ends (the buffer
    /// grows to `want` if smaller).
    fn fill_to(&mut self, want: usize) -> FeatureResult<()> {
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        // Bounded by the unconsumed bytes, not by the tail's room: `fill`
        // moves them to the front first (checking only the tail left a
        // parsed-ahead buffer's leftover alone, and every chunk after it
        // went through the one-chunk-at-a-time parser). The buffer holds at
        // least `want`, so it never grows here.
        while !self.eof && self.end - self.start < want {
            self.fill()?;
        }
        Ok(())
    }

    /// The next chunk, parsed alone (quotes allowed).
    fn next_chunk_alone(&mut self, chunk_rows: usize) -> FeatureResult<Option<CsvChunk>> {
        self.alone_chunks += 1;
        let mut b = Builders::new(self.plan.clone(), chunk_rows);
        loop {
            let pass = Pass {
                buf: &self.buf[self.start..self.end],
                delimiter: self.delimiter,
                is_final: self.eof,
                allow_quotes: true,
                mode: Mode::Lenient,
                max_rows: chunk_rows,
            };
            let (consumed, stop) = pass.run(0, &mut b, &mut self.scratch).map_err(|e| {
                super::csv_bulk::local_error(e, self.next_row - 1, &self.names, &self.location)
            })?;
            self.start += consumed;
            match stop {
                Stop::NeedMore => self.fill()?,
                Stop::Done if b.rows < chunk_rows && !self.eof => self.fill()?,
                _ => break,
            }
        }
        if b.rows == 0 {
            return Ok(None);
        }
        let first_row = self.next_row;
        self.next_row += b.rows;
        let errors = std::mem::take(&mut b.row_errors);
        Ok(Some((
            b.into_table(&self.names, first_row),
            errors,
            self.names.clone(),
        )))
    }
}

/// Offsets cutting `region` after every `chunk_rows`-th line end; the bytes
/// after the last cut become a piece too when the source has ended.
fn chunk_bounds(region: &[u8], chunk_rows: usize, eof: bool) -> Vec<usize> {
    let mut bounds = vec![0];
    for (k, at) in memchr::memchr_iter(b'\n', region).enumerate() {
        if (k + 1) % chunk_rows == 0 {
            bounds.push(at + 1);
        }
    }
    if eof && bounds.last().copied().unwrap_or(0) < region.len() {
        bounds.push(region.len());
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quote-free source of `rows` rows of `x,y`.
    fn source(rows: usize) -> Vec<u8> {
        let mut s = b"x,y\n".to_vec();
        for i in 0..rows {
            s.extend_from_slice(format!("{i},{}.25\n", i % 97).as_bytes());
        }
        s
    }

    /// Streams `rows` rows of [`source`] in chunks of `chunk_rows` on a
    /// two-thread pool, checking the rows and that every chunk but the
    /// source's last bytes was parsed ahead; returns the reader.
    fn streamed_ahead(rows: usize, chunk_rows: usize) -> CsvChunks<std::io::Cursor<Vec<u8>>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let bytes = std::io::Cursor::new(source(rows));
            let mut chunks = CsvChunks::new(bytes, "mem.csv", &ReadOptions::default()).unwrap();
            let (mut n, mut count) = (0, 0);
            while let Some((table, errors, _)) = chunks.next_chunk(chunk_rows).unwrap() {
                assert!(errors.is_empty());
                assert_eq!(table.first_row, n + 1);
                n += table.n_rows();
                count += 1;
            }
            assert_eq!(n, rows);
            // The last bytes may go alone; every other chunk was parsed ahead.
            assert!(
                chunks.alone_chunks <= 2,
                "{} of {count} chunks parsed alone",
                chunks.alone_chunks
            );
            chunks
        })
    }

    #[test]
    fn a_quote_free_source_is_parsed_ahead_to_its_end() {
        // About five buffers' worth, eight chunks to a buffer.
        streamed_ahead(1_000_000, 20_000);
    }

    /// Chunks several times the per-thread bytes (here ~2.7 MiB each) are
    /// parsed ahead too: the region grows to hold one per thread.
    #[test]
    fn chunks_larger_than_the_region_are_parsed_ahead() {
        let chunks = streamed_ahead(2_000_000, 200_000);
        assert!(chunks.ahead_bytes > 2 * AHEAD_BYTES_PER_THREAD);
        assert!(chunks.ahead_bytes <= MAX_AHEAD_BYTES);
    }
}
