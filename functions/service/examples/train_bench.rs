//! Times the training path the train handler and `churn train` use: the
//! whole-table CSV read, then `churn_model::train`, on the benchmark table.
//!
//! ```sh
//! cargo run --release -p churn-service --example train_bench -- /tmp/syn1m.csv
//! ```
//! Prints one JSON line (`work_s` = read + train, like sklearn_baseline.py's).

use churn_model::{train, Schema, TrainConfig};
use churn_service::features::{read_local_file, ReadOptions};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/syn1m.csv".into());
    let t0 = Instant::now();
    let schema = Schema::default();
    let options = ReadOptions::from_schema(&schema, "customer_id", "churned");
    let table = read_local_file(std::path::Path::new(&path), &options)?;
    let read_s = t0.elapsed().as_secs_f64();
    let outcome = train(&table, &schema, &TrainConfig::default())?;
    let work_s = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "work_s": work_s,
            "read_s": read_s,
            "train_s": work_s - read_s,
            "auc": outcome.artifact.metrics().roc_auc,
        })
    );
    Ok(())
}
