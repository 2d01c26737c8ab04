//! Building the service configuration and adapters from the command line.
//!
//! `--models`/`--flags` (with their `CHURN_MODELS`/`CHURN_FLAGS` fallbacks,
//! handled by clap) replace those two variables; every other setting
//! (refresh, epsilon, gate, shards, deadline) comes from the environment as
//! for the Lambda functions, through the same `ServiceConfig`.

use anyhow::Context as _;
use churn_model::ModelArtifact;
use churn_service::config::{parse_flags_location, parse_models_location, FlagsLocation};
use churn_service::config::{ModelsLocation, ServiceConfig};
use churn_service::flag_store::FlagStore;
use churn_service::model_store::{DirModelStore, ModelPointer, ModelStore, S3ModelStore};
use churn_service::services::{self, Services};
use std::sync::Arc;

use crate::exit::user;

/// The service configuration with the given store locations.
pub fn config(models: Option<&str>, flags: Option<&str>) -> anyhow::Result<ServiceConfig> {
    config_overriding(models, flags, &[])
}

/// [`config`], with `overrides` replacing the environment for the variables
/// they name (`None` = unset): the values of options that have those
/// variables as clap `env` fallbacks, so the option wins and the environment
/// is read once, by clap.
pub fn config_overriding(
    models: Option<&str>,
    flags: Option<&str>,
    overrides: &[(&str, Option<String>)],
) -> anyhow::Result<ServiceConfig> {
    let mut config = ServiceConfig::from_lookup(|name| {
        if let Some((_, value)) = overrides.iter().find(|(n, _)| *n == name) {
            return value.clone();
        }
        match name {
            // read once, by clap (`--models`, `--flags`, `--threads`)
            "CHURN_MODELS" | "CHURN_FLAGS" | churn_service::config::THREADS => None,
            other => std::env::var(other).ok(),
        }
    })?;
    if let Some(models) = models {
        config.models = parse_models_location(models)?;
    }
    if let Some(flags) = flags {
        config.flags = parse_flags_location(flags)?;
    }
    Ok(config)
}

/// Where the models are, for messages.
pub fn models_display(config: &ServiceConfig) -> String {
    match &config.models {
        ModelsLocation::Dir(dir) => dir.display().to_string(),
        ModelsLocation::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
        ModelsLocation::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
    }
}

/// Where the flags are, for messages.
pub fn flags_display(config: &ServiceConfig) -> String {
    match &config.flags {
        FlagsLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
        FlagsLocation::DynamoDb { table } => format!("dynamodb://{table}"),
    }
}

/// The model store alone (no flag store is opened, so nothing is created).
pub async fn model_store(config: &ServiceConfig) -> Arc<dyn ModelStore> {
    match &config.models {
        ModelsLocation::Dir(dir) => Arc::new(DirModelStore::new(dir.clone())),
        ModelsLocation::S3 { bucket, prefix } => {
            let sdk = services::load_sdk_config().await;
            Arc::new(S3ModelStore::new(
                services::s3_client(&sdk),
                bucket.clone(),
                prefix.clone(),
            ))
        }
    }
}

/// The flag store. A local SQLite file that does not exist yet is refused
/// unless `create` (reading a list that was never written is a user error).
pub async fn flag_store(
    config: &ServiceConfig,
    create: bool,
) -> anyhow::Result<Arc<dyn FlagStore>> {
    check_sqlite_exists(config, create)?;
    let only_flags = ServiceConfig {
        // A directory store costs nothing to build and never touches AWS.
        models: ModelsLocation::Dir(".".into()),
        ..config.clone()
    };
    Ok(Services::from_config(only_flags).await?.flags)
}

/// Everything the handlers need, as the Lambda mains build it.
pub async fn services(config: &ServiceConfig, create_flags: bool) -> anyhow::Result<Arc<Services>> {
    check_sqlite_exists(config, create_flags)?;
    Ok(Arc::new(Services::from_config(config.clone()).await?))
}

fn check_sqlite_exists(config: &ServiceConfig, create: bool) -> anyhow::Result<()> {
    if let FlagsLocation::Sqlite(path) = &config.flags {
        if !create && !path.exists() {
            return Err(user(format!(
                "no flag store at {}: run `churn rescore` (or `churn demo`) first, or pass --flags",
                flags_display(config)
            )));
        }
    }
    Ok(())
}

/// The promoted model, parsed and verified; a user error when none is.
pub async fn current_model(
    store: &dyn ModelStore,
    config: &ServiceConfig,
) -> anyhow::Result<(ModelPointer, ModelArtifact)> {
    let Some((pointer, bytes)) = store.current().await? else {
        return Err(no_model(config));
    };
    let artifact = ModelArtifact::from_json_bytes(&bytes)
        .with_context(|| format!("loading model {}", pointer.model_id))?;
    Ok((pointer, artifact))
}

/// The error for an empty model store (no promoted model).
pub fn no_model(config: &ServiceConfig) -> anyhow::Error {
    user(format!(
        "no model has been promoted in {}: train one with `churn train` (or run `churn demo`), or pass --models",
        models_display(config)
    ))
}
