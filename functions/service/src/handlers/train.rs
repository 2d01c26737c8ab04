//! Training: features in, artifact stored, promotion gate applied.
//!
//! The gate promotes the new model (the challenger) only when its holdout
//! ROC AUC reaches the configured floor and is at most the configured drop
//! below the current champion's AUC *on the same new holdout rows*
//! (`churn_model::evaluate`): comparing each model's own holdout would
//! compare different customers. Otherwise the artifact stays stored as a
//! candidate, and the summary says why (it can be promoted by hand).

use crate::config::ServiceConfig;
use crate::features::{read_table_with_notes, FeatureUri, ReadOptions};
use crate::handlers::error::HandlerError;
use crate::model_store::ModelStore;
use crate::timestamp;
use churn_model::{
    evaluate, evaluate_scorable, train, BandPolicy, Metrics, ModelArtifact, Schema, TrainConfig,
    TrainingReport,
};
use serde::{Deserialize, Serialize};

/// The train event.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// Local path or `s3://bucket/key` (a prefix = all its parts).
    pub features: String,
    /// Id column (default `customer_id`).
    #[serde(default)]
    pub id_column: Option<String>,
    /// Label column (default `churned`).
    #[serde(default)]
    pub label_column: Option<String>,
    /// Schema overrides as TOML text (see `churn_model::Schema`).
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub options: TrainOptions,
}

/// Optional training knobs; unset ones keep the model crate's defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    pub seed: Option<u64>,
    pub holdout_fraction: Option<f64>,
    pub cv_folds: Option<usize>,
    /// `false`: store the artifact as a candidate without applying the gate.
    pub promote: Option<bool>,
    /// RFC 3339 creation time recorded in the artifact (default: now, UTC).
    /// Not part of the content hash (`model_id`): retraining identical data
    /// later gives the same id, and the store keeps the first artifact. Fix
    /// it to get byte-identical artifacts.
    pub created_at: Option<String>,
    /// Risk-band policy for this run, overriding the service's
    /// (`CHURN_BAND_*`): `{"policy": "quantile", "high_share": 0.1,
    /// "medium_share": 0.2}` or `{"policy": "fixed", "high": 0.5, "medium": 0.2}`.
    #[serde(default)]
    pub bands: Option<BandPolicy>,
}

/// The champion the challenger was compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChampionComparison {
    pub model_id: String,
    /// The champion's ROC AUC on the challenger's holdout (`None` if it could not score it).
    pub roc_auc_on_new_holdout: Option<f64>,
}

/// What the train handler returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    pub model_id: String,
    pub promoted: bool,
    /// Why it was (not) promoted, in one sentence.
    pub reason: String,
    /// Holdout metrics of the new model.
    pub metrics: Metrics,
    pub champion: Option<ChampionComparison>,
    pub rows: usize,
    pub report: TrainingReport,
    /// What the reader noted: columns it did not read (Parquet dates,
    /// nested columns), a detected delimiter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Gate thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    pub min_auc: f64,
    pub max_auc_drop: f64,
}

impl Gate {
    /// From `CHURN_GATE_MIN_AUC` / `CHURN_GATE_MAX_AUC_DROP`.
    pub fn from_config(config: &ServiceConfig) -> Gate {
        Gate {
            min_auc: config.gate_min_auc,
            max_auc_drop: config.gate_max_auc_drop,
        }
    }
}

/// Service-level training settings: the gate and the default band policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSettings {
    pub gate: Gate,
    /// Used unless the request's `options.bands` overrides it.
    pub bands: BandPolicy,
}

impl TrainSettings {
    /// The gate and `CHURN_BAND_*` policy of the configuration.
    pub fn from_config(config: &ServiceConfig) -> TrainSettings {
        TrainSettings {
            gate: Gate::from_config(config),
            bands: config.bands,
        }
    }
}

/// [`handle_train_with`] with the model crate's default band policy (top
/// 10 % high, next 20 % medium) unless the request overrides it. Callers that
/// have a [`ServiceConfig`] use `handle_train_with(.., TrainSettings::from_config(..))`
/// so `CHURN_BAND_*` applies.
///
/// # Errors
/// As [`handle_train_with`].
pub async fn handle_train(
    request: &TrainRequest,
    models: &dyn ModelStore,
    s3: Option<&aws_sdk_s3::Client>,
    gate: Gate,
) -> Result<TrainSummary, HandlerError> {
    let settings = TrainSettings {
        gate,
        bands: BandPolicy::default(),
    };
    handle_train_with(request, models, s3, settings).await
}

/// Reads the features, trains, stores the artifact and applies the gate.
/// The bands are `request.options.bands`, else `settings.bands`.
///
/// # Errors
/// [`HandlerError::BadRequest`] for a bad URI, schema or option (including a
/// `created_at` that is not RFC 3339);
/// [`HandlerError::Features`] when the data cannot be read;
/// [`HandlerError::Model`] when training refuses the data (labels, one class,
/// too few rows: the message names row and column);
/// [`HandlerError::Service`] when the model store fails.
pub async fn handle_train_with(
    request: &TrainRequest,
    models: &dyn ModelStore,
    s3: Option<&aws_sdk_s3::Client>,
    settings: TrainSettings,
) -> Result<TrainSummary, HandlerError> {
    let gate = settings.gate;
    let uri = FeatureUri::parse(&request.features)
        .map_err(|e| HandlerError::BadRequest(e.to_string()))?;
    let schema = match &request.schema {
        Some(text) => {
            Schema::from_toml_str(text).map_err(|e| HandlerError::BadRequest(e.to_string()))?
        }
        None => Schema::default(),
    };
    let mut builder = TrainConfig::builder();
    if let Some(c) = &request.id_column {
        builder = builder.id_column(c.clone());
    }
    if let Some(c) = &request.label_column {
        builder = builder.label_column(c.clone());
    }
    if let Some(s) = request.options.seed {
        builder = builder.seed(s);
    }
    if let Some(h) = request.options.holdout_fraction {
        builder = builder.holdout_fraction(h);
    }
    if let Some(k) = request.options.cv_folds {
        builder = builder.cv_folds(k);
    }
    let created_at = match &request.options.created_at {
        Some(text) => timestamp::parse(text)
            .map(timestamp::format)
            .map_err(|e| HandlerError::BadRequest(format!("options.created_at: {e}")))?,
        None => timestamp::format(timestamp::now()),
    };
    builder = builder.created_at(created_at);
    let bands_overridden = request.options.bands.is_some();
    builder = builder.bands(request.options.bands.unwrap_or(settings.bands));
    let config = builder.build().map_err(|e| {
        HandlerError::BadRequest(if bands_overridden {
            format!("options.bands: {e}")
        } else {
            e.to_string()
        })
    })?;
    let options = ReadOptions::from_schema(&schema, &config.id_column, &config.label_column);
    let (table, notes) = read_table_with_notes(&uri, s3, &options).await?;
    tracing::info!(
        rows = table.n_rows(),
        columns = table.columns.len(),
        "training table read"
    );
    let rows = table.n_rows();
    // Training is CPU-bound for seconds: keep it off the async workers.
    let (outcome, table) =
        crate::blocking::run(move || (train(&table, &schema, &config), table)).await;
    let outcome = outcome?;
    let artifact = &outcome.artifact;
    let bytes = artifact.to_json_bytes();
    // Same data and settings as a stored model (only `created_at` differs):
    // the store keeps the stored bytes and returns their sha256, which is
    // what the gate below promotes.
    let stored = models.put_artifact(&bytes).await?;
    let metrics = artifact.metrics().clone();
    let auc = metrics.roc_auc;
    let label = artifact.label_column.clone();

    let mut champion = None;
    let mut already_current = false;
    let (promote, reason) = if request.options.promote == Some(false) {
        (
            false,
            "stored as a candidate: promotion was not requested".to_string(),
        )
    } else if auc < gate.min_auc {
        (
            false,
            format!(
                "holdout ROC AUC {auc:.4} is below the floor {:.2}; kept as a candidate",
                gate.min_auc
            ),
        )
    } else {
        match models.current().await? {
            None => (
                true,
                format!(
                    "holdout ROC AUC {auc:.4} passes the floor {:.2}; first model",
                    gate.min_auc
                ),
            ),
            Some((pointer, _)) if pointer.model_id == stored.model_id => {
                already_current = true;
                (
                    true,
                    "identical to the current champion (same data and settings)".to_string(),
                )
            }
            Some((pointer, champion_bytes)) => {
                let compared = ModelArtifact::from_json_bytes(&champion_bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|champ| {
                        compare_on_shared_rows(
                            &champ,
                            artifact,
                            &table,
                            &outcome.holdout_rows,
                            &label,
                        )
                    });
                let champion_auc = compared
                    .as_ref()
                    .map(|c| c.champion_auc)
                    .map_err(Clone::clone);
                let auc = compared.as_ref().map_or(auc, |c| c.challenger_auc);
                let on_rows = match &compared {
                    Ok(c) if c.rows < outcome.holdout_rows.len() => format!(
                        " on the {} of {} holdout rows the champion can score",
                        c.rows,
                        outcome.holdout_rows.len()
                    ),
                    _ => " on the same holdout".to_string(),
                };
                champion = Some(ChampionComparison {
                    model_id: pointer.model_id.clone(),
                    roc_auc_on_new_holdout: champion_auc.as_ref().ok().copied(),
                });
                match champion_auc {
                    Ok(c) if auc + gate.max_auc_drop < c => (
                        false,
                        format!(
                            "holdout ROC AUC {auc:.4} is more than {:.3} below the champion {} ({c:.4}{on_rows}); kept as a candidate",
                            gate.max_auc_drop, pointer.model_id
                        ),
                    ),
                    Ok(c) => (
                        true,
                        format!(
                            "holdout ROC AUC {auc:.4} passes the floor {:.2} and is within {:.3} of the champion {} ({c:.4}{on_rows})",
                            gate.min_auc, gate.max_auc_drop, pointer.model_id
                        ),
                    ),
                    // The champion cannot read the new data (e.g. a feature was
                    // renamed): the floor is the only comparison left.
                    Err(e) => (
                        true,
                        format!(
                            "holdout ROC AUC {auc:.4} passes the floor {:.2}; the champion {} could not score the new holdout ({e})",
                            gate.min_auc, pointer.model_id
                        ),
                    ),
                }
            }
        }
    };
    let promoted = if promote && !already_current {
        models
            .promote(&stored.model_id, Some(&stored.sha256))
            .await?;
        true
    } else {
        already_current
    };
    tracing::info!(model_id = %stored.model_id, promoted, auc, "training done");
    Ok(TrainSummary {
        model_id: stored.model_id,
        promoted,
        reason,
        metrics,
        champion,
        rows,
        report: outcome.report,
        notes,
    })
}

/// Both models' holdout ROC AUC on the rows the champion can score.
struct SharedRows {
    champion_auc: f64,
    challenger_auc: f64,
    rows: usize,
}

/// Compares `champion` and `challenger` on the holdout rows the champion can
/// score: a champion that refuses some values of the new data (a negative
/// value where its training saw none) is still compared, on equal terms.
///
/// # Errors
/// A message when the champion cannot score at least half the holdout (a
/// renamed feature, say): then the floor is the only comparison left.
fn compare_on_shared_rows(
    champion: &ModelArtifact,
    challenger: &ModelArtifact,
    table: &churn_model::Table,
    holdout: &[usize],
    label: &str,
) -> Result<SharedRows, String> {
    let (champion_metrics, rows) =
        evaluate_scorable(champion, table, holdout, label).map_err(|e| e.to_string())?;
    if rows.len() * 2 < holdout.len() {
        return Err(format!(
            "it could score only {} of {} holdout rows",
            rows.len(),
            holdout.len()
        ));
    }
    let challenger_auc = if rows.len() == holdout.len() {
        challenger.metrics().roc_auc
    } else {
        evaluate(challenger, table, &rows, label)
            .map_err(|e| e.to_string())?
            .roc_auc
    };
    Ok(SharedRows {
        champion_auc: champion_metrics.roc_auc,
        challenger_auc,
        rows: rows.len(),
    })
}
