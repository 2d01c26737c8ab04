//! `churn risk-list`: at-risk customers of a band from the flag store.

use churn_model::RiskBand;
use clap::Args;

use churn_service::flag::Flag;
use churn_service::flag_store::{FlagStore, MAX_PAGE_LIMIT};
use churn_service::timestamp;

use super::{context, FlagsStoreArg};
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn risk-list\n  churn risk-list --band medium --limit 200 --format csv > medium.csv\n  churn risk-list --flags dynamodb://churn-flags --format json"
)]
pub struct RiskListArgs {
    /// Risk band: high or medium (low customers are not on risk lists).
    #[arg(long, default_value = "high", value_parser = parse_band)]
    pub band: RiskBand,
    /// Maximum number of customers.
    #[arg(long, default_value_t = 50, value_parser = super::positive)]
    pub limit: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
}

fn parse_band(s: &str) -> Result<RiskBand, String> {
    s.parse::<RiskBand>().map_err(|e| e.to_string())
}

pub async fn run(args: RiskListArgs, _progress: Progress) -> anyhow::Result<()> {
    if !args.band.is_at_risk() {
        return Err(crate::exit::user(format!(
            "band {} is not on risk lists: choose high or medium",
            args.band
        )));
    }
    let config = context::config(None, Some(&args.flags.flags))?;
    let store = context::flag_store(&config, false).await?;
    let flags = fetch(store.as_ref(), args.band, args.limit as usize).await?;
    print_flags(&flags, args.format)
}

/// Up to `limit` at-risk customers of `band`, following the store's cursor.
pub async fn fetch(
    store: &dyn FlagStore,
    band: RiskBand,
    limit: usize,
) -> anyhow::Result<Vec<Flag>> {
    let mut flags = Vec::with_capacity(limit.min(MAX_PAGE_LIMIT));
    let mut cursor: Option<String> = None;
    while flags.len() < limit {
        let want = (limit - flags.len()).min(MAX_PAGE_LIMIT);
        let page = store.risk_list(band, want, cursor.as_deref()).await?;
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
        Format::Json => output::print_json(&flags),
        Format::Csv => {
            let mut table = Table::new([
                "customer_id",
                "churn_probability",
                "risk_band",
                "previous_band",
                "band_changed_at",
                "scored_at",
                "model_id",
                "reason_1",
                "reason_2",
                "reason_3",
            ]);
            for f in flags {
                let mut row = vec![
                    f.customer_id.clone(),
                    format!("{:.6}", f.churn_probability),
                    f.risk_band.to_string(),
                    f.previous_band.map(|b| b.to_string()).unwrap_or_default(),
                    f.band_changed_at.map(timestamp::format).unwrap_or_default(),
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
                return output::print("no customers at risk in this band\n");
            }
            let mut table = Table::new([
                "#",
                "customer_id",
                "churn",
                "band",
                "since",
                "was",
                "top reasons",
            ])
            .right(&[0, 2]);
            for (i, f) in flags.iter().enumerate() {
                table.row([
                    (i + 1).to_string(),
                    f.customer_id.clone(),
                    output::percent(f.churn_probability),
                    f.risk_band.to_string(),
                    f.band_changed_at.map(date).unwrap_or_default(),
                    f.previous_band
                        .map(|b| b.to_string())
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
