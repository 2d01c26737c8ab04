//! `churn risk-list`: at-risk customers from the flag store, filtered and
//! sorted as the API's `GET /v1/risk-list`.

use clap::Args;

use churn_service::flag::Flag;
use churn_service::flag_store::{BandFilter, FlagStore, ListQuery, ListSort, MAX_PAGE_LIMIT};
use churn_service::handlers::score_api::MAX_RENEWAL_DAYS;
use churn_service::timestamp;

use super::{context, FlagsStoreArg};
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn risk-list\n  churn risk-list --band at-risk --owner ana@example.com --sort value\n  churn risk-list --renewal-within 60 --unacknowledged --sort renewal\n  churn risk-list --band medium --limit 200 --format csv > medium.csv\n  churn risk-list --flags dynamodb://churn-flags --format json"
)]
pub struct RiskListArgs {
    /// Risk band: high, medium, or at-risk (both; low customers are not on risk lists).
    #[arg(long, default_value = "high", value_parser = parse::<BandFilter>)]
    pub band: BandFilter,
    /// Only this owner's accounts.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only this segment.
    #[arg(long)]
    pub segment: Option<String>,
    /// Only accounts renewing within this many days from today.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RENEWAL_DAYS)))]
    pub renewal_within: Option<u32>,
    /// Only customers nobody has acknowledged (or whose acknowledgement ended).
    #[arg(long)]
    pub unacknowledged: bool,
    /// Order: probability, value (probability x value), renewal (soonest first), rising (largest 7-day rise).
    #[arg(long, default_value = "probability", value_parser = parse::<ListSort>)]
    pub sort: ListSort,
    /// Maximum number of customers.
    #[arg(long, default_value_t = 50, value_parser = super::positive)]
    pub limit: u64,
    /// Output format (json = an array of the API's flag objects).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
}

/// A value through its type's one parser (the API's too).
pub fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse::<T>()
}

pub async fn run(args: RiskListArgs, _progress: Progress) -> anyhow::Result<()> {
    let config = context::config(None, Some(&args.flags.flags))?;
    let store = context::flag_store(&config, false).await?;
    let query = ListQuery {
        band: args.band,
        owner: args.owner,
        segment: args.segment,
        renewal_within_days: args.renewal_within,
        unacknowledged: args.unacknowledged,
        sort: args.sort,
        now: timestamp::now(),
    };
    let flags = fetch(store.as_ref(), &query, args.limit as usize).await?;
    print_flags(&flags, args.format)
}

/// Up to `limit` customers of `query`, following the store's cursor.
pub async fn fetch(
    store: &dyn FlagStore,
    query: &ListQuery,
    limit: usize,
) -> anyhow::Result<Vec<Flag>> {
    let mut flags = Vec::with_capacity(limit.min(MAX_PAGE_LIMIT));
    let mut cursor: Option<String> = None;
    while flags.len() < limit {
        let want = (limit - flags.len()).min(MAX_PAGE_LIMIT);
        let page = store.list(query, want, cursor.as_deref()).await?;
        flags.extend(page.flags);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    flags.truncate(limit);
    Ok(flags)
}

/// Prints a risk list as a table, CSV or JSON.
pub fn print_flags(flags: &[Flag], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            let values: Vec<serde_json::Value> = flags
                .iter()
                .map(churn_service::handlers::score_api::flag_json)
                .collect();
            output::print_json(&values)
        }
        Format::Csv => {
            let mut table = Table::new([
                "customer_id",
                "churn_probability",
                "risk_band",
                "previous_band",
                "band_changed_at",
                "days_in_band",
                "trend_d7",
                "trend_d30",
                "name",
                "owner",
                "segment",
                "value",
                "renewal_date",
                "crm_id",
                "acknowledged_by",
                "acknowledged_until",
                "scored_at",
                "model_id",
                "reason_1",
                "reason_2",
                "reason_3",
            ]);
            for f in flags {
                let ack = f.acknowledgement.as_ref();
                let mut row = vec![
                    f.customer_id.clone(),
                    format!("{:.6}", f.churn_probability),
                    f.risk_band.to_string(),
                    f.previous_band.map(|b| b.to_string()).unwrap_or_default(),
                    f.band_changed_at.map(timestamp::format).unwrap_or_default(),
                    f.days_in_band.map(|d| d.to_string()).unwrap_or_default(),
                    f.trend.d7.map(|d| format!("{d:.6}")).unwrap_or_default(),
                    f.trend.d30.map(|d| format!("{d:.6}")).unwrap_or_default(),
                    f.attributes.name.clone().unwrap_or_default(),
                    f.attributes.owner.clone().unwrap_or_default(),
                    f.attributes.segment.clone().unwrap_or_default(),
                    f.attributes
                        .value
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    f.attributes.renewal_date.clone().unwrap_or_default(),
                    f.attributes.crm_id.clone().unwrap_or_default(),
                    ack.map(|k| k.by.clone()).unwrap_or_default(),
                    ack.map(|k| timestamp::format(k.until)).unwrap_or_default(),
                    timestamp::format(f.scored_at),
                    f.model_id.clone(),
                ];
                row.extend(
                    (0..3).map(|k| f.reasons.get(k).map(|r| r.to_string()).unwrap_or_default()),
                );
                table.row(row);
            }
            table.write_csv(std::io::stdout().lock())?;
            Ok(())
        }
        Format::Table => {
            if flags.is_empty() {
                return output::print("no customers at risk match\n");
            }
            let mut table = Table::new([
                "#",
                "customer_id",
                "name",
                "owner",
                "churn",
                "7d",
                "band",
                "since",
                "was",
                "value",
                "renews",
                "ack",
                "top reasons",
            ])
            .right(&[0, 4, 5, 9]);
            for (i, f) in flags.iter().enumerate() {
                let a = &f.attributes;
                table.row([
                    (i + 1).to_string(),
                    f.customer_id.clone(),
                    a.name.clone().unwrap_or_else(|| "-".into()),
                    a.owner.clone().unwrap_or_else(|| "-".into()),
                    output::percent(f.churn_probability),
                    f.trend
                        .d7
                        .map(|d| format!("{:+.1}", d * 100.0))
                        .unwrap_or_else(|| "-".into()),
                    f.risk_band.to_string(),
                    f.band_changed_at.map(date).unwrap_or_default(),
                    f.previous_band
                        .map(|b| b.to_string())
                        .unwrap_or_else(|| "-".into()),
                    a.value
                        .map(|v| format!("{v:.0}"))
                        .unwrap_or_else(|| "-".into()),
                    a.renewal_date.clone().unwrap_or_else(|| "-".into()),
                    f.acknowledgement
                        .as_ref()
                        .map(|k| k.by.clone())
                        .unwrap_or_else(|| "-".into()),
                    f.reasons
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                ]);
            }
            output::print(&table.render())
        }
    }
}

/// `2024-06-01` of a timestamp.
fn date(t: time::OffsetDateTime) -> String {
    timestamp::format(t).chars().take(10).collect()
}
