//! Shape functions of numeric features: a continuous piecewise-linear basis
//! (hinges `max(0, t - knot)` at quantile knots of the transformed value
//! `t`) fitted on the training split and stored in the artifact as extra
//! design columns of the feature ([`Role::Hinge`]).
//!
//! Why hinges rather than natural cubic splines or bins:
//! - **Exact, cheap reasons.** A feature's contribution stays a closed-form
//!   sum `a t + b + sum_k w_k max(0, t - knot_k)` evaluated in a handful of
//!   multiply-adds; scoring needs no basis evaluation (a cubic B-spline needs
//!   a knot search and a recursion per value), and the feature's terms fold
//!   into its one reason exactly as the linear term does.
//! - **The linear model is nested.** The value column stays; hinges only add
//!   slope changes. With every hinge weight at 0 the model is today's linear
//!   one, so the L2 penalty shrinks towards the linear fit, and the linear
//!   choice keeps byte-identical artifacts (it simply has no hinge columns).
//! - **Sane outside the data.** Beyond the last knot the shape is linear
//!   (like a natural spline), never a polynomial swinging away; bins would be
//!   flat there and jump at every edge, which reads badly as a reason
//!   ("43 logins" worse than "44" by a step).
//! - **Thresholds.** A change of slope at a quantile knot follows a threshold
//!   effect (usage collapsing below a level) to within the spacing of knots.
//!
//! Knots are distinct quantiles of the present transformed training values
//! strictly inside their range (a knot at the minimum would duplicate the
//! value column, one at the maximum would be constant). A missing value is
//! imputed at the median as for the value column, and keeps its indicator.

use crate::preprocess::{par_map, DesignColumn, FeatureData, FeaturePrep, Preprocessor, Role};

/// Quantile knots of the present values of `v` at `rows` after `transform`:
/// at most `knots` distinct quantiles at `i / (knots + 1)`, each strictly
/// between the smallest and largest value. Uses an evenly strided sample of
/// at most 100k values (knot placement needs no more).
fn quantile_knots(
    v: &[f64],
    rows: &[usize],
    knots: usize,
    transform: impl Fn(f64) -> f64,
) -> Vec<f64> {
    let step = rows.len().div_ceil(100_000).max(1);
    let mut t: Vec<f64> = rows
        .iter()
        .step_by(step)
        .map(|&r| v[r])
        .filter(|x| !x.is_nan())
        .map(transform)
        .collect();
    if t.len() < 2 {
        return Vec::new();
    }
    t.sort_unstable_by(f64::total_cmp);
    let (lo, hi) = (t[0], t[t.len() - 1]);
    let mut out: Vec<f64> = (1..=knots)
        .map(|i| t[(i * (t.len() - 1)) / (knots + 1)])
        .filter(|&k| k > lo && k < hi)
        .collect();
    out.dedup();
    out
}

/// The value of a hinge at transformed value `t`.
#[inline]
pub fn hinge(t: f64, knot: f64) -> f64 {
    (t - knot).max(0.0)
}

/// A knot as it reads in a column name: the raw value (undoing log1p),
/// rounded to 3 decimals.
fn knot_label(knot: f64, log1p: bool) -> String {
    let raw = if log1p { knot.exp_m1() } else { knot };
    format!("{}", (raw * 1000.0).round() / 1000.0)
}

/// The hinge columns of numeric feature `f` (prep `np`, data `v`) fitted on
/// `rows`: one per knot whose hinge varies, standardized on those rows.
fn hinge_columns(
    f: usize,
    np: &crate::preprocess::NumericPrep,
    v: &[f64],
    rows: &[usize],
    knots: usize,
) -> Vec<DesignColumn> {
    let t_med = np.transformed_median();
    let ts: Vec<f64> = rows
        .iter()
        .map(|&r| {
            let x = v[r];
            if x.is_nan() {
                t_med
            } else {
                np.transform(x)
            }
        })
        .collect();
    let n = ts.len().max(1) as f64;
    let mut out = Vec::new();
    for knot in quantile_knots(v, rows, knots, |x| np.transform(x)) {
        let mean = ts.iter().map(|&t| hinge(t, knot)).sum::<f64>() / n;
        let ss = ts
            .iter()
            .map(|&t| (hinge(t, knot) - mean).powi(2))
            .sum::<f64>();
        let std = (ss / n).sqrt();
        if std > 1e-12 * mean.abs().max(1.0) {
            out.push(DesignColumn {
                name: format!("{}>{}", np.name, knot_label(knot, np.log1p)),
                feature: f,
                role: Role::Hinge { knot },
                mean,
                std,
            });
        }
    }
    out
}

impl Preprocessor {
    /// This preprocessor with shape functions: after the value column of
    /// every numeric feature, up to `knots` hinge columns fitted on `rows`
    /// of `data` (`data[f]` is the data of `features[f]`). Returns an
    /// unchanged copy when `knots` is 0.
    pub(crate) fn with_shapes(
        &self,
        data: &[&FeatureData<'_>],
        rows: &[usize],
        knots: usize,
    ) -> Preprocessor {
        let has_value = |f: usize| {
            self.columns
                .iter()
                .any(|c| c.feature == f && c.role == Role::Value)
        };
        // Features are independent: fit their hinges in parallel.
        let hinges: Vec<Vec<DesignColumn>> = par_map(self.features.len(), |f| {
            match (&self.features[f], data[f]) {
                (FeaturePrep::Numeric(np), FeatureData::Num(v)) if knots > 0 && has_value(f) => {
                    hinge_columns(f, np, v, rows, knots)
                }
                _ => Vec::new(),
            }
        });
        let mut columns = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            columns.push(c.clone());
            if c.role == Role::Value {
                columns.extend(hinges[c.feature].iter().cloned());
            }
        }
        Preprocessor {
            features: self.features.clone(),
            columns,
        }
    }

    /// Whether any design column is a shape (hinge) term.
    pub fn has_shapes(&self) -> bool {
        self.columns
            .iter()
            .any(|c| matches!(c.role, Role::Hinge { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Knots are distinct interior quantiles: none at the ends, no repeats
    /// on discrete data.
    #[test]
    fn knots_are_distinct_interior_quantiles() {
        let v: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let rows: Vec<usize> = (0..v.len()).collect();
        let k = quantile_knots(&v, &rows, 4, |x| x);
        assert_eq!(k, vec![199.0, 399.0, 599.0, 799.0]);
        // Counts 0..=3, mostly 0: the repeated quantiles collapse.
        let c: Vec<f64> = (0..100)
            .map(|i| [0.0, 0.0, 0.0, 1.0, 2.0, 3.0][i % 6])
            .collect();
        let rows: Vec<usize> = (0..c.len()).collect();
        let k = quantile_knots(&c, &rows, 5, |x| x);
        assert!(k.iter().all(|&x| x > 0.0 && x < 3.0), "{k:?}");
        assert!(k.windows(2).all(|w| w[0] < w[1]), "{k:?}");
        assert!(quantile_knots(&[f64::NAN, 1.0], &[0, 1], 3, |x| x).is_empty());
    }

    #[test]
    fn knot_labels_show_raw_values() {
        assert_eq!(knot_label(3.0, false), "3");
        assert_eq!(knot_label(2.0f64.ln_1p(), true), "2");
        assert_eq!(knot_label(12.3456, false), "12.346");
    }
}
