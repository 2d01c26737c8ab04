//! Preprocessing fitted on the training split only and stored in the
//! artifact: median imputation with a `<col>_missing` indicator, log1p for
//! heavy-tailed non-negative counts (decided by skew), one-hot encoding of
//! frequent levels with `other`, standardization of numeric values, and
//! centring of 0/1 indicator columns (not scaled: see [`INDICATOR_STD`]).
//!
//! A *feature* is a source column; a *design column* is one input of the
//! logistic model (a feature's value, its missing indicator, or one level).

use crate::error::{Error, Result};
use crate::product::{FoldedPair, Part, PartArg, MAX_PARTS};
use crate::reference::{
    decile_ranks, decile_shares, order_statistics, total_order_key, Bins, ReferenceBins,
};
use crate::schema::{ColumnKind, ResolvedColumn};
use crate::table::{ColumnValues, Table};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;

/// Name of the catch-all level.
pub const OTHER_LEVEL: &str = "other";

/// Scale of 0/1 indicator columns (one-hot levels, `other`, `<col>_missing`):
/// they are centred on their training share but not divided by their
/// standard deviation, so the L2 penalty acts on the raw indicator
/// coefficient (as in scikit-learn's one-hot + LogisticRegression). Dividing
/// by `sqrt(r (1 - r))` shrinks a rare level's penalty by that share and lets
/// it overfit: on `modeldata::mlc_churn` (51 states, ~80 training rows each)
/// that cost 0.0024 of holdout ROC AUC at matched strength (see
/// `model/parity/run.sh`).
pub const INDICATOR_STD: f64 = 1.0;

/// Fitting knobs (copied from `TrainConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrepOptions {
    /// Levels seen fewer times than this in training become `other`.
    pub min_level_count: usize,
    /// Non-negative columns with sample skewness above this get log1p.
    pub skew_threshold: f64,
}

/// Fitted parameters of a numeric feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericPrep {
    pub name: String,
    pub required: bool,
    /// Training median of present raw values; imputes missing ones.
    pub median: f64,
    /// Sample skewness (Fisher-Pearson) of present raw training values.
    pub skew: f64,
    /// Whether log1p is applied (every training value non-negative and skew
    /// above the threshold).
    pub log1p: bool,
    /// Smallest present raw value in the training table (every row handed to
    /// training, holdout included): with `max`, the model's input domain.
    /// A negative value where this is >= 0 is refused at scoring; values
    /// beyond `[min, max]` are scored and counted as out of range. `None`
    /// only in artifacts written before the domain was recorded (then a log1p
    /// feature still refuses negative values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest present raw value in the training table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl NumericPrep {
    /// Whether the model only accepts values >= 0 for this feature: every
    /// training value was (or log1p was applied, which implies it).
    pub fn non_negative(&self) -> bool {
        self.log1p || self.min.is_some_and(|m| m >= 0.0)
    }

    /// Whether a valid value lies outside the training `[min, max]`.
    pub fn out_of_range(&self, x: f64) -> bool {
        self.min.is_some_and(|m| x < m) || self.max.is_some_and(|m| x > m)
    }

    /// The transformed value of a present raw value `x` (log1p'd when the
    /// model does). `x` is in the domain: >= 0 for a log1p feature.
    #[inline]
    pub fn transform(&self, x: f64) -> f64 {
        if self.log1p {
            x.ln_1p()
        } else {
            x
        }
    }

    /// The transformed training median, what a missing value becomes.
    pub fn transformed_median(&self) -> f64 {
        self.transform(self.median)
    }

    /// The one imputation rule: the transformed value of `x`, or the
    /// transformed median when `x` is missing (NaN).
    #[inline]
    pub fn imputed(&self, x: f64) -> f64 {
        if x.is_nan() {
            self.transformed_median()
        } else {
            self.transform(x)
        }
    }
}

/// Fitted parameters of a categorical feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalPrep {
    pub name: String,
    pub required: bool,
    /// Levels kept (seen at least `min_level_count` times), most frequent first.
    pub levels: Vec<String>,
    /// The most common training value (a kept level, or `other`).
    pub most_common: String,
}

/// One source feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeaturePrep {
    Numeric(NumericPrep),
    Categorical(CategoricalPrep),
}

impl FeaturePrep {
    /// The source column name.
    pub fn name(&self) -> &str {
        match self {
            FeaturePrep::Numeric(n) => &n.name,
            FeaturePrep::Categorical(c) => &c.name,
        }
    }

    /// Whether a missing value is an error rather than imputed.
    pub fn required(&self) -> bool {
        match self {
            FeaturePrep::Numeric(n) => n.required,
            FeaturePrep::Categorical(c) => c.required,
        }
    }
}

/// What a design column encodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// The (imputed, maybe log1p'd) numeric value.
    Value,
    /// The tent on `left < peak < right` (0 outside, 1 at `peak`, linear
    /// between) of the (imputed, maybe log1p'd) numeric value `t`: one term
    /// of the feature's shape function (see [`crate::shape`]).
    Tent { left: f64, peak: f64, right: f64 },
    /// 1 when the value was missing.
    Missing,
    /// 1 when the level is `levels[index]`.
    Level { index: usize },
    /// 1 when the level is not a kept level (rare, unseen or missing).
    Other,
    /// The product of `part` of this column's feature and `with_part` of
    /// feature `with`: one term of an interaction (see [`crate::product`]).
    Product {
        with: usize,
        part: Part,
        with_part: Part,
    },
}

/// One input of the logistic model, transformed as `(x - mean) / std`
/// (standardized numeric values; indicators have `std` = [`INDICATOR_STD`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesignColumn {
    /// `tenure_months`, `nps_missing`, `plan=pro`, `plan=other`.
    pub name: String,
    /// Index into `Preprocessor::features`.
    pub feature: usize,
    pub role: Role,
    pub mean: f64,
    /// Always > 0 (zero-variance columns are dropped when fitting).
    pub std: f64,
}

/// All fitted preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub features: Vec<FeaturePrep>,
    pub columns: Vec<DesignColumn>,
}

/// A feature's data, borrowed from the table where it has the right type.
pub(crate) enum FeatureData<'a> {
    Num(Cow<'a, [f64]>),
    Cat(Cow<'a, [Option<String>]>),
}

/// Position of the first infinite value of `v`. Blocks are tested whole,
/// without an early exit, so the test vectorises; only the block holding
/// one is searched value by value.
fn first_infinite(v: &[f64]) -> Option<usize> {
    const BLOCK: usize = 1024;
    let block = v
        .chunks(BLOCK)
        .position(|b| b.iter().fold(false, |any, x| any | x.is_infinite()))?;
    let start = block * BLOCK;
    v[start..]
        .iter()
        .position(|x| x.is_infinite())
        .map(|i| start + i)
}

/// Extracts a feature column as its resolved kind, naming the row and column
/// of any cell that does not fit.
pub(crate) fn feature_data<'a>(table: &'a Table, col: &ResolvedColumn) -> Result<FeatureData<'a>> {
    let column = table
        .column(&col.name)
        .ok_or_else(|| crate::schema::missing_column(table, &col.name))?;
    let data = match (col.kind, &column.values) {
        (ColumnKind::Numeric, ColumnValues::Numeric(v)) => {
            if let Some(i) = first_infinite(v) {
                return Err(Error::NotANumber {
                    row: table.row_number(i),
                    column: col.name.clone(),
                    value: v[i].to_string(),
                });
            }
            FeatureData::Num(Cow::Borrowed(v))
        }
        (ColumnKind::Numeric, ColumnValues::Text(v)) => {
            let mut out = Vec::with_capacity(v.len());
            for (i, s) in v.iter().enumerate() {
                out.push(match s.as_deref().map(str::trim) {
                    None | Some("") => f64::NAN,
                    Some(t) => match t.parse::<f64>() {
                        Ok(x) if x.is_finite() => x,
                        _ => {
                            return Err(Error::NotANumber {
                                row: table.row_number(i),
                                column: col.name.clone(),
                                value: t.to_string(),
                            })
                        }
                    },
                });
            }
            FeatureData::Num(Cow::Owned(out))
        }
        (_, ColumnValues::Text(v)) => FeatureData::Cat(Cow::Borrowed(v)),
        (_, ColumnValues::Numeric(v)) => FeatureData::Cat(Cow::Owned(
            v.iter()
                .map(|&x| (!x.is_nan()).then(|| number_as_level(x)))
                .collect(),
        )),
    };
    if col.required {
        let missing = match &data {
            FeatureData::Num(v) => v.iter().position(|x| x.is_nan()),
            FeatureData::Cat(v) => v
                .iter()
                .position(|s| s.as_deref().is_none_or(|t| t.trim().is_empty())),
        };
        if let Some(i) = missing {
            return Err(Error::MissingRequired {
                row: table.row_number(i),
                column: col.name.clone(),
            });
        }
    }
    Ok(data)
}

/// Result of fitting: the preprocessor, reference bins and warnings.
pub(crate) struct Fitted {
    pub prep: Preprocessor,
    pub reference: Vec<ReferenceBins>,
    pub warnings: Vec<String>,
    /// Index (into the `cols` handed to `fit`) of each kept feature, in
    /// `prep.features` order.
    pub data: Vec<usize>,
}

/// Mean, sum of squared deviations and sample skewness (Fisher-Pearson
/// g1; 0 for fewer than 3 values or constant input) of `v`, whose sum is `sum`.
fn moments(v: &[f64], sum: f64) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let n = v.len() as f64;
    let mean = sum / n;
    let (mut m2, mut m3) = (0.0, 0.0);
    for &x in v {
        let d = x - mean;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
    }
    let skew = if v.len() < 3 || m2 <= 0.0 {
        0.0
    } else {
        (m3 / n) / (m2 / n).powf(1.5)
    };
    (mean, m2, skew)
}

/// One feature fitted alone, before it is numbered among the kept features.
#[derive(Debug)]
struct FeatureFit {
    feature: FeaturePrep,
    /// Its design columns, with `feature` = 0 (the caller numbers them);
    /// empty when the feature carries nothing (no values, or constant).
    columns: Vec<DesignColumn>,
    /// Its training distribution, for drift checks.
    bins: Bins,
    /// Share of the training rows where it is missing.
    missing_share: f64,
}

/// Fits one feature on `rows` as its kind says.
fn fit_one(
    col: &ResolvedColumn,
    d: &FeatureData<'_>,
    rows: &[usize],
    opts: PrepOptions,
) -> FeatureFit {
    match d {
        FeatureData::Num(v) => fit_numeric(col, v, rows, opts.skew_threshold),
        FeatureData::Cat(v) => fit_categorical(col, v, rows, opts.min_level_count),
    }
}

/// Fits a numeric feature on `rows` of `v`: median imputation, log1p when
/// every value is >= 0 and the skew is above `skew_threshold`, the
/// standardization of the imputed value, a missing indicator, the input
/// domain and the decile edges of the present values.
fn fit_numeric(col: &ResolvedColumn, v: &[f64], rows: &[usize], skew_threshold: f64) -> FeatureFit {
    let n = rows.len().max(1);
    let (mut present, sum, present_min) = present_values(v, rows);
    let n_missing = n - present.len().min(n);
    // Before the median: selecting it reorders `present`, and the sums of
    // squares would round differently in another order.
    let (raw_mean, m2, skew) = moments(&present, sum);
    // The input domain spans every row given to training, so a
    // holdout value is never outside what the model accepts.
    let (all_min, all_max) = value_range(v);
    let min = all_min.unwrap_or(if present_min.is_finite() {
        present_min
    } else {
        0.0
    });
    // The median (imputation) is exact, by selection; the decile
    // edges (drift reference only) come from an evenly strided
    // sample of at most 100k values.
    let deciles = sample_deciles(&present, 100_000);
    let shares = decile_shares(&deciles, &present, n);
    let median = median_in_place(&mut present);
    let log1p = min >= 0.0 && skew > skew_threshold;
    let (mean, std) = if log1p {
        log1p_mean_std(&present, median, n_missing)
    } else {
        imputed_mean_std(present.len(), sum, raw_mean, m2, median, n_missing)
    };
    let prep = NumericPrep {
        name: col.name.clone(),
        required: col.required,
        median,
        skew,
        log1p,
        min: all_min,
        max: all_max,
    };
    FeatureFit {
        feature: FeaturePrep::Numeric(prep),
        columns: numeric_columns(&col.name, mean, std, n_missing, n),
        bins: Bins::Deciles {
            edges: deciles,
            shares,
        },
        missing_share: n_missing as f64 / n as f64,
    }
}

/// The present (non-missing) values of `v` at `rows`, their sum and their
/// smallest value (infinite when none is present).
fn present_values(v: &[f64], rows: &[usize]) -> (Vec<f64>, f64, f64) {
    let mut present: Vec<f64> = Vec::with_capacity(rows.len());
    let (mut sum, mut min) = (0.0, f64::INFINITY);
    for &r in rows {
        let x = v[r];
        if !x.is_nan() {
            present.push(x);
            sum += x;
            min = min.min(x);
        }
    }
    (present, sum, min)
}

/// Mean and standard deviation of the log1p'd `present` values together
/// with `n_missing` values imputed at log1p(`median`): two passes over the
/// transformed values, as the raw moments say nothing about the log's.
fn log1p_mean_std(present: &[f64], median: f64, n_missing: usize) -> (f64, f64) {
    let n = (present.len() + n_missing) as f64;
    let t_med = median.ln_1p();
    let sum_t = present.iter().map(|x| x.ln_1p()).sum::<f64>() + n_missing as f64 * t_med;
    let mean = sum_t / n;
    let ss = present
        .iter()
        .map(|x| (x.ln_1p() - mean).powi(2))
        .sum::<f64>()
        + n_missing as f64 * (t_med - mean).powi(2);
    (mean, (ss / n).sqrt())
}

/// Mean and standard deviation of `n_present` raw values (their `sum`,
/// `raw_mean` and sum of squared deviations `m2`) together with `n_missing`
/// values imputed at `median`. The imputed values all sit at the median, so
/// they combine with the present values' moments analytically, no further
/// pass.
fn imputed_mean_std(
    n_present: usize,
    sum: f64,
    raw_mean: f64,
    m2: f64,
    median: f64,
    n_missing: usize,
) -> (f64, f64) {
    let n = (n_present + n_missing) as f64;
    let mean = (sum + n_missing as f64 * median) / n;
    let ss = m2
        + n_present as f64 * (raw_mean - mean).powi(2)
        + n_missing as f64 * (median - mean).powi(2);
    (mean, (ss / n).sqrt())
}

/// The design columns of numeric feature `name`: its standardized value
/// (left out when constant) and a `<name>_missing` indicator (when some,
/// but not all, of the `n` training rows are missing).
fn numeric_columns(
    name: &str,
    mean: f64,
    std: f64,
    n_missing: usize,
    n: usize,
) -> Vec<DesignColumn> {
    let mut columns = Vec::new();
    if std > 1e-12 * mean.abs().max(1.0) {
        columns.push(DesignColumn {
            name: name.to_string(),
            feature: 0,
            role: Role::Value,
            mean,
            std,
        });
    }
    if n_missing > 0 && n_missing < n {
        columns.push(DesignColumn {
            name: format!("{name}_missing"),
            feature: 0,
            role: Role::Missing,
            mean: n_missing as f64 / n as f64,
            std: INDICATOR_STD,
        });
    }
    columns
}

/// Fits a categorical feature on `rows` of `v`: the levels seen at least
/// `min_level_count` times are kept, every other value (rare or missing)
/// is `other`; one-hot columns and the share of each level.
fn fit_categorical(
    col: &ResolvedColumn,
    v: &[Option<String>],
    rows: &[usize],
    min_level_count: usize,
) -> FeatureFit {
    let n = rows.len().max(1);
    let (levels, n_missing) = kept_levels(v, rows, min_level_count);
    let kept_rows: usize = levels.iter().map(|l| l.1).sum();
    let other = n - kept_rows;
    let most_common = match levels.first() {
        Some(&(l, c)) if c >= other => l.to_string(),
        _ => OTHER_LEVEL.to_string(),
    };
    let (columns, shares) = level_columns(&col.name, &levels, other, n);
    let prep = CategoricalPrep {
        name: col.name.clone(),
        required: col.required,
        levels: levels.iter().map(|l| l.0.to_string()).collect(),
        most_common,
    };
    FeatureFit {
        feature: FeaturePrep::Categorical(prep),
        columns,
        bins: Bins::Levels { levels: shares },
        missing_share: n_missing as f64 / n as f64,
    }
}

/// The (trimmed) levels of `v` at `rows` seen at least `min_count` times,
/// with their counts, most frequent first, then by name; and the number of
/// missing (absent or blank) cells.
fn kept_levels<'a>(
    v: &'a [Option<String>],
    rows: &[usize],
    min_count: usize,
) -> (Vec<(&'a str, usize)>, usize) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut n_missing = 0;
    for &r in rows {
        match v[r].as_deref().map(str::trim) {
            None | Some("") => n_missing += 1,
            Some(s) => *counts.entry(s).or_insert(0) += 1,
        }
    }
    let mut levels: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|&(_, c)| c >= min_count.max(1))
        .collect();
    // Deterministic order (the hash map's is not).
    levels.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    (levels, n_missing)
}

/// The one-hot design columns of categorical feature `name` with kept
/// `levels` (and counts) and `other` rows out of `n`, and the share of
/// every level, `other` last when any row is `other`.
fn level_columns(
    name: &str,
    levels: &[(&str, usize)],
    other: usize,
    n: usize,
) -> (Vec<DesignColumn>, Vec<(String, f64)>) {
    let mut columns = Vec::new();
    let mut shares = Vec::new();
    for (i, &(l, c)) in levels.iter().enumerate() {
        let r = c as f64 / n as f64;
        shares.push((l.to_string(), r));
        // The most frequent level is the reference and gets no
        // column: every row is exactly one level or `other`, so a
        // full set of indicators would sum to the intercept's
        // constant column, leaving a direction only the L2 penalty
        // pins down and slowing the solver several-fold. Its effect
        // is carried by the intercept and the other levels.
        if i > 0 && c < n {
            columns.push(DesignColumn {
                name: format!("{name}={l}"),
                feature: 0,
                role: Role::Level { index: i },
                mean: r,
                std: INDICATOR_STD,
            });
        }
    }
    if other > 0 {
        let r = other as f64 / n as f64;
        shares.push((OTHER_LEVEL.to_string(), r));
        if other < n {
            columns.push(DesignColumn {
                name: format!("{name}={OTHER_LEVEL}"),
                feature: 0,
                role: Role::Other,
                mean: r,
                std: INDICATOR_STD,
            });
        }
    }
    (columns, shares)
}

/// `f(0..n)` in order, computed on the current rayon pool (the binary sizes
/// it once; a library never decides how many cores there are).
pub(crate) fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    use rayon::prelude::*;
    (0..n).into_par_iter().map(f).collect()
}

impl Preprocessor {
    /// Fits on `rows` of `data` (one entry per resolved column).
    pub(crate) fn fit(
        cols: &[ResolvedColumn],
        data: &[FeatureData<'_>],
        rows: &[usize],
        opts: PrepOptions,
    ) -> Fitted {
        let mut prep = Preprocessor {
            features: Vec::new(),
            columns: Vec::new(),
        };
        let mut reference = Vec::new();
        let mut warnings = Vec::new();
        let mut kept = Vec::new();
        // Features are independent: fit them in parallel.
        let results = par_map(cols.len(), |ci| fit_one(&cols[ci], &data[ci], rows, opts));
        let repeated = crate::duplicate::repeated_columns(data, rows);
        for (ci, (col, fit)) in cols.iter().zip(results).enumerate() {
            if let Some((twin, r)) = repeated[ci] {
                warnings.push(format!(
                    "column {:?} repeats column {:?} (correlation {r:.5}) in the training split and was dropped",
                    col.name, cols[twin].name
                ));
                continue;
            }
            let FeatureFit {
                feature,
                mut columns,
                bins,
                missing_share,
            } = fit;
            let fi = prep.features.len();
            for c in &mut columns {
                c.feature = fi;
            }
            if columns.is_empty() {
                let why = if missing_share >= 1.0 {
                    "has no values"
                } else {
                    "is constant"
                };
                warnings.push(format!(
                    "column {:?} {why} in the training split and was dropped",
                    col.name
                ));
                continue;
            }
            prep.features.push(feature);
            prep.columns.extend(columns);
            reference.push(ReferenceBins {
                feature: col.name.clone(),
                missing_share,
                bins,
            });
            kept.push(ci);
        }
        Fitted {
            prep,
            reference,
            warnings,
            data: kept,
        }
    }

    /// Names of the design columns, in coefficient order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Consistency of indices and parameters (used when loading an artifact).
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        self.check_product_sides()?;
        for c in &self.columns {
            let Some(f) = self.features.get(c.feature) else {
                return Err(format!(
                    "design column {:?} points at feature {}",
                    c.name, c.feature
                ));
            };
            let ok = match (&c.role, f) {
                (Role::Value | Role::Missing, FeaturePrep::Numeric(_)) => true,
                (Role::Tent { left, peak, right }, FeaturePrep::Numeric(_)) => {
                    left.is_finite() && right.is_finite() && left < peak && peak < right
                }
                (Role::Level { index }, FeaturePrep::Categorical(cp)) => *index < cp.levels.len(),
                (Role::Other, FeaturePrep::Categorical(_)) => true,
                (
                    Role::Product {
                        with,
                        part,
                        with_part,
                    },
                    _,
                ) => {
                    *with != c.feature
                        && part.fits(f)
                        && self.features.get(*with).is_some_and(|g| with_part.fits(g))
                }
                _ => false,
            };
            if !(ok && c.std > 0.0 && c.std.is_finite() && c.mean.is_finite()) {
                return Err(format!(
                    "design column {:?} is inconsistent with its feature",
                    c.name
                ));
            }
        }
        Ok(())
    }

    /// Writes the standardized design matrix of `rows` into `out` in
    /// column-major order (`out[j * rows.len() + i]`). Column-major because
    /// the gradient of the log loss is `X^T r`, which ndarray computes as
    /// one contiguous dot product per column only in this layout (about 7x
    /// faster than row-major at 800k x 20). `data[f]` is the data of `features[f]`.
    pub(crate) fn design_col_major(
        &self,
        data: &[&FeatureData<'_>],
        rows: &[usize],
        out: &mut Vec<f64>,
    ) {
        self.design_col_major_scaled(data, rows, 1.0, out)
    }

    /// As [`Preprocessor::design_col_major`], every cell multiplied by `scale`.
    pub(crate) fn design_col_major_scaled(
        &self,
        data: &[&FeatureData<'_>],
        rows: &[usize],
        scale: f64,
        out: &mut Vec<f64>,
    ) {
        let n = rows.len();
        let p = self.columns.len();
        // Zeroed by the allocator (a large allocation is a fresh mapping,
        // already zero), so the pages are first touched by the parallel
        // fill below instead of by one thread writing zeros; the capacity
        // the caller reserved (room for the solver's constant column) is kept.
        let capacity = out.capacity().max(n * p);
        *out = vec![0.0; capacity];
        out.truncate(n * p);
        if n == 0 {
            return;
        }
        // Level codes of each categorical feature, looked up once per row
        // rather than once per one-hot column.
        let codes: Vec<Option<Vec<u32>>> = par_map(self.features.len(), |f| {
            match (&self.features[f], data[f]) {
                (FeaturePrep::Categorical(cp), FeatureData::Cat(v)) => {
                    let map: HashMap<&str, u32> = cp
                        .levels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.as_str(), i as u32))
                        .collect();
                    Some(
                        rows.iter()
                            .map(|&r| {
                                v[r].as_deref()
                                    .map(str::trim)
                                    .and_then(|s| map.get(s).copied())
                                    .unwrap_or(u32::MAX)
                            })
                            .collect(),
                    )
                }
                _ => None,
            }
        });
        let codes = &codes;
        // Columns are independent: fill them in parallel.
        use rayon::prelude::*;
        out.par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(j, col)| self.fill_column(j, data, codes, rows, scale, col));
    }

    /// Fills `out` (one slot per row of `rows`) with standardized design column `j`.
    fn fill_column(
        &self,
        j: usize,
        data: &[&FeatureData<'_>],
        codes: &[Option<Vec<u32>>],
        rows: &[usize],
        scale: f64,
        out: &mut [f64],
    ) {
        let c = &self.columns[j];
        let inv = scale / c.std;
        if let Role::Product {
            with,
            part,
            with_part,
        } = &c.role
        {
            for (i, (o, &r)) in out.iter_mut().zip(rows).enumerate() {
                let x = part.at(self.part_arg(c.feature, data, codes, i, r));
                let y = with_part.at(self.part_arg(*with, data, codes, i, r));
                *o = (x * y - c.mean) * inv;
            }
            return;
        }
        match (&self.features[c.feature], data[c.feature]) {
            (FeaturePrep::Numeric(np), FeatureData::Num(v)) => {
                for (o, &r) in out.iter_mut().zip(rows) {
                    let x = v[r];
                    *o = match c.role {
                        Role::Missing => (x.is_nan() as u8 as f64 - c.mean) * inv,
                        Role::Tent { left, peak, right } => {
                            (crate::shape::tent(np.imputed(x), left, peak, right) - c.mean) * inv
                        }
                        _ => (np.imputed(x) - c.mean) * inv,
                    };
                }
            }
            (FeaturePrep::Categorical(_), FeatureData::Cat(_)) => {
                let Some(Some(code)) = codes.get(c.feature) else {
                    return;
                };
                let want = match c.role {
                    Role::Level { index } => index as u32,
                    _ => u32::MAX,
                };
                for (o, &k) in out.iter_mut().zip(code) {
                    *o = ((k == want) as u8 as f64 - c.mean) * inv;
                }
            }
            // Kinds are matched when the data is extracted; an impossible
            // mismatch contributes the column mean (0 after standardizing).
            _ => out.iter_mut().for_each(|o| *o = 0.0),
        }
    }
}

impl Preprocessor {
    /// Each side of a feature pair's product terms has at most
    /// [`MAX_PARTS`] distinct parts (scoring evaluates a side into a fixed
    /// array).
    fn check_product_sides(&self) -> std::result::Result<(), String> {
        // Folded as scoring folds them, so the check counts what scoring sees.
        let mut pairs = Vec::new();
        for c in &self.columns {
            if let Role::Product {
                with,
                part,
                with_part,
            } = &c.role
            {
                FoldedPair::add(&mut pairs, (c.feature, *with), (part, with_part), 0.0, 0.0);
            }
        }
        match pairs.iter().find(|p| p.widest_side() > MAX_PARTS) {
            Some(p) => Err(format!(
                "interaction of features {} and {}: more than {MAX_PARTS} parts on one side",
                p.a, p.b
            )),
            None => Ok(()),
        }
    }

    /// Feature `f`'s value at row `r` (the `i`-th of the rows whose level
    /// `codes` were looked up) as a part of a product takes it.
    #[inline]
    fn part_arg(
        &self,
        f: usize,
        data: &[&FeatureData<'_>],
        codes: &[Option<Vec<u32>>],
        i: usize,
        r: usize,
    ) -> PartArg {
        match (&self.features[f], data[f]) {
            (FeaturePrep::Numeric(np), FeatureData::Num(v)) => PartArg::T(np.imputed(v[r])),
            _ => match codes.get(f) {
                Some(Some(code)) if code[i] != u32::MAX => PartArg::Level(Some(code[i] as usize)),
                _ => PartArg::Level(None),
            },
        }
    }
}

/// The level text of a number in a categorical column (`1`, `2.5`): how
/// training names it, and so what scoring must find it as.
pub fn number_as_level(x: f64) -> String {
    format!("{x}")
}

/// Smallest and largest present (non-NaN) value of `v`; `None` when all are missing.
fn value_range(v: &[f64]) -> (Option<f64>, Option<f64>) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &x in v {
        // NaN compares false both ways, so missing values drop out.
        if x < lo {
            lo = x;
        }
        if x > hi {
            hi = x;
        }
    }
    if lo <= hi {
        (Some(lo), Some(hi))
    } else {
        (None, None)
    }
}

/// Median (mean of the middle two for even counts) of `v`, by total order;
/// 0 when empty. May reorder `v`.
fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let ranks = [n.div_ceil(2) - 1, n / 2];
    let middle =
        bracketed_order_statistics(v, &ranks).unwrap_or_else(|| order_statistics(v, &ranks));
    (middle[0] + middle[1]) / 2.0
}

/// The order statistics of `v` at `ranks` (ascending, close together), found
/// among the values that two order statistics of a strided sample bracket:
/// one counting pass and a selection in a few percent of the values,
/// instead of selection's several passes over all of them. `None` when `v`
/// is small or the bracket misses a rank (the caller selects in `v` then):
/// the answer is exact either way.
fn bracketed_order_statistics(v: &[f64], ranks: &[usize]) -> Option<Vec<f64>> {
    const SAMPLE: usize = 10_000;
    let n = v.len();
    let (&first, &last) = (ranks.first()?, ranks.last()?);
    if n < 10 * SAMPLE {
        return None;
    }
    let mut sample: Vec<f64> = v.iter().step_by(n / SAMPLE).copied().collect();
    let m = sample.len();
    // A sample quantile's rank wanders by about sqrt(m)/2 sample ranks; the
    // bracket is eight of those on each side.
    let margin = 4 * (m as f64).sqrt() as usize + 16;
    let at = |r: usize| (r * m / n).min(m - 1);
    let bounds = [
        at(first).saturating_sub(margin),
        (at(last) + margin).min(m - 1),
    ];
    let b = order_statistics(&mut sample, &bounds);
    let (lo, hi) = (total_order_key(b[0]), total_order_key(b[1]));
    // Branch-free count (half the values are below: a branch would be a
    // coin toss); one rarely taken branch for the few inside.
    let width = hi.wrapping_sub(lo) as u64;
    let mut below = 0usize;
    let mut inside = Vec::with_capacity(n / 16);
    for &x in v {
        let k = total_order_key(x);
        below += usize::from(k < lo);
        if (k.wrapping_sub(lo) as u64) <= width {
            inside.push(x);
        }
    }
    if first < below || last >= below + inside.len() {
        return None;
    }
    let shifted: Vec<usize> = ranks.iter().map(|r| r - below).collect();
    Some(order_statistics(&mut inside, &shifted))
}

/// Nearest-rank decile edges of every `ceil(len / max)`-th value of `v`
/// (all of them when `len <= max`).
fn sample_deciles(v: &[f64], max: usize) -> Vec<f64> {
    let step = v.len().div_ceil(max.max(1)).max(1);
    let mut sample: Vec<f64> = v.iter().step_by(step).copied().collect();
    let ranks = decile_ranks(sample.len());
    order_statistics(&mut sample, &ranks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_col(name: &str) -> ResolvedColumn {
        ResolvedColumn {
            name: name.into(),
            kind: ColumnKind::Numeric,
            required: false,
        }
    }

    fn text(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_string)).collect()
    }

    fn names(columns: &[DesignColumn]) -> Vec<&str> {
        columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// A right-tailed non-negative column is log1p'd and imputed at the
    /// median of its present values; the missing share becomes an indicator.
    #[test]
    fn numeric_fit_of_a_skewed_column_with_missing_values() {
        let nan = f64::NAN;
        let v = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 50.0, nan, nan];
        let rows: Vec<usize> = (0..v.len()).collect();
        let fit = fit_numeric(&numeric_col("x"), &v, &rows, 1.0);
        let FeaturePrep::Numeric(np) = &fit.feature else {
            panic!("{:?}", fit.feature)
        };
        assert_eq!(np.median, 0.5);
        assert!(np.skew > 2.0, "{}", np.skew);
        assert!(np.log1p);
        assert_eq!((np.min, np.max), (Some(0.0), Some(50.0)));
        assert_eq!(fit.missing_share, 0.2);
        assert_eq!(names(&fit.columns), ["x", "x_missing"]);
        // The value column standardizes log1p(x), missing cells at log1p(0.5).
        let t: Vec<f64> = v
            .iter()
            .map(|&x| if x.is_nan() { 0.5f64 } else { x }.ln_1p())
            .collect();
        let mean = t.iter().sum::<f64>() / 10.0;
        let std = (t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 10.0).sqrt();
        assert!((fit.columns[0].mean - mean).abs() < 1e-12);
        assert!((fit.columns[0].std - std).abs() < 1e-12);
        assert_eq!(fit.columns[0].role, Role::Value);
        assert_eq!(
            (fit.columns[1].role.clone(), fit.columns[1].mean),
            (Role::Missing, 0.2)
        );
        assert_eq!(fit.columns[1].std, INDICATOR_STD);
        let Bins::Deciles { edges, shares } = &fit.bins else {
            panic!("{:?}", fit.bins)
        };
        assert_eq!(edges, &[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 50.0]);
        // Counted, not assumed a tenth each: the four 0s are bin 0 (no
        // edge below them), the 1s bin 5 (five edges below), 2 bin 7, 50
        // bin 8; with the missing share they add up to 1.
        assert_eq!(shares, &[0.4, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0, 0.1, 0.1, 0.0]);
    }

    /// One negative value rules log1p out however skewed the column is;
    /// the value is then standardized raw, and nothing missing means no
    /// indicator.
    #[test]
    fn numeric_fit_with_a_negative_value_stays_linear() {
        let v = [-1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 50.0];
        let rows: Vec<usize> = (0..v.len()).collect();
        let fit = fit_numeric(&numeric_col("x"), &v, &rows, 1.0);
        let FeaturePrep::Numeric(np) = &fit.feature else {
            panic!("{:?}", fit.feature)
        };
        assert!(np.skew > 1.0, "{}", np.skew);
        assert!(!np.log1p);
        assert_eq!(np.median, 0.5);
        assert_eq!(fit.missing_share, 0.0);
        assert_eq!(names(&fit.columns), ["x"]);
        assert_eq!(fit.columns[0].mean, 53.0 / 8.0);
    }

    /// The median comes from the training rows only; the domain (`min`,
    /// `max`) from every row, so holdout values are inside it.
    #[test]
    fn numeric_domain_spans_rows_outside_the_fit() {
        let v = [3.0, 1.0, 2.0, -5.0, 1000.0];
        let fit = fit_numeric(&numeric_col("x"), &v, &[0, 1, 2], 1.0);
        let FeaturePrep::Numeric(np) = &fit.feature else {
            panic!("{:?}", fit.feature)
        };
        assert_eq!(np.median, 2.0);
        assert_eq!((np.min, np.max), (Some(-5.0), Some(1000.0)));
        assert!(!np.log1p);
    }

    /// Constant and empty columns give no design columns (so `fit` drops
    /// them), an empty one with a missing share of 1.
    #[test]
    fn numeric_fit_of_constant_and_empty_columns_has_no_columns() {
        let constant = fit_numeric(&numeric_col("c"), &[4.0; 5], &[0, 1, 2, 3, 4], 1.0);
        assert!(constant.columns.is_empty());
        assert_eq!(constant.missing_share, 0.0);
        let empty = fit_numeric(&numeric_col("e"), &[f64::NAN; 3], &[0, 1, 2], 1.0);
        assert!(empty.columns.is_empty());
        assert_eq!(empty.missing_share, 1.0);
        let FeaturePrep::Numeric(np) = &empty.feature else {
            panic!("{:?}", empty.feature)
        };
        assert_eq!((np.median, np.min, np.max), (0.0, None, None));
    }

    /// Rare and missing values fold into `other`; the most frequent kept
    /// level is the reference and has no column.
    #[test]
    fn categorical_fit_folds_rare_and_missing_levels_into_other() {
        let col = ResolvedColumn {
            name: "plan".into(),
            kind: ColumnKind::Categorical,
            required: false,
        };
        let v = text(&[
            Some("a"),
            Some("b "),
            Some("a"),
            Some("c"),
            Some("b"),
            None,
            Some("a"),
            Some("d"),
            Some(" "),
            Some("a"),
        ]);
        let rows: Vec<usize> = (0..v.len()).collect();
        let fit = fit_categorical(&col, &v, &rows, 2);
        let FeaturePrep::Categorical(cp) = &fit.feature else {
            panic!("{:?}", fit.feature)
        };
        assert_eq!(cp.levels, ["a", "b"]);
        assert_eq!(cp.most_common, "a");
        assert_eq!(fit.missing_share, 0.2);
        assert_eq!(names(&fit.columns), ["plan=b", "plan=other"]);
        assert_eq!(fit.columns[0].role, Role::Level { index: 1 });
        assert_eq!(fit.columns[1].role, Role::Other);
        assert_eq!((fit.columns[0].mean, fit.columns[1].mean), (0.2, 0.4));
        assert!(fit.columns.iter().all(|c| c.std == INDICATOR_STD));
        assert_eq!(
            fit.bins,
            Bins::Levels {
                levels: vec![("a".into(), 0.4), ("b".into(), 0.2), ("other".into(), 0.4)]
            }
        );
    }

    /// With no level frequent enough, every row is `other`: the feature is
    /// constant (no columns) and `other` is its most common value.
    #[test]
    fn categorical_fit_with_only_rare_levels_is_constant() {
        let col = ResolvedColumn {
            name: "region".into(),
            kind: ColumnKind::Categorical,
            required: false,
        };
        let v = text(&[Some("x"), Some("y"), Some("x"), Some("z")]);
        let fit = fit_categorical(&col, &v, &[0, 1, 2, 3], 3);
        let FeaturePrep::Categorical(cp) = &fit.feature else {
            panic!("{:?}", fit.feature)
        };
        assert!(cp.levels.is_empty());
        assert_eq!(cp.most_common, OTHER_LEVEL);
        assert!(fit.columns.is_empty());
        assert_eq!(fit.missing_share, 0.0);
    }

    #[test]
    fn first_infinite_is_the_first_position() {
        let n = 5000;
        let cases: [&[usize]; 8] = [
            &[],
            &[0],
            &[1023],
            &[1024],
            &[2047],
            &[4999],
            &[3000, 2100],
            &[5, 7],
        ];
        for at in cases {
            let mut v: Vec<f64> = (0..n)
                .map(|i| if i % 7 == 0 { f64::NAN } else { i as f64 })
                .collect();
            for (k, &i) in at.iter().enumerate() {
                v[i] = if k % 2 == 0 {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                };
            }
            assert_eq!(
                first_infinite(&v),
                v.iter().position(|x| x.is_infinite()),
                "{at:?}"
            );
        }
        assert_eq!(first_infinite(&[]), None);
    }

    #[test]
    fn median_and_deciles_match_sorting() {
        let v: Vec<f64> = (0..1001).map(|i| ((i * 7919) % 1001) as f64).collect();
        assert_eq!(median_in_place(&mut v.clone()), 500.0);
        assert_eq!(
            sample_deciles(&v, 100_000),
            vec![100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0]
        );
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median_in_place(&mut [7.0]), 7.0);
        // Strided sample: still close to the true deciles.
        let big: Vec<f64> = (0..1_000_003)
            .map(|i| ((i as u64 * 7919) % 1_000_003) as f64)
            .collect();
        let d = sample_deciles(&big, 1000);
        assert!((d[4] - 500_000.0).abs() < 50_000.0, "{d:?}");
    }

    /// The bracketed median is the sorted median, bit for bit, on large
    /// columns: shuffled, sorted (a sample that is all one side's values
    /// near the middle), even and odd, with ties and signed zeros; and a
    /// bracket that misses falls back to selection.
    #[test]
    fn bracketed_median_is_the_sorted_median() {
        let sorted_median = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_unstable_by(f64::total_cmp);
            let n = s.len();
            (s[n.div_ceil(2) - 1] + s[n / 2]) / 2.0
        };
        let shuffled: Vec<f64> = (0..200_001u64)
            .map(|i| ((i * 7919) % 200_001) as f64 / 7.0 - 10_000.0)
            .collect();
        let mut ties: Vec<f64> = (0..150_000u64)
            .map(|i| (((i * 7919) % 104_729) % 5) as f64 - 2.0)
            .collect();
        ties.extend([0.0, -0.0, -0.0]);
        let mut ascending = shuffled.clone();
        ascending.sort_unstable_by(f64::total_cmp);
        let even: Vec<f64> = shuffled[..200_000].to_vec();
        // Period 5 under a stride of 15: the sample is all one value, the
        // bracket misses, and selection answers.
        let periodic: Vec<f64> = (0..150_003).map(|i| ((i * 31) % 5) as f64).collect();
        for (v, bracketed) in [
            (shuffled, true),
            (ties, true),
            (ascending, true),
            (even, true),
            (periodic, false),
        ] {
            let want = sorted_median(&v);
            let ranks = [v.len().div_ceil(2) - 1, v.len() / 2];
            let got = bracketed_order_statistics(&v, &ranks);
            assert_eq!(got.is_some(), bracketed, "{} values", v.len());
            assert_eq!(median_in_place(&mut v.clone()).to_bits(), want.to_bits());
        }
        // Ranks far apart from what the bracket is built around: a miss.
        let v: Vec<f64> = (0..200_000).map(|i| i as f64).collect();
        assert_eq!(bracketed_order_statistics(&v, &[0, 199_999]), None);
        for (x, y) in [
            (-1.0, 2.0),
            (-0.0, 0.0),
            (f64::NEG_INFINITY, -1e300),
            (1e300, f64::INFINITY),
        ] {
            assert!(total_order_key(x) < total_order_key(y), "{x} {y}");
        }
    }

    /// Mean/std of the imputed (and maybe log1p'd) column equal a direct
    /// computation, with and without the log1p path.
    #[test]
    fn standardization_matches_direct_computation() {
        let mut raw: Vec<f64> = (0..400).map(|i| ((i * 37) % 23) as f64).collect();
        raw.extend((0..20).map(|i| 1000.0 * (i + 1) as f64)); // heavy tail -> log1p
        for i in (0..raw.len()).step_by(9) {
            raw[i] = f64::NAN;
        }
        let rows: Vec<usize> = (0..raw.len()).collect();
        for threshold in [1.0, 1e9] {
            let col = ResolvedColumn {
                name: "x".into(),
                kind: ColumnKind::Numeric,
                required: false,
            };
            let data = [FeatureData::Num(Cow::Borrowed(&raw))];
            let opts = PrepOptions {
                min_level_count: 1,
                skew_threshold: threshold,
            };
            let fitted = Preprocessor::fit(std::slice::from_ref(&col), &data, &rows, opts);
            let FeaturePrep::Numeric(np) = &fitted.prep.features[0] else {
                panic!()
            };
            assert_eq!(np.log1p, threshold == 1.0);
            let f = |x: f64| if np.log1p { x.ln_1p() } else { x };
            let t: Vec<f64> = raw
                .iter()
                .map(|&x| if x.is_nan() { f(np.median) } else { f(x) })
                .collect();
            let mean = t.iter().sum::<f64>() / t.len() as f64;
            let std = (t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / t.len() as f64).sqrt();
            let c = &fitted.prep.columns[0];
            assert!(
                (c.mean - mean).abs() < 1e-9 * mean.abs().max(1.0),
                "{} vs {mean}",
                c.mean
            );
            assert!((c.std - std).abs() < 1e-9 * std, "{} vs {std}", c.std);
            assert_eq!(fitted.prep.columns[1].name, "x_missing");
        }
    }

    /// 0/1 indicator columns (levels, `other`, `<col>_missing`) are centred
    /// on their training share and keep scale 1; numeric values are scaled.
    #[test]
    fn indicator_columns_are_centred_not_scaled() {
        let n = 200;
        let num: Vec<f64> = (0..n)
            .map(|i| if i % 10 == 0 { f64::NAN } else { i as f64 })
            .collect();
        let cat: Vec<Option<String>> = (0..n)
            .map(|i| Some(["a", "a", "b", "c"][i % 4].to_string()).filter(|_| i % 50 != 1))
            .collect();
        let cols = [
            ResolvedColumn {
                name: "x".into(),
                kind: ColumnKind::Numeric,
                required: false,
            },
            ResolvedColumn {
                name: "plan".into(),
                kind: ColumnKind::Categorical,
                required: false,
            },
        ];
        let data = [
            FeatureData::Num(Cow::Borrowed(&num)),
            FeatureData::Cat(Cow::Borrowed(&cat)),
        ];
        let rows: Vec<usize> = (0..n).collect();
        let opts = PrepOptions {
            min_level_count: 10,
            skew_threshold: 4.0,
        };
        let prep = Preprocessor::fit(&cols, &data, &rows, opts).prep;
        let shares: Vec<(&str, f64, f64)> = prep
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.mean, c.std))
            .collect();
        assert_eq!(shares[0].0, "x");
        assert!(shares[0].2 > 10.0, "{shares:?}");
        // a: 98 (reference, no column), b: 50, c: 48, missing: 4 -> `other`.
        let expected = [
            ("x_missing", 0.1),
            ("plan=b", 0.25),
            ("plan=c", 0.24),
            ("plan=other", 0.02),
        ];
        assert_eq!(shares.len(), 1 + expected.len(), "{shares:?}");
        for ((name, mean, std), (e_name, e_mean)) in shares[1..].iter().zip(expected) {
            assert_eq!(*name, e_name);
            assert!((mean - e_mean).abs() < 1e-12, "{name}: {mean}");
            assert_eq!(*std, INDICATOR_STD, "{name}");
        }
    }

    #[test]
    fn skewness_of_symmetric_and_right_tailed_data() {
        let skew = |v: &[f64]| moments(v, v.iter().sum()).2;
        assert!(skew(&[1.0, 2.0, 3.0, 4.0, 5.0]).abs() < 1e-12);
        assert!(skew(&[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 50.0]) > 2.0);
        let (mean, m2, _) = moments(&[1.0, 3.0], 4.0);
        assert_eq!((mean, m2), (2.0, 2.0));
    }
}
