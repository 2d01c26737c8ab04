//! [`SnapshotCounts`]: what the snapshot check needs of a snapshot, counted
//! chunk by chunk in constant memory and mergeable (the shards of a run
//! are counted apart and merged).

use crate::artifact::ModelArtifact;
use crate::error::{Error, Result};
use crate::preprocess::FeaturePrep;
use crate::reference::{decile_bin, Bins};
use crate::scoring::{ReadCell, Scorer};
use crate::table::Table;
use crate::RiskBand;
use serde::{Deserialize, Serialize};

/// Counts of one snapshot (or part of one) against one model (the
/// default: of no rows, for no model).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotCounts {
    pub model_id: String,
    /// Data rows read.
    pub rows: u64,
    /// Rows failing validation (unreadable, no valid id, not scorable).
    pub invalid_rows: u64,
    /// Rows scored.
    pub scored: u64,
    /// Sum of the scored rows' churn probabilities.
    pub probability_sum: f64,
    /// Scored rows per band: high, medium, low.
    pub bands: [u64; 3],
    /// One per model feature, in model order.
    pub features: Vec<FeatureCounts>,
}

/// One feature's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCounts {
    pub feature: String,
    /// The snapshot has no column for it.
    pub absent: bool,
    /// Rows counted (missing included).
    pub rows: u64,
    pub missing: u64,
    /// Present numeric values outside the training `[min, max]`.
    pub out_of_range: u64,
    /// Present values per bin: the reference's decile bins (numeric; empty
    /// when the artifact records no edges), or the kept levels then
    /// `other` (categorical).
    pub bins: Vec<u64>,
}

impl FeatureCounts {
    /// Present values (not missing).
    pub fn present(&self) -> u64 {
        self.rows - self.missing
    }
}

impl SnapshotCounts {
    /// Empty counts for `artifact`'s features.
    pub fn new(artifact: &ModelArtifact) -> SnapshotCounts {
        let features = artifact
            .preprocessing
            .features
            .iter()
            .map(|f| {
                let bins = match f {
                    FeaturePrep::Numeric(n) => match decile_edges(artifact, &n.name) {
                        Some(edges) => edges.len() + 1,
                        None => 0,
                    },
                    FeaturePrep::Categorical(c) => c.levels.len() + 1,
                };
                FeatureCounts {
                    feature: f.name().to_string(),
                    absent: false,
                    rows: 0,
                    missing: 0,
                    out_of_range: 0,
                    bins: vec![0; bins],
                }
            })
            .collect();
        SnapshotCounts {
            model_id: artifact.model_id().to_string(),
            rows: 0,
            invalid_rows: 0,
            scored: 0,
            probability_sum: 0.0,
            bands: [0; 3],
            features,
        }
    }

    /// Counts the feature values of the rows of `table` for which
    /// `include(row)` (0-based) holds, as `scorer` reads them. A feature
    /// with no column counts as absent, its rows as missing. Rows are
    /// counted separately ([`SnapshotCounts::add_rows`]).
    pub fn add_table(&mut self, scorer: &Scorer, table: &Table, include: impl Fn(usize) -> bool) {
        self.add_table_rows(scorer, table, 0..table.n_rows(), include);
    }

    /// As [`SnapshotCounts::add_table`], for the rows `rows` (0-based) of
    /// `table` only: a stream counts the blocks of a chunk apart, in
    /// parallel, and merges them.
    pub fn add_table_rows(
        &mut self,
        scorer: &Scorer,
        table: &Table,
        rows: std::ops::Range<usize>,
        include: impl Fn(usize) -> bool,
    ) {
        let artifact = scorer.artifact();
        let included = rows.clone().filter(|&i| include(i)).count() as u64;
        for (f, counts) in self.features.iter_mut().enumerate() {
            let (edges, range) = match &artifact.preprocessing.features[f] {
                FeaturePrep::Numeric(n) => (
                    decile_edges(artifact, &n.name),
                    (
                        n.min.unwrap_or(f64::NEG_INFINITY),
                        n.max.unwrap_or(f64::INFINITY),
                    ),
                ),
                FeaturePrep::Categorical(_) => (None, (f64::NAN, f64::NAN)),
            };
            let Some(cells) = scorer.read_cells(table, rows.clone(), f) else {
                counts.absent = true;
                counts.rows += included;
                counts.missing += included;
                continue;
            };
            for (i, cell) in cells {
                if !include(i) {
                    continue;
                }
                counts.rows += 1;
                match cell {
                    ReadCell::Missing | ReadCell::Unreadable => counts.missing += 1,
                    ReadCell::Number(x) => {
                        counts.out_of_range += u64::from(x < range.0 || x > range.1);
                        if let Some(edges) = edges {
                            counts.bins[decile_bin(edges, x)] += 1;
                        }
                    }
                    ReadCell::Level(level) => {
                        let other = counts.bins.len() - 1;
                        counts.bins[level.unwrap_or(other)] += 1;
                    }
                }
            }
        }
    }

    /// Adds `rows` data rows, `invalid` of which failed validation.
    pub fn add_rows(&mut self, rows: u64, invalid: u64) {
        self.rows += rows;
        self.invalid_rows += invalid;
    }

    /// Adds one scored row.
    pub fn add_score(&mut self, probability: f64, band: RiskBand) {
        self.scored += 1;
        self.probability_sum += probability;
        self.bands[crate::train::band_index(band)] += 1;
    }

    /// Adds `other`'s counts (another part of the same snapshot).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `other` was counted for another model.
    pub fn merge(&mut self, other: &SnapshotCounts) -> Result<()> {
        let same_layout = self.model_id == other.model_id
            && self.features.len() == other.features.len()
            && self
                .features
                .iter()
                .zip(&other.features)
                .all(|(a, b)| a.feature == b.feature && a.bins.len() == b.bins.len());
        if !same_layout {
            return Err(Error::InvalidConfig {
                message: format!(
                    "counts for model {} cannot be merged with counts for model {}",
                    self.model_id, other.model_id
                ),
            });
        }
        self.rows += other.rows;
        self.invalid_rows += other.invalid_rows;
        self.scored += other.scored;
        self.probability_sum += other.probability_sum;
        for (a, b) in self.bands.iter_mut().zip(other.bands) {
            *a += b;
        }
        for (a, b) in self.features.iter_mut().zip(&other.features) {
            a.absent |= b.absent;
            a.rows += b.rows;
            a.missing += b.missing;
            a.out_of_range += b.out_of_range;
            for (x, y) in a.bins.iter_mut().zip(&b.bins) {
                *x += y;
            }
        }
        Ok(())
    }
}

/// The decile edges `artifact` records for numeric feature `name`.
pub(crate) fn decile_edges<'a>(artifact: &'a ModelArtifact, name: &str) -> Option<&'a [f64]> {
    artifact
        .reference
        .iter()
        .find(|r| r.feature == name)
        .and_then(|r| match &r.bins {
            Bins::Deciles { edges, .. } => Some(edges.as_slice()),
            Bins::Levels { .. } => None,
        })
}
