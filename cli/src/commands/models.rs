//! `churn models`: list, promote, roll back, write a model's report.

use clap::{Args, Subcommand};

use anyhow::Context as _;
use churn_service::config::ServiceConfig;
use churn_service::model_store::ModelStore;
use churn_service::timestamp;
use serde::{Deserialize, Serialize};

use super::{context, ModelsStoreArg};
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn models list\n  churn models promote 3f2a9c...\n  churn models rollback\n  churn models report --out report.html"
)]
pub struct ModelsArgs {
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the models in the store, newest first; `*` marks the current one.
    #[command(
        after_help = "Examples:\n  churn models list\n  churn models list --models s3://bucket/models --format json"
    )]
    List {
        #[command(flatten)]
        store: ModelsStoreArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Make a stored model the current one (moves the pointer; no gate). A
    /// unique prefix of the id is enough.
    #[command(after_help = "Example:\n  churn models promote 3f2a9c0d1e")]
    Promote {
        /// The model id (as listed by `churn models list`).
        model_id: String,
        #[command(flatten)]
        store: ModelsStoreArg,
    },
    /// Point back at the model that was current before the last promotion.
    #[command(after_help = "Example:\n  churn models rollback")]
    Rollback {
        #[command(flatten)]
        store: ModelsStoreArg,
    },
    /// Write a model's report: one self-contained HTML file (metrics, ROC,
    /// precision-recall, calibration and lift charts, cutoffs,
    /// coefficients) to share. Drawn from the stored artifact.
    #[command(
        after_help = "Examples:\n  churn models report --out report.html\n  churn models report 3f2a9c --out 3f2a9c.html --models s3://bucket/models"
    )]
    Report {
        /// The model id or a unique prefix (default: the current model).
        model_id: Option<String>,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
        #[command(flatten)]
        store: ModelsStoreArg,
    },
}

pub async fn run(args: ModelsArgs, progress: Progress) -> anyhow::Result<()> {
    match args.command {
        ModelsCommand::List { store, format } => list(&store.models, format).await,
        ModelsCommand::Promote { model_id, store } => {
            promote(&store.models, &model_id, progress).await
        }
        ModelsCommand::Rollback { store } => rollback(&store.models, progress).await,
        ModelsCommand::Report {
            model_id,
            out,
            store,
        } => report(&store.models, model_id.as_deref(), &out, progress).await,
    }
}

async fn report(
    models: &str,
    model_id: Option<&str>,
    out: &std::path::Path,
    progress: Progress,
) -> anyhow::Result<()> {
    let config = context::config(Some(models), None)?;
    let store = context::model_store(&config).await;
    let model_id = match model_id {
        Some(given) => resolve_id(store.as_ref(), given, &config).await?,
        None => store
            .current_pointer()
            .await?
            .map(|p| p.model_id)
            .ok_or_else(|| {
                crate::exit::user(format!(
                    "no model is promoted in {}: name one (see `churn models list`)",
                    context::models_display(&config)
                ))
            })?,
    };
    let bytes = store
        .artifact(&model_id)
        .await?
        .ok_or_else(|| unknown_model(&model_id, &config))?;
    let artifact = churn_model::ModelArtifact::from_json_bytes(&bytes)
        .with_context(|| format!("model {model_id} does not load"))?;
    let html = churn_service::web::report_html(&artifact);
    std::fs::write(out, html.as_bytes())
        .map_err(|e| crate::exit::user(format!("cannot write {}: {e}", out.display())))?;
    progress.note(format!(
        "report of model {model_id} written to {}",
        out.display()
    ));
    Ok(())
}

/// What `models list` shows for one model.
#[derive(Debug, Serialize)]
struct Listed {
    model_id: String,
    current: bool,
    created_at: Option<String>,
    stored_at: Option<String>,
    last_promoted_at: Option<String>,
    roc_auc: Option<f64>,
    train_rows: Option<u64>,
}

async fn list(models: &str, format: Format) -> anyhow::Result<()> {
    let config = context::config(Some(models), None)?;
    let store = context::model_store(&config).await;
    let entries = store.list().await?;
    let mut listed = Vec::with_capacity(entries.len());
    for entry in entries {
        // A few fields of the artifact for people; a broken artifact is
        // listed without them rather than failing the listing.
        let head = store
            .artifact(&entry.model_id)
            .await
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<ArtifactHead>(&bytes).ok());
        listed.push(Listed {
            current: entry.promoted,
            created_at: head.as_ref().map(|h| h.created_at.clone()),
            stored_at: entry.stored_at.map(timestamp::format),
            last_promoted_at: entry.last_promoted_at.map(timestamp::format),
            roc_auc: head.as_ref().map(|h| h.metrics.roc_auc),
            train_rows: head.as_ref().map(|h| h.training.train_rows),
            model_id: entry.model_id,
        });
    }
    match format {
        Format::Json => output::print_json(&listed),
        Format::Table | Format::Csv => {
            let mut table = Table::new([
                "current",
                "model_id",
                "stored_at",
                "roc_auc",
                "train_rows",
                "last_promoted_at",
            ])
            .right(&[3, 4]);
            for m in &listed {
                table.row([
                    if m.current { "*" } else { "" }.to_string(),
                    m.model_id.clone(),
                    m.stored_at.clone().unwrap_or_default(),
                    m.roc_auc.map(output::metric).unwrap_or_default(),
                    m.train_rows.map(|n| n.to_string()).unwrap_or_default(),
                    m.last_promoted_at.clone().unwrap_or_default(),
                ]);
            }
            if format == Format::Csv {
                table.write_csv(std::io::stdout().lock())?;
                Ok(())
            } else if listed.is_empty() {
                output::print(&format!(
                    "no models in {}: train one with `churn train` or run `churn demo`\n",
                    context::models_display(&config)
                ))
            } else {
                output::print(&table.render())
            }
        }
    }
}

/// The few artifact fields `models list` shows, read without verifying the
/// whole artifact.
#[derive(Debug, Deserialize)]
struct ArtifactHead {
    created_at: String,
    metrics: HeadMetrics,
    training: HeadTraining,
}

#[derive(Debug, Deserialize)]
struct HeadMetrics {
    roc_auc: f64,
}

#[derive(Debug, Deserialize)]
struct HeadTraining {
    train_rows: u64,
}

async fn promote(models: &str, model_id: &str, progress: Progress) -> anyhow::Result<()> {
    let config = context::config(Some(models), None)?;
    let store = context::model_store(&config).await;
    let model_id = resolve_id(store.as_ref(), model_id, &config).await?;
    // Refuse an artifact that would not load for scoring.
    let bytes = store
        .artifact(&model_id)
        .await?
        .ok_or_else(|| unknown_model(&model_id, &config))?;
    churn_model::ModelArtifact::from_json_bytes(&bytes)
        .with_context(|| format!("model {model_id} cannot be promoted"))?;
    let pointer = store.promote(&model_id, None).await?;
    progress.note(format!(
        "promoted at {}",
        timestamp::format(pointer.promoted_at)
    ));
    output::print(&format!("current model: {}\n", pointer.model_id))
}

async fn rollback(models: &str, progress: Progress) -> anyhow::Result<()> {
    let config = context::config(Some(models), None)?;
    let store = context::model_store(&config).await;
    let before = store.current_pointer().await?;
    let pointer = store.rollback().await.map_err(|e| match e {
        churn_service::Error::NoPreviousModel => crate::exit::user(format!(
            "nothing to roll back to in {}: no model was promoted before the current one",
            context::models_display(&config)
        )),
        other => other.into(),
    })?;
    if let Some(before) = before {
        progress.note(format!("rolled back from {}", before.model_id));
    }
    output::print(&format!("current model: {}\n", pointer.model_id))
}

/// An exact stored id, or the one stored id starting with `given`.
async fn resolve_id(
    store: &dyn ModelStore,
    given: &str,
    config: &ServiceConfig,
) -> anyhow::Result<String> {
    let entries = store.list().await?;
    if entries.iter().any(|e| e.model_id == given) {
        return Ok(given.to_string());
    }
    let matches: Vec<&str> = entries
        .iter()
        .map(|e| e.model_id.as_str())
        .filter(|id| !given.is_empty() && id.starts_with(given))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(unknown_model(given, config)),
        many => Err(crate::exit::user(format!(
            "model id prefix {given:?} matches {} models; give more characters",
            many.len()
        ))),
    }
}

fn unknown_model(model_id: &str, config: &ServiceConfig) -> anyhow::Error {
    crate::exit::user(format!(
        "no model {model_id:?} in {}: see `churn models list`",
        context::models_display(config)
    ))
}
