//! Realised accuracy of past scores once the business knows who churned.
//!
//! The service matches each known outcome (customer, churned or not, date
//! observed) with the score that was in force some days before and hands the
//! matched rows here; [`outcomes_report`] turns them into an
//! [`OutcomesReport`]: realised ROC / PR AUC, how the risk bands did, a
//! calibration table, the same per model, and whether a model should be
//! retrained because its realised AUC fell too far below its holdout AUC.
//!
//! "Not defined" is `None` (JSON `null`), never NaN and never a stand-in
//! number: an AUC needs both classes (at least
//! [`OutcomesConfig::min_per_class`] of each), a rate needs a non-empty
//! denominator, a lift needs a base rate above 0. (Unlike
//! [`Metrics::compute`](crate::Metrics::compute), whose 0.5 for a degenerate
//! AUC would read here as "the model got worse" and recommend a retrain.)
//! Rows whose probability is not a number in [0, 1] cannot be placed in any
//! figure: they are set aside and counted in
//! [`OutcomesReport::invalid_probability`].

use crate::band::RiskBand;
use crate::metrics::{pr_auc, roc_auc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most unmatched customer ids listed in the report (all are counted).
pub const MAX_UNMATCHED_IDS: usize = 20;

/// Characters of a model id shown in retrain reasons (ids are 64-hex hashes).
pub const MODEL_ID_PREFIX_CHARS: usize = 12;

/// One outcome matched with the score in force before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchedOutcome {
    pub customer_id: String,
    /// The realised outcome: `true` = the customer churned.
    pub churned: bool,
    /// The churn probability of the score in force before the outcome.
    pub churn_probability: f64,
    /// The band of that score.
    pub risk_band: RiskBand,
    /// The model that produced that score.
    pub model_id: String,
}

/// Per model: what the report needs of the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReference {
    pub model_id: String,
    /// ROC AUC on the training holdout: the artifact's
    /// [`metrics().roc_auc`](crate::ModelArtifact::metrics).
    pub holdout_roc_auc: f64,
}

/// Report settings. Build with [`OutcomesConfig::builder`] (checked); the
/// defaults are the `DEFAULT_*` constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutcomesConfig {
    retrain_auc_drop: f64,
    calibration_bins: usize,
    min_per_class: usize,
}

impl OutcomesConfig {
    /// A realised ROC AUC more than this below the model's holdout ROC AUC
    /// recommends a retrain.
    pub const DEFAULT_RETRAIN_AUC_DROP: f64 = 0.05;
    /// Calibration groups of equal count (deciles).
    pub const DEFAULT_CALIBRATION_BINS: usize = 10;
    /// Fewest churners and fewest non-churners for an AUC to be reported:
    /// 1 = defined whenever both classes occur. Raise it so a handful of
    /// outcomes cannot recommend a retrain.
    pub const DEFAULT_MIN_PER_CLASS: usize = 1;
    /// Most calibration groups: beyond this a group is too small to read.
    pub const MAX_CALIBRATION_BINS: usize = 100;

    /// A builder starting from the defaults.
    pub fn builder() -> OutcomesConfigBuilder {
        OutcomesConfigBuilder {
            config: OutcomesConfig::default(),
        }
    }

    /// See [`OutcomesConfig::DEFAULT_RETRAIN_AUC_DROP`].
    pub fn retrain_auc_drop(&self) -> f64 {
        self.retrain_auc_drop
    }

    /// See [`OutcomesConfig::DEFAULT_CALIBRATION_BINS`].
    pub fn calibration_bins(&self) -> usize {
        self.calibration_bins
    }

    /// See [`OutcomesConfig::DEFAULT_MIN_PER_CLASS`].
    pub fn min_per_class(&self) -> usize {
        self.min_per_class
    }
}

impl Default for OutcomesConfig {
    fn default() -> Self {
        OutcomesConfig {
            retrain_auc_drop: Self::DEFAULT_RETRAIN_AUC_DROP,
            calibration_bins: Self::DEFAULT_CALIBRATION_BINS,
            min_per_class: Self::DEFAULT_MIN_PER_CLASS,
        }
    }
}

/// Builder for [`OutcomesConfig`]; unset settings keep their defaults.
#[derive(Debug, Clone, Copy)]
pub struct OutcomesConfigBuilder {
    config: OutcomesConfig,
}

impl OutcomesConfigBuilder {
    /// See [`OutcomesConfig::DEFAULT_RETRAIN_AUC_DROP`]; at least 0, below 1.
    pub fn retrain_auc_drop(mut self, value: f64) -> Self {
        self.config.retrain_auc_drop = value;
        self
    }

    /// See [`OutcomesConfig::DEFAULT_CALIBRATION_BINS`]; 1 to
    /// [`OutcomesConfig::MAX_CALIBRATION_BINS`].
    pub fn calibration_bins(mut self, value: usize) -> Self {
        self.config.calibration_bins = value;
        self
    }

    /// See [`OutcomesConfig::DEFAULT_MIN_PER_CLASS`]; at least 1.
    pub fn min_per_class(mut self, value: usize) -> Self {
        self.config.min_per_class = value;
        self
    }

    /// The configuration.
    ///
    /// # Errors
    /// [`OutcomesConfigError`] naming the first setting out of range.
    pub fn build(self) -> Result<OutcomesConfig, OutcomesConfigError> {
        let c = self.config;
        if !(0.0..1.0).contains(&c.retrain_auc_drop) {
            return Err(OutcomesConfigError::RetrainAucDrop(c.retrain_auc_drop));
        }
        if !(1..=OutcomesConfig::MAX_CALIBRATION_BINS).contains(&c.calibration_bins) {
            return Err(OutcomesConfigError::CalibrationBins(c.calibration_bins));
        }
        if c.min_per_class == 0 {
            return Err(OutcomesConfigError::MinPerClass(c.min_per_class));
        }
        Ok(c)
    }
}

/// Why an [`OutcomesConfig`] is refused (one variant per setting, so a
/// caller can name the flag or variable it came from).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OutcomesConfigError {
    #[error("retrain AUC drop {0} must be at least 0 and below 1")]
    RetrainAucDrop(f64),
    #[error("calibration bins {0} must be between 1 and {max}", max = OutcomesConfig::MAX_CALIBRATION_BINS)]
    CalibrationBins(usize),
    #[error("minimum outcomes per class {0} must be at least 1")]
    MinPerClass(usize),
}

/// Outcomes in one set of customers (a band, or high + medium), read as
/// "in the set" = predicted to churn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandOutcome {
    /// Matched customers in the set.
    pub customers: u64,
    /// Of them, how many churned.
    pub churned: u64,
    /// `churned / customers`; null when the set is empty.
    pub churn_rate: Option<f64>,
    /// Share of the set that churned: equals `churn_rate` (kept under its
    /// classification name for readers comparing with the holdout metrics).
    pub precision: Option<f64>,
    /// `churned /` all matched churners; null when nobody churned.
    pub recall: Option<f64>,
    /// `churn_rate / base_rate`; null when either is null or the base rate is 0.
    pub lift: Option<f64>,
}

impl BandOutcome {
    /// The figures of a set of `customers` with `churned` churners, among
    /// `all_churned` churners overall at `base_rate`.
    fn new(customers: u64, churned: u64, all_churned: u64, base_rate: Option<f64>) -> BandOutcome {
        let churn_rate = share(churned, customers);
        let lift = match (churn_rate, base_rate) {
            (Some(rate), Some(base)) if base > 0.0 => Some(rate / base),
            _ => None,
        };
        BandOutcome {
            customers,
            churned,
            churn_rate,
            precision: churn_rate,
            recall: share(churned, all_churned),
            lift,
        }
    }
}

/// The three bands and the at-risk set (high + medium).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandOutcomes {
    pub high: BandOutcome,
    pub medium: BandOutcome,
    pub low: BandOutcome,
    /// High and medium together: the customers on risk lists.
    pub at_risk: BandOutcome,
}

/// One group of the calibration table: matched rows sorted by predicted
/// probability (ascending) and cut into groups of equal count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// 1-based, lowest probabilities first.
    pub bin: u32,
    pub customers: u64,
    /// Mean predicted churn probability in the group.
    pub mean_predicted: f64,
    /// Share of the group that churned.
    pub realised_rate: f64,
    pub min_probability: f64,
    pub max_probability: f64,
}

/// The figures computed alike for all matched rows and for each model's
/// rows (flattened into [`OutcomesReport`] and [`ModelOutcomes`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Realised {
    /// Matched rows counted (rows with an invalid probability excluded).
    pub matched: u64,
    /// Share of matched customers who churned; null when none matched.
    pub base_rate: Option<f64>,
    /// Mean predicted churn probability; null when none matched.
    pub mean_probability: Option<f64>,
    /// Realised ROC AUC (ties count one half); null with fewer than
    /// `min_per_class` churners or non-churners.
    pub roc_auc: Option<f64>,
    /// Realised PR AUC (average precision); null like `roc_auc`.
    pub pr_auc: Option<f64>,
    pub bands: BandOutcomes,
    /// At most `calibration_bins` groups (fewer when fewer rows, none when
    /// none matched); tied probabilities may straddle two groups.
    pub calibration: Vec<CalibrationBin>,
}

/// One model's realised figures against its holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutcomes {
    #[serde(flatten)]
    pub realised: Realised,
    /// From the [`ModelReference`]; null when the model is not among them
    /// (or its AUC is not a number in [0, 1]).
    pub holdout_roc_auc: Option<f64>,
    /// `holdout_roc_auc - roc_auc`; null when either is null.
    pub auc_drop: Option<f64>,
    /// `auc_drop` is above the configured `retrain_auc_drop`.
    pub retrain_recommended: bool,
}

/// Realised accuracy of past scores against known outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomesReport {
    /// Figures over all matched rows, whichever model scored them.
    #[serde(flatten)]
    pub realised: Realised,
    /// Outcomes with no score in force before them (all counted).
    pub unmatched: u64,
    /// The first [`MAX_UNMATCHED_IDS`] of them, in the order given.
    pub unmatched_ids: Vec<String>,
    /// Matched rows set aside because their probability is not in [0, 1].
    pub invalid_probability: u64,
    /// The threshold `retrain_recommended` was judged by.
    pub retrain_auc_drop: f64,
    /// Per model id of the matched rows (models with no matched rows are absent).
    pub by_model: BTreeMap<String, ModelOutcomes>,
    /// Any model recommends a retrain.
    pub retrain_recommended: bool,
    /// One sentence per model that recommends a retrain, by model id.
    pub retrain_reasons: Vec<String>,
}

/// The report of `matched` rows (scores with their outcomes) and the ids of
/// outcomes that had no score, judged against each model's holdout AUC in
/// `models` (the first entry wins if a model id repeats).
pub fn outcomes_report(
    matched: &[MatchedOutcome],
    unmatched_ids: &[String],
    models: &[ModelReference],
    config: &OutcomesConfig,
) -> OutcomesReport {
    let valid: Vec<&MatchedOutcome> = matched
        .iter()
        .filter(|r| is_probability(r.churn_probability))
        .collect();
    let mut per_model: BTreeMap<&str, Vec<&MatchedOutcome>> = BTreeMap::new();
    for &row in &valid {
        per_model.entry(&row.model_id).or_default().push(row);
    }
    let by_model: BTreeMap<String, ModelOutcomes> = per_model
        .into_iter()
        .map(|(id, rows)| {
            let reference = models.iter().find(|m| m.model_id == id);
            (id.to_string(), model_outcomes(&rows, reference, config))
        })
        .collect();
    let retrain_reasons: Vec<String> = by_model
        .iter()
        .filter_map(|(id, m)| retrain_reason(id, m))
        .collect();
    OutcomesReport {
        realised: realised(&valid, config),
        unmatched: unmatched_ids.len() as u64,
        unmatched_ids: unmatched_ids
            .iter()
            .take(MAX_UNMATCHED_IDS)
            .cloned()
            .collect(),
        invalid_probability: (matched.len() - valid.len()) as u64,
        retrain_auc_drop: config.retrain_auc_drop,
        retrain_recommended: by_model.values().any(|m| m.retrain_recommended),
        by_model,
        retrain_reasons,
    }
}

/// A probability the report can use (NaN and infinities fail the range).
fn is_probability(p: f64) -> bool {
    (0.0..=1.0).contains(&p)
}

/// `part / whole`, or `None` when `whole` is 0.
fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The shared figures of `rows` (all with a valid probability).
fn realised(rows: &[&MatchedOutcome], config: &OutcomesConfig) -> Realised {
    let labels: Vec<bool> = rows.iter().map(|r| r.churned).collect();
    let probs: Vec<f64> = rows.iter().map(|r| r.churn_probability).collect();
    let n = rows.len() as u64;
    let churned = labels.iter().filter(|&&y| y).count() as u64;
    let base_rate = share(churned, n);
    let min = config.min_per_class as u64;
    let auc_defined = churned >= min && n - churned >= min;
    Realised {
        matched: n,
        base_rate,
        mean_probability: (n > 0).then(|| probs.iter().sum::<f64>() / n as f64),
        roc_auc: auc_defined.then(|| roc_auc(&labels, &probs)),
        pr_auc: auc_defined.then(|| pr_auc(&labels, &probs)),
        bands: band_outcomes(rows, churned, base_rate),
        calibration: calibration(rows, config.calibration_bins),
    }
}

/// Band and at-risk figures of `rows`, which hold `all_churned` churners.
fn band_outcomes(
    rows: &[&MatchedOutcome],
    all_churned: u64,
    base_rate: Option<f64>,
) -> BandOutcomes {
    let set = |inside: &dyn Fn(RiskBand) -> bool| {
        let (customers, churned) = rows
            .iter()
            .filter(|r| inside(r.risk_band))
            .fold((0, 0), |(c, y), r| (c + 1, y + u64::from(r.churned)));
        BandOutcome::new(customers, churned, all_churned, base_rate)
    };
    BandOutcomes {
        high: set(&|b| b == RiskBand::High),
        medium: set(&|b| b == RiskBand::Medium),
        low: set(&|b| b == RiskBand::Low),
        at_risk: set(&RiskBand::is_at_risk),
    }
}

/// `rows` sorted by probability, ties by customer id (so the table does
/// not depend on the order rows arrive in, and a tie cut by a group
/// boundary is not split by outcome, which would put the churners in the
/// upper group), and cut into `min(bins, rows)` groups whose sizes differ
/// by at most one, the larger groups first.
fn calibration(rows: &[&MatchedOutcome], bins: usize) -> Vec<CalibrationBin> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| {
        a.churn_probability
            .total_cmp(&b.churn_probability)
            .then_with(|| a.customer_id.cmp(&b.customer_id))
            .then(a.churned.cmp(&b.churned))
    });
    let groups = bins.min(sorted.len());
    if groups == 0 {
        return Vec::new();
    }
    let (size, larger) = (sorted.len() / groups, sorted.len() % groups);
    let mut start = 0;
    (0..groups)
        .map(|g| {
            let len = size + usize::from(g < larger);
            let group = &sorted[start..start + len];
            start += len;
            calibration_bin(g as u32 + 1, group)
        })
        .collect()
}

/// The figures of one non-empty group, sorted by probability.
fn calibration_bin(bin: u32, group: &[&MatchedOutcome]) -> CalibrationBin {
    let n = group.len() as f64;
    CalibrationBin {
        bin,
        customers: group.len() as u64,
        mean_predicted: group.iter().map(|r| r.churn_probability).sum::<f64>() / n,
        realised_rate: group.iter().filter(|r| r.churned).count() as f64 / n,
        min_probability: group.first().map_or(0.0, |r| r.churn_probability),
        max_probability: group.last().map_or(0.0, |r| r.churn_probability),
    }
}

/// One model's figures and its verdict against `reference`.
fn model_outcomes(
    rows: &[&MatchedOutcome],
    reference: Option<&ModelReference>,
    config: &OutcomesConfig,
) -> ModelOutcomes {
    let realised = realised(rows, config);
    let holdout_roc_auc = reference
        .map(|m| m.holdout_roc_auc)
        .filter(|&auc| is_probability(auc));
    let auc_drop = holdout_roc_auc
        .zip(realised.roc_auc)
        .map(|(holdout, now)| holdout - now);
    ModelOutcomes {
        realised,
        holdout_roc_auc,
        auc_drop,
        retrain_recommended: auc_drop.is_some_and(|d| d > config.retrain_auc_drop),
    }
}

/// The sentence explaining a recommended retrain, if `m` recommends one.
fn retrain_reason(model_id: &str, m: &ModelOutcomes) -> Option<String> {
    if !m.retrain_recommended {
        return None;
    }
    let (holdout, now, drop) = (m.holdout_roc_auc?, m.realised.roc_auc?, m.auc_drop?);
    let prefix: String = model_id.chars().take(MODEL_ID_PREFIX_CHARS).collect();
    Some(format!(
        "model {prefix}: realised ROC AUC {now:.3} is {drop:.3} below its holdout {holdout:.3}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    fn row(id: &str, p: f64, band: RiskBand, churned: bool, model: &str) -> MatchedOutcome {
        MatchedOutcome {
            customer_id: id.to_string(),
            churned,
            churn_probability: p,
            risk_band: band,
            model_id: model.to_string(),
        }
    }

    /// Ten rows, one model; 4 churners (c01, c03, c04, c06), base rate 0.4.
    /// c06 (churned) and c07 (not) tie at 0.4.
    fn table() -> Vec<MatchedOutcome> {
        use RiskBand::*;
        [
            ("c01", 0.90, High, true),
            ("c02", 0.80, High, false),
            ("c03", 0.70, Medium, true),
            ("c04", 0.60, Medium, true),
            ("c05", 0.50, Medium, false),
            ("c06", 0.40, Low, true),
            ("c07", 0.40, Low, false),
            ("c08", 0.20, Low, false),
            ("c09", 0.10, Low, false),
            ("c10", 0.05, Low, false),
        ]
        .into_iter()
        .map(|(id, p, band, y)| row(id, p, band, y, "m1"))
        .collect()
    }

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() < EPS)
    }

    fn assert_band(
        b: &BandOutcome,
        customers: u64,
        churned: u64,
        rate: f64,
        recall: f64,
        lift: f64,
    ) {
        assert_eq!((b.customers, b.churned), (customers, churned), "{b:?}");
        assert!(close(b.churn_rate, rate), "{b:?}");
        assert!(close(b.precision, rate), "{b:?}");
        assert!(close(b.recall, recall), "{b:?}");
        assert!(close(b.lift, lift), "{b:?}");
    }

    /// Serialises, parses back to an equal report (so no NaN hides inside:
    /// NaN would come back as null or fail) and returns the JSON value.
    fn round_trip(report: &OutcomesReport) -> serde_json::Value {
        let text = serde_json::to_string(report).expect("serialises");
        let back: OutcomesReport = serde_json::from_str(&text).expect("parses");
        assert_eq!(&back, report);
        serde_json::from_str(&text).expect("valid JSON")
    }

    #[test]
    fn every_figure_matches_a_hand_computation() {
        let config = OutcomesConfig::builder()
            .calibration_bins(3)
            .build()
            .unwrap();
        let rows = table();
        let r = outcomes_report(&rows, &[], &[], &config);
        let all = &r.realised;
        assert_eq!(all.matched, 10);
        assert!(close(all.base_rate, 0.4));
        // (0.9 + 0.8 + 0.7 + 0.6 + 0.5 + 0.4 + 0.4 + 0.2 + 0.1 + 0.05) / 10.
        assert!(close(all.mean_probability, 0.465));
        // Churners {0.9, 0.7, 0.6, 0.4} against non-churners {0.8, 0.5, 0.4, 0.2, 0.1, 0.05}:
        // 0.9 beats 6, 0.7 beats 5, 0.6 beats 5, 0.4 beats 3 and ties 1 (1/2):
        // 19.5 / 24 = 0.8125.
        assert!(close(all.roc_auc, 0.8125));
        let labels: Vec<bool> = rows.iter().map(|r| r.churned).collect();
        let probs: Vec<f64> = rows.iter().map(|r| r.churn_probability).collect();
        assert!(close(all.roc_auc, roc_auc(&labels, &probs)));
        // Average precision, thresholds from the top: 0.9 (tp 1 of 1 seen),
        // 0.7 (2 of 3), 0.6 (3 of 4), 0.4 tie (4 of 7), each a quarter of
        // the recall: (1 + 2/3 + 3/4 + 4/7) / 4 = 251/336.
        assert!(close(all.pr_auc, 251.0 / 336.0));
        assert!(close(all.pr_auc, pr_auc(&labels, &probs)));
        // high {c01+, c02}: 1/2, recall 1/4, lift 0.5/0.4.
        assert_band(&all.bands.high, 2, 1, 0.5, 0.25, 1.25);
        // medium {c03+, c04+, c05}: 2/3, recall 2/4, lift (2/3)/0.4.
        assert_band(&all.bands.medium, 3, 2, 2.0 / 3.0, 0.5, 5.0 / 3.0);
        // low {c06+, c07..c10}: 1/5, recall 1/4, lift 0.2/0.4.
        assert_band(&all.bands.low, 5, 1, 0.2, 0.25, 0.5);
        // at risk = high + medium: 3/5, recall 3/4, lift 0.6/0.4.
        assert_band(&all.bands.at_risk, 5, 3, 0.6, 0.75, 1.5);
        // 10 rows in 3 groups: 4, 3, 3. Ascending, the 0.4 tie by customer id:
        // [c10 .05, c09 .1, c08 .2, c06 .4+] [c07 .4, c05 .5, c04 .6+] [c03 .7+, c02 .8, c01 .9+].
        let expected = [
            (1, 4, 0.75 / 4.0, 0.25, 0.05, 0.4),
            (2, 3, 0.5, 1.0 / 3.0, 0.4, 0.6),
            (3, 3, 0.8, 2.0 / 3.0, 0.7, 0.9),
        ];
        assert_eq!(all.calibration.len(), 3);
        for (bin, (n, count, mean, rate, lo, hi)) in all.calibration.iter().zip(expected) {
            assert_eq!((bin.bin, bin.customers), (n, count), "{bin:?}");
            assert!((bin.mean_predicted - mean).abs() < EPS, "{bin:?}");
            assert!((bin.realised_rate - rate).abs() < EPS, "{bin:?}");
            assert_eq!((bin.min_probability, bin.max_probability), (lo, hi));
        }
        // One model, so its figures are the whole table's.
        assert_eq!(r.by_model.len(), 1);
        assert_eq!(&r.by_model["m1"].realised, all);
        assert_eq!(r.by_model["m1"].holdout_roc_auc, None);
        assert_eq!(r.by_model["m1"].auc_drop, None);
        assert!(!r.retrain_recommended);
        assert_eq!(r.invalid_probability, 0);
    }

    #[test]
    fn json_has_the_contract_field_names() {
        let models = [ModelReference {
            model_id: "m1".into(),
            holdout_roc_auc: 0.9,
        }];
        let r = outcomes_report(&table(), &["x".into()], &models, &OutcomesConfig::default());
        let v = round_trip(&r);
        for key in [
            "matched",
            "unmatched",
            "unmatched_ids",
            "base_rate",
            "roc_auc",
            "pr_auc",
            "mean_probability",
            "bands",
            "calibration",
            "by_model",
            "retrain_recommended",
            "retrain_reasons",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for band in ["high", "medium", "low", "at_risk"] {
            for key in [
                "customers",
                "churned",
                "churn_rate",
                "precision",
                "recall",
                "lift",
            ] {
                assert!(
                    v["bands"][band].get(key).is_some(),
                    "missing bands.{band}.{key}"
                );
            }
        }
        let bin = &v["calibration"][0];
        for key in [
            "bin",
            "customers",
            "mean_predicted",
            "realised_rate",
            "min_probability",
            "max_probability",
        ] {
            assert!(bin.get(key).is_some(), "missing calibration.{key}");
        }
        let m = &v["by_model"]["m1"];
        for key in [
            "matched",
            "base_rate",
            "roc_auc",
            "pr_auc",
            "holdout_roc_auc",
            "auc_drop",
            "bands",
            "calibration",
            "retrain_recommended",
        ] {
            assert!(m.get(key).is_some(), "missing by_model.m1.{key}");
        }
        // Default 10 bins on 10 rows: one row each, lowest first.
        assert_eq!(v["calibration"].as_array().map(Vec::len), Some(10));
        assert_eq!(v["calibration"][0]["max_probability"], 0.05);
        assert_eq!(v["calibration"][9]["bin"], 10);
        // 0.9 - 0.8125 = 0.0875 > 0.05.
        assert_eq!(m["retrain_recommended"], true);
        assert!((m["auc_drop"].as_f64().unwrap() - 0.0875).abs() < EPS);
    }

    #[test]
    fn report_does_not_depend_on_row_order() {
        let config = OutcomesConfig::builder()
            .calibration_bins(3)
            .build()
            .unwrap();
        let mut reversed = table();
        reversed.reverse();
        assert_eq!(
            outcomes_report(&reversed, &[], &[], &config),
            outcomes_report(&table(), &[], &[], &config)
        );
    }

    #[test]
    fn no_rows_gives_nulls_not_nan() {
        let r = outcomes_report(&[], &[], &[], &OutcomesConfig::default());
        let all = &r.realised;
        assert_eq!(all.matched, 0);
        assert_eq!((all.base_rate, all.mean_probability), (None, None));
        assert_eq!((all.roc_auc, all.pr_auc), (None, None));
        let empty = BandOutcome {
            customers: 0,
            churned: 0,
            churn_rate: None,
            precision: None,
            recall: None,
            lift: None,
        };
        assert_eq!(all.bands.high, empty);
        assert_eq!(all.bands.at_risk, empty);
        assert!(all.calibration.is_empty() && r.by_model.is_empty());
        assert!(!r.retrain_recommended && r.retrain_reasons.is_empty());
        let v = round_trip(&r);
        assert!(v["roc_auc"].is_null() && v["bands"]["low"]["lift"].is_null());
    }

    #[test]
    fn one_class_and_an_empty_band() {
        // Everyone churned, nobody in low: no AUC, lift 1 where defined.
        let rows = [
            row("a", 0.9, RiskBand::High, true, "m"),
            row("b", 0.6, RiskBand::Medium, true, "m"),
            row("c", 0.5, RiskBand::Medium, true, "m"),
        ];
        let models = [ModelReference {
            model_id: "m".into(),
            holdout_roc_auc: 0.9,
        }];
        let r = outcomes_report(&rows, &[], &models, &OutcomesConfig::default());
        assert!(close(r.realised.base_rate, 1.0));
        assert_eq!((r.realised.roc_auc, r.realised.pr_auc), (None, None));
        assert_band(&r.realised.bands.medium, 2, 2, 1.0, 2.0 / 3.0, 1.0);
        let low = &r.realised.bands.low;
        assert_eq!((low.customers, low.churn_rate, low.lift), (0, None, None));
        assert_eq!(low.recall, Some(0.0));
        // No realised AUC, so no drop and no retrain despite the holdout.
        let m = &r.by_model["m"];
        assert_eq!((m.holdout_roc_auc, m.auc_drop), (Some(0.9), None));
        assert!(!r.retrain_recommended);
        round_trip(&r);

        // Nobody churned: base rate 0, so recall and lift are undefined.
        let rows: Vec<MatchedOutcome> = rows
            .into_iter()
            .map(|r| MatchedOutcome {
                churned: false,
                ..r
            })
            .collect();
        let r = outcomes_report(&rows, &[], &[], &OutcomesConfig::default());
        assert_eq!(r.realised.base_rate, Some(0.0));
        let high = &r.realised.bands.high;
        assert_eq!(
            (high.churn_rate, high.recall, high.lift),
            (Some(0.0), None, None)
        );
        assert_eq!(r.realised.roc_auc, None);
        round_trip(&r);
    }

    #[test]
    fn invalid_probabilities_are_set_aside() {
        let mut rows = table();
        rows.push(row("nan", f64::NAN, RiskBand::High, true, "m1"));
        rows.push(row("big", 1.5, RiskBand::High, false, "m2"));
        let models = [ModelReference {
            model_id: "m1".into(),
            holdout_roc_auc: f64::NAN,
        }];
        let r = outcomes_report(&rows, &[], &models, &OutcomesConfig::default());
        assert_eq!(r.invalid_probability, 2);
        assert_eq!(
            r.realised,
            outcomes_report(&table(), &[], &[], &OutcomesConfig::default()).realised
        );
        // m2 had only the invalid row; m1's NaN holdout is no holdout.
        assert_eq!(r.by_model.keys().collect::<Vec<_>>(), ["m1"]);
        assert_eq!(r.by_model["m1"].holdout_roc_auc, None);
        round_trip(&r);
    }

    #[test]
    fn by_model_split_and_retrain_verdicts() {
        let good = "a".repeat(64);
        let bad = "b".repeat(64);
        let rows = [
            // good: churners {0.9, 0.6} above non-churners {0.3, 0.2}: AUC 1.
            row("g1", 0.9, RiskBand::High, true, &good),
            row("g2", 0.2, RiskBand::Low, false, &good),
            row("g3", 0.6, RiskBand::Medium, true, &good),
            row("g4", 0.3, RiskBand::Low, false, &good),
            // bad: churners {0.6, 0.4}, non-churners {0.7, 0.5}: only 0.6 > 0.5 -> 1/4.
            row("b1", 0.7, RiskBand::High, false, &bad),
            row("b2", 0.6, RiskBand::Medium, true, &bad),
            row("b3", 0.4, RiskBand::Low, true, &bad),
            row("b4", 0.5, RiskBand::Medium, false, &bad),
            // unknown: no reference, so no verdict.
            row("u1", 0.1, RiskBand::Low, true, "unknown"),
            row("u2", 0.9, RiskBand::High, false, "unknown"),
        ];
        let models = [
            ModelReference {
                model_id: good.clone(),
                holdout_roc_auc: 0.80,
            },
            ModelReference {
                model_id: bad.clone(),
                holdout_roc_auc: 0.75,
            },
        ];
        let r = outcomes_report(&rows, &[], &models, &OutcomesConfig::default());
        assert_eq!(
            r.by_model.keys().map(String::as_str).collect::<Vec<_>>(),
            [good.as_str(), bad.as_str(), "unknown"]
        );
        let g = &r.by_model[&good];
        assert_eq!(g.realised.matched, 4);
        assert!(close(g.realised.base_rate, 0.5));
        assert!(close(g.realised.roc_auc, 1.0));
        assert!(close(g.auc_drop, -0.2));
        assert!(!g.retrain_recommended);
        let b = &r.by_model[&bad];
        assert!(close(b.realised.roc_auc, 0.25));
        assert!(close(b.auc_drop, 0.5));
        assert!(b.retrain_recommended);
        // bad's medium band {b2+, b4}: 1/2, recall 1/2, lift 0.5/0.5.
        assert_band(&b.realised.bands.medium, 2, 1, 0.5, 0.5, 1.0);
        let u = &r.by_model["unknown"];
        assert!(close(u.realised.roc_auc, 0.0));
        assert_eq!(
            (u.holdout_roc_auc, u.auc_drop, u.retrain_recommended),
            (None, None, false)
        );
        assert!(r.retrain_recommended);
        assert_eq!(
            r.retrain_reasons,
            ["model bbbbbbbbbbbb: realised ROC AUC 0.250 is 0.500 below its holdout 0.750"]
        );
        // A tolerance above the drop withdraws the recommendation.
        let lenient = OutcomesConfig::builder()
            .retrain_auc_drop(0.6)
            .build()
            .unwrap();
        let r = outcomes_report(&rows, &[], &models, &lenient);
        assert!(!r.retrain_recommended && r.retrain_reasons.is_empty());
        // Three of each class required: no model has more than two, the whole has 5 and 5.
        let strict = OutcomesConfig::builder().min_per_class(3).build().unwrap();
        let r = outcomes_report(&rows, &[], &models, &strict);
        assert!(r.by_model.values().all(|m| m.realised.roc_auc.is_none()));
        assert!(r.realised.roc_auc.is_some());
        assert!(!r.retrain_recommended);
        round_trip(&r);
    }

    #[test]
    fn unmatched_ids_are_truncated_but_all_counted() {
        let ids: Vec<String> = (0..25).map(|i| format!("lost-{i:02}")).collect();
        let r = outcomes_report(&table(), &ids, &[], &OutcomesConfig::default());
        assert_eq!(r.unmatched, 25);
        assert_eq!(r.unmatched_ids, ids[..MAX_UNMATCHED_IDS]);
        assert_eq!(r.unmatched_ids.last().map(String::as_str), Some("lost-19"));
        assert_eq!(r.realised.matched, 10);
    }

    #[test]
    fn fewer_rows_than_bins_gives_one_row_per_bin() {
        let rows = &table()[..3];
        let r = outcomes_report(rows, &[], &[], &OutcomesConfig::default());
        let sizes: Vec<(u32, u64)> = r
            .realised
            .calibration
            .iter()
            .map(|b| (b.bin, b.customers))
            .collect();
        assert_eq!(sizes, [(1, 1), (2, 1), (3, 1)]);
        assert_eq!(r.realised.calibration[0].min_probability, 0.7);
    }

    #[test]
    fn config_builder_checks_every_setting() {
        assert_eq!(
            OutcomesConfig::builder().build(),
            Ok(OutcomesConfig::default())
        );
        let d = OutcomesConfig::default();
        assert_eq!(
            (
                d.retrain_auc_drop(),
                d.calibration_bins(),
                d.min_per_class()
            ),
            (0.05, 10, 1)
        );
        let b = OutcomesConfig::builder;
        assert_eq!(
            b().retrain_auc_drop(-0.1).build(),
            Err(OutcomesConfigError::RetrainAucDrop(-0.1))
        );
        assert_eq!(
            b().retrain_auc_drop(1.0).build(),
            Err(OutcomesConfigError::RetrainAucDrop(1.0))
        );
        assert!(b().retrain_auc_drop(f64::NAN).build().is_err());
        assert!(b().retrain_auc_drop(0.0).build().is_ok());
        assert_eq!(
            b().calibration_bins(0).build(),
            Err(OutcomesConfigError::CalibrationBins(0))
        );
        assert_eq!(
            b().calibration_bins(101).build(),
            Err(OutcomesConfigError::CalibrationBins(101))
        );
        assert!(b().calibration_bins(100).build().is_ok());
        assert_eq!(
            b().min_per_class(0).build(),
            Err(OutcomesConfigError::MinPerClass(0))
        );
    }
}
