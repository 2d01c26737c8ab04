//! `churn demo`: the whole pipeline on synthetic data, locally.

use clap::Args;
use std::path::PathBuf;

use churn_service::handlers::train::{TrainOptions, TrainRequest};

use super::context;
use crate::output::{self, Format};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  churn demo --customers 50000 --seed 42 --dir ./churn-data\n\n\
Writes DIR/customers.csv, trains into DIR/models, rescores everyone into\n\
sqlite://DIR/flags.db and prints the top 20 of the high-risk list. With the\n\
default --dir every other command then works with no options."
)]
pub struct DemoArgs {
    /// Number of synthetic customers.
    #[arg(long, default_value_t = 50_000, value_parser = super::positive)]
    pub customers: u64,
    /// Seed for the synthetic data and the training split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory for the data, the model store and the flag store.
    #[arg(long, default_value = DEFAULT_DIR)]
    pub dir: PathBuf,
}

pub async fn run(args: DemoArgs, progress: Progress) -> anyhow::Result<()> {
    if args.customers < MIN_CUSTOMERS {
        return Err(crate::exit::user(format!(
            "the demo needs at least {MIN_CUSTOMERS} customers (about 15 % churn, and training wants 50 churners or more)"
        )));
    }
    let dir = args.dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| {
        crate::exit::user(format!("cannot create directory {}: {e}", dir.display()))
    })?;
    let data = dir.join("customers.csv");
    let models = dir.join("models");
    let flags = format!("sqlite://{}", dir.join("flags.db").display());
    let config = context::config(Some(&models.to_string_lossy()), Some(&flags))?;

    // 1. Synthetic engagement data.
    let rows =
        super::generate::write_synthetic(args.customers, args.seed, data.clone(), progress).await?;
    let data = data.to_string_lossy().to_string();

    // 2. Train (the train Lambda's handler), with the promotion gate.
    let services = context::services(&config, true).await?;
    let request = TrainRequest {
        features: data.clone(),
        id_column: None,
        label_column: None,
        schema: None,
        options: TrainOptions {
            seed: Some(args.seed),
            ..TrainOptions::default()
        },
    };
    let trained =
        super::train::train(&request, services.models.as_ref(), &config, progress).await?;
    let mut out = format!("== Trained on {rows} synthetic customers ==\n\n");
    out.push_str(&trained.render());
    output::print(&out)?;

    // 3. Rescore everyone (the scheduled Lambda's handler) into the local flag store.
    let summary = super::rescore::rescore(
        &services,
        &data,
        super::rescore::RunOptions {
            as_of: None,
            force: false,
            notify: true,
        },
        progress,
    )
    .await?;
    output::print(&format!(
        "\n== Rescored {} customers into {} ==\n\n{}",
        summary.scored,
        context::flags_display(&config),
        super::rescore::render(&summary)
    ))?;
    super::rescore::write_failures(&summary)?;

    // 4. The high-risk list, as a CS team would read it.
    let query =
        churn_service::flag_store::ListQuery::band(churn_service::flag_store::BandFilter::High);
    let top = super::risk_list::fetch(services.flags.as_ref(), &query, TOP).await?;
    output::print(&format!(
        "\n== Top {} of the high-risk list ==\n\n",
        top.len()
    ))?;
    super::risk_list::print_flags(&top, Format::Table)?;

    let default_dir = dir == std::path::Path::new(DEFAULT_DIR);
    let opts = |models: bool, flags_too: bool| -> String {
        if default_dir {
            return String::new();
        }
        let mut o = String::new();
        if models {
            o.push_str(&format!(" --models {}", context::models_display(&config)));
        }
        if flags_too {
            o.push_str(&format!(" --flags {}", context::flags_display(&config)));
        }
        o
    };
    output::print(&format!(
        "\nNext:\n  churn risk-list --band medium{}\n  churn score --data {data} --out scores.csv{}\n  churn serve{}\n  churn models list{}\n",
        opts(false, true),
        opts(true, false),
        opts(true, true),
        opts(true, false),
    ))
}

/// Fewest synthetic customers the demo trains on.
const MIN_CUSTOMERS: u64 = 1000;
/// Customers shown from the high-risk list.
const TOP: usize = 20;
/// The default `--dir`.
const DEFAULT_DIR: &str = "./churn-data";
