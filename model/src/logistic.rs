//! The linfa-logistic fit, wrapped to fix two verified pitfalls:
//!
//! - **Orientation.** linfa-logistic makes the *more frequent* class its
//!   positive class, so with churn as the minority its probabilities are
//!   P(retained). We read which class it chose and flip the signs so that
//!   `weights`/`intercept` always give the log-odds of churn.
//! - **Scale.** linfa sums the log loss over rows, so its gradient grows
//!   with n; a fixed gradient tolerance is far too strict at 1M rows. We take
//!   the tolerance and L2 strength per row and multiply by n.

use crate::error::{Error, Result};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, ArrayView2, ShapeBuilder};

/// Log-odds-of-churn parameters on standardized design columns.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticFit {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

impl LogisticFit {
    /// Log-odds of row `x`.
    #[inline]
    pub fn logit(&self, x: &[f64]) -> f64 {
        self.intercept + x.iter().zip(&self.weights).map(|(a, b)| a * b).sum::<f64>()
    }

    /// Log-odds of every row of `x`, a column-major `n`-row design with one
    /// column per weight (a column at a time: contiguous reads).
    pub fn logits_col_major(&self, x: &[f64], n: usize) -> Vec<f64> {
        let mut z = vec![self.intercept; n];
        for (j, w) in self.weights.iter().enumerate() {
            for (zi, v) in z.iter_mut().zip(&x[j * n..(j + 1) * n]) {
                *zi += w * v;
            }
        }
        z
    }
}

/// Solver settings per fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverOptions {
    /// L2 strength per row (objective = mean loss + l2/2 |w|^2).
    pub l2: f64,
    /// Gradient-norm tolerance on the mean loss.
    pub gradient_tolerance: f64,
    pub max_iterations: u64,
}

/// A column-major standardized design matrix prepared for linfa: every
/// column, plus a constant column that stands in for the intercept,
/// multiplied by `s = 1 / sqrt(n * pi * (1 - pi))` (pi = churn rate).
///
/// Why: linfa sums the loss, so its Hessian is about `n * p(1-p)` times the
/// identity on standardized columns, and L-BFGS's first step (the raw
/// gradient, no curvature yet) overshoots by that factor; its line search
/// then spends a dozen passes over the data backing off. After scaling, the
/// Hessian is near the identity, the first unit step is close to Newton's,
/// and a warm-started fit converges in a few passes. The intercept becomes a
/// (slightly) penalized coefficient of the constant column, so
/// [`ScaledDesign::fit`] re-solves the intercept exactly, unpenalized, at the end.
pub struct ScaledDesign {
    x: Vec<f64>,
    n: usize,
    p: usize,
    labels: Vec<bool>,
    scale: f64,
    churn_positive: bool,
}

impl ScaledDesign {
    /// Takes `x` (column-major `n x p`, standardized) and the labels.
    ///
    /// # Errors
    /// [`Error::Solver`] when only one class is present or shapes disagree.
    pub fn new(x: Vec<f64>, p: usize, labels: Vec<bool>) -> Result<ScaledDesign> {
        Self::with_scaling(x, p, labels, false)
    }

    /// The factor [`ScaledDesign::new`] multiplies the design by, for these labels.
    pub fn scale_for(labels: &[bool]) -> f64 {
        let n = labels.len().max(1) as f64;
        let pi = labels.iter().filter(|&&y| y).count() as f64 / n;
        1.0 / (n * pi * (1.0 - pi)).max(f64::MIN_POSITIVE).sqrt()
    }

    /// As [`ScaledDesign::new`] for a design already multiplied by
    /// [`ScaledDesign::scale_for`] (saves a pass over a large matrix).
    ///
    /// # Errors
    /// As [`ScaledDesign::new`].
    pub fn new_prescaled(x: Vec<f64>, p: usize, labels: Vec<bool>) -> Result<ScaledDesign> {
        Self::with_scaling(x, p, labels, true)
    }

    fn with_scaling(
        mut x: Vec<f64>,
        p: usize,
        labels: Vec<bool>,
        prescaled: bool,
    ) -> Result<ScaledDesign> {
        let n = labels.len();
        if x.len() != n * p {
            return Err(Error::Solver {
                message: format!("design has {} cells, expected {n} x {p}", x.len()),
            });
        }
        let churned = labels.iter().filter(|&&y| y).count();
        if churned == 0 || churned == n {
            return Err(Error::Solver {
                message: "both classes are needed to fit".into(),
            });
        }
        let scale = Self::scale_for(&labels);
        if !prescaled {
            x.iter_mut().for_each(|v| *v *= scale);
        }
        x.resize(n * (p + 1), scale);
        // linfa's positive class: the majority class, or the first-seen class on a tie.
        let churn_positive = churned * 2 > n || (churned * 2 == n && labels[0]);
        Ok(ScaledDesign {
            x,
            n,
            p,
            labels,
            scale,
            churn_positive,
        })
    }

    /// Rows.
    pub fn n_rows(&self) -> usize {
        self.n
    }

    /// Fits, optionally warm-started from `init` (in unscaled units), and
    /// returns log-odds-of-churn parameters on the unscaled standardized columns.
    ///
    /// # Errors
    /// [`Error::Solver`] when linfa fails or the solution is not finite.
    pub fn fit(&self, opts: SolverOptions, init: Option<&LogisticFit>) -> Result<LogisticFit> {
        let (n, p, s) = (self.n, self.p, self.scale);
        let view = ArrayView2::from_shape((n, p + 1).f(), &self.x).map_err(|e| Error::Solver {
            message: e.to_string(),
        })?;
        let sign = if self.churn_positive { 1.0 } else { -1.0 };
        let mut params = LogisticRegression::default()
            .with_intercept(false)
            .alpha(opts.l2 * n as f64 * s * s)
            .gradient_tolerance(opts.gradient_tolerance * n as f64 * s)
            .max_iterations(opts.max_iterations);
        if let Some(init) = init {
            let mut v: Vec<f64> = init.weights.iter().map(|w| w * sign / s).collect();
            v.push(init.intercept * sign / s);
            params = params.initial_params(Array1::from(v));
        }
        let dataset = DatasetBase::new(view, Array1::from(self.labels.clone()));
        let model = params.fit(&dataset).map_err(|e| Error::Solver {
            message: e.to_string(),
        })?;
        // Authoritative orientation check: which label did linfa treat as positive?
        let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
        let raw = model.params();
        let weights: Vec<f64> = raw.iter().take(p).map(|w| w * sign * s).collect();
        let intercept = raw.get(p).map_or(0.0, |b| b * sign * s);
        let mut fit = LogisticFit { weights, intercept };
        self.refit_intercept(&mut fit);
        if !fit.intercept.is_finite() || fit.weights.iter().any(|w| !w.is_finite()) {
            return Err(Error::Solver {
                message: "the fit diverged (non-finite coefficients)".into(),
            });
        }
        Ok(fit)
    }

    /// Newton's method on the intercept alone (weights fixed, no penalty):
    /// makes the mean predicted probability equal the churn rate, as an
    /// unpenalized intercept does.
    fn refit_intercept(&self, fit: &mut LogisticFit) {
        let (n, s) = (self.n, self.scale);
        let mut z = vec![0.0; n];
        for (j, w) in fit.weights.iter().enumerate() {
            let wj = w / s;
            for (zi, xi) in z.iter_mut().zip(&self.x[j * n..(j + 1) * n]) {
                *zi += wj * xi;
            }
        }
        let mut b = fit.intercept;
        for _ in 0..8 {
            let (mut g, mut h) = (0.0, 0.0);
            for (zi, &y) in z.iter().zip(&self.labels) {
                let p = 1.0 / (1.0 + (-(zi + b)).exp());
                g += p - y as u8 as f64;
                h += p * (1.0 - p);
            }
            if h <= 0.0 {
                break;
            }
            let step = g / h;
            b -= step;
            if step.abs() < 1e-12 {
                break;
            }
        }
        if b.is_finite() {
            fit.intercept = b;
        }
    }
}

/// Fits a binary L2 logistic regression of `labels` (true = churn) on `x`
/// (rows x design columns, standardized), optionally warm-started from `init`.
///
/// # Errors
/// [`Error::Solver`] when linfa rejects the data or fails to converge to a
/// finite solution; both classes must be present.
pub fn fit(
    x: ArrayView2<'_, f64>,
    labels: &[bool],
    opts: SolverOptions,
    init: Option<&LogisticFit>,
) -> Result<LogisticFit> {
    let (n, p) = x.dim();
    let mut col_major = Vec::with_capacity(n * (p + 1));
    for j in 0..p {
        col_major.extend(x.column(j).iter().copied());
    }
    ScaledDesign::new(col_major, p, labels.to_vec())?.fit(opts, init)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Churn is the minority and rises with x: the returned weight must be
    /// positive and the mean probability near the churn rate.
    #[test]
    fn orientation_is_probability_of_churn() {
        let n = 2000;
        let xs: Vec<f64> = (0..n).map(|i| (i as f64 / n as f64) * 4.0 - 2.0).collect();
        // Deterministic labels: churn when x is high, plus a little overlap.
        let labels: Vec<bool> = xs
            .iter()
            .enumerate()
            .map(|(i, &x)| x > 1.0 || (i % 17 == 0 && x > 0.0))
            .collect();
        let rate = labels.iter().filter(|&&y| y).count() as f64 / n as f64;
        assert!(rate < 0.5);
        let x = Array2::from_shape_vec((n, 1), xs.clone()).unwrap();
        let opts = SolverOptions {
            l2: 1e-4,
            gradient_tolerance: 1e-6,
            max_iterations: 200,
        };
        let fit = fit(x.view(), &labels, opts, None).unwrap();
        assert!(fit.weights[0] > 0.0, "weight {}", fit.weights[0]);
        let mean_p: f64 = xs
            .iter()
            .map(|&v| 1.0 / (1.0 + (-fit.logit(&[v])).exp()))
            .sum::<f64>()
            / n as f64;
        assert!(
            (mean_p - rate).abs() < 0.02,
            "mean p {mean_p} vs rate {rate}"
        );
    }
}
