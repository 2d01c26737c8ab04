//! Shared fixtures: a small synthetic model trained once per test binary.
#![allow(dead_code)]

use churn_model::*;
use std::sync::OnceLock;

/// A fast configuration for tests: 3 folds, 2 grid points.
pub fn quick_config() -> TrainConfig {
    TrainConfig::builder()
        .cv_folds(3usize)
        .l2_grid(vec![1e-3, 1e-2])
        .created_at("2026-01-01T00:00:00Z")
        .build()
        .unwrap()
}

/// The synthetic SaaS table used by most tests: its id, features and
/// label (the account attributes are tested on their own, in `attributes.rs`).
pub fn saas_table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        without_attributes(generate(&SyntheticConfig {
            customers: 6_000,
            seed: 3,
        }))
    })
}

/// `table` without the synthetic account attribute columns.
pub fn without_attributes(mut table: Table) -> Table {
    table
        .columns
        .retain(|c| !synthetic::ATTRIBUTE_COLUMNS.contains(&c.name.as_str()));
    table
}

/// A model trained on [`saas_table`].
pub fn saas_model() -> &'static TrainOutcome {
    static M: OnceLock<TrainOutcome> = OnceLock::new();
    M.get_or_init(|| train(saas_table(), &Schema::default(), &quick_config()).expect("train"))
}

/// A small valid table with two numeric features whose labels follow x1.
pub fn tiny_table(n: usize) -> Table {
    let ids = (0..n).map(|i| Some(format!("c{i}"))).collect();
    let x1: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64).collect();
    let x2: Vec<f64> = (0..n).map(|i| ((i * 53) % 89) as f64).collect();
    // About 20 % churners, mostly where x1 is high, with some overlap.
    let y: Vec<f64> = (0..n)
        .map(|i| {
            if x1[i] > 80.0 || i % 23 == 0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Table::new(vec![
        Column::text("customer_id", ids),
        Column::numeric("x1", x1),
        Column::numeric("x2", x2),
        Column::numeric("churned", y),
    ])
}

/// The JSON record of row `i` of `table` (features only; NaN / None omitted).
pub fn record(table: &Table, i: usize) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for c in &table.columns {
        match &c.values {
            ColumnValues::Numeric(v) if !v[i].is_nan() => {
                m.insert(c.name.clone(), serde_json::json!(v[i]));
            }
            ColumnValues::Text(v) => {
                if let Some(s) = &v[i] {
                    m.insert(c.name.clone(), serde_json::json!(s));
                }
            }
            _ => {}
        }
    }
    m
}
