//! Input checks before training: table shape, customer ids (present and
//! unique), and class balance. Every error names the row and column.

use crate::error::{Error, Result};
use crate::table::{ColumnValues, Table};
use rayon::prelude::*;

/// Equal column lengths; at least one row.
pub(crate) fn check_shape(table: &Table) -> Result<usize> {
    let n = table.n_rows();
    for c in &table.columns {
        if c.values.len() != n {
            return Err(Error::RaggedTable {
                column: c.name.clone(),
                len: c.values.len(),
                expected: n,
            });
        }
    }
    if n == 0 {
        return Err(Error::EmptyTable);
    }
    Ok(n)
}

/// A fast non-cryptographic hasher (the Fx multiply-rotate scheme) for the
/// duplicate-id check: SipHash's DoS resistance buys nothing on a table the
/// caller already holds in memory, and costs ~3x on a million ids.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Multiplication only carries bits upwards, and ids differ in their
        // last bytes (the high bits of the last word): mix them down into
        // the low bits the table indexes by (MurmurHash3's finaliser).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FastHash = std::hash::BuildHasherDefault<FxHasher>;

/// The first duplicate among `keys` (row index, key hash): sorts the hashes
/// instead of building a hash table (a million-entry table is one cache
/// miss per id; a sort of 16-byte pairs streams), then confirms equal hashes
/// with `same`. Returns (row, first row) of the duplicate with the smallest row.
fn first_duplicate(
    keys: Vec<(u64, usize)>,
    same: impl Fn(usize, usize) -> bool,
) -> Option<(usize, usize)> {
    let keys = sorted_by_hash(keys);
    let mut best: Option<(usize, usize)> = None;
    for group in keys.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        // Within a group rows ascend, so the first match is the first occurrence.
        for j in 1..group.len() {
            if let Some(k) = (0..j).find(|&k| same(group[k].1, group[j].1)) {
                let cand = (group[j].1, group[k].1);
                if best.is_none_or(|b| cand.0 < b.0) {
                    best = Some(cand);
                }
                break;
            }
        }
    }
    best
}

/// `keys` sorted. They are first distributed by their hash's top bits
/// (uniform: the hash is finalised) into buckets of a few thousand, in one
/// counting pass and one scatter; the buckets then lie in order and each is
/// sorted in cache, side by side on the pool. The scatter needs a second
/// buffer as large as `keys` (16 MB per million ids), freed on return.
fn sorted_by_hash(mut keys: Vec<(u64, usize)>) -> Vec<(u64, usize)> {
    const PER_BUCKET: usize = 4096;
    let bits = (keys.len() / PER_BUCKET).max(1).ilog2().min(16);
    if bits == 0 {
        keys.par_sort_unstable();
        return keys;
    }
    let bucket = |h: u64| (h >> (64 - bits)) as usize;
    let mut counts = vec![0usize; 1 << bits];
    for &(h, _) in &keys {
        counts[bucket(h)] += 1;
    }
    // Where each bucket's next key goes: its start, then one further per key.
    let mut next: Vec<usize> = counts
        .iter()
        .scan(0, |start, &c| {
            *start += c;
            Some(*start - c)
        })
        .collect();
    let mut out = vec![(0, 0); keys.len()];
    for &k in &keys {
        let b = bucket(k.0);
        out[next[b]] = k;
        next[b] += 1;
    }
    let mut buckets = Vec::with_capacity(counts.len());
    let mut rest = out.as_mut_slice();
    for &c in &counts {
        let (bucket, tail) = std::mem::take(&mut rest).split_at_mut(c);
        buckets.push(bucket);
        rest = tail;
    }
    buckets.into_par_iter().for_each(|b| b.sort_unstable());
    out
}

/// `(hash, row)` of every value, rows in parallel blocks; the error of the
/// first row `hash` refuses.
fn hashed<T: Sync>(
    values: &[T],
    hash: impl Fn(usize, &T) -> Result<u64> + Sync,
) -> Result<Vec<(u64, usize)>> {
    const BLOCK: usize = 1 << 16;
    let blocks: Vec<Result<Vec<(u64, usize)>>> = values
        .par_chunks(BLOCK)
        .enumerate()
        .map(|(b, block)| {
            let first = b * BLOCK;
            (first..)
                .zip(block)
                .map(|(i, v)| Ok((hash(i, v)?, i)))
                .collect()
        })
        .collect();
    let mut keys = Vec::with_capacity(values.len());
    for block in blocks {
        keys.extend(block?);
    }
    Ok(keys)
}

fn fx_hash<T: std::hash::Hash + ?Sized>(v: &T) -> u64 {
    use std::hash::BuildHasher;
    FastHash::default().hash_one(v)
}

/// Every customer id present and unique.
pub(crate) fn check_ids(table: &Table, id_column: &str) -> Result<()> {
    let col = table
        .column(id_column)
        .ok_or_else(|| crate::schema::missing_column(table, id_column))?;
    let missing = |i: usize| Error::MissingId {
        row: table.row_number(i),
        column: id_column.to_string(),
    };
    let dup = |(i, first): (usize, usize), id: String| Error::DuplicateId {
        row: table.row_number(i),
        first_row: table.row_number(first),
        column: id_column.to_string(),
        id,
    };
    match &col.values {
        ColumnValues::Text(v) => {
            let keys = hashed(v, |i, s| {
                match crate::customer_id::customer_id(s.as_deref().unwrap_or("")) {
                    Ok(s) => Ok(fx_hash(s)),
                    Err(crate::customer_id::CustomerIdError::Empty) => Err(missing(i)),
                    Err(problem) => Err(Error::InvalidId {
                        row: table.row_number(i),
                        column: id_column.to_string(),
                        problem,
                    }),
                }
            })?;
            let key = |i: usize| v[i].as_deref().map(str::trim);
            if let Some(d) = first_duplicate(keys, |a, b| key(a) == key(b)) {
                return Err(dup(d, key(d.0).unwrap_or_default().to_string()));
            }
        }
        ColumnValues::Numeric(v) => {
            // +0.0 and -0.0 are the same id.
            let bits = |x: f64| if x == 0.0 { 0 } else { x.to_bits() };
            let keys = hashed(v, |i, &x| {
                if x.is_nan() {
                    Err(missing(i))
                } else {
                    Ok(fx_hash(&bits(x)))
                }
            })?;
            if let Some(d) = first_duplicate(keys, |a, b| bits(v[a]) == bits(v[b])) {
                return Err(dup(d, v[d.0].to_string()));
            }
        }
    }
    Ok(())
}

/// Both classes, and enough of the rarer one.
pub(crate) fn check_balance(
    labels: &[bool],
    label_column: &str,
    min_minority_rows: usize,
) -> Result<()> {
    let churned = labels.iter().filter(|&&y| y).count();
    let retained = labels.len() - churned;
    let column = label_column.to_string();
    if churned == 0 || retained == 0 {
        let class = if churned == 0 {
            "0 (retained)"
        } else {
            "1 (churned)"
        };
        return Err(Error::OneClass {
            column,
            class: class.into(),
            rows: labels.len(),
        });
    }
    let (class, count) = if churned <= retained {
        ("1 (churned)", churned)
    } else {
        ("0 (retained)", retained)
    };
    if count < min_minority_rows {
        return Err(Error::TooFewMinority {
            column,
            class: class.into(),
            count,
            required: min_minority_rows,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucketed_sort_is_a_sort() {
        for n in [0, 1, 4095, 8192, 50_000, 300_000] {
            // Hashes of (row / 3): runs of equal hashes, as duplicates make.
            let keys: Vec<(u64, usize)> = (0..n).map(|r| (fx_hash(&(r / 3)), r)).collect();
            let mut expected = keys.clone();
            expected.sort_unstable();
            assert_eq!(sorted_by_hash(keys), expected, "{n} keys");
        }
    }
}
