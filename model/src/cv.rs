//! Choosing the L2 strength by k-fold cross-validated ROC AUC, and the
//! calibration of its log-odds on the out-of-fold predictions.

use crate::calibration::Calibration;
use crate::error::Result;
use crate::logistic::{self, LogisticFit, SolverOptions};
use crate::metrics::roc_auc;
use crate::train_config::TrainConfig;
use serde::{Deserialize, Serialize};

/// Mean cross-validated ROC AUC of one L2 strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvResult {
    pub l2: f64,
    pub mean_auc: f64,
    pub fold_aucs: Vec<f64>,
}

/// What cross-validation decided.
pub(crate) struct CvOutcome {
    /// Mean and per-fold AUC per strength, strongest first.
    pub results: Vec<CvResult>,
    pub chosen_l2: f64,
    /// The average of the fold solutions at the chosen strength: the final
    /// fit's starting point.
    pub warm_start: LogisticFit,
    /// Platt scaling of the out-of-fold log-odds at the chosen strength.
    pub calibration: Calibration,
}

pub(crate) fn solver_options(config: &TrainConfig, l2: f64) -> SolverOptions {
    SolverOptions {
        l2,
        gradient_tolerance: config.gradient_tolerance,
        max_iterations: config.max_iterations,
    }
}

/// Cross-validates every strength of `config.l2_grid` on `x_cv` (column-major,
/// `y_cv.len()` x `p`) with the fold assignment `folds`.
///
/// # Errors
/// [`Error::Solver`] when a fit fails.
pub(crate) fn cross_validate(
    x_cv: Vec<f64>,
    y_cv: Vec<bool>,
    folds: &[usize],
    p: usize,
    config: &TrainConfig,
) -> Result<CvOutcome> {
    // Strongest penalty first so each fold's path is warm-started from a
    // simpler, nearby solution.
    let mut grid = config.l2_grid.clone();
    grid.sort_by(|a, b| b.total_cmp(a));
    grid.dedup();
    // One cold fit on the whole CV sample at the strongest penalty; every
    // fold starts from it instead of from zero (each fold holds (k-1)/k of
    // this sample, so the solutions are close).
    let fold_results = {
        let pilot = logistic::ScaledDesign::new(x_cv.clone(), p, y_cv.clone())?
            .fit(solver_options(config, grid[0]), None)?;
        run_folds(&x_cv, &y_cv, folds, p, &grid, config, &pilot)?
    };
    let mut cv = Vec::new();
    for (gi, &l2) in grid.iter().enumerate() {
        let fold_aucs: Vec<f64> = fold_results.iter().map(|f| f[gi].auc).collect();
        let mean_auc = fold_aucs.iter().sum::<f64>() / fold_aucs.len() as f64;
        cv.push(CvResult {
            l2,
            mean_auc,
            fold_aucs,
        });
    }
    // Best mean AUC; ties go to the stronger penalty (earlier in `grid`).
    let mut best = 0;
    for (gi, r) in cv.iter().enumerate() {
        if r.mean_auc > cv[best].mean_auc {
            best = gi;
        }
    }
    let chosen_l2 = grid[best];
    // Warm start: the average of the fold solutions at the chosen strength.
    let k = fold_results.len() as f64;
    let mut init = LogisticFit {
        weights: vec![0.0; p],
        intercept: 0.0,
    };
    for f in &fold_results {
        for (w, v) in init.weights.iter_mut().zip(&f[best].fit.weights) {
            *w += v / k;
        }
        init.intercept += f[best].fit.intercept / k;
    }
    // Every CV row's log-odds from the fold model that did not see it.
    let mut oof = vec![0.0; y_cv.len()];
    for (f, fits) in fold_results.iter().enumerate() {
        let rows = folds.iter().enumerate().filter(|&(_, &g)| g == f);
        for ((i, _), &z) in rows.zip(&fits[best].scores) {
            oof[i] = z;
        }
    }
    Ok(CvOutcome {
        results: cv,
        chosen_l2,
        warm_start: init,
        calibration: Calibration::fit(&oof, &y_cv),
    })
}

/// One fold's fit at one grid value, its validation log-odds and AUC.
struct FoldFit {
    fit: LogisticFit,
    scores: Vec<f64>,
    auc: f64,
}

/// One fold's fits, one per grid value.
type FoldFits = Vec<FoldFit>;

/// Per fold, per grid value: the fit, its validation log-odds and AUC. Folds run in
/// parallel on the current rayon pool; each fold is computed independently,
/// so the result does not depend on the thread count.
fn run_folds(
    x: &[f64],
    y: &[bool],
    folds: &[usize],
    p: usize,
    grid: &[f64],
    config: &TrainConfig,
    pilot: &LogisticFit,
) -> Result<Vec<FoldFits>> {
    let k = config.cv_folds;
    let one_fold = |f: usize| -> Result<FoldFits> {
        // `x` is column-major (n x p); split it into column-major fold parts.
        let n = y.len();
        let (mut xt, mut yt, mut xv, mut yv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for j in 0..p {
            let col = &x[j * n..(j + 1) * n];
            for (i, &g) in folds.iter().enumerate() {
                if g == f {
                    xv.push(col[i]);
                } else {
                    xt.push(col[i]);
                }
            }
        }
        for (i, &g) in folds.iter().enumerate() {
            if g == f {
                yv.push(y[i]);
            } else {
                yt.push(y[i]);
            }
        }
        let design = logistic::ScaledDesign::new(xt, p, yt)?;
        let nv = yv.len();
        let mut out = Vec::with_capacity(grid.len());
        let mut prev: Option<LogisticFit> = Some(pilot.clone());
        for &l2 in grid {
            let fit = design.fit(solver_options(config, l2), prev.as_ref())?;
            let scores = fit.logits_col_major(&xv, nv);
            let auc = roc_auc(&yv, &scores);
            prev = Some(fit.clone());
            out.push(FoldFit { fit, scores, auc });
        }
        Ok(out)
    };
    use rayon::prelude::*;
    (0..k)
        .into_par_iter()
        .map(one_fold)
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}
