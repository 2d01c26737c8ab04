//! Shape functions and interactions: a synthetic table with known threshold
//! effects and one known interaction is recovered (cross-validation chooses
//! shapes with interactions, the fitted shape bends where the truth does,
//! the interaction term is the true pair and moves the logit where the truth
//! does), reasons stay exact sums and an interaction is a reason of its own,
//! such artifacts carry the new version; near-linear data keeps the linear
//! model and tries no interactions.

mod common;

use churn_model::*;
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use std::sync::OnceLock;

/// Where churn jumps: fewer than this many logins in 30 days.
const LOGIN_THRESHOLD: f64 = 10.0;
/// Where churn jumps: this many support calls and more.
const CALLS_THRESHOLD: f64 = 4.0;

/// Customers whose churn depends on thresholds only: logit +2.5 below
/// [`LOGIN_THRESHOLD`] logins, +1.5 from [`CALLS_THRESHOLD`] support calls
/// on, a small linear tenure effect and a plan, and one interaction: new
/// (under 12 months) `pro` customers +1.5; 5 % of logins missing.
fn threshold_table(n: usize, seed: u64) -> Table {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut ids, mut logins, mut calls, mut tenure, mut plan, mut y) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let l = rng.gen_range(0..60) as f64;
        let c = (0..8).filter(|_| rng.gen_bool(0.35)).count() as f64;
        let t = rng.gen_range(1..72) as f64;
        let p = ["basic", "pro", "enterprise"][rng.gen_range(0..3)];
        let logit = -2.0
            + 2.5 * f64::from(u8::from(l < LOGIN_THRESHOLD))
            + 1.5 * f64::from(u8::from(c >= CALLS_THRESHOLD))
            - 0.01 * (t - 36.0)
            + if p == "basic" { 0.3 } else { 0.0 }
            + if p == "pro" && t < 12.0 { 1.5 } else { 0.0 };
        let churn = rng.gen_bool(1.0 / (1.0 + (-logit).exp()));
        ids.push(Some(format!("c{i}")));
        logins.push(if rng.gen_bool(0.05) { f64::NAN } else { l });
        calls.push(c);
        tenure.push(t);
        plan.push(Some(p.to_string()));
        y.push(f64::from(u8::from(churn)));
    }
    Table::new(vec![
        Column::text("customer_id", ids),
        Column::numeric("logins_30d", logins),
        Column::numeric("support_calls", calls),
        Column::numeric("tenure_months", tenure),
        Column::text("plan", plan),
        Column::numeric("churned", y),
    ])
}

fn threshold_data() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| threshold_table(8_000, 5))
}

fn threshold_model() -> &'static TrainOutcome {
    static M: OnceLock<TrainOutcome> = OnceLock::new();
    M.get_or_init(|| train(threshold_data(), &Schema::default(), &quick_config()).expect("train"))
}

/// Feature `name`'s contribution at `x` (other features missing, which does
/// not change this feature's term).
fn contribution(s: &Scorer, name: &str, x: f64) -> f64 {
    let mut rec = Map::new();
    rec.insert(name.into(), Value::from(x));
    let ex = s.explain_json(&rec).unwrap();
    ex.contributions.iter().find(|c| c.0 == name).unwrap().1
}

/// The `x` in `xs` (all but the last) where the contribution changes most
/// towards the next value.
fn steepest(s: &Scorer, name: &str, xs: &[f64]) -> f64 {
    let f: Vec<f64> = xs.iter().map(|&x| contribution(s, name, x)).collect();
    let i = (0..xs.len() - 1)
        .max_by(|&a, &b| (f[a + 1] - f[a]).abs().total_cmp(&(f[b + 1] - f[b]).abs()))
        .unwrap();
    xs[i]
}

#[test]
fn threshold_effects_choose_shapes_and_bend_where_the_truth_does() {
    let out = threshold_model();
    let r = &out.report;
    assert_eq!(
        r.complexity,
        Complexity::ShapesAndInteractions,
        "{:?}",
        r.complexities
    );
    let kinds: Vec<Complexity> = r.complexities.iter().map(|c| c.complexity).collect();
    assert_eq!(
        kinds,
        [
            Complexity::Linear,
            Complexity::Shapes,
            Complexity::ShapesAndInteractions
        ]
    );
    assert!(
        r.complexities[2].cv_auc > r.complexities[1].cv_auc + 0.002,
        "{:?}",
        r.complexities
    );
    assert!(
        r.complexities[1].cv_auc > r.complexities[0].cv_auc + 0.002,
        "{:?}",
        r.complexities
    );
    assert!(r.complexities[1].design_columns > r.complexities[0].design_columns);
    let s = Scorer::new(&out.artifact);
    // Logins: high below the threshold, flat well above it.
    let xs: Vec<f64> = (0..40).map(f64::from).collect();
    let bend = steepest(&s, "logins_30d", &xs);
    assert!((4.0..=14.0).contains(&bend), "steepest at {bend}");
    let drop = contribution(&s, "logins_30d", 2.0) - contribution(&s, "logins_30d", 25.0);
    assert!(drop > 1.2, "drop {drop}");
    let flat = contribution(&s, "logins_30d", 25.0) - contribution(&s, "logins_30d", 55.0);
    assert!(flat.abs() < 0.5, "flat part moves by {flat}");
    // Support calls: the rise is around the fourth call.
    let calls: Vec<f64> = (0..8).map(f64::from).collect();
    let bend = steepest(&s, "support_calls", &calls);
    assert!((2.0..=4.0).contains(&bend), "steepest at {bend}");
    let rise = contribution(&s, "support_calls", 5.0) - contribution(&s, "support_calls", 2.0);
    assert!(rise > 0.7, "rise {rise}");
}

#[test]
fn the_interaction_screen_ranks_the_true_pair_first() {
    let screen = &threshold_model().report.interaction_screen;
    assert!(!screen.is_empty() && screen.len() <= 10, "{screen:?}");
    assert_eq!(
        screen[0].features,
        ("tenure_months".to_string(), "plan".to_string()),
        "{screen:?}"
    );
    assert!(screen.windows(2).all(|w| w[0].gain >= w[1].gain));
}

/// The interaction term of (tenure, plan) in a record with just those two.
fn pair_term(s: &Scorer, tenure: f64, plan: &str) -> f64 {
    let mut rec = Map::new();
    rec.insert("tenure_months".into(), Value::from(tenure));
    rec.insert("plan".into(), Value::from(plan));
    let ex = s.explain_json(&rec).unwrap();
    ex.contributions
        .iter()
        .find(|c| c.0 == "tenure_months x plan")
        .unwrap_or_else(|| panic!("no interaction term in {:?}", ex.contributions))
        .1
}

/// The truth adds +1.5 to new `pro` customers only: the fitted term raises
/// new `pro` customers against established ones by far more than it does
/// `basic` customers, and an interaction is its own reason showing both values.
#[test]
fn the_true_interaction_is_a_term_and_its_own_reason() {
    let s = Scorer::new(&threshold_model().artifact);
    let new_vs_old = |plan| pair_term(&s, 3.0, plan) - pair_term(&s, 40.0, plan);
    let (pro, basic) = (new_vs_old("pro"), new_vs_old("basic"));
    assert!(pro - basic > 0.7, "pro {pro}, basic {basic}");
    let mut rec = Map::new();
    rec.insert("tenure_months".into(), Value::from(3.0));
    rec.insert("plan".into(), Value::from("pro"));
    rec.insert("logins_30d".into(), Value::from(30.0));
    rec.insert("support_calls".into(), Value::from(1.0));
    let scored = s.score_json(&rec).unwrap();
    let reason = scored
        .score
        .reasons
        .iter()
        .find(|r| r.with.is_some())
        .unwrap_or_else(|| panic!("no interaction reason in {:?}", scored.score.reasons));
    assert_eq!(reason.feature, "tenure_months");
    assert_eq!(reason.value, Value::from(3.0));
    assert_eq!(reason.typical, Value::Null);
    let with = reason.with.as_ref().unwrap();
    assert_eq!(
        (with.feature.as_str(), &with.value),
        ("plan", &Value::from("pro"))
    );
    assert_eq!(reason.to_string(), "tenure_months 3 with plan=pro");
    assert_eq!(reason.contribution, pair_term(&s, 3.0, "pro"));
}

#[test]
fn shape_reasons_sum_to_the_logit_exactly_and_typical_stays_the_median() {
    let out = threshold_model();
    let s = Scorer::new(&out.artifact);
    let table = threshold_data();
    let batch = s.score_table(table);
    for i in (0..table.n_rows()).step_by(37) {
        let rec = record(table, i);
        let ex = s.explain_json(&rec).unwrap();
        let sum = ex
            .contributions
            .iter()
            .fold(ex.intercept, |acc, (_, c)| acc + c);
        assert_eq!(sum, ex.logit, "row {i}");
        let scored = s.score_json(&rec).unwrap();
        assert_eq!(scored.score.logit, ex.logit, "row {i}");
        assert_eq!(batch[i].as_ref().unwrap().logit, ex.logit, "row {i}");
    }
    // One reason per feature, however many shape terms it has.
    let mut rec = Map::new();
    rec.insert("logins_30d".into(), Value::from(1.0));
    rec.insert("support_calls".into(), Value::from(6.0));
    let scored = s.score_json(&rec).unwrap();
    let features: Vec<&str> = scored
        .score
        .reasons
        .iter()
        .map(|r| r.feature.as_str())
        .collect();
    assert_eq!(
        features[..2],
        ["logins_30d", "support_calls"],
        "{features:?}"
    );
    let median = match &out.artifact.preprocessing.features[0] {
        preprocess::FeaturePrep::Numeric(n) => n.median,
        f => panic!("{f:?}"),
    };
    assert_eq!(scored.score.reasons[0].typical, Value::from(median));
    assert_eq!(scored.score.reasons[0].value, Value::from(1.0));
    // A missing value keeps its indicator and is scored.
    assert!(out
        .artifact
        .coefficients
        .iter()
        .any(|c| c.name == "logins_30d_missing"));
    assert!(s.score_json(&Map::new()).is_ok());
}

#[test]
fn shape_artifacts_carry_the_new_version_and_round_trip() {
    let art = &threshold_model().artifact;
    assert_eq!(art.schema_version, SCHEMA_VERSION);
    assert!(art
        .coefficients
        .iter()
        .any(|c| c.name.starts_with("logins_30d@")));
    assert!(art
        .coefficients
        .iter()
        .any(|c| c.name.starts_with("tenure_months") && c.name.contains(" x plan=")));
    let bytes = art.to_json_bytes();
    let back = ModelArtifact::from_json_bytes(&bytes).unwrap();
    assert_eq!(&back, art);
    assert_eq!(back.to_json_bytes(), bytes);
    // A product term pairing a feature with itself is refused at load.
    let mut selfish = art.clone();
    let col = selfish
        .preprocessing
        .columns
        .iter_mut()
        .find(|c| matches!(c.role, preprocess::Role::Product { .. }))
        .unwrap();
    if let preprocess::Role::Product { with, .. } = &mut col.role {
        *with = col.feature;
    }
    selfish.model_id = selfish.content_hash();
    let e = ModelArtifact::from_json_bytes(&selfish.to_json_bytes()).unwrap_err();
    assert!(matches!(e, Error::ArtifactCorrupt { .. }), "{e}");
    // Shape terms under an older version, even rehashed, are refused: an
    // older build could not have written them.
    let mut old = art.clone();
    old.holdout_curves = None;
    old.holdout_profile = None;
    for r in &mut old.reference {
        if let reference::Bins::Deciles { shares, .. } = &mut r.bins {
            shares.clear();
        }
    }
    old.schema_version = SHAPES_SCHEMA_VERSION;
    old.model_id = old.content_hash();
    assert!(ModelArtifact::from_json_bytes(&old.to_json_bytes()).is_ok());
    old.schema_version = LINEAR_SCHEMA_VERSION;
    old.model_id = old.content_hash();
    let e = ModelArtifact::from_json_bytes(&old.to_json_bytes()).unwrap_err();
    assert!(matches!(e, Error::ArtifactCorrupt { .. }), "{e}");
}

#[test]
fn near_linear_data_keeps_the_linear_model() {
    let r = &saas_model().report;
    assert_eq!(r.complexity, Complexity::Linear, "{:?}", r.complexities);
    // No feature bends beyond chance and no pair passes the screen, so
    // neither richer candidate is tried (their cross-validation is not paid).
    assert!(
        r.interaction_screen.is_empty(),
        "{:?}",
        r.interaction_screen
    );
    assert_eq!(r.complexities.len(), 1, "{:?}", r.complexities);
    assert!(!saas_model().artifact.preprocessing.has_shapes());
    // Without shape knots only the linear model is tried.
    let config = TrainConfig::builder()
        .cv_folds(3usize)
        .l2_grid(vec![1e-3, 1e-2])
        .shape_knots(0usize)
        .created_at("2026-01-01T00:00:00Z")
        .build()
        .unwrap();
    let out = train(saas_table(), &Schema::default(), &config).unwrap();
    assert_eq!(out.report.complexities.len(), 1);
    assert_eq!(
        out.artifact.to_json_bytes(),
        saas_model().artifact.to_json_bytes()
    );
}

/// Churn depends on a combination of two categorical features only (and a
/// straight line in logins): no feature bends, so no shapes are tried, and
/// the interaction candidate is linear plus the pair.
#[test]
fn a_categorical_pair_without_bends_is_linear_plus_interactions() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let n = 8_000;
    let (mut ids, mut logins, mut plan, mut region, mut y) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let l = f64::from(rng.gen_range(0..60u8));
        let p = ["basic", "pro", "enterprise"][rng.gen_range(0..3)];
        let r = ["eu", "us", "apac"][rng.gen_range(0..3)];
        let logit = -1.6 - 0.02 * (l - 30.0) + if p == "pro" && r == "eu" { 2.0 } else { 0.0 };
        ids.push(Some(format!("c{i}")));
        logins.push(l);
        plan.push(Some(p.to_string()));
        region.push(Some(r.to_string()));
        y.push(f64::from(u8::from(
            rng.gen_bool(1.0 / (1.0 + (-logit).exp())),
        )));
    }
    let table = Table::new(vec![
        Column::text("customer_id", ids),
        Column::numeric("logins_30d", logins),
        Column::text("plan", plan),
        Column::text("region", region),
        Column::numeric("churned", y),
    ]);
    let out = train(&table, &Schema::default(), &quick_config()).unwrap();
    let r = &out.report;
    let kinds: Vec<Complexity> = r.complexities.iter().map(|c| c.complexity).collect();
    assert_eq!(
        kinds,
        [Complexity::Linear, Complexity::Interactions],
        "{:?}",
        r.complexities
    );
    assert_eq!(
        r.complexity,
        Complexity::Interactions,
        "{:?}",
        r.complexities
    );
    assert_eq!(
        r.interaction_screen[0].features,
        ("plan".to_string(), "region".to_string())
    );
    assert!(!out.artifact.preprocessing.has_shapes());
    assert!(out.artifact.preprocessing.has_interactions());
}
