//! Choosing the model's complexity by cross-validation: linear, shape
//! functions ([`crate::shape`]), shapes with product terms of screened pairs
//! ([`crate::product`]), each tried only when a screen ([`crate::interaction`])
//! finds signal the simpler model leaves, all on one subsample and one set of
//! folds, so the comparison is paired; the simplest within
//! `complexity_tolerance` of the best mean CV ROC AUC wins.

use crate::calibration::Calibration;
use crate::cv::{cross_validate, CvOutcome};
use crate::error::Result;
use crate::interaction::{bent_features, screen_pairs, PairGain, ScreenBins};
use crate::preprocess::{FeatureData, Preprocessor};
use crate::split::{stratified_folds, stratified_subsample};
use crate::train_config::TrainConfig;
use serde::{Deserialize, Serialize};

/// How rich the model's design is; cross-validation chooses. Simplest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// One term per numeric value, missing indicator and level.
    #[default]
    Linear,
    /// Linear plus a shape function per numeric feature (see [`crate::shape`]).
    Shapes,
    /// Shapes plus product terms of the screened feature pairs (see
    /// [`crate::product`]).
    ShapesAndInteractions,
    /// Linear plus product terms of the screened pairs, tried instead of
    /// shapes and interactions when no feature needed a shape (the 1-D
    /// screen found none).
    Interactions,
}

impl std::fmt::Display for Complexity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Complexity::Linear => "linear",
            Complexity::Shapes => "shapes",
            Complexity::ShapesAndInteractions => "shapes_and_interactions",
            Complexity::Interactions => "interactions",
        })
    }
}

/// The cross-validation of one complexity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplexityResult {
    pub complexity: Complexity,
    /// Design columns (coefficients) of the model.
    pub design_columns: usize,
    /// Its best mean CV ROC AUC over the L2 grid.
    pub cv_auc: f64,
    /// The L2 strength that reached it.
    pub l2: f64,
}

/// What cross-validation chose: the complexity, its preprocessing and L2.
pub(crate) struct Choice {
    pub complexity: Complexity,
    pub prep: Preprocessor,
    pub cv: CvOutcome,
    pub results: Vec<ComplexityResult>,
    /// The interaction screen's pairs, strongest first.
    pub screen: Vec<PairGain>,
    /// Rows cross-validation used (a stratified subsample of the training split).
    pub rows: Vec<usize>,
}

/// Cross-validates every complexity on the same stratified (sub)sample of
/// the training split and folds, and keeps the simplest within
/// `config.complexity_tolerance` of the best mean ROC AUC: linear, then
/// shapes (only when the linear model leaves signal along some numeric
/// feature, by the same kind of screen), then shapes with the product terms of the pairs the interaction
/// screen finds on the best main-effects model's residuals (no such
/// candidate when the screen finds none). Shape and product terms are
/// fitted on that subsample (quantile knots and standardization need no
/// more rows), so a linear winner costs only the extra cross-validation.
///
/// # Errors
/// [`Error::Solver`] when a fit fails.
pub(crate) fn choose_complexity(
    linear: &Preprocessor,
    data: &[&FeatureData<'_>],
    train_rows: &[usize],
    labels: &[bool],
    config: &TrainConfig,
) -> Result<Choice> {
    let rows = stratified_subsample(train_rows, labels, config.cv_max_rows, config.seed);
    let y: Vec<bool> = rows.iter().map(|&r| labels[r]).collect();
    let cv = |prep: &Preprocessor| cross_validate_prep(prep, data, &rows, labels, config);
    let logits = |prep: &Preprocessor, cv: &CvOutcome| fold_average_logits(prep, data, &rows, cv);
    let mut tried = vec![(Complexity::Linear, linear.clone())];
    let mut outcomes = vec![cv(linear)?];
    // Shapes only when the linear model leaves signal along some feature.
    let bins = ScreenBins::of(&linear.features, data, &rows);
    let bent = bent_features(&linear.features, &bins, &y, &logits(linear, &outcomes[0]));
    if !bent.is_empty() {
        let shaped = linear.with_shapes(data, &rows, config.shape_knots);
        if shaped.columns.len() > linear.columns.len() {
            outcomes.push(cv(&shaped)?);
            tried.push((Complexity::Shapes, shaped));
        }
    }
    // The pairs screened against the better main-effects model.
    let main = if best_auc(&outcomes[outcomes.len() - 1]) > best_auc(&outcomes[0]) {
        outcomes.len() - 1
    } else {
        0
    };
    let screen = if config.max_interactions == 0 {
        Vec::new()
    } else {
        let (prep, cv) = (&tried[main].1, &outcomes[main]);
        screen_pairs(
            &prep.features,
            &bins,
            &y,
            &logits(prep, cv),
            config.max_interactions,
        )
    };
    if !screen.is_empty() {
        let base = &tried[tried.len() - 1].1;
        let pairs = pair_indices(base, &screen);
        let with_pairs = base.with_interactions(data, &rows, &pairs);
        if with_pairs.columns.len() > base.columns.len() {
            outcomes.push(cv(&with_pairs)?);
            let complexity = if tried.len() > 1 {
                Complexity::ShapesAndInteractions
            } else {
                Complexity::Interactions
            };
            tried.push((complexity, with_pairs));
        }
    }
    let results: Vec<ComplexityResult> = tried
        .iter()
        .zip(&outcomes)
        .map(|((complexity, prep), cv)| ComplexityResult {
            complexity: *complexity,
            design_columns: prep.columns.len(),
            cv_auc: best_auc(cv),
            l2: cv.chosen_l2,
        })
        .collect();
    let pick = simplest_within(&results, config.complexity_tolerance);
    let (complexity, prep) = tried.swap_remove(pick);
    Ok(Choice {
        complexity,
        prep,
        cv: outcomes.swap_remove(pick),
        results,
        screen,
        rows,
    })
}

/// The feature indices in `prep` of each screened pair.
fn pair_indices(prep: &Preprocessor, screen: &[PairGain]) -> Vec<(usize, usize)> {
    let index = |name: &str| prep.features.iter().position(|f| f.name() == name);
    screen
        .iter()
        .filter_map(|g| Some((index(&g.features.0)?, index(&g.features.1)?)))
        .collect()
}

/// The log-odds of `rows` under the model `prep` with the fold-averaged
/// solution of its cross-validation, `cv` (what the screens test against).
fn fold_average_logits(
    prep: &Preprocessor,
    data: &[&FeatureData<'_>],
    rows: &[usize],
    cv: &CvOutcome,
) -> Vec<f64> {
    let mut x = Vec::new();
    prep.design_col_major(data, rows, &mut x);
    cv.warm_start.logits_col_major(&x, rows.len())
}

/// The calibration applied to the final fit: the cross-validation's Platt
/// scaling for shapes and interactions, whose heavier penalty shrinks the
/// log-odds; none for the linear model, which stays what earlier builds
/// wrote for the same data when the training split fits in `cv_max_rows`
/// (to rounding, and as long as rounding does not flip a near-tie in the
/// L2 or complexity choice); a larger split's CV subsample is drawn
/// differently since the subsample became a partial shuffle.
pub(crate) fn calibration_for(complexity: Complexity, cv: &CvOutcome) -> Calibration {
    match complexity {
        Complexity::Linear => Calibration::default(),
        Complexity::Shapes | Complexity::ShapesAndInteractions | Complexity::Interactions => {
            cv.calibration
        }
    }
}

/// The best mean CV ROC AUC over the L2 grid.
fn best_auc(cv: &CvOutcome) -> f64 {
    cv.results
        .iter()
        .map(|r| r.mean_auc)
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Index of the first (simplest) result within `tolerance` of the best AUC.
fn simplest_within(results: &[ComplexityResult], tolerance: f64) -> usize {
    let best = results
        .iter()
        .map(|r| r.cv_auc)
        .fold(f64::NEG_INFINITY, f64::max);
    results
        .iter()
        .position(|r| r.cv_auc >= best - tolerance)
        .unwrap_or(0)
}

/// The L2 choice by k-fold cross-validation of the model with `prep` on
/// `rows` (`data[f]` is the data of `prep.features[f]`).
///
/// # Errors
/// [`Error::Solver`] when a fit fails.
fn cross_validate_prep(
    prep: &Preprocessor,
    data: &[&FeatureData<'_>],
    rows: &[usize],
    labels: &[bool],
    config: &TrainConfig,
) -> Result<CvOutcome> {
    let mut x_cv = Vec::new();
    prep.design_col_major(data, rows, &mut x_cv);
    let y_cv: Vec<bool> = rows.iter().map(|&r| labels[r]).collect();
    let folds = stratified_folds(rows, labels, config.cv_folds, config.seed);
    cross_validate(x_cv, y_cv, &folds, prep.columns.len(), config)
}
