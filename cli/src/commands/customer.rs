//! `churn customer`, `churn ack`, `churn unack`: one customer's flag with its
//! attributes, history, trend and acknowledgement, and acknowledging it.

use clap::Args;

use churn_service::flag::{Acknowledgement, CustomerRecord, Flag};
use churn_service::handlers::score_api::{customer_json, flag_json};
use churn_service::timestamp;

use super::{context, FlagsStoreArg};
use crate::exit::user;
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn customer cust_000042\n  churn customer cust_000042 --format json"
)]
pub struct CustomerArgs {
    /// The customer id.
    pub id: String,
    /// Output format (json = the API's object).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn ack cust_000042 --by ana@example.com --note \"QBR booked for Friday\"\n  churn ack cust_000042 --by ana --note \"renewal call\" --until 2026-12-20\n\n\
The acknowledgement stays through rescores until --until (default 14 days),\n\
or until the customer escalates to high."
)]
pub struct AckArgs {
    /// The customer id.
    pub id: String,
    /// Who is acting on it (at most 500 characters).
    #[arg(long)]
    pub by: String,
    /// What is being done (at most 500 characters).
    #[arg(long)]
    pub note: String,
    /// When it ends by itself: YYYY-MM-DD (the start of that day, UTC) or an RFC 3339 time.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub until: Option<String>,
    /// Output format (json = the API's object).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  churn unack cust_000042")]
pub struct UnackArgs {
    /// The customer id.
    pub id: String,
    /// Output format (json = the API's object).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
}

/// The customer id by the one id rule, or exit 1 naming it.
fn customer_id(id: &str) -> anyhow::Result<String> {
    churn_model::customer_id(id)
        .map(str::to_string)
        .map_err(|e| user(format!("customer id {id:?}: {e}")))
}

pub async fn run(args: CustomerArgs, _progress: Progress) -> anyhow::Result<()> {
    let id = customer_id(&args.id)?;
    let config = context::config(None, Some(&args.flags.flags))?;
    let store = context::flag_store(&config, false).await?;
    let Some(record) = store.customer(&id, timestamp::now()).await? else {
        return Err(user(format!(
            "unknown customer {id:?}: no flag has been written for it"
        )));
    };
    print_record(&record, args.format)
}

pub async fn run_ack(args: AckArgs, _progress: Progress) -> anyhow::Result<()> {
    let id = customer_id(&args.id)?;
    let until = args
        .until
        .as_deref()
        .map(Acknowledgement::parse_until)
        .transpose()
        .map_err(|m| user(format!("--until: {m}")))?;
    let now = timestamp::now();
    let ack = Acknowledgement::new(&args.by, &args.note, until, now)?;
    let config = context::config(None, Some(&args.flags.flags))?;
    let store = context::flag_store(&config, false).await?;
    let flag = store.acknowledge(&id, &ack).await?;
    print_flag(&flag.seen_at(now), args.format)
}

pub async fn run_unack(args: UnackArgs, _progress: Progress) -> anyhow::Result<()> {
    let id = customer_id(&args.id)?;
    let config = context::config(None, Some(&args.flags.flags))?;
    let store = context::flag_store(&config, false).await?;
    let flag = store.unacknowledge(&id).await?;
    print_flag(&flag.seen_at(timestamp::now()), args.format)
}

fn print_flag(flag: &Flag, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => output::print_json(&flag_json(flag)),
        Format::Csv => {
            let table = details(flag, &[]);
            table.write_csv(std::io::stdout().lock())?;
            Ok(())
        }
        Format::Table => output::print(&details(flag, &[]).render()),
    }
}

fn print_record(record: &CustomerRecord, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => output::print_json(&customer_json(record)),
        Format::Csv => {
            details(&record.flag, &record.history).write_csv(std::io::stdout().lock())?;
            Ok(())
        }
        Format::Table => {
            let mut text = details(&record.flag, &[]).render();
            text.push_str("\nhistory (newest first)\n");
            let mut h = Table::new(["scored_at", "churn", "band", "model"]).right(&[1]);
            for p in &record.history {
                h.row([
                    timestamp::format(p.scored_at),
                    output::percent(p.churn_probability),
                    p.risk_band.to_string(),
                    super::train::short_id(&p.model_id).to_string(),
                ]);
            }
            text.push_str(&h.render());
            output::print(&text)
        }
    }
}

/// A flag as `field, value` rows (history points appended as `history[i]`).
fn details(flag: &Flag, history: &[churn_service::flag::HistoryPoint]) -> Table {
    let mut t = Table::new(["field", "value"]);
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let delta = |d: Option<f64>| d.map(|d| format!("{:+.1} pts", d * 100.0));
    let a = &flag.attributes;
    let rows: Vec<(&str, String)> = vec![
        ("customer_id", flag.customer_id.clone()),
        ("churn_probability", output::percent(flag.churn_probability)),
        ("risk_band", flag.risk_band.to_string()),
        (
            "previous_band",
            opt(flag.previous_band.map(|b| b.to_string())),
        ),
        (
            "band_changed_at",
            opt(flag.band_changed_at.map(timestamp::format)),
        ),
        (
            "days_in_band",
            opt(flag.days_in_band.map(|d| d.to_string())),
        ),
        ("trend_d7", opt(delta(flag.trend.d7))),
        ("trend_d30", opt(delta(flag.trend.d30))),
        ("scored_at", timestamp::format(flag.scored_at)),
        ("model_id", flag.model_id.clone()),
        ("name", opt(a.name.clone())),
        ("owner", opt(a.owner.clone())),
        ("segment", opt(a.segment.clone())),
        ("value", opt(a.value.map(|v| format!("{v:.2}")))),
        ("renewal_date", opt(a.renewal_date.clone())),
        ("crm_id", opt(a.crm_id.clone())),
        (
            "acknowledged",
            opt(flag.acknowledgement.as_ref().map(|k| {
                format!(
                    "by {} at {} until {}: {}",
                    k.by,
                    timestamp::format(k.at),
                    timestamp::format(k.until),
                    k.note
                )
            })),
        ),
    ];
    for (k, v) in rows {
        t.row([k.to_string(), v]);
    }
    for (i, r) in flag.reasons.iter().enumerate() {
        t.row([format!("reason_{}", i + 1), r.to_string()]);
    }
    for (i, p) in history.iter().enumerate() {
        t.row([
            format!("history[{i}]"),
            format!(
                "{} {:.6} {} {}",
                timestamp::format(p.scored_at),
                p.churn_probability,
                p.risk_band,
                p.model_id
            ),
        ]);
    }
    t
}
