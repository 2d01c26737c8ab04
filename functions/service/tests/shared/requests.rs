//! Inputs the handler tests share: a table written as a file, and the train
//! request every test starts from (a fixed `created_at`, so artifacts are
//! byte-identical between runs).

use churn_model::Table;
use churn_service::features::write_table;
use churn_service::handlers::train::{TrainOptions, TrainRequest};
use std::path::{Path, PathBuf};

/// `table` written to `dir/name` (CSV or Parquet by the extension).
#[allow(dead_code)] // not every test crate that includes this module writes tables
pub fn write_csv(dir: &Path, name: &str, table: &Table) -> PathBuf {
    let p = dir.join(name);
    write_table(table, &p).unwrap();
    p
}

/// A train request on `path` with default columns and options.
pub fn train_request(path: &Path) -> TrainRequest {
    TrainRequest {
        features: path.display().to_string(),
        id_column: None,
        label_column: None,
        schema: None,
        options: TrainOptions {
            created_at: Some("2024-06-01T00:00:00Z".into()),
            ..TrainOptions::default()
        },
    }
}

/// Services over `flags` and `runs`, with a model store in `dir/models`
/// re-read on every request, and a model trained and promoted on 3,000
/// seeded synthetic customers.
#[allow(dead_code)] // not every test crate that includes this module trains
pub async fn trained_services(
    dir: &Path,
    flags: std::sync::Arc<dyn churn_service::flag_store::FlagStore>,
    runs: std::sync::Arc<dyn churn_service::run_store::RunStore>,
    outbox: std::sync::Arc<dyn churn_service::notify::Outbox>,
) -> (
    churn_service::services::Services,
    churn_service::handlers::train::TrainSummary,
) {
    use churn_service::handlers::train::{handle_train, Gate};
    let models = std::sync::Arc::new(churn_service::model_store::DirModelStore::new(
        dir.join("models"),
    ));
    let config = churn_service::config::ServiceConfig {
        model_refresh: std::time::Duration::from_secs(0),
        ..churn_service::config::ServiceConfig::default()
    };
    let services =
        churn_service::services::Services::with_stores(config, models, flags, runs, outbox);
    let table = churn_model::generate(&churn_model::SyntheticConfig {
        customers: 3000,
        seed: 5,
    });
    let train = write_csv(dir, "train.csv", &table);
    let gate = Gate {
        min_auc: 0.6,
        max_auc_drop: 0.01,
    };
    let sources = churn_service::features::FeatureSources::new();
    let summary = handle_train(
        &train_request(&train),
        services.models.as_ref(),
        &sources,
        gate,
    )
    .await
    .unwrap();
    assert!(summary.promoted, "{}", summary.reason);
    (services, summary)
}
