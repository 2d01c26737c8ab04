//! `churn check`: the snapshot check alone (the pass a rescore runs before
//! writing anything). Writes nothing; exits 0 when the snapshot is ok or
//! only warned about, 3 when a rescore would refuse it.

use clap::Args;

use churn_model::check::CheckReport;
use churn_service::features::{FeatureSources, FeatureUri};
use churn_service::handlers::scored_stream::CHUNK_ROWS;
use churn_service::handlers::snapshot_check::check_source;
use churn_service::handlers::{HandlerError, Refusal, ScoringModel};

use super::{context, ModelsStoreArg};
use crate::output::{self, Format, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn check --data ./churn-data/customers.csv\n  churn check --data s3://bucket/snapshots/today/ --models s3://bucket/models --format json\n\n\
Per model feature: PSI against the training deciles (levels for categoricals,\n\
missing values as their own bin), missing share now and in training, share of\n\
values outside the training range. Refused (exit 3) when a feature is absent,\n\
its missing share rose by more than 0.5, more than half its values are outside\n\
the training range, one of the five most important features has PSI > 1.0, or\n\
more than 5% of rows fail validation (limits: CHURN_CHECK_* variables)."
)]
pub struct CheckArgs {
    /// Feature snapshot: a .csv or .parquet file, or s3://bucket/key (a prefix = all its parts).
    #[arg(long, value_name = "FILE_OR_URI")]
    pub data: String,
    #[command(flatten)]
    pub models: ModelsStoreArg,
    /// Output format (json = the check report).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub async fn run(args: CheckArgs, progress: Progress) -> anyhow::Result<()> {
    let config = context::config(Some(&args.models.models), None)?;
    let store = context::model_store(&config).await;
    let (_, artifact) = context::current_model(store.as_ref(), &config).await?;
    let model = ScoringModel::new(artifact);
    let uri = FeatureUri::parse(&args.data)?;
    let step = progress.counter(format!("checking {}", args.data));
    let checked = check_source(
        &uri,
        &FeatureSources::new(),
        &model,
        &config.check,
        CHUNK_ROWS,
        &|rows| step.inc(rows as u64),
    )
    .await?;
    step.done(format!(
        "checked {} rows against model {}: {}",
        checked.report.rows,
        super::train::short_id(model.model_id()),
        checked.report.status.as_str()
    ));
    match args.format {
        Format::Json => output::print_json(&checked.report)?,
        Format::Csv => features_table(&checked.report).write_csv(std::io::stdout().lock())?,
        Format::Table => output::print(&render(&checked.report))?,
    }
    if checked.report.refused() {
        return Err(HandlerError::Refused(Box::new(Refusal {
            report: checked.report,
            run_id: None,
            shard: false,
        }))
        .into());
    }
    Ok(())
}

/// A check report for people: the verdict, the checks, the features.
pub fn render(report: &CheckReport) -> String {
    let mut checks = Table::new(["check", "status", "detail"]);
    for c in &report.checks {
        checks.row([c.name.clone(), c.status.clone(), c.detail.clone()]);
    }
    format!(
        "snapshot check: {} ({} rows, {} failing validation)\n\n{}\n{}",
        report.status.as_str(),
        report.rows,
        report.invalid_rows,
        checks.render(),
        features_table(report).render()
    )
}

/// One row per model feature.
fn features_table(report: &CheckReport) -> Table {
    let mut t = Table::new([
        "feature",
        "psi",
        "level",
        "missing",
        "training_missing",
        "out_of_range",
        "importance",
    ])
    .right(&[1, 3, 4, 5, 6]);
    let share = |x: f64| format!("{:.1}%", 100.0 * x);
    for f in &report.features {
        t.row([
            f.feature.clone(),
            f.psi.map_or("-".to_string(), |p| format!("{p:.3}")),
            if f.absent {
                "absent".to_string()
            } else {
                f.level.as_str().to_string()
            },
            share(f.missing_share),
            share(f.reference_missing_share),
            f.out_of_range_share.map_or("-".to_string(), share),
            f.importance_rank.to_string(),
        ]);
    }
    t
}
