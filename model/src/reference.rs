//! Reference distributions of each feature in the training split, and the
//! holdout's score profile, stored in the artifact so a later job can
//! compare fresh snapshots (the snapshot check, [`crate::check`]) without
//! the training data.

use serde::{Deserialize, Serialize};

/// Training distribution of one source feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceBins {
    pub feature: String,
    /// Share of training rows where the value was missing.
    pub missing_share: f64,
    pub bins: Bins,
}

/// Decile edges for numeric features, level shares for categorical ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Bins {
    /// The 10th, 20th, ..., 90th percentiles of present raw values, and
    /// (schema version 5 on) the share of training rows in each of the ten
    /// bins they bound ([`decile_bin`]): ties between edges make some bins
    /// empty and others larger than a tenth, so the shares are counted, not
    /// assumed. The shares and `missing_share` add up to 1. Empty in older
    /// artifacts, whose numeric drift is then not computed.
    Deciles {
        edges: Vec<f64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shares: Vec<f64>,
    },
    /// Share of training rows per kept level (plus `other`).
    Levels { levels: Vec<(String, f64)> },
}

/// The bin of present value `x` among decile `edges`: the number of edges
/// below it, so bin 0 is `x <= edges[0]`, bin k is `edges[k-1] < x <=
/// edges[k]` and the last is above every edge. The one rule training and
/// the snapshot check both bin by.
pub fn decile_bin(edges: &[f64], x: f64) -> usize {
    // Counted rather than searched: the edges are sorted, so this is their
    // partition point, and a branch-free count of ten edges beats a binary
    // search's unpredictable branches on every value of a snapshot.
    edges.iter().filter(|&&e| e < x).count()
}

/// The share of `n` rows in each decile bin of `present` values.
pub(crate) fn decile_shares(edges: &[f64], present: &[f64], n: usize) -> Vec<f64> {
    let mut counts = vec![0u64; edges.len() + 1];
    for &x in present {
        counts[decile_bin(edges, x)] += 1;
    }
    let n = n.max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

/// What the model's scores looked like on its holdout, and which features
/// move them most: what a snapshot's scores and drift are judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutProfile {
    /// Mean churn probability over the holdout.
    pub mean_probability: f64,
    /// Share of holdout rows per band.
    pub band_shares: BandShares,
    /// Source features by mean absolute contribution to the logit over the
    /// holdout (an interaction's contribution split evenly between its two
    /// features), largest first.
    pub importance: Vec<FeatureImportance>,
}

/// Share of rows per risk band.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BandShares {
    pub high: f64,
    pub medium: f64,
    pub low: f64,
}

impl BandShares {
    /// The shares of `counts` (high, medium, low) out of their sum (all
    /// zero when it is zero).
    pub fn of(counts: [u64; 3]) -> BandShares {
        let n = counts.iter().sum::<u64>().max(1) as f64;
        BandShares {
            high: counts[0] as f64 / n,
            medium: counts[1] as f64 / n,
            low: counts[2] as f64 / n,
        }
    }

    /// High, medium, low.
    pub fn as_array(&self) -> [f64; 3] {
        [self.high, self.medium, self.low]
    }
}

/// One feature's importance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    pub feature: String,
    pub mean_abs_contribution: f64,
}

/// The values of `v` at the ascending 0-based `ranks` (each below
/// `v.len()`) of its total order, as sorting would give them, by one
/// selection per rank, each in the part above the previous rank: a handful
/// of linear passes instead of a sort. Reorders `v`.
pub(crate) fn order_statistics(v: &mut [f64], ranks: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(ranks.len());
    let mut lo = 0;
    for &r in ranks {
        debug_assert!(r >= lo && r < v.len());
        // v[lo..] holds exactly the values of rank >= lo.
        let (_, x, _) = v[lo..].select_nth_unstable_by(r - lo, f64::total_cmp);
        out.push(*x);
        lo = r;
    }
    out
}

/// An integer ordered as `f64::total_cmp` orders floats (its own mapping):
/// sorting by it compares integers, not floats.
pub(crate) fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// 0-based ranks of the nearest-rank 10th..90th percentiles of `n` values.
pub(crate) fn decile_ranks(n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    (1..10)
        .map(|d| ((d as f64 / 10.0) * n as f64).ceil() as usize)
        .map(|k| k.clamp(1, n) - 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Selection gives what sorting gives, ties, signed zeros and repeated
    /// ranks included.
    #[test]
    fn order_statistics_are_the_sorted_values_at_the_ranks() {
        let mut v: Vec<f64> = (0..5003)
            .map(|i| ((i * 7919) % 101) as f64 - 50.0)
            .collect();
        v.extend([0.0, -0.0, 0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY]);
        let mut sorted = v.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        for ranks in [
            decile_ranks(v.len()),
            vec![0, 0, 1, 2508, 2508, v.len() - 1],
            (0..v.len()).step_by(97).collect(),
        ] {
            let got = order_statistics(&mut v.clone(), &ranks);
            let want: Vec<f64> = ranks.iter().map(|&r| sorted[r]).collect();
            let bits = |x: &[f64]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "ranks {ranks:?}");
        }
    }
}
