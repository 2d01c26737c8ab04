//! `churn summary`: customers and value at risk per band, per owner or per
//! segment (the API's `GET /v1/summary`).

use clap::Args;

use churn_service::flag_store::{SummaryBy, SummaryRow, Totals};

use super::{context, FlagsStoreArg};
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn summary\n  churn summary --by owner\n  churn summary --by segment --format csv > segments.csv"
)]
pub struct SummaryArgs {
    /// Group by band, owner or segment.
    #[arg(long, default_value = "band", value_parser = super::risk_list::parse::<SummaryBy>)]
    pub by: SummaryBy,
    /// Output format (json = the API's object).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
}

pub async fn run(args: SummaryArgs, _progress: Progress) -> anyhow::Result<()> {
    let config = context::config(None, Some(&args.flags.flags))?;
    let store = context::flag_store(&config, false).await?;
    let summary = store.summary(args.by).await?;
    if args.format == Format::Json {
        return output::print_json(&summary);
    }
    let key = match args.by {
        SummaryBy::Band => "band",
        SummaryBy::Owner => "owner",
        SummaryBy::Segment => "segment",
    };
    let mut t = Table::new([
        key,
        "high",
        "high_value_at_risk",
        "medium",
        "medium_value_at_risk",
        "at_risk",
        "value_at_risk",
        "without_value",
    ])
    .right(&[1, 2, 3, 4, 5, 6, 7]);
    let cells = |label: String, r: &SummaryRow| {
        let money = |t: &Totals| format!("{:.2}", t.value_at_risk);
        vec![
            label,
            r.high.customers.to_string(),
            money(&r.high),
            r.medium.customers.to_string(),
            money(&r.medium),
            r.at_risk.customers.to_string(),
            money(&r.at_risk),
            r.at_risk.without_value.to_string(),
        ]
    };
    for r in &summary.rows {
        t.row(cells(r.key.clone().unwrap_or_else(|| "(none)".into()), r));
    }
    if args.format == Format::Csv {
        t.write_csv(std::io::stdout().lock())?;
        return Ok(());
    }
    t.row(cells("total".into(), &summary.total));
    output::print(&t.render())
}
