//! `churn`: the command-line face of churn-risk.
//!
//! Every subcommand is thin wiring over `churn-service` handlers (the same
//! ones the Lambda functions call); nothing here scores, trains or rescores
//! on its own.

mod commands;
mod exit;
mod output;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match commands::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return exit::usage(err),
    };
    exit::finish(commands::run(cli))
}
