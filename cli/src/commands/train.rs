//! `churn train`: the train handler on a local or S3 feature table.

use clap::Args;
use std::path::PathBuf;

use churn_model::artifact::Coefficient;
use churn_model::BandPolicy;
use churn_model::ModelArtifact;
use churn_service::config::{band_policy_from, BandSetting, ServiceConfig};
use churn_service::features::FeatureSources;
use churn_service::handlers::train::{
    handle_train_with, TrainOptions, TrainRequest, TrainSettings, TrainSummary,
};
use churn_service::model_store::ModelStore;

use super::{context, ModelsStoreArg};
use crate::output::{self, Table};
use crate::progress::Progress;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn train --data customers.csv --id customer_id --label churned\n  churn train --data s3://bucket/features/2024-06/ --id account --label cancelled --schema schema.toml --models s3://bucket/models --json\n\n\
The model is promoted only if its holdout ROC AUC passes the floor\n\
(CHURN_GATE_MIN_AUC, default 0.60) and is not more than CHURN_GATE_MAX_AUC_DROP\n\
(default 0.01) below the current model on the same holdout.\n\n\
Risk bands: by default high = the top 10 % of holdout scores and medium = the\n\
next 20 % (--high-share/--medium-share); or fixed churn probabilities\n\
(--high-cutoff/--medium-cutoff, both together). The cutoffs are stored in the model."
)]
pub struct TrainArgs {
    /// Feature table: a .csv or .parquet file, or s3://bucket/key (a prefix = all its parts).
    #[arg(long, value_name = "FILE_OR_URI")]
    pub data: String,
    /// Name of the customer id column.
    #[arg(long = "id", value_name = "COL", default_value = "customer_id")]
    pub id_column: String,
    /// Name of the label column (1/0, true/false, yes/no).
    #[arg(long = "label", value_name = "COL", default_value = "churned")]
    pub label_column: String,
    /// Schema file (TOML) overriding inferred column kinds.
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    #[command(flatten)]
    pub store: ModelsStoreArg,
    /// Seed for the split and cross-validation.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Row cap: a larger table is trained on a stratified sample of this many
    /// rows (every churner kept up to the cap) [env: CHURN_TRAIN_MAX_ROWS;
    /// default: 2000000].
    #[arg(long, value_name = "ROWS", value_parser = parse_row_cap)]
    pub max_rows: Option<usize>,
    #[command(flatten)]
    pub bands: BandArgs,
    /// Print the training report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--max-rows`: the service's one rule for a row cap (a usage error otherwise).
fn parse_row_cap(value: &str) -> Result<usize, String> {
    churn_service::config::row_cap(value)
}

/// The risk-band policy: shares of holdout scores or fixed cutoffs.
#[derive(Debug, Clone, Args)]
pub struct BandArgs {
    /// Share of holdout scores in the high band [default: 0.10].
    #[arg(long, env = "CHURN_BAND_HIGH_SHARE", value_name = "SHARE",
          conflicts_with_all = ["high_cutoff", "medium_cutoff"])]
    pub high_share: Option<f64>,
    /// Share of holdout scores in the medium band, below the high ones [default: 0.20].
    #[arg(long, env = "CHURN_BAND_MEDIUM_SHARE", value_name = "SHARE",
          conflicts_with_all = ["high_cutoff", "medium_cutoff"])]
    pub medium_share: Option<f64>,
    /// Fixed churn probability from which a customer is high risk (with --medium-cutoff).
    #[arg(
        long,
        env = "CHURN_BAND_HIGH_CUTOFF",
        value_name = "P",
        requires = "medium_cutoff"
    )]
    pub high_cutoff: Option<f64>,
    /// Fixed churn probability from which a customer is medium risk (with --high-cutoff).
    #[arg(
        long,
        env = "CHURN_BAND_MEDIUM_CUTOFF",
        value_name = "P",
        requires = "high_cutoff"
    )]
    pub medium_cutoff: Option<f64>,
}

impl BandArgs {
    /// The checked policy of these options (flags, or the `CHURN_BAND_*`
    /// variables clap read for them); errors name both spellings.
    pub fn policy(&self) -> anyhow::Result<BandPolicy> {
        let setting = |name: &'static str, value: Option<f64>| BandSetting { name, value };
        Ok(band_policy_from(
            setting("--high-share (CHURN_BAND_HIGH_SHARE)", self.high_share),
            setting(
                "--medium-share (CHURN_BAND_MEDIUM_SHARE)",
                self.medium_share,
            ),
            setting("--high-cutoff (CHURN_BAND_HIGH_CUTOFF)", self.high_cutoff),
            setting(
                "--medium-cutoff (CHURN_BAND_MEDIUM_CUTOFF)",
                self.medium_cutoff,
            ),
        )?)
    }
}

pub async fn run(args: TrainArgs, progress: Progress) -> anyhow::Result<()> {
    let mut config = context::config_overriding(Some(&args.store.models), None, &[])?;
    config.bands = args.bands.policy()?;
    let schema = match &args.schema {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| {
            crate::exit::user(format!("cannot read schema file {}: {e}", path.display()))
        })?),
        None => None,
    };
    let request = TrainRequest {
        features: args.data.clone(),
        id_column: Some(args.id_column.clone()),
        label_column: Some(args.label_column.clone()),
        schema,
        options: TrainOptions {
            seed: args.seed,
            max_rows: args.max_rows,
            ..TrainOptions::default()
        },
    };
    let store = context::model_store(&config).await;
    let trained = train(&request, store.as_ref(), &config, progress).await?;
    if args.json {
        output::print_json(&trained.to_json())
    } else {
        output::print(&trained.render())
    }
}

/// A finished training run: the handler's summary and the stored artifact.
pub struct Trained {
    pub summary: TrainSummary,
    pub artifact: ModelArtifact,
}

/// Calls the train handler (the train Lambda's) and loads the stored artifact
/// for the report. Shared with `demo`.
pub async fn train(
    request: &TrainRequest,
    store: &dyn ModelStore,
    config: &ServiceConfig,
    progress: Progress,
) -> anyhow::Result<Trained> {
    let step = progress.step(format!("training on {}", request.features));
    let settings = TrainSettings::from_config(config);
    let summary = handle_train_with(request, store, &FeatureSources::new(), settings).await?;
    step.done(format!(
        "trained model {} on {} rows",
        short_id(&summary.model_id),
        summary.rows
    ));
    let bytes = store.artifact(&summary.model_id).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "model {} was stored but cannot be read back",
            summary.model_id
        )
    })?;
    let artifact = ModelArtifact::from_json_bytes(&bytes)?;
    Ok(Trained { summary, artifact })
}

/// The first 12 characters of a model id, for progress lines.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl Trained {
    /// The summary as JSON, with the bands and the top coefficients added.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.summary).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "bands".into(),
                serde_json::to_value(self.artifact.bands).unwrap_or_default(),
            );
            obj.insert(
                "top_coefficients".into(),
                serde_json::to_value(self.top_coefficients(TOP_COEFFICIENTS)).unwrap_or_default(),
            );
            obj.insert("intercept".into(), self.artifact.intercept.into());
        }
        value
    }

    /// The `n` coefficients largest in magnitude.
    pub fn top_coefficients(&self, n: usize) -> Vec<&Coefficient> {
        let mut coefs: Vec<&Coefficient> = self.artifact.coefficients.iter().collect();
        coefs.sort_by(|a, b| {
            b.value
                .abs()
                .total_cmp(&a.value.abs())
                .then_with(|| a.name.cmp(&b.name))
        });
        coefs.truncate(n);
        coefs
    }

    /// The human training report.
    pub fn render(&self) -> String {
        let s = &self.summary;
        let m = &s.metrics;
        let a = &self.artifact;
        let mut out = String::new();
        out.push_str(&format!("model     {}\n", s.model_id));
        out.push_str(&format!(
            "data      {} rows: {} training, {} holdout (seed {})\n",
            s.rows, a.training.train_rows, a.training.holdout_rows, a.training.seed
        ));
        let r = &s.report;
        if r.rows_sampled < r.rows_read {
            out.push_str(&format!(
                "sample    {} of the {} rows (the row cap; every churner kept up to it), \
                 probabilities shifted back to the whole table's churn rate ({:+.3} logit)\n",
                r.rows_sampled, r.rows_read, r.sampling_shift
            ));
        }
        out.push_str(&format!(
            "promoted  {}: {}\n",
            if s.promoted { "yes" } else { "no" },
            s.reason
        ));
        out.push_str("\nHoldout metrics\n");
        let mut t = Table::new(["metric", "value"]).right(&[1]);
        t.row(["ROC AUC".to_string(), output::metric(m.roc_auc)]);
        t.row(["PR AUC".to_string(), output::metric(m.pr_auc)]);
        t.row(["log loss".to_string(), output::metric(m.log_loss)]);
        t.row(["Brier score".to_string(), output::metric(m.brier)]);
        t.row([
            "top-decile lift".to_string(),
            format!("{:.2}x", m.top_decile_lift),
        ]);
        t.row(["calibration error (ECE)".to_string(), output::metric(m.ece)]);
        t.row(["base churn rate".to_string(), output::percent(m.base_rate)]);
        let c = &m.confusion_at_high;
        t.row([
            "precision at high".to_string(),
            output::percent(c.precision()),
        ]);
        t.row(["recall at high".to_string(), output::percent(c.recall())]);
        if let Some(champ) = &s.champion {
            t.row([
                format!("champion {} ROC AUC", short_id(&champ.model_id)),
                champ
                    .roc_auc_on_new_holdout
                    .map(output::metric)
                    .unwrap_or_else(|| "n/a".into()),
            ]);
        }
        out.push_str(&indent(&t.render()));
        out.push_str("\nRisk bands (churn probability)\n");
        let mut t = Table::new(["band", "from"]).right(&[1]);
        t.row([
            "high".to_string(),
            format!(">= {}", output::percent(a.bands.high)),
        ]);
        t.row([
            "medium".to_string(),
            format!(">= {}", output::percent(a.bands.medium)),
        ]);
        t.row([
            "low".to_string(),
            format!("< {}", output::percent(a.bands.medium)),
        ]);
        out.push_str(&indent(&t.render()));
        out.push_str(&complexity_table(&s.report));
        out.push_str("\nTop coefficients (standardized features; positive = more churn)\n");
        let mut t = Table::new(["feature", "coefficient"]).right(&[1]);
        for coef in self.top_coefficients(TOP_COEFFICIENTS) {
            t.row([coef.name.clone(), format!("{:+.3}", coef.value)]);
        }
        out.push_str(&indent(&t.render()));
        if !s.report.warnings.is_empty() {
            out.push_str("\nWarnings\n");
            for w in &s.report.warnings {
                out.push_str(&format!("  - {w}\n"));
            }
        }
        if !s.notes.is_empty() {
            out.push_str("\nNotes\n");
            for n in &s.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
        out
    }
}

/// The complexities cross-validation compared, with their CV ROC AUC and
/// which one was chosen (empty when the report predates the comparison).
fn complexity_table(report: &churn_model::TrainingReport) -> String {
    if report.complexities.is_empty() {
        return String::new();
    }
    let mut t = Table::new(["complexity", "terms", "CV ROC AUC", "L2", ""]).right(&[1, 2, 3]);
    for c in &report.complexities {
        t.row([
            c.complexity.to_string(),
            c.design_columns.to_string(),
            format!("{:.4}", c.cv_auc),
            format!("{:e}", c.l2),
            if c.complexity == report.complexity {
                "chosen".to_string()
            } else {
                String::new()
            },
        ]);
    }
    let mut out = format!(
        "\nModel complexity (cross-validated on {} rows; the simplest within tolerance of the best wins)\n{}",
        report.cv_rows,
        indent(&t.render())
    );
    if matches!(
        report.complexity,
        churn_model::Complexity::ShapesAndInteractions | churn_model::Complexity::Interactions
    ) {
        let pairs: Vec<String> = report
            .interaction_screen
            .iter()
            .map(|p| format!("{} x {}", p.features.0, p.features.1))
            .collect();
        out.push_str(&format!("  interactions: {}\n", pairs.join(", ")));
    }
    out
}

/// Coefficients shown in the report.
const TOP_COEFFICIENTS: usize = 10;

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
