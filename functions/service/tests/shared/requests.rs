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
