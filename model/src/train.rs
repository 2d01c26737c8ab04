//! Training: validate, split, fit preprocessing, choose L2 by cross-validated
//! ROC AUC, fit the final model on the whole training split, evaluate on the
//! holdout, choose risk bands, and seal the artifact.
//!
//! Keeping a million-row fit to about a second (linfa-logistic alone took
//! 73 s on unscaled data):
//! - design matrices are standardized, column-major and scaled so that
//!   linfa's Hessian is near the identity (see [`crate::logistic`]);
//! - cross-validation runs on a stratified subsample of at most
//!   `cv_max_rows` training rows, folds in parallel, each fold's
//!   L2 path warm-started from a pilot fit and then from the previous
//!   strength;
//! - the final fit on the whole training split starts from the average of
//!   the fold solutions at the chosen strength, so it needs few iterations;
//! - holdout metrics come from the same [`Scorer`] that serves scores, so
//!   [`evaluate`] on the holdout reproduces them exactly.

use crate::artifact::{Coefficient, ModelArtifact, TrainingSummary, SCHEMA_VERSION};
use crate::band::BandCutoffs;
pub use crate::cv::CvResult;
use crate::cv::{cross_validate, solver_options, CvOutcome};
use crate::error::{Error, Result};
use crate::label;
use crate::logistic;
use crate::metrics::Metrics;
use crate::preprocess::{feature_data, FeatureData, FeaturePrep, PrepOptions, Preprocessor};
use crate::schema::Schema;
use crate::scoring::Scorer;
use crate::split::{stratified_folds, stratified_split, stratified_subsample};
use crate::table::Table;
pub use crate::train_config::{TrainConfig, TrainConfigBuilder};
use crate::validate::{check_balance, check_ids, check_shape};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What happened during training, for people (not stored in the artifact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    /// Dropped constant columns and other things worth a look.
    pub warnings: Vec<String>,
    /// Per feature: skewness and whether log1p was applied.
    pub log1p_decisions: Vec<(String, f64, bool)>,
    /// Rows used for cross-validation (a subsample when the training split is large).
    pub cv_rows: usize,
    pub cv: Vec<CvResult>,
    pub chosen_l2: f64,
    pub train_rows: usize,
    pub holdout_rows: usize,
    /// Wall-clock seconds per stage (preprocess, cv, fit, evaluate).
    pub timings: Vec<(String, f64)>,
}

/// A trained model with its report and the holdout row indices (0-based
/// positions in the input table).
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub artifact: ModelArtifact,
    pub report: TrainingReport,
    pub holdout_rows: Vec<usize>,
}

/// Trains a model on `table`.
///
/// # Errors
/// Label, id, schema and class-balance errors naming the row and column (see
/// [`Error`]); [`Error::InvalidConfig`]; [`Error::NoFeatures`]; [`Error::Solver`].
pub fn train(table: &Table, schema: &Schema, config: &TrainConfig) -> Result<TrainOutcome> {
    config.validate()?;
    let mut timings = Vec::new();
    let t0 = Instant::now();
    check_shape(table)?;
    let labels = label::labels(table, &config.label_column)?;
    check_ids(table, &config.id_column)?;
    check_balance(&labels, &config.label_column, config.min_minority_rows)?;

    timings.push(("validate".to_string(), t0.elapsed().as_secs_f64()));
    let t0 = Instant::now();
    let cols = schema.resolve(table, &config.id_column, &config.label_column)?;
    let data: Vec<FeatureData<'_>> = cols
        .iter()
        .map(|c| feature_data(table, c))
        .collect::<Result<_>>()?;
    let (train_rows, holdout_rows) =
        stratified_split(&labels, config.holdout_fraction, config.seed);
    let holdout_churned = holdout_rows.iter().filter(|&&r| labels[r]).count();
    if holdout_churned == 0 || holdout_churned == holdout_rows.len() {
        return Err(Error::InvalidConfig {
            message: format!(
                "holdout_fraction {} leaves the holdout without both classes",
                config.holdout_fraction
            ),
        });
    }
    let opts = PrepOptions {
        min_level_count: config.min_level_count,
        skew_threshold: config.skew_threshold,
    };
    let fitted = Preprocessor::fit(&cols, &data, &train_rows, opts);
    if fitted.prep.columns.is_empty() {
        return Err(Error::NoFeatures);
    }
    let prep = fitted.prep;
    let kept: Vec<&FeatureData<'_>> = fitted.data.iter().map(|&i| &data[i]).collect();
    let p = prep.columns.len();
    timings.push(("preprocess".to_string(), t0.elapsed().as_secs_f64()));

    // Cross-validation on a (sub)sample of the training split.
    let t1 = Instant::now();
    let cv_rows = stratified_subsample(&train_rows, &labels, config.cv_max_rows, config.seed);
    let mut x_cv = Vec::new();
    prep.design_col_major(&kept, &cv_rows, &mut x_cv);
    let y_cv: Vec<bool> = cv_rows.iter().map(|&r| labels[r]).collect();
    let folds = stratified_folds(&cv_rows, &labels, config.cv_folds, config.seed);
    let CvOutcome {
        results: cv,
        chosen_l2,
        warm_start: init,
    } = cross_validate(x_cv, y_cv, &folds, p, config)?;
    timings.push(("cv".to_string(), t1.elapsed().as_secs_f64()));

    // Final fit on the whole training split.
    let t2 = Instant::now();
    let y_train: Vec<bool> = train_rows.iter().map(|&r| labels[r]).collect();
    let mut x = Vec::with_capacity(train_rows.len() * (p + 1));
    let scale = logistic::ScaledDesign::scale_for(&y_train);
    prep.design_col_major_scaled(&kept, &train_rows, scale, &mut x);
    timings.push(("design".to_string(), t2.elapsed().as_secs_f64()));
    let t2 = Instant::now();
    let design = logistic::ScaledDesign::new_prescaled(x, p, y_train.clone())?;
    let model = design.fit(solver_options(config, chosen_l2), Some(&init))?;
    drop(design);
    timings.push(("fit".to_string(), t2.elapsed().as_secs_f64()));

    // Evaluate on the holdout with the same code path that serves scores.
    let t3 = Instant::now();
    let train_churned = y_train.iter().filter(|&&y| y).count() as u64;
    let coefficients = prep
        .columns
        .iter()
        .zip(&model.weights)
        .map(|(c, &w)| Coefficient {
            name: c.name.clone(),
            value: w,
        })
        .collect();
    let log1p_decisions = prep
        .features
        .iter()
        .filter_map(|f| match f {
            FeaturePrep::Numeric(n) => Some((n.name.clone(), n.skew, n.log1p)),
            FeaturePrep::Categorical(_) => None,
        })
        .collect();
    let mut artifact = ModelArtifact {
        schema_version: SCHEMA_VERSION,
        model_id: String::new(),
        created_at: config.created_at.clone(),
        id_column: config.id_column.clone(),
        label_column: config.label_column.clone(),
        training: TrainingSummary {
            train_rows: train_rows.len() as u64,
            holdout_rows: holdout_rows.len() as u64,
            train_churned,
            train_retained: train_rows.len() as u64 - train_churned,
            seed: config.seed,
        },
        preprocessing: prep,
        coefficients,
        intercept: model.intercept,
        l2: chosen_l2,
        bands: BandCutoffs {
            high: 1.0,
            medium: 1.0,
            policy: config.bands,
        },
        metrics: Metrics::compute(&[], &[], 1.0),
        reference: fitted.reference,
    };
    let probs = Scorer::new(&artifact).score_rows(table, &holdout_rows)?;
    let y_hold: Vec<bool> = holdout_rows.iter().map(|&r| labels[r]).collect();
    artifact.bands = BandCutoffs::from_policy(config.bands, &probs);
    artifact.metrics = Metrics::compute(&y_hold, &probs, artifact.bands.high);
    artifact.seal();
    timings.push(("evaluate".to_string(), t3.elapsed().as_secs_f64()));

    let report = TrainingReport {
        warnings: fitted.warnings,
        log1p_decisions,
        cv_rows: cv_rows.len(),
        cv,
        chosen_l2,
        train_rows: train_rows.len(),
        holdout_rows: holdout_rows.len(),
        timings,
    };
    Ok(TrainOutcome {
        artifact,
        report,
        holdout_rows,
    })
}

/// Metrics of `artifact` on the rows of `rows` it can score, and those rows.
///
/// A champion may refuse values of a newer snapshot (a negative value where
/// its training saw none); a fair comparison with a challenger then uses
/// the rows both can score, which the caller gets back for that purpose.
///
/// # Errors
/// As [`evaluate`], except that rows the artifact cannot score are left out.
pub fn evaluate_scorable(
    artifact: &ModelArtifact,
    table: &Table,
    rows: &[usize],
    label_column: &str,
) -> Result<(Metrics, Vec<usize>)> {
    let n = check_shape(table)?;
    let labels = label::labels(table, label_column)?;
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::InvalidConfig {
            message: format!("row index {bad} is outside the table ({n} rows)"),
        });
    }
    let probs = Scorer::new(artifact).score_rows_scorable(table, rows);
    let (mut kept, mut y, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for (&r, prob) in rows.iter().zip(probs) {
        if let Some(prob) = prob {
            kept.push(r);
            y.push(labels[r]);
            p.push(prob);
        }
    }
    Ok((Metrics::compute(&y, &p, artifact.bands.high), kept))
}

/// Scores `rows` (0-based positions) of `table` with `artifact` and returns
/// the metrics, e.g. to compare a champion on a challenger's holdout. The
/// confusion matrix uses the artifact's `high` cutoff.
///
/// # Errors
/// Missing label column or bad labels (naming row and column), or a scoring
/// error naming the row and field.
pub fn evaluate(
    artifact: &ModelArtifact,
    table: &Table,
    rows: &[usize],
    label_column: &str,
) -> Result<Metrics> {
    let n = check_shape(table)?;
    let labels = label::labels(table, label_column)?;
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::InvalidConfig {
            message: format!("row index {bad} is outside the table ({n} rows)"),
        });
    }
    let probs = Scorer::new(artifact).score_rows(table, rows)?;
    let y: Vec<bool> = rows.iter().map(|&r| labels[r]).collect();
    Ok(Metrics::compute(&y, &probs, artifact.bands.high))
}
