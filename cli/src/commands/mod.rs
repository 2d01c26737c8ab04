//! The `churn` command line: argument definitions and dispatch.
//!
//! One file per subcommand; each parses its arguments, builds the adapters
//! the configuration names, and calls the `churn-service` handler.

use clap::{Args, Parser, Subcommand};

use crate::progress::Progress;

mod check;
mod context;
mod customer;
mod demo;
mod events;
mod generate;
mod models;
mod notify;
mod outcomes;
mod rescore;
mod risk_list;
mod runs;
mod score;
mod serve;
mod summary;
mod train;

/// Default stores (where `churn demo` puts them), defined once in the service config.
use churn_service::config::{DEFAULT_FLAGS, DEFAULT_MODELS};

#[derive(Debug, Parser)]
#[command(
    name = "churn",
    version,
    about = "Churn risk scoring: train a model on engagement features, score customers, keep risk lists",
    long_about = "Churn risk scoring: train a model on engagement features, score customers, keep \
                  risk lists.\n\nThe same handlers run as AWS Lambda functions (models in S3, flags \
                  in DynamoDB) and here on your machine (models in a directory, flags in SQLite). \
                  After `churn demo`, every other command works with no options.",
    after_help = "Examples:\n  churn demo\n  churn risk-list --band high --limit 20\n  churn train --data customers.csv --id customer_id --label churned\n\nExit codes: 0 success, 1 bad input or state (named in the message), 2 usage, 3 snapshot refused by the check, 70 internal error."
)]
pub struct Cli {
    /// No progress or notes on stderr (results and errors are still printed).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Threads for parsing, training and scoring (default: one per core).
    #[arg(long, global = true, env = "CHURN_THREADS", value_name = "N", value_parser = churn_service::config::thread_count)]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate synthetic data, train, rescore everyone and show the high-risk list.
    Demo(demo::DemoArgs),
    /// Write a seeded synthetic engagement table (CSV or Parquet).
    Generate(generate::GenerateArgs),
    /// Train a model on a feature table and promote it if it passes the gate.
    Train(train::TrainArgs),
    /// Score a feature table with the current model into a CSV file.
    Score(score::ScoreArgs),
    /// Score a feature snapshot and write the flags to the flag store (after the snapshot check).
    Rescore(rescore::RescoreArgs),
    /// Check a snapshot against the model's training reference (drift, missing, range); writes nothing.
    Check(check::CheckArgs),
    /// Deliver the risk-change events still pending (Slack, webhook, EventBridge).
    Notify(notify::NotifyCommandArgs),
    /// List risk-change events (became at risk, escalated, recovered) and where they went.
    Events(events::EventsArgs),
    /// List recorded rescore runs, or show one with its snapshot check.
    Runs(runs::RunsArgs),
    /// Realised accuracy: known churn outcomes against the scores in force before them.
    Outcomes(outcomes::OutcomesArgs),
    /// Show at-risk customers: by band, owner, segment, renewal; by probability, value, renewal or rise.
    #[command(name = "risk-list")]
    RiskList(risk_list::RiskListArgs),
    /// Show one customer: score, reasons, attributes, history, trend, acknowledgement.
    Customer(customer::CustomerArgs),
    /// Acknowledge a customer's flag: who is acting on it, until when.
    Ack(customer::AckArgs),
    /// Remove a customer's acknowledgement.
    Unack(customer::UnackArgs),
    /// Count customers and value at risk per band, owner or segment.
    Summary(summary::SummaryArgs),
    /// Serve the score API (the Lambda function's routes) on a local HTTP server.
    Serve(serve::ServeArgs),
    /// List, promote and roll back models.
    Models(models::ModelsArgs),
}

/// Where models live.
#[derive(Debug, Clone, Args)]
pub struct ModelsStoreArg {
    /// Model store: a directory, or s3://bucket/prefix.
    #[arg(long = "models", env = "CHURN_MODELS", default_value = DEFAULT_MODELS, value_name = "DIR_OR_S3_URI")]
    pub models: String,
}

/// Where flags live.
#[derive(Debug, Clone, Args)]
pub struct FlagsStoreArg {
    /// Flag store: sqlite://FILE or dynamodb://TABLE.
    #[arg(long = "flags", env = "CHURN_FLAGS", default_value = DEFAULT_FLAGS, value_name = "URI")]
    pub flags: String,
}

/// A whole number of at least 1 (counts, limits).
pub fn positive(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number".to_string()),
    }
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let progress = Progress::new(cli.quiet);
    churn_service::config::init_thread_pool(cli.threads)
        .map_err(|e| anyhow::anyhow!("could not start the thread pool: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("could not start the async runtime: {e}"))?;
    runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(args, progress).await,
            Command::Generate(args) => generate::run(args, progress).await,
            Command::Train(args) => train::run(args, progress).await,
            Command::Score(args) => score::run(args, progress).await,
            Command::Rescore(args) => rescore::run(args, progress).await,
            Command::Check(args) => check::run(args, progress).await,
            Command::Runs(args) => runs::run(args, progress).await,
            Command::Notify(args) => notify::run(args, progress).await,
            Command::Events(args) => events::run(args, progress).await,
            Command::Outcomes(args) => outcomes::run(args, progress).await,
            Command::RiskList(args) => risk_list::run(args, progress).await,
            Command::Customer(args) => customer::run(args, progress).await,
            Command::Ack(args) => customer::run_ack(args, progress).await,
            Command::Unack(args) => customer::run_unack(args, progress).await,
            Command::Summary(args) => summary::run(args, progress).await,
            Command::Serve(args) => serve::run(args, progress).await,
            Command::Models(args) => models::run(args, progress).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_an_example() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(help.contains("churn "), "{} has no example", sub.get_name());
            for nested in sub.get_subcommands() {
                let help = nested
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                assert!(
                    help.contains("churn "),
                    "{} has no example",
                    nested.get_name()
                );
            }
        }
    }
}
