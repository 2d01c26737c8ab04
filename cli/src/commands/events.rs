//! `churn events`: the risk-change events in the outbox, newest first,
//! with where each still has to go.

use clap::Args;

use churn_service::notify::{EventFilter, StoredEvent};
use churn_service::run_record::validate_run_id;
use churn_service::timestamp;

use super::{context, FlagsStoreArg};
use crate::exit::user;
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn events\n  churn events --pending\n  churn events --run run-20261201T041500Z-3f9a1c --format json\n\n\
Status: delivered (to every destination it was due at), pending (where),\n\
held (the customer is acknowledged: recorded, not sent), recorded (no\n\
destination was configured when it happened)."
)]
pub struct EventsArgs {
    #[command(flatten)]
    pub flags: FlagsStoreArg,
    /// Only this run's events.
    #[arg(long = "run", value_name = "RUN_ID")]
    pub run_id: Option<String>,
    /// Only events still pending at some destination.
    #[arg(long)]
    pub pending: bool,
    /// How many events, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
    /// Output format (json = the stored events with their deliveries).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: EventsArgs, _progress: Progress) -> anyhow::Result<()> {
    if let Some(run) = &args.run_id {
        validate_run_id(run).map_err(user)?;
    }
    let config = context::config(None, Some(&args.flags.flags))?;
    let services = context::services(&config, false).await?;
    let filter = EventFilter {
        run_id: args.run_id.clone(),
        pending: args.pending,
    };
    let events = services
        .outbox
        .events(&filter, None, args.limit as usize)
        .await?;
    match args.format {
        Format::Json => output::print_json(&events)?,
        Format::Csv => table(&events).write_csv(std::io::stdout().lock())?,
        Format::Table if events.is_empty() => output::print("no events")?,
        Format::Table => output::print(&table(&events).render())?,
    }
    Ok(())
}

/// Where an event stands.
pub fn status(e: &StoredEvent) -> String {
    if e.held {
        return "held (acknowledged)".into();
    }
    if e.deliveries.is_empty() {
        return "recorded".into();
    }
    let waiting: Vec<&str> = e
        .deliveries
        .iter()
        .filter(|d| d.delivered_at.is_none())
        .map(|d| d.destination.as_str())
        .collect();
    if waiting.is_empty() {
        "delivered".into()
    } else {
        format!("pending: {}", waiting.join(", "))
    }
}

fn table(events: &[StoredEvent]) -> Table {
    let mut t = Table::new([
        "recorded", "type", "customer", "name", "band", "p", "run", "status",
    ])
    .right(&[5]);
    for e in events {
        let ev = &e.event;
        t.row([
            timestamp::format(e.recorded_at),
            ev.kind.as_str().to_string(),
            ev.customer_id.clone(),
            ev.attributes.name.clone().unwrap_or_default(),
            format!(
                "{} -> {}",
                ev.old_band.map_or("new", |b| b.as_str()),
                ev.new_band.as_str()
            ),
            output::percent(ev.churn_probability),
            ev.run_id.clone().unwrap_or_else(|| "api".into()),
            status(e),
        ]);
    }
    t
}
