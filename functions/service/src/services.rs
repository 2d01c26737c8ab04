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
use crate::notify::{Notifier, NotifySettings, NotifyValues, Outbox};
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
    /// Risk-change events: the flag store's outbox.
    pub outbox: Arc<dyn Outbox>,
    /// The destinations' clients (none configured: events are only recorded).
    pub notifier: Arc<Notifier>,
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
        let (flags, runs, outbox): (Arc<dyn FlagStore>, Arc<dyn RunStore>, Arc<dyn Outbox>) =
            match &config.flags {
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
                    (store.clone(), store.clone(), store)
                }
                FlagsLocation::DynamoDb { table } => {
                    let sdk = sdk.get_or_init(load_sdk_config).await;
                    let client = aws_sdk_dynamodb::Client::new(sdk);
                    let flags = Arc::new(
                        DynamoFlagStore::new(client, table.clone(), config.risk_list_shards)
                            .with_strategy(config.flag_writes)
                            .with_history(config.history),
                    );
                    (flags.clone(), object_runs(&config.models, sdk), flags)
                }
            };
        let notifier = notifier(&config.notify, &sdk).await?;
        let mut services = Services::new(config, models, flags, runs, outbox, sdk);
        services.config.notify = notifier.settings.clone();
        services.notifier = Arc::new(notifier);
        Ok(services)
    }

    /// Wires given adapters (tests, or callers that built their own clients).
    pub fn with_stores(
        config: ServiceConfig,
        models: Arc<dyn ModelStore>,
        flags: Arc<dyn FlagStore>,
        runs: Arc<dyn RunStore>,
        outbox: Arc<dyn Outbox>,
    ) -> Services {
        Services::new(
            config,
            models,
            flags,
            runs,
            outbox,
            Arc::new(OnceCell::new()),
        )
    }

    /// Delivers events with `notifier` (tests point it at their receivers).
    pub fn with_notifier(mut self, notifier: Notifier) -> Services {
        self.config.notify = notifier.settings.clone();
        self.notifier = Arc::new(notifier);
        self
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
        outbox: Arc<dyn Outbox>,
        sdk: Arc<OnceCell<aws_config::SdkConfig>>,
    ) -> Services {
        let cache = ModelCache::new(models.clone(), config.model_refresh, ScoringModel::load);
        Services {
            config,
            models,
            flags,
            runs,
            outbox,
            notifier: Arc::new(Notifier::none()),
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

/// The destinations' clients for `settings`: completed from the Secrets
/// Manager secret when one is named (read once, here), with an EventBridge
/// client when a bus is configured.
///
/// # Errors
/// [`Error::Config`] naming `CHURN_NOTIFY_SECRET_ARN` when the secret cannot
/// be read or is not the expected JSON, or the variable at fault when the
/// completed settings are invalid.
async fn notifier(
    settings: &NotifySettings,
    sdk: &OnceCell<aws_config::SdkConfig>,
) -> Result<Notifier> {
    use crate::notify::settings::SECRET_ARN;
    let mut settings = settings.clone();
    if let Some(arn) = settings.secret_arn.clone() {
        let config = sdk.get_or_init(load_sdk_config).await;
        let secret = aws_sdk_secretsmanager::Client::new(config)
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .map_err(|e| Error::Config {
                variable: SECRET_ARN,
                value: arn.clone(),
                message: format!("cannot read the secret: {}", crate::error::report(&e)),
            })?;
        let text = secret.secret_string().ok_or_else(|| Error::Config {
            variable: SECRET_ARN,
            value: arn.clone(),
            message: "the secret has no SecretString".into(),
        })?;
        // Values set directly win over the secret's.
        let values = NotifyValues::from_settings(&settings);
        settings = values.complete_from_secret(text)?.validate()?;
    }
    let eventbridge = match settings.event_bus {
        Some(_) => Some(aws_sdk_eventbridge::Client::new(
            sdk.get_or_init(load_sdk_config).await,
        )),
        None => None,
    };
    let variable = match settings.slack {
        Some(_) => crate::notify::settings::SLACK_URL,
        None => crate::notify::settings::WEBHOOK_URL,
    };
    Notifier::new(settings, eventbridge).map_err(|message| Error::Config {
        variable,
        value: String::new(),
        message,
    })
}
