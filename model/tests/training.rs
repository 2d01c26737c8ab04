//! Training behaviour: recovered coefficients, orientation, preprocessing
//! decisions, bands, determinism, evaluate().

mod common;

use churn_model::preprocess::{FeaturePrep, Role};
use churn_model::*;
use common::*;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Raw-unit coefficient of the `Value` design column of `feature`.
fn raw_coefficient(a: &ModelArtifact, feature: &str) -> f64 {
    let (i, c) = a
        .preprocessing
        .columns
        .iter()
        .enumerate()
        .find(|(_, c)| c.name == feature && c.role == Role::Value)
        .expect("design column");
    a.coefficients[i].value / c.std
}

#[test]
fn recovers_known_coefficients() {
    // logit = -1.5 + 0.8 a - 0.5 b + 0 c, with features on different scales.
    let n = 12_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let (mut a, mut b, mut c, mut y) = (vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let (u, v, w): (f64, f64, f64) = (
            normal.sample(&mut rng),
            normal.sample(&mut rng),
            normal.sample(&mut rng),
        );
        let z = -1.5 + 0.8 * u - 0.5 * v;
        a.push(u);
        b.push(v * 100.0); // true raw coefficient -0.005
        c.push(w * 0.01);
        y.push(if rng.gen::<f64>() < 1.0 / (1.0 + (-z).exp()) {
            1.0
        } else {
            0.0
        });
    }
    let ids = (0..n).map(|i| Some(format!("id{i}"))).collect();
    let table = Table::new(vec![
        Column::text("customer_id", ids),
        Column::numeric("a", a),
        Column::numeric("b", b),
        Column::numeric("c", c),
        Column::numeric("churned", y),
    ]);
    let config = TrainConfig::builder()
        .cv_folds(2usize)
        .l2_grid(vec![1e-5])
        .build()
        .unwrap();
    let out = train(&table, &Schema::default(), &config).unwrap();
    let art = &out.artifact;
    let (ca, cb, cc) = (
        raw_coefficient(art, "a"),
        raw_coefficient(art, "b"),
        raw_coefficient(art, "c") * 0.01,
    );
    assert!((ca - 0.8).abs() < 0.08, "a: {ca}");
    assert!((cb * 100.0 + 0.5).abs() < 0.06, "b: {cb}");
    assert!(cc.abs() < 0.06, "c (per sd): {cc}");
    // Intercept in raw units: b0 = intercept - sum(w_j * mean_j / std_j).
    let raw_intercept = art.intercept
        - art
            .preprocessing
            .columns
            .iter()
            .zip(&art.coefficients)
            .map(|(c, w)| w.value * c.mean / c.std)
            .sum::<f64>();
    assert!(
        (raw_intercept + 1.5).abs() < 0.1,
        "intercept {raw_intercept}"
    );
    assert!(art.metrics.roc_auc > 0.7);
}

#[test]
fn probability_is_of_churn_and_signs_match_the_generator() {
    let out = saas_model();
    let art = &out.artifact;
    // Orientation: mean predicted probability on the holdout ~ churn rate.
    let scorer = Scorer::new(art);
    let table = saas_table();
    let mut sum = 0.0;
    for &r in &out.holdout_rows {
        sum += scorer
            .score_json(&record(table, r))
            .unwrap()
            .score
            .churn_probability;
    }
    let mean_p = sum / out.holdout_rows.len() as f64;
    assert!(
        (mean_p - art.metrics.base_rate).abs() < 0.02,
        "mean p {mean_p} vs {}",
        art.metrics.base_rate
    );
    assert!(
        (0.10..0.22).contains(&art.metrics.base_rate),
        "base rate {}",
        art.metrics.base_rate
    );
    assert!(art.metrics.roc_auc > 0.7, "auc {}", art.metrics.roc_auc);
    // Signs of the strongest effects in the generator.
    let coef = |name: &str| {
        art.coefficients
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
            .unwrap()
    };
    assert!(coef("tenure_months") < 0.0);
    assert!(coef("billing_failures_90d") > 0.0);
    assert!(coef("support_tickets_90d") > 0.0);
    // basic is the reference level (most frequent); enterprise and pro churn less.
    assert!(coef("plan=enterprise") < 0.0 && coef("plan=pro") < 0.0);
    assert!(art.coefficients.iter().all(|c| c.name != "plan=basic"));
}

#[test]
fn preprocessing_decisions_are_recorded() {
    let out = saas_model();
    let prep = &out.artifact.preprocessing;
    let names: Vec<&str> = prep.column_names();
    // nps is 40 % missing -> median imputation plus an indicator.
    assert!(names.contains(&"nps_missing"));
    assert!(!names.contains(&"tenure_months_missing"));
    // days_since_last_login is a heavy-tailed count -> log1p, recorded in the report.
    let d = out
        .report
        .log1p_decisions
        .iter()
        .find(|d| d.0 == "days_since_last_login")
        .unwrap();
    assert!(d.2 && d.1 > 4.0, "{d:?}");
    let t = out
        .report
        .log1p_decisions
        .iter()
        .find(|d| d.0 == "active_days_30d")
        .unwrap();
    assert!(!t.2);
    // Categoricals: one-hot per level except the most frequent (the reference).
    assert!(
        names.contains(&"plan=pro")
            && names.contains(&"plan=enterprise")
            && !names.contains(&"plan=basic")
    );
    assert!(
        names.contains(&"region=emea")
            && names.contains(&"region=other")
            && !names.contains(&"region=na")
    );
    let FeaturePrep::Categorical(plan) = prep.features.iter().find(|f| f.name() == "plan").unwrap()
    else {
        panic!("plan should be categorical")
    };
    assert_eq!(plan.most_common, "basic");
    // Every design column is standardized on the training split.
    assert!(prep.columns.iter().all(|c| c.std > 0.0));
    assert_eq!(out.artifact.reference.len(), prep.features.len());
}

#[test]
fn constant_columns_rare_levels_and_ignored_columns() {
    let mut t = tiny_table(600);
    t.columns.push(Column::numeric("always_3", vec![3.0; 600]));
    // "rare" appears 5 times (< 10) -> other.
    let lv = (0..600)
        .map(|i| {
            Some(if i % 120 == 0 {
                "rare".to_string()
            } else if i % 2 == 0 {
                "a".into()
            } else {
                "b".into()
            })
        })
        .collect();
    t.columns.push(Column::text("tier", lv));
    t.columns.push(Column::text(
        "email",
        (0..600).map(|i| Some(format!("u{i}@x"))).collect(),
    ));
    let schema = Schema::from_toml_str("[columns.email]\nkind = \"ignored\"\n").unwrap();
    let out = train(&t, &schema, &quick_config()).unwrap();
    assert!(
        out.report
            .warnings
            .iter()
            .any(|w| w.contains("always_3") && w.contains("constant")),
        "{:?}",
        out.report.warnings
    );
    let names = out.artifact.preprocessing.column_names();
    assert!(!names
        .iter()
        .any(|n| n.starts_with("always_3") || n.starts_with("email")));
    assert!(
        names.contains(&"tier=other") && !names.contains(&"tier=rare"),
        "{names:?}"
    );
}

#[test]
fn schema_overrides_numeric_text_to_categorical() {
    let mut t = tiny_table(600);
    t.columns.push(Column::numeric(
        "segment",
        (0..600).map(|i| (i % 3) as f64).collect(),
    ));
    let schema = Schema::from_toml_str("[columns.segment]\nkind = \"categorical\"\n").unwrap();
    let out = train(&t, &schema, &quick_config()).unwrap();
    let names = out.artifact.preprocessing.column_names();
    // Three levels; the most frequent in the training split is the reference.
    let FeaturePrep::Categorical(seg) = out
        .artifact
        .preprocessing
        .features
        .iter()
        .find(|f| f.name() == "segment")
        .unwrap()
    else {
        panic!("segment should be categorical")
    };
    let mut levels = seg.levels.clone();
    levels.sort();
    assert_eq!(levels, vec!["0", "1", "2"]);
    for (i, l) in seg.levels.iter().enumerate() {
        assert_eq!(
            names.contains(&format!("segment={l}").as_str()),
            i > 0,
            "{names:?}"
        );
    }
}

#[test]
fn bands_follow_holdout_quantiles_or_fixed_cutoffs() {
    let out = saas_model();
    let b = out.artifact.bands;
    assert!(b.high > b.medium);
    let scorer = Scorer::new(&out.artifact);
    let table = saas_table();
    let mut high = 0;
    let mut medium = 0;
    for &r in &out.holdout_rows {
        match scorer
            .score_json(&record(table, r))
            .unwrap()
            .score
            .risk_band
        {
            RiskBand::High => high += 1,
            RiskBand::Medium => medium += 1,
            RiskBand::Low => {}
        }
    }
    let n = out.holdout_rows.len() as f64;
    assert!(
        (high as f64 / n - 0.10).abs() < 0.01,
        "high share {}",
        high as f64 / n
    );
    assert!(
        (medium as f64 / n - 0.20).abs() < 0.015,
        "medium share {}",
        medium as f64 / n
    );
    // The confusion matrix is taken at the high cutoff.
    let c = out.artifact.metrics.confusion_at_high;
    assert_eq!(c.true_positives + c.false_positives, high as u64);

    let fixed = TrainConfig {
        bands: BandPolicy::Fixed {
            high: 0.5,
            medium: 0.2,
        },
        ..quick_config()
    };
    let out2 = train(saas_table(), &Schema::default(), &fixed).unwrap();
    assert_eq!(
        (out2.artifact.bands.high, out2.artifact.bands.medium),
        (0.5, 0.2)
    );
}

#[test]
fn same_seed_same_bytes_and_evaluate_reproduces_metrics() {
    let out = saas_model();
    let again = train(saas_table(), &Schema::default(), &quick_config()).unwrap();
    assert_eq!(out.artifact.to_json_bytes(), again.artifact.to_json_bytes());
    // created_at is outside the hash.
    let later = TrainConfig {
        created_at: "2027-06-01T00:00:00Z".into(),
        ..quick_config()
    };
    let out3 = train(saas_table(), &Schema::default(), &later).unwrap();
    assert_eq!(out3.artifact.model_id(), out.artifact.model_id());
    assert_ne!(out3.artifact.to_json_bytes(), out.artifact.to_json_bytes());
    // A different seed gives a different split and model.
    let other = TrainConfig {
        seed: 8,
        ..quick_config()
    };
    let out4 = train(saas_table(), &Schema::default(), &other).unwrap();
    assert_ne!(out4.artifact.model_id(), out.artifact.model_id());
    // evaluate() on the holdout reproduces the stored metrics exactly.
    let m = evaluate(&out.artifact, saas_table(), &out.holdout_rows, "churned").unwrap();
    assert_eq!(&m, out.artifact.metrics());
}

#[test]
fn cross_validation_report() {
    let out = saas_model();
    let r = &out.report;
    assert_eq!(r.cv.len(), 2);
    assert!(r
        .cv
        .iter()
        .all(|c| c.fold_aucs.len() == 3 && c.mean_auc > 0.6));
    let best = r.cv.iter().map(|c| c.mean_auc).fold(f64::MIN, f64::max);
    assert_eq!(
        r.cv.iter().find(|c| c.l2 == r.chosen_l2).unwrap().mean_auc,
        best
    );
    assert_eq!(r.train_rows + r.holdout_rows, 6_000);
    assert_eq!(out.artifact.l2, r.chosen_l2);
}

#[test]
fn artifact_does_not_depend_on_thread_count() {
    // Training runs on whatever rayon pool it is called in; the binary sizes
    // that pool once. One thread and three must give the same bytes, with
    // enough rows that the solver, the intercept refit and the holdout
    // importance each sum several row blocks.
    let t = tiny_table(12_000);
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                train(&t, &Schema::default(), &quick_config())
                    .unwrap()
                    .artifact
                    .to_json_bytes()
            })
    };
    assert_eq!(on(1), on(3));
}

#[test]
fn all_missing_columns_are_dropped_with_a_warning() {
    let mut t = tiny_table(600);
    t.columns
        .push(Column::numeric("never_filled", vec![f64::NAN; 600]));
    t.columns.push(Column::text("no_plan", vec![None; 600]));
    let out = train(&t, &Schema::default(), &quick_config()).unwrap();
    let w = &out.report.warnings;
    assert!(
        w.iter()
            .any(|m| m.contains("never_filled") && m.contains("no values")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|m| m.contains("no_plan") && m.contains("no values")),
        "{w:?}"
    );
    assert_eq!(out.artifact.preprocessing.features.len(), 2);
    // Scoring still works and ignores the dropped columns.
    let s = Scorer::new(&out.artifact);
    assert!(s.score_table(&t).iter().all(|r| r.is_ok()));
}

/// One-hot columns are centred but not scaled, so the L2 penalty acts on a
/// level's raw coefficient, as in scikit-learn's one-hot + LogisticRegression.
/// Scaling them by `sqrt(share (1 - share))` (as numeric columns are) cut a
/// rare level's penalty by its share and let pure-noise levels fit their
/// handful of churners: on `modeldata::mlc_churn` (51 states) that cost
/// 0.0024 of holdout AUC against scikit-learn at matched strength.
#[test]
fn rare_noise_levels_are_shrunk_like_raw_one_hot_columns() {
    // logit = -1.8 + x; `state` is 50 equally common levels of pure noise
    // (~64 training rows and ~9 churners each).
    let n = 4_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let (mut x, mut state, mut y) = (vec![], vec![], vec![]);
    for _ in 0..n {
        let u: f64 = normal.sample(&mut rng);
        x.push(u);
        state.push(Some(format!("s{:02}", rng.gen_range(0..50))));
        let p = 1.0 / (1.0 + (1.8 - u).exp());
        y.push(if rng.gen::<f64>() < p { 1.0 } else { 0.0 });
    }
    let ids = (0..n).map(|i| Some(format!("id{i}"))).collect();
    let table = Table::new(vec![
        Column::text("customer_id", ids),
        Column::numeric("x", x),
        Column::text("state", state),
        Column::numeric("churned", y),
    ]);
    let config = TrainConfig::builder()
        .cv_folds(2usize)
        .l2_grid(vec![1e-2])
        .build()
        .unwrap();
    let art = train(&table, &Schema::default(), &config).unwrap().artifact;
    let levels: Vec<f64> = art
        .preprocessing
        .columns
        .iter()
        .zip(&art.coefficients)
        .filter(|(c, _)| matches!(c.role, Role::Level { .. }))
        .map(|(c, w)| {
            assert_eq!(c.std, 1.0, "{}: indicator columns are not scaled", c.name);
            w.value / c.std
        })
        .collect();
    assert_eq!(levels.len(), 49);
    let mean_abs = levels.iter().map(|w| w.abs()).sum::<f64>() / levels.len() as f64;
    // Penalizing the scaled columns left them at 0.20 here; penalizing the
    // raw coefficient shrinks them to 0.05, while the real signal stays.
    assert!(mean_abs < 0.1, "mean |raw level coefficient| {mean_abs}");
    let wx = raw_coefficient(&art, "x");
    assert!(wx > 0.6, "x: {wx}");
}

/// A table over the row cap is trained on a stratified sample: every
/// churner kept, the report counts both, holdout rows point into the input
/// table, and the intercept shift brings probabilities back to the whole
/// table's churn rate.
#[test]
fn tables_over_the_row_cap_train_on_a_stratified_sample() {
    let table = generate(&SyntheticConfig {
        customers: 12_000,
        seed: 21,
    });
    let labels = churn_model::label::labels(&table, "churned").unwrap();
    let churners = labels.iter().filter(|&&y| y).count();
    assert!(churners < 3_000, "{churners}");
    let config = TrainConfig {
        max_rows: 4_000,
        ..quick_config()
    };
    let out = train(&table, &Schema::default(), &config).unwrap();
    let r = &out.report;
    assert_eq!((r.rows_read, r.rows_sampled), (12_000, 4_000));
    assert_eq!(r.train_rows + r.holdout_rows, 4_000);
    assert!(
        r.sampling_shift < 0.0,
        "churners are over-represented: {}",
        r.sampling_shift
    );
    // The holdout is drawn from the sample, named by input-table position.
    assert!(out.holdout_rows.iter().all(|&i| i < 12_000));
    assert!(out.holdout_rows.iter().any(|&i| i >= 4_000));
    let m = evaluate(&out.artifact, &table, &out.holdout_rows, "churned").unwrap();
    assert!((m.roc_auc - out.artifact.metrics.roc_auc).abs() < 1e-12);
    // Probabilities are of the whole table: their mean is its churn rate.
    let scores = Scorer::new(&out.artifact).score_table(&table);
    let mean = scores
        .iter()
        .map(|s| s.as_ref().unwrap().churn_probability)
        .sum::<f64>()
        / 12_000.0;
    let rate = churners as f64 / 12_000.0;
    assert!(
        (mean - rate).abs() < 0.02,
        "mean probability {mean}, churn rate {rate}"
    );
    // Without the cap the same table is read and trained whole.
    let whole = train(&table, &Schema::default(), &quick_config()).unwrap();
    assert_eq!(
        (whole.report.rows_read, whole.report.rows_sampled),
        (12_000, 12_000)
    );
    assert_eq!(whole.report.sampling_shift, 0.0);
    // A cap below the minimum is a configuration error naming it.
    let e = TrainConfig::builder()
        .max_rows(10usize)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("max_rows"), "{e}");
}
