//! Training: validate, sample a table over the row cap (see
//! [`crate::sample`]), split, fit preprocessing, choose the complexity
//! (linear, shapes, shapes with interactions; see `complexity`) and L2 by
//! cross-validated ROC AUC, fit the final model on the whole training split
//! and calibrate it, evaluate on the
//! holdout, choose risk bands, and seal the artifact. Each stage is a
//! function of its own; the artifact is assembled in one piece from the
//! finished stages and sealed then, so no field of it is ever a stand-in
//! filled in later.
//!
//! Keeping a million-row fit to about a second (linfa-logistic alone took
//! 73 s on unscaled data):
//! - design matrices are standardized, column-major and scaled so that
//!   the Hessian is near the identity (see [`crate::logistic`]), and the
//!   objective is evaluated in one parallel sweep over row blocks (see
//!   `log_loss`);
//! - cross-validation runs on a stratified subsample of at most
//!   `cv_max_rows` training rows, folds in parallel, each fold's
//!   L2 path warm-started from a pilot fit and then from the previous
//!   strength;
//! - the final fit on the whole training split starts from the average of
//!   the fold solutions at the chosen strength, so it needs few iterations;
//! - holdout metrics come from the same folded model that [`Scorer`] serves
//!   scores with, so [`evaluate`] on the holdout reproduces them exactly.

use crate::artifact::{Coefficient, ModelArtifact, TrainingSummary};
use crate::attributes::AttributeColumns;
use crate::band::{BandCutoffs, BandPolicy, RiskBand};
use crate::calibration::Calibration;
use crate::complexity::{calibration_for, choose_complexity};
pub use crate::complexity::{Complexity, ComplexityResult};
use crate::curves::HoldoutCurves;
pub use crate::cv::CvResult;
use crate::cv::{solver_options, CvOutcome};
use crate::error::{Error, Result};
use crate::interaction::PairGain;
use crate::label;
use crate::logistic::{self, LogisticFit};
use crate::metrics::Metrics;
use crate::preprocess::{feature_data, FeatureData, FeaturePrep, PrepOptions, Preprocessor};
use crate::reference::{BandShares, FeatureImportance, HoldoutProfile, ReferenceBins};
pub use crate::sample::Population;
use crate::sample::RowSample;
use crate::schema::{ResolvedColumn, Schema};
use crate::scoring::{FoldedModel, Scorer};
use crate::split::stratified_split;
use crate::table::Table;
pub use crate::train_config::{TrainConfig, TrainConfigBuilder, MIN_MAX_ROWS};
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
    /// Per L2 strength, the cross-validation of the chosen complexity.
    pub cv: Vec<CvResult>,
    pub chosen_l2: f64,
    /// Each complexity tried, simplest first, with its best mean CV ROC AUC
    /// (same folds for all, so the comparison is paired).
    #[serde(default)]
    pub complexities: Vec<ComplexityResult>,
    /// The simplest complexity within `complexity_tolerance` of the best.
    #[serde(default)]
    pub complexity: Complexity,
    /// Feature pairs the main-effects model leaves the most signal in, by
    /// the interaction screen (see [`crate::interaction`]), strongest first;
    /// at most `max_interactions`. They are the model's interaction terms
    /// when `complexity` is `shapes_and_interactions`.
    #[serde(default)]
    pub interaction_screen: Vec<PairGain>,
    /// Platt scaling applied to the final fit's log-odds (see
    /// [`crate::calibration`]).
    #[serde(default)]
    pub calibration: Calibration,
    /// Rows of the input table.
    #[serde(default)]
    pub rows_read: usize,
    /// Rows trained on (training split plus holdout): all of them, or the
    /// stratified sample of `max_rows` when the table was larger.
    #[serde(default)]
    pub rows_sampled: usize,
    /// Added to the intercept so probabilities are of the whole table's
    /// base rate, not the churner-rich sample's (0 when not sampled).
    /// Holdout metrics and band cutoffs are of the sample's holdout.
    #[serde(default)]
    pub sampling_shift: f64,
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

/// Trains a model on `table`. A table of more than `config.max_rows` rows
/// is trained on a stratified sample of that many (see [`crate::sample`]);
/// `holdout_rows` are positions in `table` either way. The artifact records
/// the table's attribute columns ([`Schema::attribute_columns`]).
///
/// # Errors
/// Label, id, schema and class-balance errors naming the row and column (see
/// [`Error`]); [`Error::MissingColumn`] for an `[attributes]` column the
/// table lacks (checked first); [`Error::InvalidConfig`];
/// [`Error::NoFeatures`]; [`Error::Solver`].
pub fn train(table: &Table, schema: &Schema, config: &TrainConfig) -> Result<TrainOutcome> {
    config.validate()?;
    attribute_columns(table, schema)?;
    let clock = Stopwatch::start();
    let all_labels = validated_labels(table, config)?;
    let population = Population::of(&all_labels);
    let Some(sample) = RowSample::draw(table, &all_labels, config) else {
        return train_on(table, all_labels, population, schema, config, clock);
    };
    let mut out = train_on(
        &sample.table,
        sample.labels,
        population,
        schema,
        config,
        clock,
    )?;
    out.holdout_rows = out.holdout_rows.iter().map(|&r| sample.rows[r]).collect();
    Ok(out)
}

/// Trains on `sample`, rows a reader drew from a larger source (a streamed
/// reservoir, say) whose rows and churners `population` counts: as
/// [`train`] on that source would, with the intercept shifted to the
/// source's churn odds. `holdout_rows` are positions in `sample`.
///
/// # Errors
/// As [`train`]; [`Error::InvalidConfig`] when `population` has fewer rows
/// or churners than the sample.
pub fn train_sample(
    sample: &Table,
    population: Population,
    schema: &Schema,
    config: &TrainConfig,
) -> Result<TrainOutcome> {
    config.validate()?;
    attribute_columns(sample, schema)?;
    let clock = Stopwatch::start();
    let labels = validated_labels(sample, config)?;
    let own = Population::of(&labels);
    if population.rows < own.rows
        || population.churned < own.churned
        || population.rows - population.churned < own.rows - own.churned
    {
        return Err(Error::InvalidConfig {
            message: format!(
                "the source counts ({} rows, {} churned) are fewer than the sample's ({} rows, {} churned)",
                population.rows, population.churned, own.rows, own.churned
            ),
        });
    }
    train_on(sample, labels, population, schema, config, clock)
}

/// The attribute columns of `table` under `schema`.
///
/// # Errors
/// [`Error::MissingColumn`] for an `[attributes]` column `table` lacks.
fn attribute_columns(table: &Table, schema: &Schema) -> Result<AttributeColumns> {
    schema.attribute_columns(table.columns.iter().map(|c| c.name.as_str()))
}

/// Training on `table` (labels `labels`, already validated) drawn from
/// `population`; `clock` started before validation.
fn train_on(
    table: &Table,
    labels: Vec<bool>,
    population: Population,
    schema: &Schema,
    config: &TrainConfig,
    mut clock: Stopwatch,
) -> Result<TrainOutcome> {
    clock.lap("validate");
    let attributes = attribute_columns(table, schema)?;
    let mut prepared = prepare(table, schema, config, &labels)?;
    clock.lap("preprocess");
    let choice = choose_complexity(
        &prepared.prep,
        &prepared.kept_data(),
        &prepared.train_rows,
        &labels,
        config,
    )?;
    prepared.prep = choice.prep;
    let interaction_screen = choice.screen;
    let (cv, cv_rows) = (choice.cv, choice.rows.len());
    clock.lap("cv");
    let (x, y_train) = training_design(&prepared, &labels);
    clock.lap("design");
    let mut fit = fit_final(x, y_train, prepared.prep.columns.len(), config, &cv)?;
    let calibration = calibration_for(choice.complexity, &cv);
    calibration.apply(&mut fit);
    let sampling_shift = population.intercept_shift(&Population::of(&labels));
    fit.intercept += sampling_shift;
    clock.lap("fit");
    let model = FittedModel::new(prepared.prep, &fit, cv.chosen_l2);
    let evaluation = evaluate_holdout(
        &model.folded(),
        table,
        &prepared.holdout_rows,
        &labels,
        config.bands,
    )?;
    let training = training_summary(
        &prepared.train_rows,
        &prepared.holdout_rows,
        &labels,
        config,
    );
    let log1p_decisions = log1p_decisions(&model.preprocessing);
    let artifact = assemble_artifact(
        config,
        training,
        model,
        evaluation,
        prepared.reference,
        attributes,
    );
    clock.lap("evaluate");
    let report = TrainingReport {
        warnings: prepared.warnings,
        log1p_decisions,
        cv_rows,
        cv: cv.results,
        chosen_l2: cv.chosen_l2,
        complexities: choice.results,
        complexity: choice.complexity,
        interaction_screen,
        calibration,
        rows_read: population.rows,
        rows_sampled: labels.len(),
        sampling_shift,
        train_rows: prepared.train_rows.len(),
        holdout_rows: prepared.holdout_rows.len(),
        timings: clock.laps,
    };
    Ok(TrainOutcome {
        artifact,
        report,
        holdout_rows: prepared.holdout_rows,
    })
}

/// Wall-clock seconds per stage, each stage timed from the end of the one
/// before.
struct Stopwatch {
    last: Instant,
    laps: Vec<(String, f64)>,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            last: Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Records the time since the last lap as `stage`.
    fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.laps
            .push((stage.to_string(), (now - self.last).as_secs_f64()));
        self.last = now;
    }
}

/// The labels of `table`, once its shape, ids and class balance pass.
fn validated_labels(table: &Table, config: &TrainConfig) -> Result<Vec<bool>> {
    check_shape(table)?;
    let labels = label::labels(table, &config.label_column)?;
    check_ids(table, &config.id_column)?;
    check_balance(&labels, &config.label_column, config.min_minority_rows)?;
    Ok(labels)
}

/// Preprocessing fitted on the training split, with the data and split it
/// was fitted on.
struct Prepared<'a> {
    prep: Preprocessor,
    reference: Vec<ReferenceBins>,
    warnings: Vec<String>,
    /// Data of every resolved column (borrowed from the table where it can be).
    data: Vec<FeatureData<'a>>,
    /// Index into `data` of each feature of `prep`, in order.
    kept: Vec<usize>,
    train_rows: Vec<usize>,
    holdout_rows: Vec<usize>,
}

impl<'a> Prepared<'a> {
    /// The data of each feature of `prep`, in order.
    fn kept_data(&self) -> Vec<&FeatureData<'a>> {
        self.kept.iter().map(|&i| &self.data[i]).collect()
    }
}

/// Resolves the feature columns, splits the rows and fits preprocessing on
/// the training split.
///
/// # Errors
/// Schema and cell errors naming the row and column;
/// [`Error::InvalidConfig`] when the holdout lacks a class;
/// [`Error::NoFeatures`] when no column carries information.
fn prepare<'a>(
    table: &'a Table,
    schema: &Schema,
    config: &TrainConfig,
    labels: &[bool],
) -> Result<Prepared<'a>> {
    let cols = schema.resolve(table, &config.id_column, &config.label_column)?;
    // The split is one thread's work (a seeded shuffle); the columns are
    // converted beside it.
    let (data, split) = rayon::join(
        || feature_columns(table, &cols),
        || split_rows(labels, config),
    );
    let (data, (train_rows, holdout_rows)) = (data?, split?);
    let opts = PrepOptions {
        min_level_count: config.min_level_count,
        skew_threshold: config.skew_threshold,
    };
    let fitted = Preprocessor::fit(&cols, &data, &train_rows, opts);
    if fitted.prep.columns.is_empty() {
        return Err(Error::NoFeatures);
    }
    Ok(Prepared {
        prep: fitted.prep,
        reference: fitted.reference,
        warnings: fitted.warnings,
        data,
        kept: fitted.data,
        train_rows,
        holdout_rows,
    })
}

/// The data of each of `cols`, converted side by side on the pool. The
/// error reported is the first column's in order, as on one thread.
///
/// # Errors
/// A cell error naming the row and column.
fn feature_columns<'a>(table: &'a Table, cols: &[ResolvedColumn]) -> Result<Vec<FeatureData<'a>>> {
    use rayon::prelude::*;
    let data: Vec<Result<FeatureData<'a>>> =
        cols.par_iter().map(|c| feature_data(table, c)).collect();
    data.into_iter().collect()
}

/// The stratified (training, holdout) split of the rows.
///
/// # Errors
/// [`Error::InvalidConfig`] when the holdout lacks a class: its metrics
/// would mean nothing.
fn split_rows(labels: &[bool], config: &TrainConfig) -> Result<(Vec<usize>, Vec<usize>)> {
    let (train_rows, holdout_rows) = stratified_split(labels, config.holdout_fraction, config.seed);
    let holdout_churned = holdout_rows.iter().filter(|&&r| labels[r]).count();
    if holdout_churned == 0 || holdout_churned == holdout_rows.len() {
        return Err(Error::InvalidConfig {
            message: format!(
                "holdout_fraction {} leaves the holdout without both classes",
                config.holdout_fraction
            ),
        });
    }
    Ok((train_rows, holdout_rows))
}

/// The design matrix of the whole training split, prescaled for the solver
/// (see [`logistic::ScaledDesign`]), and its labels.
fn training_design(prepared: &Prepared<'_>, labels: &[bool]) -> (Vec<f64>, Vec<bool>) {
    let rows = &prepared.train_rows;
    let y: Vec<bool> = rows.iter().map(|&r| labels[r]).collect();
    // Room for the constant column the solver appends.
    let mut x = Vec::with_capacity(rows.len() * (prepared.prep.columns.len() + 1));
    let scale = logistic::ScaledDesign::scale_for(&y);
    prepared
        .prep
        .design_col_major_scaled(&prepared.kept_data(), rows, scale, &mut x);
    (x, y)
}

/// The final fit on the training design `x` (`p` columns, labels `y`) at the
/// chosen strength, started from the folds' average solution.
///
/// # Errors
/// [`Error::Solver`] when the fit fails.
fn fit_final(
    x: Vec<f64>,
    y: Vec<bool>,
    p: usize,
    config: &TrainConfig,
    cv: &CvOutcome,
) -> Result<LogisticFit> {
    let design = logistic::ScaledDesign::new_prescaled(x, p, y)?;
    design.fit(solver_options(config, cv.chosen_l2), Some(&cv.warm_start))
}

/// The fitted model: preprocessing, named coefficients, intercept and the
/// L2 strength they were fitted at.
struct FittedModel {
    preprocessing: Preprocessor,
    coefficients: Vec<Coefficient>,
    intercept: f64,
    l2: f64,
}

impl FittedModel {
    /// Names the coefficients of `fit` after the design columns of `prep`.
    fn new(preprocessing: Preprocessor, fit: &LogisticFit, l2: f64) -> FittedModel {
        let coefficients = preprocessing
            .columns
            .iter()
            .zip(&fit.weights)
            .map(|(c, &w)| Coefficient {
                name: c.name.clone(),
                value: w,
            })
            .collect();
        FittedModel {
            preprocessing,
            coefficients,
            intercept: fit.intercept,
            l2,
        }
    }

    /// The model as scoring sees it.
    fn folded(&self) -> FoldedModel {
        FoldedModel::new(&self.preprocessing, &self.coefficients, self.intercept)
    }
}

/// What the holdout says about a model: band cutoffs, metrics, score
/// profile and curves.
#[derive(Debug, Clone, PartialEq)]
struct Evaluation {
    bands: BandCutoffs,
    metrics: Metrics,
    profile: HoldoutProfile,
    curves: HoldoutCurves,
}

/// Scores the holdout `rows` of `table` with `model` by the code path that
/// serves scores (so [`evaluate`] reproduces the metrics exactly), places
/// the band cutoffs by `policy`, and computes the metrics with the
/// confusion matrix at the `high` cutoff, and the curves from the same
/// probabilities. `labels` has one entry per row of `table`.
///
/// # Errors
/// A scoring error naming the row and field.
fn evaluate_holdout(
    model: &FoldedModel,
    table: &Table,
    rows: &[usize],
    labels: &[bool],
    policy: BandPolicy,
) -> Result<Evaluation> {
    let probs = model.probabilities(table, rows)?;
    let y: Vec<bool> = rows.iter().map(|&r| labels[r]).collect();
    let bands = BandCutoffs::from_policy(policy, &probs);
    // Independent passes over the holdout, side by side on the pool.
    let ((metrics, curves), profile) = rayon::join(
        || {
            rayon::join(
                || Metrics::compute(&y, &probs, bands.high),
                || HoldoutCurves::compute(&y, &probs),
            )
        },
        || holdout_profile(model, table, rows, &probs, &bands),
    );
    Ok(Evaluation {
        bands,
        metrics,
        profile,
        curves,
    })
}

/// The holdout's mean probability, band shares and feature importance.
fn holdout_profile(
    model: &FoldedModel,
    table: &Table,
    rows: &[usize],
    probs: &[f64],
    bands: &BandCutoffs,
) -> HoldoutProfile {
    let mut counts = [0u64; 3];
    for &p in probs {
        counts[band_index(bands.band(p))] += 1;
    }
    let mut importance: Vec<FeatureImportance> = model
        .names()
        .iter()
        .zip(model.mean_abs_contributions(table, rows))
        .map(|(f, m)| FeatureImportance {
            feature: f.clone(),
            mean_abs_contribution: m,
        })
        .collect();
    importance.sort_by(|a, b| {
        b.mean_abs_contribution
            .total_cmp(&a.mean_abs_contribution)
            .then_with(|| a.feature.cmp(&b.feature))
    });
    HoldoutProfile {
        mean_probability: probs.iter().sum::<f64>() / probs.len().max(1) as f64,
        band_shares: BandShares::of(counts),
        importance,
    }
}

/// Position of `band` in [`BandShares::of`]'s counts (high, medium, low).
pub(crate) fn band_index(band: RiskBand) -> usize {
    match band {
        RiskBand::High => 0,
        RiskBand::Medium => 1,
        RiskBand::Low => 2,
    }
}

/// Size and class balance of the split.
fn training_summary(
    train_rows: &[usize],
    holdout_rows: &[usize],
    labels: &[bool],
    config: &TrainConfig,
) -> TrainingSummary {
    let train_churned = train_rows.iter().filter(|&&r| labels[r]).count() as u64;
    TrainingSummary {
        train_rows: train_rows.len() as u64,
        holdout_rows: holdout_rows.len() as u64,
        train_churned,
        train_retained: train_rows.len() as u64 - train_churned,
        seed: config.seed,
    }
}

/// Per numeric feature: name, skewness and whether log1p was applied.
fn log1p_decisions(prep: &Preprocessor) -> Vec<(String, f64, bool)> {
    prep.features
        .iter()
        .filter_map(|f| match f {
            FeaturePrep::Numeric(n) => Some((n.name.clone(), n.skew, n.log1p)),
            FeaturePrep::Categorical(_) => None,
        })
        .collect()
}

/// The artifact of a finished model, sealed: built in one piece from
/// everything it records, so its content hash covers final values only.
fn assemble_artifact(
    config: &TrainConfig,
    training: TrainingSummary,
    model: FittedModel,
    evaluation: Evaluation,
    reference: Vec<ReferenceBins>,
    attributes: AttributeColumns,
) -> ModelArtifact {
    let mut artifact = ModelArtifact {
        // Every trained artifact carries the drift reference and the curves.
        schema_version: crate::SCHEMA_VERSION,
        // The content hash is taken with `model_id` blank (see `artifact`).
        model_id: String::new(),
        created_at: config.created_at.clone(),
        id_column: config.id_column.clone(),
        label_column: config.label_column.clone(),
        training,
        preprocessing: model.preprocessing,
        coefficients: model.coefficients,
        intercept: model.intercept,
        l2: model.l2,
        bands: evaluation.bands,
        metrics: evaluation.metrics,
        reference,
        attributes,
        holdout_profile: Some(evaluation.profile),
        holdout_curves: Some(evaluation.curves),
    };
    artifact.seal();
    artifact
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{DesignColumn, NumericPrep, Role};
    use crate::reference::Bins;
    use crate::table::Column;

    fn config() -> TrainConfig {
        TrainConfig::builder()
            .created_at("2026-01-01T00:00:00Z")
            .build()
            .unwrap()
    }

    /// `logit = x`: one numeric feature `x`, standardized with mean 0 and
    /// std 1, coefficient 1, intercept 0.
    fn identity_model() -> FittedModel {
        let preprocessing = Preprocessor {
            features: vec![FeaturePrep::Numeric(NumericPrep {
                name: "x".into(),
                required: false,
                median: 0.0,
                skew: 0.0,
                log1p: false,
                min: Some(-2.0),
                max: Some(2.0),
            })],
            columns: vec![DesignColumn {
                name: "x".into(),
                feature: 0,
                role: Role::Value,
                mean: 0.0,
                std: 1.0,
            }],
        };
        let fit = LogisticFit {
            weights: vec![1.0],
            intercept: 0.0,
        };
        FittedModel::new(preprocessing, &fit, 0.01)
    }

    fn sigmoid(z: f64) -> f64 {
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn fitted_model_names_coefficients_after_design_columns() {
        let m = identity_model();
        assert_eq!(
            m.coefficients,
            [Coefficient {
                name: "x".into(),
                value: 1.0
            }]
        );
        assert_eq!((m.intercept, m.l2), (0.0, 0.01));
    }

    /// The holdout rows alone are scored; cutoffs follow the policy and the
    /// confusion matrix sits at the `high` cutoff.
    #[test]
    fn evaluation_of_a_known_model() {
        let table = Table::new(vec![Column::numeric("x", vec![-2.0, -1.0, 1.0, 2.0, 5.0])]);
        // Row 4 is not in the holdout: its label would spoil the AUC.
        let labels = [false, false, true, true, false];
        let rows = [0, 1, 2, 3];
        let model = identity_model().folded();
        let fixed = BandPolicy::fixed(0.6, 0.4).unwrap();
        let e = evaluate_holdout(&model, &table, &rows, &labels, fixed).unwrap();
        assert_eq!((e.bands.high, e.bands.medium), (0.6, 0.4));
        assert_eq!((e.metrics.n, e.metrics.base_rate), (4, 0.5));
        assert_eq!(e.metrics.roc_auc, 1.0);
        let c = e.metrics.confusion_at_high;
        assert_eq!(
            (c.true_positives, c.false_positives, c.true_negatives),
            (2, 0, 2)
        );
        let probs: Vec<f64> = [-2.0, -1.0, 1.0, 2.0].map(sigmoid).to_vec();
        assert_eq!(
            e.metrics,
            Metrics::compute(&[false, false, true, true], &probs, 0.6)
        );
        // The curves are of the same holdout probabilities: a perfect ranking.
        assert_eq!(
            e.curves,
            HoldoutCurves::compute(&[false, false, true, true], &probs)
        );
        assert!(e.curves.roc.iter().any(|r| (r.fpr, r.tpr) == (0.0, 1.0)));
        // The top quarter of four scores is the highest one.
        let quantile = BandPolicy::quantile(0.25, 0.25).unwrap();
        let e = evaluate_holdout(&model, &table, &rows, &labels, quantile).unwrap();
        assert_eq!((e.bands.high, e.bands.medium), (sigmoid(2.0), sigmoid(1.0)));
        assert_eq!(e.metrics.confusion_at_high.true_positives, 1);
    }

    /// Text that is not a number in a numeric feature cannot be scored: the
    /// evaluation fails, naming the row and field.
    #[test]
    fn evaluation_names_a_row_it_cannot_score() {
        let table = Table::new(vec![Column::text(
            "x",
            vec![Some("1".into()), Some("many".into())],
        )]);
        let e = evaluate_holdout(
            &identity_model().folded(),
            &table,
            &[0, 1],
            &[true, false],
            BandPolicy::default(),
        );
        match e {
            Err(Error::WrongType { field, row, .. }) => {
                assert_eq!((field.as_str(), row), ("x", Some(table.row_number(1))));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The assembled artifact is sealed over its final content: it loads
    /// (hash verified), its id is its content hash, and `created_at` is
    /// left out of the hash.
    #[test]
    fn assembled_artifact_is_sealed_and_verifiable() {
        let training = TrainingSummary {
            train_rows: 8,
            holdout_rows: 4,
            train_churned: 3,
            train_retained: 5,
            seed: 42,
        };
        let evaluation = Evaluation {
            bands: BandCutoffs::from_policy(BandPolicy::fixed(0.6, 0.4).unwrap(), &[]),
            metrics: Metrics::compute(&[false, true], &[0.2, 0.7], 0.6),
            profile: HoldoutProfile {
                mean_probability: 0.45,
                band_shares: BandShares::of([1, 0, 1]),
                importance: Vec::new(),
            },
            curves: HoldoutCurves::compute(&[false, true], &[0.2, 0.7]),
        };
        let reference = vec![ReferenceBins {
            feature: "x".into(),
            missing_share: 0.0,
            bins: Bins::Deciles {
                edges: vec![-2.0, 2.0],
                shares: vec![0.25, 0.5, 0.25],
            },
        }];
        let assemble = |config: &TrainConfig| {
            assemble_artifact(
                config,
                training.clone(),
                identity_model(),
                evaluation.clone(),
                reference.clone(),
                AttributeColumns::default(),
            )
        };
        let a = assemble(&config());
        assert_eq!(a.model_id.len(), 64);
        assert_eq!(a.model_id, a.content_hash());
        assert_eq!(
            (a.bands, &a.metrics),
            (evaluation.bands, &evaluation.metrics)
        );
        assert_eq!((&a.training, a.l2, a.intercept), (&training, 0.01, 0.0));
        assert_eq!(a.schema_version, 6);
        assert_eq!(a.holdout_curves.as_ref(), Some(&evaluation.curves));
        assert_eq!(a.created_at, "2026-01-01T00:00:00Z");
        let loaded = ModelArtifact::from_json_bytes(&a.to_json_bytes()).unwrap();
        assert_eq!(loaded, a);
        let later = TrainConfig {
            created_at: "2027-06-30T12:00:00Z".into(),
            ..config()
        };
        assert_eq!(assemble(&later).model_id, a.model_id);
        let other_seed = TrainingSummary {
            seed: 7,
            ..training.clone()
        };
        let b = assemble_artifact(
            &config(),
            other_seed,
            identity_model(),
            evaluation.clone(),
            reference.clone(),
            AttributeColumns::default(),
        );
        assert_ne!(b.model_id, a.model_id);
    }

    /// Attribute columns are recorded (an `attributes` key), a linear model
    /// without them has none; both carry the drift reference and the
    /// curves, so both are the newest version.
    #[test]
    fn assembled_artifact_version_follows_its_attributes() {
        let evaluation = Evaluation {
            bands: BandCutoffs::from_policy(BandPolicy::fixed(0.6, 0.4).unwrap(), &[]),
            metrics: Metrics::compute(&[false, true], &[0.2, 0.7], 0.6),
            profile: HoldoutProfile {
                mean_probability: 0.45,
                band_shares: BandShares::of([1, 0, 1]),
                importance: Vec::new(),
            },
            curves: HoldoutCurves::compute(&[false, true], &[0.2, 0.7]),
        };
        let training = training_summary(&[0, 1], &[2, 3], &[true, false, true, false], &config());
        let assemble = |attributes| {
            assemble_artifact(
                &config(),
                training.clone(),
                identity_model(),
                evaluation.clone(),
                Vec::new(),
                attributes,
            )
        };
        let plain = assemble(AttributeColumns::default());
        assert_eq!(plain.schema_version, crate::SCHEMA_VERSION);
        assert!(plain.has_drift_reference());
        assert!(plain.holdout_curves.is_some());
        let plain_text = String::from_utf8(plain.to_json_bytes()).unwrap();
        assert!(!plain_text.contains("attributes"));
        let mut mapped = AttributeColumns::default();
        mapped.set(
            crate::AttributeRole::RenewalDate,
            Some("renews_on".to_string()),
        );
        let with = assemble(mapped.clone());
        assert_eq!(with.schema_version, crate::SCHEMA_VERSION);
        assert_ne!(with.model_id, plain.model_id);
        let loaded = ModelArtifact::from_json_bytes(&with.to_json_bytes()).unwrap();
        assert_eq!(loaded.attributes, mapped);
    }

    #[test]
    fn split_refuses_a_holdout_without_both_classes() {
        let config = TrainConfig {
            holdout_fraction: 0.2,
            ..config()
        };
        // 2 churners x 0.2 rounds to none in the holdout.
        let labels: Vec<bool> = (0..100).map(|i| i < 2).collect();
        assert!(matches!(
            split_rows(&labels, &config),
            Err(Error::InvalidConfig { .. })
        ));
        let labels: Vec<bool> = (0..100).map(|i| i < 10).collect();
        let (train, holdout) = split_rows(&labels, &config).unwrap();
        assert_eq!((train.len(), holdout.len()), (80, 20));
        assert_eq!(holdout.iter().filter(|&&r| labels[r]).count(), 2);
    }

    #[test]
    fn training_summary_counts_the_training_split() {
        let labels = [true, false, false, true, true, false];
        let s = training_summary(&[0, 1, 2, 4], &[3, 5], &labels, &config());
        assert_eq!(
            s,
            TrainingSummary {
                train_rows: 4,
                holdout_rows: 2,
                train_churned: 2,
                train_retained: 2,
                seed: config().seed,
            }
        );
    }
}
