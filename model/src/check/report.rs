//! [`check_snapshot`]: the verdict on a snapshot's [`SnapshotCounts`]
//! against the model's training reference, with every figure behind it.

use super::counts::{FeatureCounts, SnapshotCounts};
use super::psi::psi;
use super::thresholds::CheckThresholds;
use crate::artifact::ModelArtifact;
use crate::preprocess::{FeaturePrep, OTHER_LEVEL};
use crate::reference::{BandShares, Bins, ReferenceBins};
use serde::{Deserialize, Serialize};

/// The verdict on a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Refuse,
}

impl CheckStatus {
    /// `ok`, `warn` or `refuse`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Refuse => "refuse",
        }
    }
}

/// How far one feature drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftLevel {
    /// PSI below `psi_warn`.
    Ok,
    /// PSI from `psi_warn` to `psi_alert`.
    Warn,
    /// PSI above `psi_alert`.
    Alert,
    /// Not judged: the artifact records no bin shares for the feature
    /// (older than schema version 5), or the snapshot has fewer rows than
    /// `min_rows` (its PSI is then reported, but noise).
    Unchecked,
}

impl DriftLevel {
    /// `ok`, `warn`, `alert` or `unchecked` (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftLevel::Ok => "ok",
            DriftLevel::Warn => "warn",
            DriftLevel::Alert => "alert",
            DriftLevel::Unchecked => "unchecked",
        }
    }
}

/// One feature's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCheck {
    pub feature: String,
    /// Over the reference bins plus a missing bin (`null`: unchecked).
    pub psi: Option<f64>,
    pub missing_share: f64,
    pub reference_missing_share: f64,
    /// Share of present values outside the training range (numeric only).
    pub out_of_range_share: Option<f64>,
    pub level: DriftLevel,
    /// The snapshot has no column for it.
    #[serde(default)]
    pub absent: bool,
    /// 1 = the model's most important feature.
    pub importance_rank: usize,
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    pub name: String,
    /// `ok`, `warn`, `refuse`, or `skipped` (too few rows, or nothing to
    /// compare with).
    pub status: String,
    pub detail: String,
}

/// The whole verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub status: CheckStatus,
    pub model_id: String,
    pub rows: u64,
    pub invalid_rows: u64,
    pub scored: u64,
    /// Mean probability of the scored rows (`null` when none).
    pub mean_probability: Option<f64>,
    pub holdout_mean_probability: Option<f64>,
    pub band_shares: BandShares,
    pub holdout_band_shares: Option<BandShares>,
    pub features: Vec<FeatureCheck>,
    pub checks: Vec<CheckItem>,
}

impl CheckReport {
    /// Whether the snapshot is refused.
    pub fn refused(&self) -> bool {
        self.status == CheckStatus::Refuse
    }

    /// The largest PSI among the features it judged (present, with a
    /// reference, enough rows): what the drift alarm watches. `None` when
    /// none was.
    pub fn max_psi(&self) -> Option<f64> {
        self.features
            .iter()
            .filter(|f| !f.absent && f.level != DriftLevel::Unchecked)
            .filter_map(|f| f.psi)
            .max_by(f64::total_cmp)
    }

    /// `<check>: <detail>; ...`: every failed check with its figures (what
    /// a refusal's message lists).
    pub fn failed_checks(&self) -> String {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.status == "refuse")
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        failed.join("; ")
    }
}

/// The check of `counts` against `artifact`'s reference under `limits`.
pub fn check_snapshot(
    artifact: &ModelArtifact,
    counts: &SnapshotCounts,
    limits: &CheckThresholds,
) -> CheckReport {
    let ranking = importance_ranking(artifact);
    let judged = counts.rows >= limits.min_rows;
    let features: Vec<FeatureCheck> = counts
        .features
        .iter()
        .map(|c| feature_check(artifact, c, &ranking, limits, judged))
        .collect();
    let too_few = format!(
        "{} rows, fewer than the {} a distribution comparison needs",
        counts.rows, limits.min_rows
    );
    // Shares of rows are exact at any size; PSI and the score comparison
    // are noise on a handful of rows, so below `min_rows` they only report.
    let mut checks = vec![
        present_check(&features),
        invalid_check(counts, limits),
        missing_check(&features, limits),
        range_check(&features, limits),
    ];
    for mut c in [
        drift_check(&features, limits),
        scores_check(artifact, counts, limits),
    ] {
        if !judged && c.status != "skipped" {
            c.status = "skipped".into();
            c.detail = format!("{too_few}; {}", c.detail);
        }
        checks.push(c);
    }
    if let Some(c) = reference_check(artifact) {
        checks.push(c);
    }
    let status = checks
        .iter()
        .map(|c| match c.status.as_str() {
            "refuse" => CheckStatus::Refuse,
            "warn" => CheckStatus::Warn,
            _ => CheckStatus::Ok,
        })
        .max()
        .unwrap_or(CheckStatus::Ok);
    let profile = artifact.holdout_profile.as_ref();
    CheckReport {
        status,
        model_id: counts.model_id.clone(),
        rows: counts.rows,
        invalid_rows: counts.invalid_rows,
        scored: counts.scored,
        mean_probability: (counts.scored > 0)
            .then(|| counts.probability_sum / counts.scored as f64),
        holdout_mean_probability: profile.map(|p| p.mean_probability),
        band_shares: BandShares::of(counts.bands),
        holdout_band_shares: profile.map(|p| p.band_shares),
        features,
        checks,
    }
}

/// Feature names by importance, most important first: the holdout
/// profile's ranking, or (artifacts before it) by the summed magnitude of
/// each feature's standardized coefficients.
pub fn importance_ranking(artifact: &ModelArtifact) -> Vec<String> {
    if let Some(p) = &artifact.holdout_profile {
        return p.importance.iter().map(|i| i.feature.clone()).collect();
    }
    let features = &artifact.preprocessing.features;
    let mut weight = vec![0.0f64; features.len()];
    for (col, coef) in artifact
        .preprocessing
        .columns
        .iter()
        .zip(&artifact.coefficients)
    {
        if let Some(w) = weight.get_mut(col.feature) {
            *w += coef.value.abs();
        }
    }
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .map(|f| features[f].name().to_string())
        .collect()
}

/// One feature's figures and drift level.
fn feature_check(
    artifact: &ModelArtifact,
    c: &FeatureCounts,
    ranking: &[String],
    limits: &CheckThresholds,
    judged: bool,
) -> FeatureCheck {
    let reference = artifact.reference.iter().find(|r| r.feature == c.feature);
    let reference_missing_share = reference.map_or(0.0, |r| r.missing_share);
    let rows = c.rows.max(1) as f64;
    let numeric = artifact
        .preprocessing
        .features
        .iter()
        .any(|f| matches!(f, FeaturePrep::Numeric(n) if n.name == c.feature));
    let psi = match (reference.and_then(|r| expected_shares(artifact, r)), c.rows) {
        (Some(expected), rows) if rows > 0 => {
            let mut actual: Vec<f64> = c.bins.iter().map(|&b| b as f64 / rows as f64).collect();
            actual.push(c.missing as f64 / rows as f64);
            Some(psi(&expected, &actual))
        }
        _ => None,
    };
    let level = match psi {
        None => DriftLevel::Unchecked,
        Some(_) if !judged => DriftLevel::Unchecked,
        Some(p) if p > limits.psi_alert => DriftLevel::Alert,
        Some(p) if p >= limits.psi_warn => DriftLevel::Warn,
        Some(_) => DriftLevel::Ok,
    };
    FeatureCheck {
        feature: c.feature.clone(),
        psi,
        missing_share: c.missing as f64 / rows,
        reference_missing_share,
        out_of_range_share: numeric.then(|| c.out_of_range as f64 / c.present().max(1) as f64),
        level,
        absent: c.absent,
        importance_rank: ranking
            .iter()
            .position(|f| *f == c.feature)
            .map_or(ranking.len() + 1, |p| p + 1),
    }
}

/// The training shares of a feature's bins, missing last, in the order
/// [`SnapshotCounts`] counts them; `None` when the artifact has no numeric
/// shares (before schema version 5).
fn expected_shares(artifact: &ModelArtifact, r: &ReferenceBins) -> Option<Vec<f64>> {
    let mut shares = match &r.bins {
        Bins::Deciles { shares, .. } if shares.is_empty() => return None,
        Bins::Deciles { shares, .. } => shares.clone(),
        Bins::Levels { levels } => {
            let prep = artifact
                .preprocessing
                .features
                .iter()
                .find_map(|f| match f {
                    FeaturePrep::Categorical(c) if c.name == r.feature => Some(c),
                    _ => None,
                })?;
            let share_of = |name: &str| {
                levels
                    .iter()
                    .find(|(l, _)| l == name)
                    .map_or(0.0, |(_, s)| *s)
            };
            // Training's `other` share counts missing cells too.
            let mut v: Vec<f64> = prep.levels.iter().map(|l| share_of(l)).collect();
            v.push((share_of(OTHER_LEVEL) - r.missing_share).max(0.0));
            v
        }
    };
    shares.push(r.missing_share);
    Some(shares)
}

fn item(name: &str, status: &str, detail: String) -> CheckItem {
    CheckItem {
        name: name.into(),
        status: status.into(),
        detail,
    }
}

/// Every model feature has a column.
fn present_check(features: &[FeatureCheck]) -> CheckItem {
    let absent: Vec<&str> = features
        .iter()
        .filter(|f| f.absent)
        .map(|f| f.feature.as_str())
        .collect();
    if absent.is_empty() {
        item(
            "features_present",
            "ok",
            "every model feature has a column".into(),
        )
    } else {
        item(
            "features_present",
            "refuse",
            format!("no column for model feature(s) {}", absent.join(", ")),
        )
    }
}

/// Share of rows failing validation.
fn invalid_check(counts: &SnapshotCounts, limits: &CheckThresholds) -> CheckItem {
    let share = counts.invalid_rows as f64 / counts.rows.max(1) as f64;
    let detail = format!(
        "{} of {} rows ({:.1}%) failed validation (limit {:.1}%)",
        counts.invalid_rows,
        counts.rows,
        100.0 * share,
        100.0 * limits.max_invalid_share
    );
    let status = if share > limits.max_invalid_share {
        "refuse"
    } else {
        "ok"
    };
    item("invalid_rows", status, detail)
}

/// Lists `bad` as `detail` or says none is.
fn listed(name: &str, bad: Vec<String>, none: &str) -> CheckItem {
    if bad.is_empty() {
        item(name, "ok", none.into())
    } else {
        item(name, "refuse", bad.join("; "))
    }
}

/// Rise of each feature's missing share.
fn missing_check(features: &[FeatureCheck], limits: &CheckThresholds) -> CheckItem {
    let bad = features
        .iter()
        .filter(|f| {
            !f.absent && f.missing_share - f.reference_missing_share > limits.max_missing_rise
        })
        .map(|f| {
            format!(
                "{} missing in {:.1}% of rows (training {:.1}%, a rise above {:.0} points)",
                f.feature,
                100.0 * f.missing_share,
                100.0 * f.reference_missing_share,
                100.0 * limits.max_missing_rise
            )
        })
        .collect();
    listed(
        "missing_share",
        bad,
        &format!(
            "no missing share rose by more than {:.0} points",
            100.0 * limits.max_missing_rise
        ),
    )
}

/// Share of each numeric feature's values outside the training range.
fn range_check(features: &[FeatureCheck], limits: &CheckThresholds) -> CheckItem {
    let bad = features
        .iter()
        .filter_map(|f| Some((f, f.out_of_range_share?)))
        .filter(|(_, s)| *s > limits.max_out_of_range)
        .map(|(f, s)| {
            format!(
                "{}: {:.1}% of values outside the training range (limit {:.0}%)",
                f.feature,
                100.0 * s,
                100.0 * limits.max_out_of_range
            )
        })
        .collect();
    listed(
        "out_of_range",
        bad,
        &format!(
            "no feature has more than {:.0}% of its values outside the training range",
            100.0 * limits.max_out_of_range
        ),
    )
}

/// PSI levels; refusal on the most important features.
fn drift_check(features: &[FeatureCheck], limits: &CheckThresholds) -> CheckItem {
    let refused: Vec<String> = features
        .iter()
        .filter(|f| f.importance_rank <= limits.refuse_top_features)
        .filter_map(|f| Some((f, f.psi?)))
        .filter(|(_, p)| *p > limits.psi_refuse)
        .map(|(f, p)| {
            format!(
                "{} PSI {p:.3} above {} (importance rank {})",
                f.feature, limits.psi_refuse, f.importance_rank
            )
        })
        .collect();
    if !refused.is_empty() {
        return item("drift", "refuse", refused.join("; "));
    }
    let drifted: Vec<String> = features
        .iter()
        .filter(|f| matches!(f.level, DriftLevel::Warn | DriftLevel::Alert))
        .map(|f| {
            format!(
                "{} PSI {:.3} ({})",
                f.feature,
                f.psi.unwrap_or(f64::NAN),
                if f.level == DriftLevel::Alert {
                    "alert"
                } else {
                    "warn"
                }
            )
        })
        .collect();
    if drifted.is_empty() {
        item(
            "drift",
            "ok",
            format!("every checked PSI below {}", limits.psi_warn),
        )
    } else {
        item("drift", "warn", drifted.join("; "))
    }
}

/// Mean probability and band shares against the holdout's.
fn scores_check(
    artifact: &ModelArtifact,
    counts: &SnapshotCounts,
    limits: &CheckThresholds,
) -> CheckItem {
    let Some(profile) = &artifact.holdout_profile else {
        return item(
            "scores",
            "skipped",
            "the model records no holdout score profile (trained before schema version 5)".into(),
        );
    };
    if counts.scored == 0 {
        return item("scores", "skipped", "no row was scored".into());
    }
    let now = BandShares::of(counts.bands);
    let band_psi = psi(&profile.band_shares.as_array(), &now.as_array());
    let pct = |b: BandShares| {
        format!(
            "high {:.1}% / medium {:.1}% / low {:.1}%",
            100.0 * b.high,
            100.0 * b.medium,
            100.0 * b.low
        )
    };
    let detail = format!(
        "mean probability {:.4} (holdout {:.4}); {} (holdout {}); band PSI {band_psi:.3}",
        counts.probability_sum / counts.scored as f64,
        profile.mean_probability,
        pct(now),
        pct(profile.band_shares),
    );
    let status = if band_psi >= limits.psi_warn {
        "warn"
    } else {
        "ok"
    };
    item("scores", status, detail)
}

/// What an artifact older than the drift reference leaves unchecked.
fn reference_check(artifact: &ModelArtifact) -> Option<CheckItem> {
    (!artifact.has_drift_reference()).then(|| {
        item(
            "reference",
            "warn",
            format!(
                "model {} (schema_version {}) predates the drift reference: numeric PSI and \
                 the holdout score comparison are not checked, importance is taken from the \
                 coefficients; retrain to check them",
                artifact.model_id(),
                artifact.schema_version
            ),
        )
    })
}
