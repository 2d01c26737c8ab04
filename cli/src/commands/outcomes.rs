//! `churn outcomes`: known churn outcomes against the scores that were in
//! force before them: realised ROC/PR AUC, band precision and recall, lift,
//! calibration, per model, and whether to retrain. The report is stored
//! (the API's `GET /v1/outcomes/report`).

use clap::Args;

use churn_model::outcomes::{BandOutcome, OutcomesReport};
use churn_service::handlers::outcomes::{
    handle_outcomes, OutcomesRequest, OutcomesStores, DEFAULT_HORIZON_DAYS, MAX_HORIZON_DAYS,
};
use churn_service::run_record::OutcomesRecord;

use super::context;
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn outcomes --data churned-q3.csv\n  churn outcomes --data outcomes.csv --id account --label left --observed-at closed_on --horizon-days 60 --format json\n\n\
Each outcome is matched with the customer's score in force --horizon-days before\n\
its observed date (or, without a score that old, its earliest score before it).\n\
Unknown ids are counted as unmatched and the first 20 listed."
)]
pub struct OutcomesArgs {
    /// Outcomes table: customer ids and churn labels (a .csv or .parquet file, or s3://...).
    #[arg(long, value_name = "FILE_OR_URI")]
    pub data: String,
    /// Id column (default: the current model's).
    #[arg(long = "id", value_name = "COL")]
    pub id_column: Option<String>,
    /// Label column, labels as in training (default: the current model's).
    #[arg(long = "label", value_name = "COL")]
    pub label_column: Option<String>,
    /// Column with each outcome's date, YYYY-MM-DD or RFC 3339 (default: today for all).
    #[arg(long = "observed-at", value_name = "COL")]
    pub observed_at: Option<String>,
    /// Days between the score judged and the outcome.
    #[arg(long, default_value_t = DEFAULT_HORIZON_DAYS, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_HORIZON_DAYS)))]
    pub horizon_days: u32,
    #[command(flatten)]
    pub store: super::runs::RunStoreArgs,
}

pub async fn run(args: OutcomesArgs, progress: Progress) -> anyhow::Result<()> {
    let store = &args.store;
    let config = context::config(Some(&store.models.models), Some(&store.flags.flags))?;
    let services = context::services(&config, false).await?;
    // The columns training used, when a model is promoted.
    let current = match services.models.current().await? {
        Some((_, bytes)) => churn_model::ModelArtifact::from_json_bytes(&bytes).ok(),
        None => None,
    };
    let default = |pick: fn(&churn_model::ModelArtifact) -> &str, fallback: &str| {
        current
            .as_ref()
            .map_or(fallback.to_string(), |a| pick(a).to_string())
    };
    let request = OutcomesRequest {
        data: args.data.clone(),
        id_column: args
            .id_column
            .clone()
            .unwrap_or_else(|| default(|a| &a.id_column, "customer_id")),
        label_column: args
            .label_column
            .clone()
            .unwrap_or_else(|| default(|a| &a.label_column, "churned")),
        observed_at_column: args.observed_at.clone(),
        horizon_days: args.horizon_days,
    };
    let step = progress.step(format!("matching outcomes in {}", args.data));
    let stores = OutcomesStores {
        flags: services.flags.as_ref(),
        models: services.models.as_ref(),
        runs: services.runs.as_ref(),
        sources: &services.sources,
    };
    let record = handle_outcomes(&request, stores, time::OffsetDateTime::now_utc()).await?;
    step.done(format!(
        "{} outcomes matched, {} unmatched; report stored",
        record.report.realised.matched, record.report.unmatched
    ));
    match store.format {
        Format::Json => output::print_json(&record),
        Format::Csv => Ok(bands_table(&record.report).write_csv(std::io::stdout().lock())?),
        Format::Table => output::print(&render(&record)),
    }
}

fn figure(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.3}"))
}

/// The report for people.
fn render(record: &OutcomesRecord) -> String {
    let r = &record.report;
    let mut models = Table::new([
        "model",
        "matched",
        "roc_auc",
        "holdout_roc_auc",
        "drop",
        "retrain",
    ])
    .right(&[1, 2, 3, 4]);
    for (id, m) in &r.by_model {
        models.row([
            super::train::short_id(id).to_string(),
            m.realised.matched.to_string(),
            figure(m.realised.roc_auc),
            figure(m.holdout_roc_auc),
            figure(m.auc_drop),
            if m.retrain_recommended { "yes" } else { "no" }.to_string(),
        ]);
    }
    let mut calibration =
        Table::new(["bin", "customers", "mean_predicted", "realised_rate"]).right(&[0, 1, 2, 3]);
    for b in &r.realised.calibration {
        calibration.row([
            b.bin.to_string(),
            b.customers.to_string(),
            format!("{:.3}", b.mean_predicted),
            format!("{:.3}", b.realised_rate),
        ]);
    }
    let unmatched = if r.unmatched_ids.is_empty() {
        String::new()
    } else {
        format!(
            "\nunmatched (first {}): {}\n",
            r.unmatched_ids.len(),
            r.unmatched_ids.join(", ")
        )
    };
    let retrain = if r.retrain_recommended {
        format!("retrain recommended: {}", r.retrain_reasons.join("; "))
    } else {
        "retrain recommended: no".to_string()
    };
    format!(
        "outcomes   {} (horizon {} days)\nmatched    {} ({} with a score younger than the horizon)\nunmatched  {}\nbase rate  {}\nroc_auc    {}\npr_auc     {}\n{retrain}\n{unmatched}\n{}\n{}\n{}",
        record.source,
        record.horizon_days,
        r.realised.matched,
        record.matched_before_horizon,
        r.unmatched,
        figure(r.realised.base_rate),
        figure(r.realised.roc_auc),
        figure(r.realised.pr_auc),
        bands_table(r).render(),
        calibration.render(),
        models.render()
    )
}

/// Precision, recall and lift per band and for high + medium.
fn bands_table(r: &OutcomesReport) -> Table {
    let mut t = Table::new([
        "band",
        "customers",
        "churned",
        "churn_rate",
        "precision",
        "recall",
        "lift",
    ])
    .right(&[1, 2, 3, 4, 5, 6]);
    let b = &r.realised.bands;
    let rows: [(&str, &BandOutcome); 4] = [
        ("high", &b.high),
        ("medium", &b.medium),
        ("low", &b.low),
        ("high+medium", &b.at_risk),
    ];
    for (name, o) in rows {
        t.row([
            name.to_string(),
            o.customers.to_string(),
            o.churned.to_string(),
            figure(o.churn_rate),
            figure(o.precision),
            figure(o.recall),
            figure(o.lift),
        ]);
    }
    t
}
