//! `churn generate`: a seeded synthetic engagement table.

use clap::Args;
use std::path::PathBuf;

use churn_model::SyntheticConfig;
use churn_service::features::{write_table, Format};

use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn generate --customers 100000 --seed 7 --out customers.csv\n  churn generate --customers 1000000 --out snapshot.parquet"
)]
pub struct GenerateArgs {
    /// Number of customers (rows).
    #[arg(long, value_parser = super::positive)]
    pub customers: u64,
    /// Seed: the same seed gives the same table.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file; the extension (.csv or .parquet) picks the format.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub async fn run(args: GenerateArgs, progress: Progress) -> anyhow::Result<()> {
    write_synthetic(args.customers, args.seed, args.out, progress).await?;
    Ok(())
}

/// Generates `customers` synthetic rows with `seed` and writes them to `out`
/// (format by extension). Returns the number of rows. Shared with `demo`.
pub async fn write_synthetic(
    customers: u64,
    seed: u64,
    out: PathBuf,
    progress: Progress,
) -> anyhow::Result<usize> {
    if Format::from_name(&out.to_string_lossy()).is_none() {
        return Err(crate::exit::user(format!(
            "cannot write {}: the output name must end in .csv or .parquet",
            out.display()
        )));
    }
    let customers = usize::try_from(customers)
        .map_err(|_| crate::exit::user(format!("--customers {customers} is too large")))?;
    let step = progress.step(format!(
        "generating {customers} synthetic customers (seed {seed})"
    ));
    let shown = out.display().to_string();
    let rows = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let table = churn_model::generate(&SyntheticConfig { customers, seed });
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                crate::exit::user(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        write_table(&table, &out)?;
        Ok(table.n_rows())
    })
    .await??;
    step.done(format!("wrote {rows} customers to {shown}"));
    Ok(rows)
}
