//! `churn runs`: the recorded rescore runs (the API's `GET /v1/runs` and
//! `GET /v1/runs/{run_id}`): counts, the snapshot check, refused or forced.

use clap::{Args, Subcommand};

use churn_service::run_record::{validate_run_id, RunRecord};
use churn_service::timestamp;

use super::{context, FlagsStoreArg, ModelsStoreArg};
use crate::exit::user;
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn runs list\n  churn runs show run-20261201T041500Z-3f9a1c\n  churn runs list --models s3://bucket/models --flags dynamodb://churn-flags --format json"
)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,
}

/// Where the run records and outcomes reports are (beside the flags in
/// SQLite, else in the model store's bucket or directory), and the output
/// format.
#[derive(Debug, Clone, Args)]
pub struct RunStoreArgs {
    #[command(flatten)]
    pub models: ModelsStoreArg,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
    /// Output format (json = the API's objects, the stored report).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The latest runs, newest first.
    #[command(
        after_help = "Examples:\n  churn runs list\n  churn runs list --limit 5 --format csv"
    )]
    List {
        /// How many runs.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=500))]
        limit: u64,
        #[command(flatten)]
        store: RunStoreArgs,
    },
    /// One run: its counts and the snapshot check per feature.
    #[command(after_help = "Example:\n  churn runs show run-20261201T041500Z-3f9a1c")]
    Show {
        /// The run id (as listed by `churn runs list`).
        run_id: String,
        #[command(flatten)]
        store: RunStoreArgs,
    },
}

pub async fn run(args: RunsArgs, _progress: Progress) -> anyhow::Result<()> {
    match args.command {
        RunsCommand::List { limit, store } => {
            let services = services(&store).await?;
            let runs = services.runs.runs(limit as usize).await?;
            list(&runs, store.format)
        }
        RunsCommand::Show { run_id, store } => {
            validate_run_id(&run_id).map_err(user)?;
            let services = services(&store).await?;
            let Some(record) = services.runs.run(&run_id).await? else {
                return Err(user(format!(
                    "no run {run_id:?} is recorded in {}: see `churn runs list`",
                    context::flags_display(&services.config)
                )));
            };
            show(&record, store.format)
        }
    }
}

async fn services(
    store: &RunStoreArgs,
) -> anyhow::Result<std::sync::Arc<churn_service::services::Services>> {
    let config = context::config(Some(&store.models.models), Some(&store.flags.flags))?;
    context::services(&config, false).await
}

fn list(runs: &[RunRecord], format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        let listed: Vec<_> = runs.iter().map(RunRecord::summary).collect();
        return output::print_json(&serde_json::json!({ "runs": listed }));
    }
    let mut t = Table::new([
        "run_id",
        "started_at",
        "snapshot",
        "model",
        "check",
        "max_psi",
        "rows",
        "written",
        "failed_rows",
    ])
    .right(&[5, 6, 7, 8]);
    for r in runs {
        t.row([
            r.run_id.clone(),
            timestamp::format(r.started_at),
            r.snapshot.clone(),
            super::train::short_id(&r.model_id).to_string(),
            verdict(r),
            r.check.max_psi().map_or("-".into(), |p| format!("{p:.3}")),
            r.counts.rows.to_string(),
            r.counts.written.to_string(),
            r.counts.failed_rows.to_string(),
        ]);
    }
    match format {
        Format::Csv => Ok(t.write_csv(std::io::stdout().lock())?),
        _ => output::print(&t.render()),
    }
}

/// `ok`, `warn`, `refuse (nothing written)`, `refuse (forced)`.
fn verdict(r: &RunRecord) -> String {
    let mut v = r.status.as_str().to_string();
    if r.forced {
        v.push_str(" (forced)");
    } else if r.refused && r.shards.is_none() {
        v.push_str(" (nothing written)");
    }
    if let Some(s) = r.shards.as_ref().filter(|s| s.refused > 0) {
        v.push_str(&format!(" ({} of {} shards refused)", s.refused, s.shards));
    }
    v
}

fn show(r: &RunRecord, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        return output::print_json(r);
    }
    let c = &r.counts;
    let mut t = Table::new(["", "rows"]).right(&[1]);
    for (label, n) in [
        ("read", c.rows),
        ("scored", c.scored),
        ("failed validation", c.failed_rows),
        ("written", c.written),
        ("unchanged (not rewritten)", c.skipped_unchanged),
        ("stale (newer score stored)", c.stale_rejected),
        ("newly at risk", c.newly_at_risk),
        ("write failures", c.write_failures),
        ("out of training range", c.out_of_range_rows),
    ] {
        t.row([label.to_string(), n.to_string()]);
    }
    if format == Format::Csv {
        return Ok(t.write_csv(std::io::stdout().lock())?);
    }
    output::print(&format!(
        "run       {}\nstarted   {}\nas of     {}\nsnapshot  {}\nmodel     {}\ncheck     {}\n\n{}\n{}",
        r.run_id,
        timestamp::format(r.started_at),
        timestamp::format(r.as_of),
        r.snapshot,
        r.model_id,
        verdict(r),
        t.render(),
        super::check::render(&r.check)
    ))
}
