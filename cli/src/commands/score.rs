//! `churn score`: batch scores of a feature table into a file.

use clap::Args;
use std::path::PathBuf;

use churn_service::features::{FeatureSources, FeatureUri, Format};
use churn_service::handlers::score_file::{handle_score_file, ScoreFileOptions, ScoreFileSummary};
use churn_service::handlers::{HandlerError, ScoringModel};

use super::{context, ModelsStoreArg};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn score --data ./churn-data/customers.csv --out scores.csv\n  churn score --data s3://bucket/snapshots/today.parquet --out scores.parquet --models s3://bucket/models\n\n\
Output columns: customer_id,churn_probability,risk_band,reason_1,reason_2,reason_3\n\
(the id column is called customer_id whatever its name in the input).\n\n\
The snapshot check (`churn check`) judges the input from the same pass: when it\n\
refuses, no scores file is written (exit 3) unless --force."
)]
pub struct ScoreArgs {
    /// Feature table: a .csv or .parquet file, or s3://bucket/key (a prefix = all its parts).
    #[arg(long, value_name = "FILE_OR_URI")]
    pub data: String,
    /// Output file: .csv or .parquet (same columns).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Name of the id column in the input (default: the one the model was trained with).
    #[arg(long = "id", value_name = "COL")]
    pub id_column: Option<String>,
    #[command(flatten)]
    pub store: ModelsStoreArg,
    /// Write the scores even when the snapshot check refuses the input.
    #[arg(long)]
    pub force: bool,
}

pub async fn run(args: ScoreArgs, progress: Progress) -> anyhow::Result<()> {
    if Format::from_name(&args.out.to_string_lossy()).is_none() {
        return Err(crate::exit::user(format!(
            "cannot write {}: the scores file must end in .csv or .parquet",
            args.out.display()
        )));
    }
    let config = context::config(Some(&args.store.models), None)?;
    let store = context::model_store(&config).await;
    let (_, artifact) = context::current_model(store.as_ref(), &config).await?;
    let model = ScoringModel::new(artifact);
    let uri = FeatureUri::parse(&args.data)?;
    let options = ScoreFileOptions {
        id_column: args.id_column.clone(),
        check: config.check,
        force: args.force,
        ..ScoreFileOptions::default()
    };
    let step = progress.counter(format!("scoring {}", args.data));
    let summary = handle_score_file(
        &uri,
        &FeatureSources::new(),
        &model,
        &args.out,
        &options,
        &|rows| step.inc(rows as u64),
    )
    .await
    .map_err(|e| match e {
        HandlerError::BadRequest(m) if m.contains("no id column") => {
            crate::exit::user(format!("{m} (pass --id COLUMN)"))
        }
        e => e.into(),
    })?;
    step.done(format!(
        "scored {} customers into {} with model {}",
        summary.scored,
        args.out.display(),
        super::train::short_id(model.model_id())
    ));
    print_warnings(&args.data, &summary, &progress);
    if let Some(c) = summary
        .check
        .as_ref()
        .filter(|c| c.status != churn_model::check::CheckStatus::Ok)
    {
        let forced = if summary.forced { ", forced" } else { "" };
        eprintln!(
            "warning: snapshot check: {}{forced}: {}",
            c.status.as_str(),
            c.checks
                .iter()
                .filter(|i| i.status == "warn" || i.status == "refuse")
                .map(|i| format!("{}: {}", i.name, i.detail))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

/// Missing feature columns and failed rows, on stderr (the count is exact).
fn print_warnings(data: &str, summary: &ScoreFileSummary, progress: &Progress) {
    progress.scoring_notes(&summary.notes, summary.out_of_range_rows);
    if !summary.missing_feature_columns.is_empty() {
        let names: Vec<String> = summary
            .missing_feature_columns
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        eprintln!(
            "warning: {data} has no column {}; scored as missing (imputed with the training value)",
            names.join(", ")
        );
    }
    if summary.failed_rows_count == 0 {
        return;
    }
    eprintln!(
        "warning: {} rows could not be scored and are not in the output:",
        summary.failed_rows_count
    );
    let shown = &summary.failed_rows[..summary.failed_rows.len().min(SHOWN_FAILURES)];
    for f in shown {
        let part = f
            .part
            .as_deref()
            .map(|p| format!("{p}: "))
            .unwrap_or_default();
        eprintln!("  {part}row {}: {}", f.row, f.message);
    }
    if summary.failed_rows_count > shown.len() {
        eprintln!("  ... and {} more", summary.failed_rows_count - shown.len());
    }
}

/// Failed rows listed on stderr (the count is exact).
const SHOWN_FAILURES: usize = 10;
