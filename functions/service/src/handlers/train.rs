//! Training: features in, artifact stored, promotion gate applied.
//!
//! The gate promotes the new model (the challenger) only when its holdout
//! ROC AUC reaches the configured floor and is at most the configured drop
//! below the current champion's AUC *on the same new holdout rows*
//! (`churn_model::evaluate`): comparing each model's own holdout would
//! compare different customers. Otherwise the artifact stays stored as a
//! candidate, and the summary says why (it can be promoted by hand).

use crate::config::ServiceConfig;
use crate::features::{sample_stream, FeatureSources, FeatureUri, ReadOptions};
use crate::handlers::error::HandlerError;
use crate::model_store::ModelStore;
use crate::timestamp;
use churn_model::{
    evaluate, evaluate_scorable, train, train_sample, BandPolicy, Metrics, ModelArtifact,
    Population, Schema, Table, TrainConfig, TrainingReport,
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
    /// Row cap: a larger table is trained on a stratified sample of this
    /// many rows (overrides `CHURN_TRAIN_MAX_ROWS`; see
    /// `churn_model::TrainConfig::max_rows`).
    pub max_rows: Option<usize>,
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
    /// Row cap (`CHURN_TRAIN_MAX_ROWS`) unless the request's
    /// `options.max_rows` overrides it; `None` = the model crate's default.
    pub max_rows: Option<usize>,
    /// Sources up to this many bytes are read whole (in parallel, column
    /// kinds inferred from every value) and sampled in memory when over the
    /// row cap; larger ones are sampled in one streaming pass, so memory
    /// stays bounded by the cap. Default [`WHOLE_READ_MAX_BYTES`].
    pub whole_read_max_bytes: u64,
}

/// Default of [`TrainSettings::whole_read_max_bytes`]: 1 GiB, about 4M rows
/// of 20 numeric features in CSV; read whole that is ~2 GiB of memory.
pub const WHOLE_READ_MAX_BYTES: u64 = 1 << 30;

impl TrainSettings {
    /// The gate and `CHURN_BAND_*` policy of the configuration.
    pub fn from_config(config: &ServiceConfig) -> TrainSettings {
        TrainSettings {
            gate: Gate::from_config(config),
            bands: config.bands,
            max_rows: config.train_max_rows,
            whole_read_max_bytes: WHOLE_READ_MAX_BYTES,
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
    sources: &FeatureSources,
    gate: Gate,
) -> Result<TrainSummary, HandlerError> {
    let settings = TrainSettings {
        gate,
        bands: BandPolicy::default(),
        max_rows: None,
        whole_read_max_bytes: WHOLE_READ_MAX_BYTES,
    };
    handle_train_with(request, models, sources, settings).await
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
    sources: &FeatureSources,
    settings: TrainSettings,
) -> Result<TrainSummary, HandlerError> {
    let job = TrainJob::from_request(request, &settings)?;
    let options =
        ReadOptions::from_schema(&job.schema, &job.config.id_column, &job.config.label_column);
    let data = read_training_data(&job, sources, options, settings.whole_read_max_bytes).await?;
    tracing::info!(
        rows = data.population.map_or(data.table.n_rows(), |p| p.rows),
        sampled = data.population.map(|_| data.table.n_rows()),
        columns = data.table.columns.len(),
        "training table read"
    );
    let rows = data.population.map_or(data.table.n_rows(), |p| p.rows);
    let notes = data.notes;
    let (outcome, table) =
        fit_off_the_runtime(data.table, data.population, job.schema, job.config).await;
    let outcome = outcome?;
    // Same data and settings as a stored model (only `created_at` differs):
    // the store keeps the stored bytes and returns their sha256, which is
    // what the gate below promotes.
    let stored = models
        .put_artifact(&outcome.artifact.to_json_bytes())
        .await?;
    // The report that travels, beside the artifact; a retrain of a stored
    // model keeps the stored report (its `created_at` is the stored one's).
    if stored.created {
        let html = crate::web::report_html(&outcome.artifact);
        models.put_report(&stored.model_id, html.as_bytes()).await?;
    } else if models.report(&stored.model_id).await?.is_none() {
        // Drawn from the stored artifact, so it matches what is served.
        if let Some(bytes) = models.artifact(&stored.model_id).await? {
            let artifact = churn_model::ModelArtifact::from_json_bytes(&bytes)
                .map_err(|e| crate::error::Error::InvalidArtifact(e.to_string()))?;
            let html = crate::web::report_html(&artifact);
            models.put_report(&stored.model_id, html.as_bytes()).await?;
        }
    }
    let verdict = if request.options.promote == Some(false) {
        Verdict::keep("stored as a candidate: promotion was not requested".to_string())
    } else {
        let current = models.current().await?;
        gate_verdict(settings.gate, &outcome, &table, &stored.model_id, current)
    };
    crate::blocking::drop_detached(table);
    let promoted = if verdict.promote && !verdict.already_current {
        models
            .promote(&stored.model_id, Some(&stored.sha256))
            .await?;
        true
    } else {
        verdict.already_current
    };
    let metrics = outcome.artifact.metrics().clone();
    tracing::info!(model_id = %stored.model_id, promoted, auc = metrics.roc_auc, "training done");
    Ok(TrainSummary {
        model_id: stored.model_id,
        promoted,
        reason: verdict.reason,
        metrics,
        champion: verdict.champion,
        rows,
        report: outcome.report,
        notes,
    })
}

/// What training reads: the whole table, or a sample streamed from a
/// source too large to hold whole (with the counts it was drawn from).
struct TrainingData {
    table: Table,
    population: Option<Population>,
    notes: Vec<String>,
}

/// Reads the job's source whole when it is at most `whole_read_max_bytes`
/// (training samples it in memory if it has more rows than the cap), else
/// samples it in one streaming pass on a blocking thread.
///
/// # Errors
/// [`HandlerError::Features`] when the source cannot be read, naming the
/// part, row and column.
async fn read_training_data(
    job: &TrainJob,
    sources: &FeatureSources,
    options: ReadOptions,
    whole_read_max_bytes: u64,
) -> Result<TrainingData, HandlerError> {
    if sources.total_bytes(&job.uri).await? <= whole_read_max_bytes {
        let (table, notes) = sources.read_table(&job.uri, &options).await?;
        return Ok(TrainingData {
            table,
            population: None,
            notes,
        });
    }
    let mut stream = sources.stream(&job.uri, options).await?;
    let (label, cap, seed) = (
        job.config.label_column.clone(),
        job.config.max_rows,
        job.config.seed,
    );
    let sampled =
        crate::blocking::run(move || sample_stream(&mut stream, &label, cap, seed)).await?;
    Ok(TrainingData {
        table: sampled.table,
        population: Some(sampled.population),
        notes: sampled.notes,
    })
}

/// A train request checked once: where the data is, the schema and the
/// model crate's validated configuration.
#[derive(Debug)]
struct TrainJob {
    uri: FeatureUri,
    schema: Schema,
    config: TrainConfig,
}

impl TrainJob {
    /// Checks `request`; the `settings`' bands and row cap apply unless the
    /// request overrides them.
    ///
    /// # Errors
    /// [`HandlerError::BadRequest`] naming the field at fault.
    fn from_request(
        request: &TrainRequest,
        settings: &TrainSettings,
    ) -> Result<TrainJob, HandlerError> {
        let bands = settings.bands;
        let bad = |e: &dyn std::fmt::Display| HandlerError::BadRequest(e.to_string());
        let uri = FeatureUri::parse(&request.features).map_err(|e| bad(&e))?;
        let schema = match &request.schema {
            Some(text) => Schema::from_toml_str(text).map_err(|e| bad(&e))?,
            None => Schema::default(),
        };
        let options = &request.options;
        let mut builder = TrainConfig::builder();
        if let Some(c) = &request.id_column {
            builder = builder.id_column(c.clone());
        }
        if let Some(c) = &request.label_column {
            builder = builder.label_column(c.clone());
        }
        if let Some(s) = options.seed {
            builder = builder.seed(s);
        }
        if let Some(h) = options.holdout_fraction {
            builder = builder.holdout_fraction(h);
        }
        if let Some(k) = options.cv_folds {
            builder = builder.cv_folds(k);
        }
        if let Some(n) = options.max_rows.or(settings.max_rows) {
            builder = builder.max_rows(n);
        }
        let created_at = match &options.created_at {
            Some(text) => timestamp::parse(text)
                .map(timestamp::format)
                .map_err(|e| HandlerError::BadRequest(format!("options.created_at: {e}")))?,
            None => timestamp::format(timestamp::now()),
        };
        let config = builder
            .created_at(created_at)
            .bands(options.bands.unwrap_or(bands))
            .build()
            .map_err(|e| match (options.bands, options.max_rows) {
                (Some(_), _) if e.to_string().contains("bands") => {
                    HandlerError::BadRequest(format!("options.bands: {e}"))
                }
                (_, Some(_)) if e.to_string().contains("max_rows") => {
                    HandlerError::BadRequest(format!("options.max_rows: {e}"))
                }
                _ => bad(&e),
            })?;
        Ok(TrainJob {
            uri,
            schema,
            config,
        })
    }
}

/// Trains on a blocking thread (CPU-bound for seconds: the async workers
/// stay free) and hands the table back for the champion comparison.
async fn fit_off_the_runtime(
    table: Table,
    population: Option<Population>,
    schema: Schema,
    config: TrainConfig,
) -> (churn_model::Result<churn_model::TrainOutcome>, Table) {
    crate::blocking::run(move || {
        let outcome = match population {
            Some(p) => train_sample(&table, p, &schema, &config),
            None => train(&table, &schema, &config),
        };
        (outcome, table)
    })
    .await
}

/// The gate's decision and why.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    promote: bool,
    /// The new model is the champion already (same content hash).
    already_current: bool,
    reason: String,
    champion: Option<ChampionComparison>,
}

impl Verdict {
    fn keep(reason: String) -> Verdict {
        Verdict {
            promote: false,
            already_current: false,
            reason,
            champion: None,
        }
    }

    fn promote(reason: String) -> Verdict {
        Verdict {
            promote: true,
            ..Verdict::keep(reason)
        }
    }
}

/// The gate: the floor first, then the champion (`current`, if any) on the
/// new holdout rows it can score.
fn gate_verdict(
    gate: Gate,
    outcome: &churn_model::TrainOutcome,
    table: &churn_model::Table,
    model_id: &str,
    current: Option<(crate::model_store::ModelPointer, Vec<u8>)>,
) -> Verdict {
    let auc = outcome.artifact.metrics().roc_auc;
    if auc < gate.min_auc {
        return Verdict::keep(format!(
            "holdout ROC AUC {auc:.4} is below the floor {:.2}; kept as a candidate",
            gate.min_auc
        ));
    }
    match current {
        None => Verdict::promote(format!(
            "holdout ROC AUC {auc:.4} passes the floor {:.2}; first model",
            gate.min_auc
        )),
        Some((pointer, _)) if pointer.model_id == model_id => Verdict {
            already_current: true,
            ..Verdict::promote(
                "identical to the current champion (same data and settings)".to_string(),
            )
        },
        Some((pointer, champion_bytes)) => {
            let compared = ModelArtifact::from_json_bytes(&champion_bytes)
                .map_err(|e| e.to_string())
                .and_then(|champion| {
                    compare_on_shared_rows(
                        &champion,
                        &outcome.artifact,
                        table,
                        &outcome.holdout_rows,
                        &outcome.artifact.label_column,
                    )
                });
            versus_champion(
                gate,
                auc,
                &pointer.model_id,
                outcome.holdout_rows.len(),
                compared,
            )
        }
    }
}

/// The verdict against the champion `champion_id`, from the comparison on
/// the shared holdout rows (or why there was none).
fn versus_champion(
    gate: Gate,
    own_auc: f64,
    champion_id: &str,
    holdout_rows: usize,
    compared: Result<SharedRows, String>,
) -> Verdict {
    let champion = Some(ChampionComparison {
        model_id: champion_id.to_string(),
        roc_auc_on_new_holdout: compared.as_ref().ok().map(|c| c.champion_auc),
    });
    let shared = match compared {
        Ok(shared) => shared,
        // The champion cannot read the new data (e.g. a feature was
        // renamed): the floor is the only comparison left.
        Err(e) => {
            return Verdict {
                champion,
                ..Verdict::promote(format!(
                    "holdout ROC AUC {own_auc:.4} passes the floor {:.2}; the champion {champion_id} could not score the new holdout ({e})",
                    gate.min_auc
                ))
            }
        }
    };
    let (auc, c) = (shared.challenger_auc, shared.champion_auc);
    let on_rows = if shared.rows < holdout_rows {
        format!(
            " on the {} of {holdout_rows} holdout rows the champion can score",
            shared.rows
        )
    } else {
        " on the same holdout".to_string()
    };
    let verdict = if auc + gate.max_auc_drop < c {
        Verdict::keep(format!(
            "holdout ROC AUC {auc:.4} is more than {:.3} below the champion {champion_id} ({c:.4}{on_rows}); kept as a candidate",
            gate.max_auc_drop
        ))
    } else {
        Verdict::promote(format!(
            "holdout ROC AUC {auc:.4} passes the floor {:.2} and is within {:.3} of the champion {champion_id} ({c:.4}{on_rows})",
            gate.min_auc, gate.max_auc_drop
        ))
    };
    Verdict {
        champion,
        ..verdict
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const GATE: Gate = Gate {
        min_auc: 0.6,
        max_auc_drop: 0.01,
    };

    fn shared(challenger_auc: f64, champion_auc: f64, rows: usize) -> Result<SharedRows, String> {
        Ok(SharedRows {
            champion_auc,
            challenger_auc,
            rows,
        })
    }

    #[test]
    fn a_challenger_within_the_drop_is_promoted_and_one_below_is_kept() {
        let v = versus_champion(GATE, 0.8, "m1", 100, shared(0.795, 0.80, 100));
        assert!(v.promote, "{v:?}");
        assert!(
            v.reason
                .contains("within 0.010 of the champion m1 (0.8000 on the same holdout)"),
            "{}",
            v.reason
        );
        assert_eq!(v.champion.unwrap().roc_auc_on_new_holdout, Some(0.80));
        let v = versus_champion(GATE, 0.8, "m1", 100, shared(0.78, 0.80, 100));
        assert!(
            !v.promote && v.reason.contains("more than 0.010 below"),
            "{v:?}"
        );
    }

    #[test]
    fn the_comparison_names_the_shared_rows_when_the_champion_skips_some() {
        let v = versus_champion(GATE, 0.8, "m1", 100, shared(0.81, 0.80, 90));
        assert!(
            v.reason
                .contains("on the 90 of 100 holdout rows the champion can score"),
            "{}",
            v.reason
        );
    }

    #[test]
    fn a_champion_that_cannot_score_leaves_the_floor() {
        let v = versus_champion(GATE, 0.7, "m1", 100, Err("no column x".into()));
        assert!(
            v.promote
                && v.reason
                    .contains("could not score the new holdout (no column x)"),
            "{v:?}"
        );
        assert_eq!(v.champion.unwrap().roc_auc_on_new_holdout, None);
    }

    #[test]
    fn request_options_are_checked_naming_the_field() {
        let request = |options: TrainOptions| TrainRequest {
            features: "data.csv".into(),
            id_column: None,
            label_column: None,
            schema: None,
            options,
        };
        let settings = TrainSettings {
            gate: Gate {
                min_auc: 0.6,
                max_auc_drop: 0.01,
            },
            bands: BandPolicy::default(),
            max_rows: Some(5_000),
            whole_read_max_bytes: WHOLE_READ_MAX_BYTES,
        };
        let err = TrainJob::from_request(
            &request(TrainOptions {
                created_at: Some("yesterday".into()),
                ..TrainOptions::default()
            }),
            &settings,
        )
        .unwrap_err();
        assert!(err.to_string().contains("options.created_at"), "{err}");
        let err = TrainJob::from_request(
            &request(TrainOptions {
                bands: Some(BandPolicy::Fixed {
                    high: 0.2,
                    medium: 0.5,
                }),
                ..TrainOptions::default()
            }),
            &settings,
        )
        .unwrap_err();
        assert!(err.to_string().contains("options.bands"), "{err}");
        let job = TrainJob::from_request(
            &request(TrainOptions {
                seed: Some(9),
                created_at: Some("2026-01-02T03:04:05Z".into()),
                ..TrainOptions::default()
            }),
            &settings,
        )
        .unwrap();
        assert_eq!(job.config.seed, 9);
        // The service's row cap applies unless the request sets its own.
        assert_eq!(job.config.max_rows, 5_000);
        let capped = TrainJob::from_request(
            &request(TrainOptions {
                max_rows: Some(3_000),
                ..TrainOptions::default()
            }),
            &settings,
        )
        .unwrap();
        assert_eq!(capped.config.max_rows, 3_000);
        let err = TrainJob::from_request(
            &request(TrainOptions {
                max_rows: Some(5),
                ..TrainOptions::default()
            }),
            &settings,
        )
        .unwrap_err();
        assert!(err.to_string().contains("options.max_rows"), "{err}");
        assert!(
            job.config.created_at.starts_with("2026-01-02T03:04:05"),
            "{}",
            job.config.created_at
        );
    }
}
