//! Shape functions of numeric features: a continuous piecewise-linear basis
//! (tents, the degree-1 B-splines, peaking at quantile knots of the
//! transformed value `t`) fitted on the training split and stored in the
//! artifact as extra design columns of the feature ([`Role::Tent`]).
//!
//! Why piecewise-linear rather than natural cubic splines or bins:
//! - **Exact, cheap reasons.** A feature's contribution stays a closed-form
//!   sum `a t + b + sum_k w_k tent_k(t)` evaluated in a handful of
//!   multiply-adds; scoring needs no basis evaluation (a cubic B-spline needs
//!   a knot search and a recursion per value), and the feature's terms fold
//!   into its one reason exactly as the linear term does.
//! - **The linear model is nested.** The value column stays; tents only add
//!   slope changes at the knots. With every tent weight at 0 the model is the linear
//!   one, so the L2 penalty shrinks towards the linear fit, and the linear
//!   choice writes the artifact a linear-only build would (it simply has no
//!   tent columns).
//! - **Tents, not hinges.** Hinges `max(0, t - knot)` span the same
//!   functions but are nearly collinear with `t` and each other (a hinge at
//!   a low knot *is* `t` for most rows), which slowed L-BFGS several-fold;
//!   tents are local, so the design stays well conditioned.
//! - **Sane outside the data.** Outside the training range every tent is 0
//!   and the shape is the linear term (like a natural spline), never a
//!   polynomial swinging away; bins would be
//!   flat there and jump at every edge, which reads badly as a reason
//!   ("43 logins" worse than "44" by a step).
//! - **Thresholds.** A change of slope at a quantile knot follows a threshold
//!   effect (usage collapsing below a level) to within the spacing of knots.
//!
//! Knots are distinct quantiles of the present transformed training values
//! strictly inside their range; each tent rises from the previous knot (or
//! the smallest value) to its knot and falls to the next one (or the
//! largest value). A missing value is imputed at the median as for the
//! value column, and keeps its indicator.

use crate::preprocess::{par_map, DesignColumn, FeatureData, FeaturePrep, Preprocessor, Role};

/// Quantile knots of the present values of `v` at `rows` after `transform`:
/// at most `knots` distinct quantiles at `i / (knots + 1)`, each strictly
/// between the smallest and largest value, with those two values around
/// them (empty when no quantile is inside, or just the two values when
/// `ends_alone` is set and they differ). Uses an evenly strided sample of
/// at most 100k values (knot placement needs no more).
pub(crate) fn quantile_knots(
    v: &[f64],
    rows: &[usize],
    knots: usize,
    transform: impl Fn(f64) -> f64,
    ends_alone: bool,
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
    if out.is_empty() {
        return if ends_alone && lo < hi {
            vec![lo, hi]
        } else {
            out
        };
    }
    // The ends anchor the first and last tent.
    out.insert(0, lo);
    out.push(hi);
    out
}

/// The tent on `left < peak < right` at transformed value `t`: 0 outside
/// `(left, right)`, 1 at `peak`, linear in between.
#[inline]
pub fn tent(t: f64, left: f64, peak: f64, right: f64) -> f64 {
    if t <= left || t >= right {
        0.0
    } else if t <= peak {
        (t - left) / (peak - left)
    } else {
        (right - t) / (right - peak)
    }
}

/// A knot as it reads in a column name: the raw value (undoing log1p),
/// rounded to 3 decimals.
pub(crate) fn knot_label(knot: f64, log1p: bool) -> String {
    let raw = if log1p { knot.exp_m1() } else { knot };
    format!("{}", (raw * 1000.0).round() / 1000.0)
}

/// The tent columns of numeric feature `f` (prep `np`, data `v`) fitted on
/// `rows`: one per interior knot whose tent varies, standardized on those rows.
fn tent_columns(
    f: usize,
    np: &crate::preprocess::NumericPrep,
    v: &[f64],
    rows: &[usize],
    knots: usize,
) -> Vec<DesignColumn> {
    let ts: Vec<f64> = rows.iter().map(|&r| np.imputed(v[r])).collect();
    let n = ts.len().max(1) as f64;
    let mut out = Vec::new();
    let grid = quantile_knots(v, rows, knots, |x| np.transform(x), false);
    for w in grid.windows(3) {
        let (left, peak, right) = (w[0], w[1], w[2]);
        let mean = ts.iter().map(|&t| tent(t, left, peak, right)).sum::<f64>() / n;
        let ss = ts
            .iter()
            .map(|&t| (tent(t, left, peak, right) - mean).powi(2))
            .sum::<f64>();
        let std = (ss / n).sqrt();
        if std > 1e-12 * mean.abs().max(1.0) {
            out.push(DesignColumn {
                name: format!("{}@{}", np.name, knot_label(peak, np.log1p)),
                feature: f,
                role: Role::Tent { left, peak, right },
                mean,
                std,
            });
        }
    }
    out
}

impl Preprocessor {
    /// This preprocessor with shape functions: after the value column of
    /// every numeric feature, up to `knots` tent columns fitted on `rows`
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
        // Features are independent: fit their tents in parallel.
        let tents: Vec<Vec<DesignColumn>> = par_map(self.features.len(), |f| {
            match (&self.features[f], data[f]) {
                (FeaturePrep::Numeric(np), FeatureData::Num(v)) if knots > 0 && has_value(f) => {
                    tent_columns(f, np, v, rows, knots)
                }
                _ => Vec::new(),
            }
        });
        let mut columns = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            columns.push(c.clone());
            if c.role == Role::Value {
                columns.extend(tents[c.feature].iter().cloned());
            }
        }
        Preprocessor {
            features: self.features.clone(),
            columns,
        }
    }

    /// Whether any design column is a shape (tent) term.
    pub fn has_shapes(&self) -> bool {
        self.columns
            .iter()
            .any(|c| matches!(c.role, Role::Tent { .. }))
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
        let k = quantile_knots(&v, &rows, 4, |x| x, false);
        assert_eq!(k, vec![0.0, 199.0, 399.0, 599.0, 799.0, 999.0]);
        // Counts 0..=3, mostly 0: the repeated quantiles collapse.
        let c: Vec<f64> = (0..100)
            .map(|i| [0.0, 0.0, 0.0, 1.0, 2.0, 3.0][i % 6])
            .collect();
        let rows: Vec<usize> = (0..c.len()).collect();
        let k = quantile_knots(&c, &rows, 5, |x| x, false);
        assert_eq!((k[0], k[k.len() - 1]), (0.0, 3.0), "{k:?}");
        assert!(
            k[1..k.len() - 1].iter().all(|&x| x > 0.0 && x < 3.0),
            "{k:?}"
        );
        assert!(k.windows(2).all(|w| w[0] < w[1]), "{k:?}");
        assert!(quantile_knots(&[f64::NAN, 1.0], &[0, 1], 3, |x| x, true).is_empty());
        // Two values: no interior knot, the ends alone when asked for.
        assert!(quantile_knots(&[0.0, 1.0, 1.0], &[0, 1, 2], 3, |x| x, false).is_empty());
        assert_eq!(
            quantile_knots(&[0.0, 1.0, 1.0], &[0, 1, 2], 3, |x| x, true),
            vec![0.0, 1.0]
        );
    }

    #[test]
    fn tents_peak_at_their_knot_and_vanish_outside() {
        assert_eq!(tent(1.0, 1.0, 2.0, 4.0), 0.0);
        assert_eq!(tent(1.5, 1.0, 2.0, 4.0), 0.5);
        assert_eq!(tent(2.0, 1.0, 2.0, 4.0), 1.0);
        assert_eq!(tent(3.0, 1.0, 2.0, 4.0), 0.5);
        assert_eq!(tent(9.0, 1.0, 2.0, 4.0), 0.0);
    }

    #[test]
    fn knot_labels_show_raw_values() {
        assert_eq!(knot_label(3.0, false), "3");
        assert_eq!(knot_label(2.0f64.ln_1p(), true), "2");
        assert_eq!(knot_label(12.3456, false), "12.346");
    }
}
