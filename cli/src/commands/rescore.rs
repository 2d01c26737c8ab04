//! `churn rescore`: the rescore handler (the scheduled Lambda's) on a snapshot.

use clap::Args;

use churn_service::handlers::rescore::{run_event, RescoreSummary};
use churn_service::handlers::HandlerError;
use churn_service::services::Services;

use super::{context, FlagsStoreArg, ModelsStoreArg};
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn rescore --data ./churn-data/customers.csv\n  churn rescore --data snapshots/2026-11-01.csv --as-of 2026-11-01T06:00:00Z\n  churn rescore --data s3://bucket/snapshots/today/ --models s3://bucket/models --flags dynamodb://churn-flags\n\n\
Unchanged scores (same band, probability moved less than CHURN_SCORE_EPSILON)\n\
are not rewritten; rows that fail validation are reported and skipped.\n\n\
The snapshot check (`churn check`) runs first: a refused snapshot writes no\n\
flag and exits 3 unless --force. Every run is recorded (`churn runs list`)."
)]
pub struct RescoreArgs {
    /// Feature snapshot: a .csv or .parquet file, or s3://bucket/key (a prefix = all its parts).
    #[arg(long, value_name = "FILE_OR_URI")]
    pub data: String,
    #[command(flatten)]
    pub models: ModelsStoreArg,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
    /// The run's score time (RFC 3339, not in the future): backfills history
    /// from a dated snapshot. A customer with a newer stored score is left alone.
    #[arg(long, value_name = "RFC3339", value_parser = as_of)]
    pub as_of: Option<time::OffsetDateTime>,
    /// Output format of the summary (json = the handler's summary object).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Same as `--format json`.
    #[arg(long, hide = true)]
    pub json: bool,
    /// Write the flags even when the snapshot check refuses the snapshot
    /// (the run record says it was forced).
    #[arg(long)]
    pub force: bool,
    /// Do not deliver the run's risk-change events at the end (they are
    /// still recorded; `churn notify` delivers them).
    #[arg(long)]
    pub no_notify: bool,
    #[command(flatten)]
    pub notify: super::notify::NotifyArgs,
}

/// `--as-of` through the handler's one check.
fn as_of(text: &str) -> Result<time::OffsetDateTime, String> {
    churn_service::handlers::rescore::parse_as_of(text, time::OffsetDateTime::now_utc())
}

pub async fn run(args: RescoreArgs, progress: Progress) -> anyhow::Result<()> {
    let config = context::config_overriding(
        Some(&args.models.models),
        Some(&args.flags.flags),
        &args.notify.overrides(),
    )?;
    // Refuse before the flag store is created when there is nothing to score with.
    if context::model_store(&config)
        .await
        .current_pointer()
        .await?
        .is_none()
    {
        return Err(context::no_model(&config));
    }
    let services = context::services(&config, true).await?;
    let format = if args.json { Format::Json } else { args.format };
    let options = RunOptions {
        as_of: args.as_of,
        force: args.force,
        notify: !args.no_notify,
    };
    let summary = match rescore(&services, &args.data, options, progress).await {
        Ok(s) => s,
        Err(e) => {
            // A script reading the JSON still gets the verdict it exits 3 for.
            if let (Format::Json, Some(HandlerError::Refused(r))) = (format, e.downcast_ref()) {
                output::print_json(&serde_json::json!({
                    "run_id": r.run_id,
                    "snapshot": args.data,
                    "refused": true,
                    "check": r.report,
                }))?;
            }
            return Err(e);
        }
    };
    match format {
        Format::Json => output::print_json(&summary)?,
        Format::Csv => {
            summary_table(&summary).write_csv(std::io::stdout().lock())?;
        }
        Format::Table => output::print(&render(&summary))?,
    }
    // A destination that is down does not fail the run: its flags are
    // written; what is pending waits for the next run or `churn notify`.
    if let Some(Err(e)) = summary.notify.as_ref().map(super::notify::still_pending) {
        eprintln!("warning: {e}");
    }
    write_failures(&summary)
}

/// A run's options beyond the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub as_of: Option<time::OffsetDateTime>,
    pub force: bool,
    /// Deliver the events at the end.
    pub notify: bool,
}

/// Calls the rescore handler (the scheduled Lambda's) on `data`. Shared with `demo`.
pub async fn rescore(
    services: &Services,
    data: &str,
    options: RunOptions,
    progress: Progress,
) -> anyhow::Result<RescoreSummary> {
    let step = progress.counter(format!("rescoring {data}"));
    let mut event =
        serde_json::json!({ "snapshot": data, "force": options.force, "notify": options.notify });
    if let Some(t) = options.as_of {
        event["as_of"] = churn_service::timestamp::format(t).into();
    }
    let on_rows = |rows: usize| step.inc(rows as u64);
    let summary = run_event(services, &event, &on_rows)
        .await
        .map_err(|e| match e {
            HandlerError::NoModel => context::no_model(&services.config),
            other => other.into(),
        })?;
    step.done(format!(
        "rescored {} rows with model {} into {}",
        summary.rows,
        super::train::short_id(&summary.model_id),
        context::flags_display(&services.config)
    ));
    progress.scoring_notes(&summary.notes, summary.out_of_range_rows);
    for w in &summary.warnings {
        let rows: Vec<String> = w.rows.iter().map(usize::to_string).collect();
        let more = if w.count > w.rows.len() { ", ..." } else { "" };
        eprintln!(
            "warning: {} values of column {:?} ({} attribute) are {}: stored as null, rows still scored (rows {}{more})",
            w.count,
            w.column,
            w.role,
            w.message,
            rows.join(", ")
        );
    }
    if summary.failed_rows_count > 0 {
        eprintln!(
            "warning: {} rows could not be scored:",
            summary.failed_rows_count
        );
        for f in summary.failed_rows.iter().take(SHOWN_FAILURES) {
            match &f.part {
                Some(part) => eprintln!("  {part}: row {}: {}", f.row, f.message),
                None => eprintln!("  row {}: {}", f.row, f.message),
            }
        }
        let shown = summary.failed_rows.len().min(SHOWN_FAILURES);
        if summary.failed_rows_count > shown {
            eprintln!("  ... and {} more", summary.failed_rows_count - shown);
        }
    }
    Ok(summary)
}

/// Flags the store could not write before the deadline are an error after
/// the summary: a transient store failure (exit 70; a rerun writes them).
pub fn write_failures(summary: &RescoreSummary) -> anyhow::Result<()> {
    if summary.write_failures_count == 0 {
        return Ok(());
    }
    let first = summary
        .write_failures
        .first()
        .map(|f| format!(" (first: {}: {})", f.customer_id, f.reason))
        .unwrap_or_default();
    Err(churn_service::Error::Storage {
        backend: "flag store",
        operation: "write",
        source: format!(
            "{} flags could not be written before the deadline{first}",
            summary.write_failures_count
        )
        .into(),
    }
    .into())
}

/// The rescore summary for people: the run, its check's verdict (with
/// the checks when they did not all pass) and its counts.
pub fn render(s: &RescoreSummary) -> String {
    let (verdict, checks) = match &s.check {
        Some(c) if c.status != churn_model::check::CheckStatus::Ok => (
            format!(
                "{}{}",
                c.status.as_str(),
                if s.forced { " (forced)" } else { "" }
            ),
            format!("\n{}", super::check::render(c)),
        ),
        Some(c) => (c.status.as_str().to_string(), String::new()),
        None => ("not run".to_string(), String::new()),
    };
    let delivery = match &s.notify {
        Some(r) => format!("\n{}", super::notify::report_table(r).render()),
        None => String::new(),
    };
    format!(
        "run       {}\nsnapshot  {}\nmodel     {}\ncheck     {verdict}\n\n{}{checks}{delivery}",
        s.run_id,
        s.snapshot,
        s.model_id,
        summary_table(s).render()
    )
}

/// The counts of a rescore, one row each.
fn summary_table(s: &RescoreSummary) -> Table {
    let mut t = Table::new(["", "rows"]).right(&[1]);
    t.row(["read".to_string(), s.rows.to_string()]);
    t.row(["scored".to_string(), s.scored.to_string()]);
    t.row(["written".to_string(), s.written.to_string()]);
    t.row([
        "unchanged (not rewritten)".to_string(),
        s.skipped_unchanged.to_string(),
    ]);
    t.row([
        "stale (newer score stored)".to_string(),
        s.stale_rejected.to_string(),
    ]);
    t.row(["newly at risk".to_string(), s.newly_at_risk.to_string()]);
    t.row([
        "events (at risk / escalated / recovered)".to_string(),
        format!(
            "{} / {} / {}",
            s.events.became_at_risk, s.events.escalated, s.events.recovered
        ),
    ]);
    t.row(["failed rows".to_string(), s.failed_rows_count.to_string()]);
    t.row([
        "out of training range".to_string(),
        s.out_of_range_rows.to_string(),
    ]);
    t.row([
        "write failures".to_string(),
        s.write_failures_count.to_string(),
    ]);
    t
}

/// Failed rows listed on stderr (the count is exact).
const SHOWN_FAILURES: usize = 10;
