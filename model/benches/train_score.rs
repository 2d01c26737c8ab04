//! Training and scoring benchmark (a plain binary; `harness = false`).
//!
//! ```sh
//! # generate N synthetic SaaS customers in memory, train, score
//! cargo bench -p churn-model --bench train_score -- syn 1000000
//! # the benchmark table's shape (20 numeric columns on scales 1..1000, the
//! # generator of bench/gen_syn.py) built in memory, train, score
//! cargo bench -p churn-model --bench train_score -- wide 1000000
//! # the same shape with step effects (churn moves at u_j = 0, not along
//! # u_j): cross-validation chooses shape functions, timing their scoring
//! cargo bench -p churn-model --bench train_score -- wide-step 1000000
//! ```
//!
//! Scoring is timed on one thread, best of five passes. End to end training
//! from a CSV file (read, fit, evaluate, write the artifact) is measured on
//! the `churn train` process against scikit-learn by `bench/compare_train.sh`.
//!
//! `key=value` arguments override training knobs for experiments:
//! `tol=`, `cv_rows=`, `max_iter=`, `knots=` (0: linear only);
//! `RAYON_NUM_THREADS` sizes the thread pool.

use churn_model::{
    generate, train, Column, CompactScore, Schema, Scorer, SyntheticConfig, Table, TrainConfig,
};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some(mode @ ("wide" | "wide-step")) => wide_bench(
            args.get(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000),
            mode == "wide-step",
        ),
        Some("syn") | None => syn_bench(
            args.get(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000),
        ),
        Some(other) => eprintln!("unknown mode {other}: use `syn N`, `wide N` or `wide-step N`"),
    }
}

fn syn_bench(n: usize) {
    let t = Instant::now();
    let table = generate(&SyntheticConfig {
        customers: n,
        seed: 11,
    });
    println!("generate {n} rows: {:.3} s", t.elapsed().as_secs_f64());
    let config = bench_config();
    let t = Instant::now();
    let out = train(&table, &Schema::default(), &config).expect("train");
    println!(
        "train (in memory, {} design columns, base rate {:.3}): {:.3} s, holdout AUC {:.4}, l2 {}, stages {:?}",
        out.artifact.coefficients.len(),
        out.artifact.metrics.base_rate,
        t.elapsed().as_secs_f64(),
        out.artifact.metrics.roc_auc,
        out.report.chosen_l2,
        out.report.timings
    );
    print_complexities(&out.report);
    score_bench(&out.artifact, &table);
}

/// The complexities cross-validation compared and the one it chose.
fn print_complexities(report: &churn_model::TrainingReport) {
    for c in &report.complexities {
        println!(
            "  complexity {:<7} {:>3} design columns, CV AUC {:.4}{}",
            c.complexity.to_string(),
            c.design_columns,
            c.cv_auc,
            if c.complexity == report.complexity {
                "  (chosen)"
            } else {
                ""
            }
        );
    }
}

fn score_bench(artifact: &churn_model::ModelArtifact, table: &Table) {
    let scorer = Scorer::new(artifact);
    let n = table.n_rows();
    let mut out: Vec<CompactScore> = Vec::with_capacity(n);
    let mut best = f64::INFINITY;
    let mut high = 0;
    // The per-core figure: scoring runs on the caller's pool, here one thread.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    for _ in 0..5 {
        let t = Instant::now();
        let errors = one_thread.install(|| scorer.score_table_compact(table, &mut out));
        best = best.min(t.elapsed().as_secs_f64());
        assert!(errors.is_empty());
        high = out
            .iter()
            .filter(|s| s.risk_band == churn_model::RiskBand::High)
            .count();
    }
    println!(
        "score_table_compact (1 thread, probability + band + top-3 reason indices): {:.0} rows/s ({} high)",
        n as f64 / best,
        high
    );
    let t = Instant::now();
    let full = scorer.score_table(table);
    let secs = t.elapsed().as_secs_f64();
    let reasons: usize = full
        .iter()
        .map(|r| r.as_ref().map_or(0, |s| s.reasons.len()))
        .sum();
    println!(
        "score_table (materialised Reason values): {:.0} rows/s ({reasons} reasons)",
        n as f64 / secs
    );
}

/// Defaults, with `key=value` arguments overriding a few training knobs.
fn bench_config() -> TrainConfig {
    let mut b = TrainConfig::builder();
    for a in std::env::args() {
        if let Some((k, v)) = a.split_once('=') {
            match k {
                "tol" => b = b.gradient_tolerance(v.parse::<f64>().expect("tol")),
                "cv_rows" => b = b.cv_max_rows(v.parse::<usize>().expect("cv_rows")),
                "max_iter" => b = b.max_iterations(v.parse::<u64>().expect("max_iter")),
                "knots" => b = b.shape_knots(v.parse::<usize>().expect("knots")),
                _ => {}
            }
        }
    }
    b.build().expect("config")
}

/// The shape of `bench/gen_syn.py`: `f_j = u_j * 10^(j % 4)`,
/// `u_j ~ U(-1, 1)`, churn ~ Bernoulli(sigmoid(-1.5 + sum_j (j - 10) / 10 * u_j)).
/// With `step`, each `u_j` in the logit is replaced by its sign: threshold
/// effects a linear model can only approximate.
fn wide_table(n: usize, seed: u64, step: bool) -> Table {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut cols: Vec<Vec<f64>> = (0..20).map(|_| Vec::with_capacity(n)).collect();
    let mut churned = Vec::with_capacity(n);
    for _ in 0..n {
        let mut logit = -1.5;
        for (j, col) in cols.iter_mut().enumerate() {
            let u: f64 = rng.gen_range(-1.0..1.0);
            let effect = if step { u.signum() } else { u };
            logit += (j as f64 - 10.0) / 10.0 * effect;
            col.push(u * 10f64.powi((j % 4) as i32));
        }
        let p = 1.0 / (1.0 + (-logit).exp());
        churned.push(if rng.gen::<f64>() < p { 1.0 } else { 0.0 });
    }
    let mut columns = vec![Column::text(
        "customer_id",
        (0..n).map(|i| Some(format!("cust_{i:07}"))).collect(),
    )];
    columns.extend(
        cols.into_iter()
            .enumerate()
            .map(|(j, v)| Column::numeric(format!("f{j}"), v)),
    );
    columns.push(Column::numeric("churned", churned));
    Table::new(columns)
}

fn wide_bench(n: usize, step: bool) {
    let table = wide_table(n, 20240607, step);
    let t = Instant::now();
    let out = train(&table, &Schema::default(), &bench_config()).expect("train");
    println!(
        "train (in memory, {n} x 20, base rate {:.3}): {:.3} s, holdout AUC {:.4}, l2 {}, stages {:?}",
        out.artifact.metrics.base_rate,
        t.elapsed().as_secs_f64(),
        out.artifact.metrics.roc_auc,
        out.report.chosen_l2,
        out.report.timings
    );
    print_complexities(&out.report);
    score_bench(&out.artifact, &table);
}
