//! The snapshot check: figures equal a hand computation, the training
//! snapshot passes, broken snapshots (a feature in cents, a dropped
//! feature, half the rows nulled, many invalid rows) are refused, counts
//! merge across shards, version 5 artifacts are checked fully and older
//! ones for what they record.

mod common;

use churn_model::check::*;
use churn_model::preprocess::FeaturePrep;
use churn_model::reference::Bins;
use churn_model::*;
use common::*;

/// The counts of every row of `table` as a run gathers them: feature values,
/// rows, and the scores of the rows that score.
fn counts_of(artifact: &ModelArtifact, table: &Table) -> SnapshotCounts {
    let scorer = Scorer::new(artifact);
    let mut counts = SnapshotCounts::new(artifact);
    counts.add_table(&scorer, table, |_| true);
    let mut compact = Vec::new();
    let failed = scorer.score_table_compact(table, &mut compact);
    counts.add_rows(table.n_rows() as u64, failed.len() as u64);
    for (i, s) in compact.iter().enumerate() {
        if !failed.iter().any(|(f, _)| *f == i) {
            counts.add_score(s.churn_probability, s.risk_band);
        }
    }
    counts
}

fn check(artifact: &ModelArtifact, table: &Table) -> CheckReport {
    check_snapshot(
        artifact,
        &counts_of(artifact, table),
        &CheckThresholds::default(),
    )
}

fn numeric_mut<'a>(table: &'a mut Table, name: &str) -> &'a mut Vec<f64> {
    match &mut table
        .columns
        .iter_mut()
        .find(|c| c.name == name)
        .unwrap()
        .values
    {
        ColumnValues::Numeric(v) => v,
        other => panic!("{other:?}"),
    }
}

fn feature<'a>(report: &'a CheckReport, name: &str) -> &'a FeatureCheck {
    report.features.iter().find(|f| f.feature == name).unwrap()
}

fn item<'a>(report: &'a CheckReport, name: &str) -> &'a CheckItem {
    report.checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn the_training_snapshot_passes_with_every_psi_below_0_1() {
    let artifact = &saas_model().artifact;
    assert_eq!(artifact.schema_version, SCHEMA_VERSION);
    let report = check(artifact, saas_table());
    assert_eq!(report.status, CheckStatus::Ok, "{:#?}", report.checks);
    for f in &report.features {
        let psi = f.psi.unwrap_or_else(|| panic!("{} unchecked", f.feature));
        assert!(psi < 0.1, "{} PSI {psi}", f.feature);
        assert_eq!(f.level, DriftLevel::Ok);
    }
    // The holdout is a stratified sample of the same table: the scores agree.
    let holdout = report.holdout_mean_probability.unwrap();
    assert!((report.mean_probability.unwrap() - holdout).abs() < 0.02);
    assert_eq!(item(&report, "scores").status, "ok");
    // Importance ranks are a permutation of 1..=n.
    let mut ranks: Vec<usize> = report.features.iter().map(|f| f.importance_rank).collect();
    ranks.sort_unstable();
    assert_eq!(ranks, (1..=report.features.len()).collect::<Vec<_>>());
}

/// The artifact with `mrr`'s reference replaced by round edges and shares,
/// and its training range set to [0, 100].
fn hand_artifact() -> ModelArtifact {
    let mut artifact = saas_model().artifact.clone();
    let r = artifact
        .reference
        .iter_mut()
        .find(|r| r.feature == "mrr")
        .unwrap();
    r.missing_share = 0.1;
    r.bins = Bins::Deciles {
        edges: (1..10).map(|k| 10.0 * k as f64).collect(),
        shares: vec![0.09; 10],
    };
    for f in &mut artifact.preprocessing.features {
        if let FeaturePrep::Numeric(n) = f {
            if n.name == "mrr" {
                n.min = Some(0.0);
                n.max = Some(100.0);
            }
        }
    }
    artifact
}

#[test]
fn numeric_figures_equal_a_hand_computation() {
    let artifact = hand_artifact();
    let mut table = saas_table().clone();
    let keep: Vec<usize> = (0..10).collect();
    table = table.select_rows(&keep);
    let nan = f64::NAN;
    *numeric_mut(&mut table, "mrr") =
        vec![5.0, 15.0, 15.0, 95.0, 150.0, nan, nan, 50.0, 50.0, 50.0];
    let counts = counts_of(&artifact, &table);
    let mrr = counts.features.iter().find(|f| f.feature == "mrr").unwrap();
    // 5 <= 10: bin 0; 15: bin 1; 50 has four edges below: bin 4; 95 and
    // 150 are above every edge: bin 9.
    assert_eq!(mrr.bins, [1, 2, 0, 0, 3, 0, 0, 0, 0, 2]);
    assert_eq!((mrr.rows, mrr.missing, mrr.out_of_range), (10, 2, 1));
    let report = check_snapshot(&artifact, &counts, &CheckThresholds::default());
    let f = feature(&report, "mrr");
    assert_eq!(f.missing_share, 0.2);
    assert_eq!(f.reference_missing_share, 0.1);
    // 150 is the one of 8 present values above the range.
    assert_eq!(f.out_of_range_share, Some(0.125));
    // PSI by hand: bins 0, 1, 4, 9 and missing hold 0.1, 0.2, 0.3, 0.2,
    // 0.2 against 0.09 (missing 0.1); the six empty bins count as 0.0001.
    let term = |a: f64, e: f64| (a - e) * (a / e).ln();
    let hand = term(0.1, 0.09)
        + term(0.2, 0.09)
        + term(0.3, 0.09)
        + term(0.2, 0.09)
        + term(0.2, 0.1)
        + 6.0 * term(0.0001, 0.09);
    assert!(
        (f.psi.unwrap() - hand).abs() < 1e-12,
        "{:?} vs {hand}",
        f.psi
    );
    // Ten rows are too few to judge drift: the figure, no level or verdict.
    assert_eq!(f.level, DriftLevel::Unchecked);
    assert_eq!(item(&report, "drift").status, "skipped");
    assert_eq!(report.max_psi(), None);
    // Shares are exact at any size: 1 of 8 values out of range is fine.
    assert_eq!(item(&report, "out_of_range").status, "ok");
    assert_eq!(report.status, CheckStatus::Ok);
    let judged = check_snapshot(
        &artifact,
        &counts,
        &CheckThresholds::builder().min_rows(10).build().unwrap(),
    );
    assert_eq!(feature(&judged, "mrr").level, DriftLevel::Alert);
    assert!(judged.max_psi().unwrap() >= f.psi.unwrap());
}

#[test]
fn categorical_figures_equal_a_hand_computation() {
    let artifact = &saas_model().artifact;
    let FeaturePrep::Categorical(plan) = artifact
        .preprocessing
        .features
        .iter()
        .find(|f| f.name() == "plan")
        .unwrap()
    else {
        panic!("plan is categorical")
    };
    let reference = artifact
        .reference
        .iter()
        .find(|r| r.feature == "plan")
        .unwrap();
    let Bins::Levels { levels } = &reference.bins else {
        panic!("{reference:?}")
    };
    // 10 rows: 4 of the first kept level, 3 unseen ("platinum"), 2 blank, 1 missing.
    let mut table = saas_table().select_rows(&(0..10).collect::<Vec<_>>());
    let first = plan.levels[0].clone();
    let values: Vec<Option<String>> = (0..10)
        .map(|i| match i {
            0..=3 => Some(format!(" {first} ")),
            4..=6 => Some("platinum".to_string()),
            7 | 8 => Some("  ".to_string()),
            _ => None,
        })
        .collect();
    table
        .columns
        .iter_mut()
        .find(|c| c.name == "plan")
        .unwrap()
        .values = ColumnValues::Text(values);
    let report = check(artifact, &table);
    let f = feature(&report, "plan");
    assert_eq!(f.missing_share, 0.3);
    assert_eq!(f.out_of_range_share, None);
    // Expected: each kept level's training share, `other` without the
    // missing cells (training counts those as `other` too), then missing.
    let share = |l: &str| levels.iter().find(|(n, _)| n == l).map_or(0.0, |(_, s)| *s);
    let mut expected: Vec<f64> = plan.levels.iter().map(|l| share(l)).collect();
    expected.push(share("other") - reference.missing_share);
    expected.push(reference.missing_share);
    let mut actual = vec![0.0; plan.levels.len()];
    actual[0] = 0.4;
    actual.push(0.3);
    actual.push(0.3);
    let floor = |x: f64| x.max(PSI_FLOOR);
    let hand: f64 = expected
        .iter()
        .zip(&actual)
        .filter(|(e, a)| **e > 0.0 || **a > 0.0)
        .map(|(&e, &a)| (floor(a) - floor(e)) * (floor(a) / floor(e)).ln())
        .sum();
    assert!(
        (f.psi.unwrap() - hand).abs() < 1e-12,
        "{:?} vs {hand}",
        f.psi
    );
}

#[test]
fn a_feature_in_cents_is_refused() {
    let artifact = &saas_model().artifact;
    let mut table = saas_table().clone();
    for v in numeric_mut(&mut table, "mrr") {
        *v *= 100.0;
    }
    let report = check(artifact, &table);
    assert_eq!(report.status, CheckStatus::Refuse);
    assert_eq!(item(&report, "out_of_range").status, "refuse");
    assert!(item(&report, "out_of_range").detail.contains("mrr"));
    assert!(feature(&report, "mrr").out_of_range_share.unwrap() > 0.5);
    let message = report.failed_checks();
    assert!(message.starts_with("out_of_range: mrr"), "{message}");
}

#[test]
fn a_dropped_feature_is_refused_at_any_size() {
    let artifact = &saas_model().artifact;
    let mut table = saas_table().select_rows(&(0..20).collect::<Vec<_>>());
    table.columns.retain(|c| c.name != "logins_30d");
    let report = check(artifact, &table);
    assert_eq!(report.status, CheckStatus::Refuse);
    let present = item(&report, "features_present");
    assert_eq!(present.status, "refuse");
    assert!(present.detail.contains("logins_30d"), "{}", present.detail);
    let f = feature(&report, "logins_30d");
    assert!(f.absent);
    assert_eq!(f.missing_share, 1.0);
}

#[test]
fn half_the_rows_nulled_is_refused() {
    let artifact = &saas_model().artifact;
    let mut table = saas_table().clone();
    let name = "tenure_months";
    for (i, v) in numeric_mut(&mut table, name).iter_mut().enumerate() {
        if i % 5 != 0 {
            *v = f64::NAN;
        }
    }
    let report = check(artifact, &table);
    assert_eq!(report.status, CheckStatus::Refuse);
    let missing = item(&report, "missing_share");
    assert_eq!(missing.status, "refuse");
    assert!(missing.detail.contains(name), "{}", missing.detail);
}

#[test]
fn many_invalid_rows_are_refused_and_the_limits_are_configurable() {
    let artifact = &saas_model().artifact;
    let mut counts = counts_of(artifact, saas_table());
    let limits = CheckThresholds::default();
    counts.add_rows(400, 400);
    let report = check_snapshot(artifact, &counts, &limits);
    assert_eq!(item(&report, "invalid_rows").status, "refuse");
    let looser = CheckThresholds::builder()
        .max_invalid_share(0.1)
        .build()
        .unwrap();
    let report = check_snapshot(artifact, &counts, &looser);
    assert_eq!(item(&report, "invalid_rows").status, "ok");
    assert_eq!(report.status, CheckStatus::Ok);
}

#[test]
fn drift_on_an_important_feature_refuses_and_elsewhere_warns() {
    let artifact = &saas_model().artifact;
    let ranking = importance_ranking(artifact);
    let top = ranking[0].clone();
    let FeaturePrep::Numeric(_) = artifact
        .preprocessing
        .features
        .iter()
        .find(|f| f.name() == top)
        .unwrap()
    else {
        return; // the shift below needs a numeric top feature
    };
    // Every value moved to the training minimum: inside the range, one bin.
    let mut table = saas_table().clone();
    let min = numeric_mut(&mut table, &top)
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f64::INFINITY, f64::min);
    for v in numeric_mut(&mut table, &top) {
        *v = min;
    }
    let report = check(artifact, &table);
    let drift = item(&report, "drift");
    assert_eq!(drift.status, "refuse", "{drift:?}");
    assert!(drift.detail.contains(&top));
    // The same shift refused only above a PSI no data reaches: a warning.
    let lenient = CheckThresholds::builder().psi_refuse(1e6).build().unwrap();
    let report = check_snapshot(artifact, &counts_of(artifact, &table), &lenient);
    assert_eq!(item(&report, "drift").status, "warn");
    assert_eq!(report.status, CheckStatus::Warn);
    assert!(report.max_psi().unwrap() > 1.0);
}

#[test]
fn counts_of_shards_merge_to_the_counts_of_the_whole() {
    let artifact = &saas_model().artifact;
    let table = saas_table();
    let n = table.n_rows();
    let mut a = counts_of(
        artifact,
        &table.select_rows(&(0..n / 3).collect::<Vec<_>>()),
    );
    let b = counts_of(
        artifact,
        &table.select_rows(&(n / 3..n).collect::<Vec<_>>()),
    );
    a.merge(&b).unwrap();
    let whole = counts_of(artifact, table);
    assert_eq!(a.features, whole.features);
    assert_eq!(
        (a.rows, a.scored, a.bands),
        (whole.rows, whole.scored, whole.bands)
    );
    assert!((a.probability_sum - whole.probability_sum).abs() < 1e-6);
    let mut other = SnapshotCounts::new(artifact);
    other.model_id = "another".into();
    assert!(a.merge(&other).is_err());
}

/// A version 5 artifact (before the holdout curves) records the whole
/// drift reference: it is checked exactly as the version 6 one, with no
/// `reference` warning to retrain.
#[test]
fn a_version_five_artifact_is_checked_fully() {
    let current = &saas_model().artifact;
    let mut artifact = current.clone();
    artifact.holdout_curves = None;
    artifact.schema_version = DRIFT_SCHEMA_VERSION;
    artifact.model_id = artifact.content_hash();
    let artifact = ModelArtifact::from_json_bytes(&artifact.to_json_bytes()).unwrap();
    let report = check(&artifact, saas_table());
    assert!(
        report.checks.iter().all(|c| c.name != "reference"),
        "{:#?}",
        report.checks
    );
    assert_eq!(report.status, CheckStatus::Ok);
    let now = check(current, saas_table());
    assert_eq!(report.checks, now.checks);
    assert_eq!(report.features, now.features);
    assert_eq!(item(&report, "scores").status, "ok");
}

#[test]
fn an_older_artifact_is_checked_for_what_it_records() {
    let mut artifact = saas_model().artifact.clone();
    artifact.holdout_curves = None;
    artifact.holdout_profile = None;
    for r in &mut artifact.reference {
        if let Bins::Deciles { shares, .. } = &mut r.bins {
            shares.clear();
        }
    }
    artifact.schema_version = ATTRIBUTES_SCHEMA_VERSION;
    assert!(!artifact.has_drift_reference());
    let report = check(&artifact, saas_table());
    assert_eq!(feature(&report, "mrr").psi, None);
    assert_eq!(feature(&report, "mrr").level, DriftLevel::Unchecked);
    assert!(feature(&report, "plan").psi.is_some());
    let reference = item(&report, "reference");
    assert_eq!(reference.status, "warn");
    assert!(reference.detail.contains("retrain"), "{}", reference.detail);
    assert_eq!(item(&report, "scores").status, "skipped");
    assert_eq!(report.status, CheckStatus::Warn);
    // Dropping a feature is still refused.
    let mut table = saas_table().clone();
    table.columns.retain(|c| c.name != "mrr");
    assert_eq!(check(&artifact, &table).status, CheckStatus::Refuse);
}
