//! The L2 logistic-regression fit: linfa-logistic's solver (argmin's
//! L-BFGS, memory 10, More-Thuente line search, stopped at a gradient norm)
//! on the objective of the private `log_loss` module, which evaluates linfa-logistic's
//! loss in one parallel sweep instead of three single-threaded passes and a
//! copy of the design (a test checks both reach the same optimum).
//!
//! - **Orientation.** Labels are true for churn, so `weights`/`intercept`
//!   always give the log-odds of churn.
//! - **Scale.** The loss is summed over rows, so its gradient grows with n;
//!   a fixed gradient tolerance is far too strict at 1M rows. We take the
//!   tolerance and L2 strength per row and multiply by n.

use crate::error::{Error, Result};
use crate::log_loss::LogLoss;
use argmin::core::{CostFunction, Executor};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::{Array1, ArrayView2};
use rayon::prelude::*;

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

/// A column-major standardized design matrix prepared for the solver: every
/// column, plus a constant column that stands in for the intercept,
/// multiplied by `s = 1 / sqrt(n * pi * (1 - pi))` (pi = churn rate).
///
/// Why: the loss is summed, so its Hessian is about `n * p(1-p)` times the
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
        Ok(ScaledDesign {
            x,
            n,
            p,
            labels,
            scale,
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
    /// [`Error::Solver`] when the solver fails or the solution is not finite.
    pub fn fit(&self, opts: SolverOptions, init: Option<&LogisticFit>) -> Result<LogisticFit> {
        let (n, p, s) = (self.n, self.p, self.scale);
        let solver_error = |e: argmin::core::Error| Error::Solver {
            message: e.to_string(),
        };
        let start = match init {
            Some(init) if init.weights.len() != p => {
                return Err(Error::Solver {
                    message: format!(
                        "the starting point has {} weights for {p} design columns",
                        init.weights.len()
                    ),
                })
            }
            Some(init) => {
                let mut v: Vec<f64> = init.weights.iter().map(|w| w / s).collect();
                v.push(init.intercept / s);
                Array1::from(v)
            }
            None => Array1::zeros(p + 1),
        };
        let objective = LogLoss::new(&self.x, &self.labels, p + 1, opts.l2 * n as f64 * s * s);
        // A non-finite cell makes every cost non-finite: the solver would
        // stop at the start and return it as if fitted. (Cached: the
        // solver's first evaluation is this one.)
        if !objective.cost(&start).map_err(solver_error)?.is_finite() {
            return Err(Error::Solver {
                message: "the design or the starting point has a non-finite value".into(),
            });
        }
        // linfa-logistic's solver: L-BFGS with memory 10 and a More-Thuente
        // line search, stopped at a gradient norm (summed over rows).
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
            .with_tolerance_grad(opts.gradient_tolerance * n as f64 * s)
            .map_err(solver_error)?;
        let result = Executor::new(objective, solver)
            .configure(|state| state.param(start.clone()).max_iters(opts.max_iterations))
            .run()
            .map_err(solver_error)?;
        let raw = result.state.best_param.unwrap_or(start);
        let weights: Vec<f64> = raw.iter().take(p).map(|w| w * s).collect();
        let intercept = raw.get(p).map_or(0.0, |b| b * s);
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
    /// unpenalized intercept does. Rows run in fixed blocks on the pool,
    /// their sums added in block order (the same on any thread count).
    fn refit_intercept(&self, fit: &mut LogisticFit) {
        const BLOCK: usize = 8192;
        let (n, s) = (self.n, self.scale);
        let mut z = vec![0.0; n];
        z.par_chunks_mut(BLOCK).enumerate().for_each(|(b, zs)| {
            let lo = b * BLOCK;
            for (j, w) in fit.weights.iter().enumerate() {
                let wj = w / s;
                for (zi, xi) in zs.iter_mut().zip(&self.x[j * n + lo..]) {
                    *zi += wj * xi;
                }
            }
        });
        let mut b = fit.intercept;
        for _ in 0..8 {
            let sums: Vec<(f64, f64)> = z
                .par_chunks(BLOCK)
                .zip(self.labels.par_chunks(BLOCK))
                .map(|(zs, ys)| {
                    let (mut g, mut h) = (0.0, 0.0);
                    for (zi, &y) in zs.iter().zip(ys) {
                        let p = 1.0 / (1.0 + (-(zi + b)).exp());
                        g += p - f64::from(u8::from(y));
                        h += p * (1.0 - p);
                    }
                    (g, h)
                })
                .collect();
            let (g, h) = sums
                .iter()
                .fold((0.0, 0.0), |(g, h), (bg, bh)| (g + bg, h + bh));
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
/// [`Error::Solver`] when the solver fails or does not converge to a
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

    /// A non-finite design cell or a starting point of the wrong length is
    /// a solver error, not a model fitted to nothing.
    #[test]
    fn unusable_inputs_are_errors() {
        let opts = SolverOptions {
            l2: 1e-3,
            gradient_tolerance: 1e-6,
            max_iterations: 50,
        };
        let labels = vec![true, false, false, true, false, false];
        let mut x = vec![0.5, -1.0, 0.2, 1.5, -0.3, 0.0];
        let fit = ScaledDesign::new(x.clone(), 1, labels.clone())
            .unwrap()
            .fit(opts, None);
        assert!(fit.is_ok(), "{fit:?}");
        let short = LogisticFit {
            weights: vec![],
            intercept: 0.0,
        };
        let err = ScaledDesign::new(x.clone(), 1, labels.clone())
            .unwrap()
            .fit(opts, Some(&short))
            .unwrap_err();
        assert!(err.to_string().contains("0 weights for 1"), "{err}");
        x[2] = f64::NAN;
        let err = ScaledDesign::new(x, 1, labels)
            .unwrap()
            .fit(opts, None)
            .unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
    }

    /// The solver reaches the optimum linfa-logistic finds for the same
    /// objective (summed log loss, every column of the scaled design
    /// penalized), on correlated columns and a minority class.
    #[test]
    fn reaches_linfa_logistics_optimum() {
        use linfa::prelude::*;
        use linfa_logistic::LogisticRegression;
        use ndarray::ShapeBuilder;
        let (n, p) = (4000, 3);
        let u = |i: usize, k: usize| (((i * 7919 + k * 104_729) % 10_007) as f64 / 10_007.0) - 0.5;
        let mut x = vec![0.0; n * p];
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b, c) = (u(i, 1) * 3.0, u(i, 2) * 2.0, u(i, 3));
            x[i] = a;
            x[n + i] = 0.6 * a + b;
            x[2 * n + i] = c;
            let z = -1.2 + 1.1 * a - 0.7 * (0.6 * a + b) + 0.3 * c;
            labels.push(u(i, 4) + 0.5 < 1.0 / (1.0 + (-z).exp()));
        }
        let opts = SolverOptions {
            l2: 1e-3,
            gradient_tolerance: 1e-9,
            max_iterations: 500,
        };
        let ours = ScaledDesign::new(x.clone(), p, labels.clone())
            .unwrap()
            .fit(opts, None)
            .unwrap();
        let s = ScaledDesign::scale_for(&labels);
        let mut scaled: Vec<f64> = x.iter().map(|v| v * s).collect();
        scaled.resize(n * (p + 1), s);
        let view = ArrayView2::from_shape((n, p + 1).f(), &scaled).unwrap();
        let reference = LogisticRegression::default()
            .with_intercept(false)
            .alpha(opts.l2 * n as f64 * s * s)
            .gradient_tolerance(opts.gradient_tolerance * n as f64 * s)
            .max_iterations(opts.max_iterations)
            .fit(&DatasetBase::new(view, Array1::from(labels)))
            .unwrap();
        let sign = if reference.labels().pos.class {
            1.0
        } else {
            -1.0
        };
        for (j, w) in ours.weights.iter().enumerate() {
            let want = reference.params()[j] * sign * s;
            assert!((w - want).abs() < 1e-6, "weight {j}: {w} vs linfa's {want}");
        }
        // Not a trivial agreement at the starting point (all zero).
        assert!(ours.weights.iter().any(|w| w.abs() > 0.5), "{ours:?}");
    }

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
