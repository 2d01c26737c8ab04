//! Trains on a CSV file with the default configuration and prints the
//! holdout AUC and the holdout rows as JSON, for the scikit-learn parity
//! check (`model/parity/run.sh`), which fits scikit-learn on exactly the
//! complementary training rows and scores the same holdout rows.
//!
//! ```sh
//! cargo run --release -p churn-model --example holdout_auc -- FILE.csv [--seed N] \
//!     [--id-column customer_id] [--label-column churned]
//! ```
//!
//! Every cell is handed to the model as text (empty = missing), so column
//! kinds come from the model's own inference, as for any reader. For
//! experiments, `--l2 A,B,..`, `--min-level-count N`, `--gradient-tolerance T`,
//! `--max-iterations N` and `--shape-knots N` override those defaults.

use churn_model::{train, Column, Schema, Table, TrainConfig};
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut config = TrainConfig::default();
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seed" => config.seed = value()?.parse()?,
            "--id-column" => config.id_column = value()?,
            "--label-column" => config.label_column = value()?,
            // Diagnostics only (the parity check uses the defaults).
            "--l2" => {
                config.l2_grid = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--min-level-count" => config.min_level_count = value()?.parse()?,
            "--gradient-tolerance" => config.gradient_tolerance = value()?.parse()?,
            "--max-iterations" => config.max_iterations = value()?.parse()?,
            "--shape-knots" => config.shape_knots = value()?.parse()?,
            _ if path.is_none() && !a.starts_with("--") => path = Some(a),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let path =
        path.ok_or("usage: holdout_auc FILE.csv [--seed N] [--id-column C] [--label-column C]")?;

    let mut reader = csv::Reader::from_path(&path)?;
    let names: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let mut cells: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record?;
        for (col, cell) in cells.iter_mut().zip(record.iter()) {
            col.push((!cell.is_empty()).then(|| cell.to_string()));
        }
    }
    let table = Table::new(
        names
            .iter()
            .zip(cells)
            .map(|(n, v)| Column::text(n.clone(), v))
            .collect(),
    );

    let outcome = train(&table, &Schema::default(), &config)?;
    let ids = match table.column(&config.id_column).map(|c| &c.values) {
        Some(churn_model::ColumnValues::Text(v)) => outcome
            .holdout_rows
            .iter()
            .map(|&r| v[r].clone())
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let metrics = outcome.artifact.metrics();
    println!(
        "{}",
        serde_json::json!({
            "file": path,
            "seed": config.seed,
            "rows": table.n_rows(),
            "roc_auc": metrics.roc_auc,
            "log_loss": metrics.log_loss,
            "ece": metrics.ece,
            "chosen_l2": outcome.report.chosen_l2,
            "cv": outcome.report.cv.iter()
                .map(|c| serde_json::json!({"l2": c.l2, "mean_auc": c.mean_auc, "fold_aucs": c.fold_aucs}))
                .collect::<Vec<_>>(),
            "design_columns": outcome.artifact.coefficients.len(),
            "complexity": outcome.report.complexity,
            "complexities": outcome.report.complexities,
            "interaction_screen": outcome.report.interaction_screen,
            "train_seconds": outcome.report.timings.iter().map(|t| t.1).sum::<f64>(),
            "warnings": outcome.report.warnings,
            "log1p": outcome.report.log1p_decisions.iter()
                .filter(|d| d.2).map(|d| &d.0).collect::<Vec<_>>(),
            "holdout_rows": outcome.holdout_rows,
            "holdout_ids": ids,
        })
    );
    Ok(())
}
