//! churn-model: the pure churn model (no I/O, no async, no AWS).
//!
//! From a [`Table`] of engagement features to a versioned [`ModelArtifact`],
//! and from the artifact to a [`Score`] with [`Reason`]s.
//!
//! ```
//! use churn_model::*;
//! # fn main() -> churn_model::Result<()> {
//! let table = generate(&SyntheticConfig { customers: 2_000, seed: 1 });
//! let config = TrainConfig::builder().created_at("2026-01-01T00:00:00Z").build()?;
//! let outcome = train(&table, &Schema::default(), &config)?;
//! let bytes = outcome.artifact.to_json_bytes();
//! let artifact = ModelArtifact::from_json_bytes(&bytes)?; // verifies version and hash
//! let scorer = Scorer::new(&artifact);
//! let score = scorer.score_table(&table).remove(0)?;
//! assert!((0.0..=1.0).contains(&score.churn_probability));
//! assert!(score.reasons.len() <= 3);
//! # Ok(())
//! # }
//! ```
//!
//! Parallel steps run on the caller's rayon pool: the binary sizes it once
//! (the library never decides how many cores there are).
//!
//! # Layout
//! - [`error`]: the crate's error enum (names row, column, field) and `Result`.
//! - [`table`]: columnar input handed in by readers.
//! - [`sample`]: stratified, seeded reservoir sample for training beyond the row cap.
//! - [`attributes`]: account attributes (name, owner, value, renewal date ...): roles, mapping, values.
//! - [`schema`]: column kinds (numeric / categorical / ignored), TOML overrides, inference.
//! - [`label`]: churn label parsing (1/0, true/false, yes/no).
//! - [`split`]: stratified seeded holdout split and k-fold assignment.
//! - `duplicate` (private): numeric columns that repeat an earlier one (dropped in training).
//! - [`preprocess`]: imputation, log1p, one-hot, standardization of numeric values (fitted on training rows).
//! - [`shape`]: shape functions of numeric features (tents at quantile knots) added as design columns.
//! - [`interaction`]: screen of feature pairs by residual gain of their 2-D bins.
//! - [`product`]: interaction terms: products of a coarse basis of each feature of a screened pair.
//! - `complexity` (private): linear / shapes / shapes + interactions chosen by paired cross-validation.
//! - `cv` (private): L2 strength by k-fold cross-validated ROC AUC, folds in parallel.
//! - [`calibration`]: Platt scaling of the log-odds on the out-of-fold predictions.
//! - [`customer_id`](mod@customer_id): the one rule for customer ids (every path calls it).
//! - `validate` (private): table shape, customer ids, class balance checks.
//! - [`logistic`]: the L2 logistic fit (argmin's L-BFGS, configured as linfa-logistic does): design scaling, per-row tolerance, exact intercept.
//! - `log_loss` (private): the objective it minimizes, cost and gradient in one parallel sweep over row blocks.
//! - `train_config` (private, re-exported by [`train`](mod@train)): `TrainConfig` and its checked builder.
//! - [`train`](mod@train): cross-validated L2 choice, final fit, [`train()`], [`evaluate()`].
//! - [`metrics`]: ROC AUC, PR AUC, log loss, Brier, lift, ECE, confusion matrix.
//! - [`curves`]: the holdout's ROC, precision-recall, calibration and lift points for charts.
//! - [`band`]: risk bands and their cutoffs.
//! - [`reason`]: per-customer reasons.
//! - [`decimal`]: fixed-point number text identical to `format!`, without its cost.
//! - [`reference`](mod@reference): per-feature training distributions and the holdout's score profile.
//! - [`check`]: the snapshot check (PSI, missing and out-of-range shares, refusal rules).
//! - [`outcomes`]: realised accuracy of past scores against known churn outcomes, retrain verdict.
//! - [`artifact`]: the JSON model artifact, content hash, verification.
//! - [`scoring`]: `Scorer` for JSON records and column batches.
//! - [`synthetic`]: seeded synthetic SaaS engagement data.

pub mod artifact;
pub mod attributes;
pub mod band;
pub mod calibration;
pub mod check;
mod complexity;
pub mod curves;
pub mod customer_id;
mod cv;
pub mod decimal;
mod duplicate;
pub mod error;
pub mod interaction;
pub mod label;
mod log_loss;
pub mod logistic;
pub mod metrics;
pub mod outcomes;
pub mod preprocess;
pub mod product;
pub mod reason;
pub mod reference;
pub mod sample;
pub mod schema;
pub mod scoring;
pub mod shape;
pub mod split;
pub mod synthetic;
pub mod table;
pub mod train;
mod train_config;
mod validate;

pub use artifact::{
    ModelArtifact, ATTRIBUTES_SCHEMA_VERSION, CURVES_SCHEMA_VERSION, DRIFT_SCHEMA_VERSION,
    LINEAR_SCHEMA_VERSION, MIN_SCHEMA_VERSION, SCHEMA_VERSION, SHAPES_SCHEMA_VERSION,
};
pub use attributes::{
    AttributeColumns, AttributeReader, AttributeRole, Attributes, InvalidAttribute,
};
pub use band::{BandCutoffs, BandPolicy, BandPolicyError, RiskBand};
pub use curves::HoldoutCurves;
pub use customer_id::{customer_id, CustomerIdError, MAX_CUSTOMER_ID_BYTES};
pub use error::{Error, ErrorKind, Result};
pub use metrics::{ConfusionMatrix, Metrics};
pub use outcomes::{
    outcomes_report, MatchedOutcome, ModelReference, OutcomesConfig, OutcomesConfigError,
    OutcomesReport,
};
pub use reason::{Partner, Reason, ReasonText, ValueText};
pub use schema::{ColumnKind, ColumnSpec, Schema};
pub use scoring::{BoundTable, CompactScore, Explanation, OutOfRange, Score, ScoredRecord, Scorer};
pub use synthetic::{generate, SyntheticConfig};
pub use table::{Column, ColumnValues, Table};
pub use train::{
    evaluate, evaluate_scorable, train, train_sample, Complexity, ComplexityResult, Population,
    TrainConfig, TrainConfigBuilder, TrainOutcome, TrainingReport, MIN_MAX_ROWS,
};
