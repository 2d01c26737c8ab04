//! The snapshot check: is a feature snapshot fit to be scored by a model?
//!
//! Compared with the model's training reference (the artifact's
//! [`ReferenceBins`](crate::reference::ReferenceBins) and
//! [`HoldoutProfile`](crate::reference::HoldoutProfile)): per feature, the
//! PSI over the training deciles (categoricals: the kept levels plus
//! `other`), missing values as their own bin; the missing share now and in
//! training; the share of values outside the training range; overall, the
//! rows failing validation, the mean probability and the band shares
//! against the holdout's. The snapshot is refused when a model feature is
//! absent, a missing share rose by more than `max_missing_rise`, more than
//! `max_out_of_range` of a numeric feature's values are outside its range,
//! the PSI of one of the `refuse_top_features` most important features is
//! above `psi_refuse`, or more than `max_invalid_share` of rows fail
//! validation ([`CheckThresholds`]). The PSI and score comparisons need
//! `min_rows` rows (100) to judge; the share rules hold at any size.
//!
//! The counts are gathered chunk by chunk ([`SnapshotCounts::add_table`])
//! and merge across shards; the verdict is a pure function of them
//! ([`check_snapshot`]).
//!
//! # Layout
//! - `thresholds`: [`CheckThresholds`], its checked builder and defaults.
//! - `counts`: [`SnapshotCounts`], counted as the model reads the cells.
//! - `psi`: [`psi`], the population stability index.
//! - `report`: [`check_snapshot`] and the [`CheckReport`] it returns.

mod counts;
mod psi;
mod report;
mod thresholds;

pub use counts::{FeatureCounts, SnapshotCounts};
pub use psi::{psi, PSI_FLOOR};
pub use report::{
    check_snapshot, importance_ranking, CheckItem, CheckReport, CheckStatus, DriftLevel,
    FeatureCheck,
};
pub use thresholds::{CheckThresholds, CheckThresholdsBuilder};
