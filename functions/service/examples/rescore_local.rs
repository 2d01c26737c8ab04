//! Rescores a local snapshot into SQLite in process (for profiling the
//! rescore path without the Lambda runtime around it).
//!
//! ```sh
//! cargo run --release -p churn-service --example rescore_local -- SNAPSHOT.csv MODELS_DIR FLAGS.db
//! ```

use churn_service::config::ServiceConfig;
use churn_service::flag_store::SqliteFlagStore;
use churn_service::handlers::rescore::{
    handle_rescore, RescoreSettings, RescoreStores, RunIdentity,
};
use churn_service::model_store::DirModelStore;
use churn_service::services::Services;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: rescore_local SNAPSHOT MODELS_DIR FLAGS_DB"
    );
    let config = ServiceConfig::default();
    let flags = Arc::new(SqliteFlagStore::open(&args[2], 8).await?);
    let services = Services::with_stores(
        config.clone(),
        Arc::new(DirModelStore::new(&args[1])),
        flags.clone(),
        flags.clone(),
        flags,
    );
    let model = services
        .cache
        .get()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no promoted model"))?;
    for run in 0..2 {
        let s = handle_rescore(
            &args[0],
            &model.model,
            RescoreStores::of(&services),
            RescoreSettings::from_config(&config),
            &RunIdentity::new_run(),
            &|_| {},
        )
        .await?;
        println!(
            "run {run}: {} rows, {} written, {} skipped in {:.2} s = {:.0} rows/s",
            s.rows,
            s.written,
            s.skipped_unchanged,
            s.seconds,
            s.rows as f64 / s.seconds
        );
    }
    Ok(())
}
