//! Wiring shared by the Lambda mains and the CLI: adapters picked from
//! [`ServiceConfig`], AWS clients built once and only when needed.
//!
//! Building clients is cheap (no network); loading the SDK configuration is
//! deferred until an S3 or DynamoDB location is actually used, so a laptop
//! run with a model directory and SQLite never touches AWS configuration.

use crate::config::{FlagsLocation, ModelsLocation, ServiceConfig};
use crate::error::{Error, Result};
use crate::features::FeatureSources;
use crate::flag_store::{DynamoFlagStore, FlagStore, SqliteFlagStore};
use crate::handlers::model::ScoringModel;
use crate::model_store::{DirModelStore, ModelCache, ModelStore, S3ModelStore};
use crate::run_store::{ObjectRunStore, RunStore};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// The process-wide dependencies of every handler.
pub struct Services {
    pub config: ServiceConfig,
    pub models: Arc<dyn ModelStore>,
    pub flags: Arc<dyn FlagStore>,
    /// Run records and outcomes reports: the SQLite flag file locally, the
    /// model bucket (or directory) otherwise.
    pub runs: Arc<dyn RunStore>,
    /// The promoted model, re-checked every `config.model_refresh`.
    pub cache: ModelCache<ScoringModel>,
    /// Feature tables (local paths and `s3://`), sharing the SDK configuration.
    pub sources: FeatureSources,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub use crate::aws::{load_sdk_config, s3_client};

impl Services {
    /// Builds the adapters named by `config`. Opens the SQLite file when
    /// flags are local; loads the SDK configuration only for S3/DynamoDB.
    ///
    /// # Errors
    /// [`Error::Storage`] when the SQLite database cannot be opened.
    pub async fn from_config(config: ServiceConfig) -> Result<Services> {
        let sdk: Arc<OnceCell<aws_config::SdkConfig>> = Arc::new(OnceCell::new());
        let models: Arc<dyn ModelStore> = match &config.models {
            ModelsLocation::Dir(dir) => Arc::new(DirModelStore::new(dir.clone())),
            ModelsLocation::S3 { bucket, prefix } => {
                let sdk = sdk.get_or_init(load_sdk_config).await;
                Arc::new(S3ModelStore::new(
                    s3_client(sdk),
                    bucket.clone(),
                    prefix.clone(),
                ))
            }
        };
        let (flags, runs): (Arc<dyn FlagStore>, Arc<dyn RunStore>) = match &config.flags {
            FlagsLocation::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::storage("sqlite", "create directory", e))?;
                }
                let store = Arc::new(
                    SqliteFlagStore::open(path, config.risk_list_shards)
                        .await?
                        .with_history(config.history),
                );
                (store.clone(), store)
            }
            FlagsLocation::DynamoDb { table } => {
                let sdk = sdk.get_or_init(load_sdk_config).await;
                let client = aws_sdk_dynamodb::Client::new(sdk);
                let flags = Arc::new(
                    DynamoFlagStore::new(client, table.clone(), config.risk_list_shards)
                        .with_strategy(config.flag_writes)
                        .with_history(config.history),
                );
                (flags, object_runs(&config.models, sdk))
            }
        };
        Ok(Services::new(config, models, flags, runs, sdk))
    }

    /// Wires given adapters (tests, or callers that built their own clients).
    pub fn with_stores(
        config: ServiceConfig,
        models: Arc<dyn ModelStore>,
        flags: Arc<dyn FlagStore>,
        runs: Arc<dyn RunStore>,
    ) -> Services {
        Services::new(config, models, flags, runs, Arc::new(OnceCell::new()))
    }

    /// Uses `client` for `s3://` feature sources (tests point it at moto).
    pub fn with_s3(mut self, client: aws_sdk_s3::Client) -> Services {
        self.sources = FeatureSources::with_s3_client(client);
        self
    }

    fn new(
        config: ServiceConfig,
        models: Arc<dyn ModelStore>,
        flags: Arc<dyn FlagStore>,
        runs: Arc<dyn RunStore>,
        sdk: Arc<OnceCell<aws_config::SdkConfig>>,
    ) -> Services {
        let cache = ModelCache::new(models.clone(), config.model_refresh, ScoringModel::load);
        Services {
            config,
            models,
            flags,
            runs,
            cache,
            sources: FeatureSources::sharing_sdk(sdk),
        }
    }
}

/// The run store beside the models when flags are not in SQLite: the
/// model bucket's root (`runs/`, `outcomes/` next to the models' prefix),
/// or the models directory.
fn object_runs(models: &ModelsLocation, sdk: &aws_config::SdkConfig) -> Arc<dyn RunStore> {
    let objects: Arc<dyn crate::model_store::ModelObjects> = match models {
        ModelsLocation::Dir(dir) => Arc::new(DirModelStore::new(dir.clone())),
        ModelsLocation::S3 { bucket, .. } => {
            Arc::new(S3ModelStore::new(s3_client(sdk), bucket.clone(), ""))
        }
    };
    Arc::new(ObjectRunStore::new(objects))
}
