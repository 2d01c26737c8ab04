//! Reference distributions of each feature in the training split, stored in
//! the artifact so a later job can compare fresh snapshots (drift checks)
//! without the training data.

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
    /// The 10th, 20th, ..., 90th percentiles of present raw values.
    Deciles { edges: Vec<f64> },
    /// Share of training rows per kept level (plus `other`).
    Levels { levels: Vec<(String, f64)> },
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
