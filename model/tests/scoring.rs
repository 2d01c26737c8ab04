//! Scoring: reasons, imputation, field errors, batch paths.

mod common;

use churn_model::*;
use common::*;
use serde_json::{json, Map, Value};

fn scorer() -> Scorer {
    Scorer::new(&saas_model().artifact)
}

#[test]
fn intercept_plus_contributions_equals_logit_exactly() {
    let s = scorer();
    let table = saas_table();
    for i in (0..table.n_rows()).step_by(97) {
        let rec = record(table, i);
        let ex = s.explain_json(&rec).unwrap();
        let mut sum = ex.intercept;
        for (_, c) in &ex.contributions {
            sum += c;
        }
        assert_eq!(sum, ex.logit);
        let scored = s.score_json(&rec).unwrap().score;
        assert_eq!(scored.logit, ex.logit);
        assert_eq!(scored.churn_probability, 1.0 / (1.0 + (-ex.logit).exp()));
        // The reasons are the top three positive contributions, largest first.
        let mut pos: Vec<(String, f64)> = ex
            .contributions
            .iter()
            .filter(|c| c.1 > 0.0)
            .cloned()
            .collect();
        pos.sort_by(|a, b| b.1.total_cmp(&a.1));
        let want: Vec<(String, f64)> = pos.into_iter().take(3).collect();
        let got: Vec<(String, f64)> = scored
            .reasons
            .iter()
            .map(|r| (r.feature.clone(), r.contribution))
            .collect();
        assert_eq!(got, want);
        // One-hot columns are folded back into their source feature.
        assert!(ex
            .contributions
            .iter()
            .all(|(n, _)| !n.contains('=') && !n.ends_with("_missing")));
    }
}

#[test]
fn reasons_show_the_customer_value_and_the_typical_value() {
    let s = scorer();
    // A customer who has not logged in for 60 days and had billing failures.
    let rec: Map<String, Value> = serde_json::from_value(json!({
        "logins_30d": 0, "active_days_30d": 0, "sessions_30d": 0, "days_since_last_login": 60,
        "billing_failures_90d": 3, "tenure_months": 2, "plan": "basic", "region": "emea"
    }))
    .unwrap();
    let sc = s.score_json(&rec).unwrap().score;
    assert_eq!(sc.risk_band, RiskBand::High);
    assert_eq!(sc.reasons.len(), 3);
    let billing = sc
        .reasons
        .iter()
        .find(|r| r.feature == "billing_failures_90d")
        .expect("billing is a reason");
    assert_eq!(billing.value, json!(3.0));
    assert_eq!(billing.typical, json!(0.0));
    assert!(sc
        .reasons
        .windows(2)
        .all(|w| w[0].contribution >= w[1].contribution));
}

#[test]
fn missing_optional_feature_is_imputed_with_the_median() {
    let s = scorer();
    let art = &saas_model().artifact;
    let median = art
        .preprocessing
        .features
        .iter()
        .find_map(|f| match f {
            churn_model::preprocess::FeaturePrep::Numeric(n) if n.name == "tenure_months" => {
                Some(n.median)
            }
            _ => None,
        })
        .unwrap();
    let mut rec = record(saas_table(), 11);
    rec.remove("tenure_months");
    let a = s.score_json(&rec).unwrap().score;
    rec.insert("tenure_months".into(), json!(median));
    let b = s.score_json(&rec).unwrap().score;
    assert!(
        (a.logit - b.logit).abs() < 1e-12,
        "{} vs {}",
        a.logit,
        b.logit
    );
    // null also means missing; nps has an indicator, so missing differs from the median.
    let mut rec = record(saas_table(), 11);
    rec.insert("nps".into(), Value::Null);
    let with_null = s.score_json(&rec).unwrap().score;
    rec.remove("nps");
    assert_eq!(with_null, s.score_json(&rec).unwrap().score);
    // An unseen level is `other`.
    let mut rec = record(saas_table(), 11);
    rec.insert("region".into(), json!("antarctica"));
    assert!(s.score_json(&rec).is_ok());
}

#[test]
fn bad_fields_are_errors_naming_the_field() {
    let s = scorer();
    let base = record(saas_table(), 3);
    let cases = [
        ("logins_30d", json!("many"), "logins_30d"),
        ("logins_30d", json!(true), "logins_30d"),
        ("logins_30d", json!([1, 2]), "logins_30d"),
        ("plan", json!({"tier": "pro"}), "plan"),
    ];
    for (field, value, needle) in cases {
        let mut rec = base.clone();
        rec.insert(field.into(), value.clone());
        let e = s.score_json(&rec).unwrap_err();
        assert!(
            matches!(&e, Error::WrongType { field: f, .. } if f == field),
            "{value}: {e}"
        );
        assert!(e.to_string().contains(needle));
    }
    for text in ["NaN", "inf", "-Infinity"] {
        let mut rec = base.clone();
        rec.insert("mrr".into(), json!(text));
        let e = s.score_json(&rec).unwrap_err();
        assert_eq!(
            e,
            Error::NonFiniteField {
                field: "mrr".into(),
                row: None
            },
            "{text}"
        );
    }
    // A finite but absurd value would overflow the logit.
    let mut rec = base.clone();
    for f in churn_model::synthetic::NUMERIC_FEATURES {
        rec.insert(f.into(), json!(1.7e308));
    }
    let e = s.score_json(&rec).unwrap_err();
    assert!(
        matches!(&e, Error::ValueOutOfRange { row: None, .. }),
        "{e}"
    );
    // A numeric string is accepted as the number.
    let mut rec = base.clone();
    rec.insert("mrr".into(), json!("120.5"));
    let a = s.score_json(&rec).unwrap().score;
    rec.insert("mrr".into(), json!(120.5));
    assert_eq!(a, s.score_json(&rec).unwrap().score);
}

#[test]
fn unknown_fields_are_ignored_and_counted() {
    let s = scorer();
    let mut rec = record(saas_table(), 3);
    let plain = s.score_json(&rec).unwrap();
    // customer_id is known (the id column), churned too.
    assert_eq!(plain.ignored_fields, 0);
    rec.insert("favourite_colour".into(), json!("green"));
    rec.insert("shoe_size".into(), json!(44));
    let extra = s.score_json(&rec).unwrap();
    assert_eq!(extra.ignored_fields, 2);
    assert_eq!(extra.score, plain.score);
}

#[test]
fn required_features_must_be_present() {
    let mut t = tiny_table(600);
    t.columns.push(Column::numeric(
        "x3",
        (0..600).map(|i| (i % 13) as f64).collect(),
    ));
    let schema = Schema::from_toml_str("[columns.x3]\nrequired = true\n").unwrap();
    let art = train(&t, &schema, &quick_config()).unwrap().artifact;
    let s = Scorer::new(&art);
    let rec: Map<String, Value> = serde_json::from_value(json!({"x1": 5, "x2": 3})).unwrap();
    assert_eq!(
        s.score_json(&rec).unwrap_err(),
        Error::MissingField {
            field: "x3".into(),
            row: None
        }
    );
    let rec: Map<String, Value> = serde_json::from_value(json!({"x3": 5})).unwrap();
    assert!(s.score_json(&rec).is_ok());
    // In a table, the error names the row.
    let mut t2 = tiny_table(5);
    t2.first_row = 10;
    t2.columns
        .push(Column::numeric("x3", vec![1.0, f64::NAN, 2.0, 3.0, 4.0]));
    let res = s.score_table(&t2);
    assert!(res[0].is_ok());
    assert_eq!(
        res[1].as_ref().unwrap_err(),
        &Error::MissingField {
            field: "x3".into(),
            row: Some(11)
        }
    );
}

#[test]
fn table_batch_matches_json_and_names_bad_rows() {
    let s = scorer();
    let table = saas_table();
    let full = s.score_table(table);
    let mut compact = Vec::new();
    let errors = s.score_table_compact(table, &mut compact);
    assert!(errors.is_empty());
    assert_eq!(compact.len(), table.n_rows());
    for i in (0..table.n_rows()).step_by(131) {
        let from_json = s.score_json(&record(table, i)).unwrap().score;
        let from_table = full[i].as_ref().unwrap();
        assert_eq!(&from_json, from_table, "row {i}");
        assert_eq!(compact[i].churn_probability, from_table.churn_probability);
        assert_eq!(s.reasons(table, i, &compact[i]), from_table.reasons);
    }
    // A text cell in a numeric feature and an infinity: errors name row and field.
    let mut bad = table.clone();
    bad.first_row = 100;
    for c in bad.columns.iter_mut() {
        if c.name == "mrr" {
            if let ColumnValues::Numeric(v) = &c.values {
                let mut t: Vec<Option<String>> = v.iter().map(|x| Some(x.to_string())).collect();
                t[2] = Some("lots".into());
                c.values = ColumnValues::Text(t);
            }
        }
        if c.name == "logins_30d" {
            if let ColumnValues::Numeric(v) = &mut c.values {
                v[4] = f64::INFINITY;
            }
        }
    }
    let res = s.score_table(&bad);
    assert!(
        matches!(res[2].as_ref().unwrap_err(), Error::WrongType { field, row: Some(102), .. } if field == "mrr")
    );
    assert_eq!(
        res[4].as_ref().unwrap_err(),
        &Error::NonFiniteField {
            field: "logins_30d".into(),
            row: Some(104)
        }
    );
    assert!(res[3].is_ok());
    let errs = s.score_table_compact(&bad, &mut compact);
    assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 4]);
    assert!(errs[1].1.to_string().contains("row 104"));
}

#[test]
fn ragged_tables_are_errors_not_panics() {
    let s = scorer();
    let mut t = saas_table().clone();
    if let ColumnValues::Numeric(v) = &mut t
        .columns
        .iter_mut()
        .find(|c| c.name == "mrr")
        .unwrap()
        .values
    {
        v.truncate(10);
    }
    let res = s.score_table(&t);
    assert!(
        matches!(res[0].as_ref().unwrap_err(), Error::RaggedTable { column, len: 10, .. } if column == "mrr")
    );
    let mut out = Vec::new();
    assert_eq!(s.score_table_compact(&t, &mut out).len(), t.n_rows());
    // evaluate() checks the shape too.
    let e = evaluate(&saas_model().artifact, &t, &[0, 1], "churned").unwrap_err();
    assert!(matches!(e, Error::RaggedTable { .. }), "{e}");
}

/// The numeric features of the model, with their fitted preprocessing.
fn numeric_preps(s: &Scorer) -> Vec<churn_model::preprocess::NumericPrep> {
    s.artifact()
        .preprocessing
        .features
        .iter()
        .filter_map(|f| match f {
            churn_model::preprocess::FeaturePrep::Numeric(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_training_domain_is_recorded_and_negative_values_are_refused_not_clamped() {
    let s = scorer();
    let preps = numeric_preps(&s);
    let logins = preps.iter().find(|p| p.name == "logins_30d").unwrap();
    // Recorded over the whole training table.
    let column = match &saas_table().column("logins_30d").unwrap().values {
        ColumnValues::Numeric(v) => v.clone(),
        _ => unreachable!(),
    };
    let present = column.iter().filter(|x| !x.is_nan());
    assert_eq!(logins.min, present.clone().copied().reduce(f64::min));
    assert_eq!(logins.max, present.copied().reduce(f64::max));
    assert!(logins.non_negative());

    let mut rec = record(saas_table(), 3);
    rec.insert("logins_30d".into(), json!(-5));
    let e = s.score_json(&rec).unwrap_err();
    assert_eq!(
        e,
        Error::NegativeValue {
            field: "logins_30d".into(),
            row: None,
            value: -5.0
        }
    );
    assert!(
        e.to_string()
            .contains("logins_30d is -5; every training value was >= 0"),
        "{e}"
    );
    // The same rule on the batch path, naming the row.
    let mut bad = saas_table().clone();
    bad.first_row = 10;
    for c in bad.columns.iter_mut().filter(|c| c.name == "logins_30d") {
        if let ColumnValues::Numeric(v) = &mut c.values {
            v[3] = -0.5;
        }
    }
    let res = s.score_table(&bad);
    assert_eq!(
        res[3].as_ref().unwrap_err(),
        &Error::NegativeValue {
            field: "logins_30d".into(),
            row: Some(13),
            value: -0.5
        }
    );
    let mut compact = Vec::new();
    let errs = s.score_table_compact(&bad, &mut compact);
    assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![3]);
    // -0.0 is zero, not negative.
    rec.insert("logins_30d".into(), json!(-0.0));
    assert!(s.score_json(&rec).is_ok());
}

#[test]
fn values_beyond_the_training_range_are_scored_and_counted() {
    let s = scorer();
    let preps = numeric_preps(&s);
    let logins = preps.iter().find(|p| p.name == "logins_30d").unwrap();
    let max = logins.max.unwrap();
    let base = record(saas_table(), 5);
    let inside = s.score_json(&base).unwrap();
    assert!(inside.out_of_range.is_empty());
    assert_eq!(inside.score.out_of_range, 0);

    let mut rec = base.clone();
    rec.insert("logins_30d".into(), json!(max + 1000.0));
    let outside = s.score_json(&rec).unwrap();
    assert_eq!(outside.out_of_range.len(), 1);
    let o = &outside.out_of_range[0];
    assert_eq!(o.field, "logins_30d");
    assert_eq!(o.value, max + 1000.0);
    assert_eq!((o.training_min, o.training_max), (logins.min.unwrap(), max));
    assert!(o.to_string().contains("outside the training range"), "{o}");
    assert_eq!(outside.score.out_of_range, 1);
    assert_ne!(
        outside.score.churn_probability,
        inside.score.churn_probability
    );

    // The batch paths count the same.
    let mut table = saas_table().clone();
    for c in table.columns.iter_mut().filter(|c| c.name == "logins_30d") {
        if let ColumnValues::Numeric(v) = &mut c.values {
            v[7] = max + 1.0;
        }
    }
    let full = s.score_table(&table);
    let counted: Vec<usize> = full
        .iter()
        .enumerate()
        .filter(|(_, r)| r.as_ref().unwrap().out_of_range > 0)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(counted, vec![7]);
    let mut compact = Vec::new();
    assert!(s.score_table_compact(&table, &mut compact).is_empty());
    assert_eq!(compact[7].out_of_range, 1);
    assert_eq!(compact[6].out_of_range, 0);
}

#[test]
fn artifacts_without_a_recorded_domain_still_refuse_negative_log1p_values() {
    let mut artifact = saas_model().artifact.clone();
    let mut log1p_feature = None;
    for f in &mut artifact.preprocessing.features {
        if let churn_model::preprocess::FeaturePrep::Numeric(n) = f {
            n.min = None;
            n.max = None;
            if n.log1p && log1p_feature.is_none() {
                log1p_feature = Some(n.name.clone());
            }
        }
    }
    let name = log1p_feature.expect("the synthetic model log1p's a skewed count");
    let s = Scorer::new(&artifact);
    let mut rec = record(saas_table(), 2);
    rec.insert(name.clone(), json!(-1));
    assert!(matches!(s.score_json(&rec), Err(Error::NegativeValue { field, .. }) if field == name));
    // Without a recorded range nothing is out of range.
    rec.insert(name, json!(1e9));
    assert!(s.score_json(&rec).unwrap().out_of_range.is_empty());
}
