//! Artifact round trip, hashing and refusal of damaged artifacts.

mod common;

use churn_model::*;
use common::*;
use serde_json::Value;

fn edit(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    f(&mut v);
    serde_json::to_vec_pretty(&v).unwrap()
}

#[test]
fn round_trip_is_exact() {
    let art = &saas_model().artifact;
    let bytes = art.to_json_bytes();
    let back = ModelArtifact::from_json_bytes(&bytes).unwrap();
    assert_eq!(&back, art);
    assert_eq!(back.to_json_bytes(), bytes);
    assert_eq!(back.model_id(), art.content_hash());
    assert_eq!(back.model_id().len(), 64);
    assert_eq!(back.created_at(), "2026-01-01T00:00:00Z");
    // The stored fields the issue lists are all there.
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    for key in [
        "schema_version",
        "model_id",
        "created_at",
        "training",
        "preprocessing",
        "coefficients",
        "intercept",
        "l2",
        "bands",
        "metrics",
        "reference",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    // Every trained model carries the drift reference and the holdout
    // curves: the newest version.
    assert_eq!(SCHEMA_VERSION, 6);
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert!(v.get("holdout_profile").is_some());
    for key in ["roc", "precision_recall", "calibration", "lift"] {
        assert!(
            v["holdout_curves"][key]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{key}"
        );
    }
    assert_eq!(back.holdout_curves, art.holdout_curves);
    // Scores from the reloaded artifact are identical.
    let rec = record(saas_table(), 5);
    assert_eq!(
        Scorer::new(art).score_json(&rec).unwrap(),
        Scorer::new(&back).score_json(&rec).unwrap()
    );
}

#[test]
fn tampered_artifacts_are_refused() {
    let bytes = saas_model().artifact.to_json_bytes();
    let tampered = edit(&bytes, |v| {
        let x = v["intercept"].as_f64().unwrap();
        v["intercept"] = Value::from(x + 0.5);
    });
    let e = ModelArtifact::from_json_bytes(&tampered).unwrap_err();
    assert!(matches!(e, Error::ArtifactTampered { .. }), "{e}");
    assert!(e.to_string().contains("modified"));
    // Changing a band cutoff or a coefficient name is also caught.
    let tampered = edit(&bytes, |v| v["bands"]["high"] = Value::from(0.99));
    assert!(matches!(
        ModelArtifact::from_json_bytes(&tampered),
        Err(Error::ArtifactTampered { .. })
    ));
    let tampered = edit(&bytes, |v| v["coefficients"][0]["name"] = Value::from("x"));
    assert!(matches!(
        ModelArtifact::from_json_bytes(&tampered),
        Err(Error::ArtifactTampered { .. })
    ));
    // Re-labelling the id does not help.
    let tampered = edit(&bytes, |v| v["model_id"] = Value::from("0".repeat(64)));
    assert!(matches!(
        ModelArtifact::from_json_bytes(&tampered),
        Err(Error::ArtifactTampered { .. })
    ));
    // created_at is not covered by the hash (it is caller metadata).
    let later = edit(&bytes, |v| {
        v["created_at"] = Value::from("2030-01-01T00:00:00Z")
    });
    assert!(ModelArtifact::from_json_bytes(&later).is_ok());
}

#[test]
fn truncated_or_garbage_artifacts_are_refused() {
    let bytes = saas_model().artifact.to_json_bytes();
    for cut in [0, 1, bytes.len() / 3, bytes.len() - 2] {
        let e = ModelArtifact::from_json_bytes(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, Error::ArtifactCorrupt { .. }), "cut {cut}: {e}");
    }
    assert!(matches!(
        ModelArtifact::from_json_bytes(b"{\"schema_version\": 1}"),
        Err(Error::ArtifactCorrupt { .. })
    ));
    assert!(matches!(
        ModelArtifact::from_json_bytes(b"not json"),
        Err(Error::ArtifactCorrupt { .. })
    ));
}

#[test]
fn future_versions_are_refused_before_parsing() {
    let bytes = saas_model().artifact.to_json_bytes();
    let future = edit(&bytes, |v| {
        v["schema_version"] = Value::from(SCHEMA_VERSION + 1);
        v["something_new"] = Value::from(true);
        v.as_object_mut().unwrap().remove("coefficients");
    });
    let e = ModelArtifact::from_json_bytes(&future).unwrap_err();
    assert_eq!(
        e,
        Error::UnsupportedVersion {
            found: SCHEMA_VERSION as u64 + 1,
            supported: SCHEMA_VERSION
        }
    );
    assert!(e
        .to_string()
        .contains(&format!("schema_version {}", SCHEMA_VERSION + 1)));
}

#[test]
fn version_one_artifacts_without_a_training_range_still_load_and_verify() {
    // What the previous format wrote: no `min`/`max` on numeric features.
    let mut old = saas_model().artifact.clone();
    strip_newer_parts(&mut old);
    old.schema_version = 1;
    for f in &mut old.preprocessing.features {
        if let churn_model::preprocess::FeaturePrep::Numeric(n) = f {
            n.min = None;
            n.max = None;
        }
    }
    old.model_id = old.content_hash();
    let bytes = old.to_json_bytes();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(!text.contains("\"min\"") && !text.contains("\"max\""));
    let loaded = ModelArtifact::from_json_bytes(&bytes).unwrap();
    assert_eq!(loaded, old);
    // The current format records the range and is a different model id.
    let new = &saas_model().artifact;
    assert_eq!(new.schema_version, SCHEMA_VERSION);
    assert_ne!(new.model_id, old.model_id);
    assert!(String::from_utf8(new.to_json_bytes())
        .unwrap()
        .contains("\"min\""));
    // Older than the oldest supported version: refused by version.
    let ancient = edit(&bytes, |v| {
        v["schema_version"] = Value::from(MIN_SCHEMA_VERSION - 1)
    });
    assert!(matches!(
        ModelArtifact::from_json_bytes(&ancient),
        Err(Error::UnsupportedVersion { found: 0, .. })
    ));
}

#[test]
fn inconsistent_but_rehashed_artifacts_are_refused() {
    // Someone edits the JSON and recomputes the hash: structure is still checked.
    let mut art = saas_model().artifact.clone();
    art.coefficients.pop();
    art.model_id = art.content_hash();
    let e = ModelArtifact::from_json_bytes(&art.to_json_bytes()).unwrap_err();
    assert!(matches!(e, Error::ArtifactCorrupt { .. }), "{e}");
}

/// The stored curves are those of the holdout's labels and of the scores
/// the served model gives those rows: computed at training from the same
/// probabilities as the metrics.
#[test]
fn trained_artifacts_store_the_holdout_curves() {
    let out = saas_model();
    let art = &out.artifact;
    let curves = art.holdout_curves.as_ref().expect("holdout curves");
    let labels = label::labels(saas_table(), "churned").unwrap();
    let scores = Scorer::new(art).score_table(saas_table());
    let (mut y, mut p) = (Vec::new(), Vec::new());
    for &r in &out.holdout_rows {
        y.push(labels[r]);
        p.push(scores[r].as_ref().unwrap().churn_probability);
    }
    assert_eq!(Metrics::compute(&y, &p, art.bands.high), art.metrics);
    assert_eq!(curves, &HoldoutCurves::compute(&y, &p));
    // Small: at most 101 points per curve, 10 bins, 20 depths.
    assert!(curves.roc.len() <= 101 && curves.precision_recall.len() <= 101);
    assert!(curves.calibration.len() <= 10);
    assert_eq!(curves.lift.len(), 20);
    let rows: u64 = curves.calibration.iter().map(|b| b.rows).sum();
    assert_eq!(rows, art.training.holdout_rows);
    let area: f64 = curves
        .roc
        .windows(2)
        .map(|w| (w[1].fpr - w[0].fpr) * (w[0].tpr + w[1].tpr) / 2.0)
        .sum();
    assert!((area - art.metrics.roc_auc).abs() < 0.005, "{area}");
}

/// Curves need version 6: under version 5, even rehashed, they are refused
/// as corrupt; without them a version 5 artifact loads as it did.
#[test]
fn curves_in_a_version_five_artifact_are_corrupt() {
    let mut old = saas_model().artifact.clone();
    old.schema_version = DRIFT_SCHEMA_VERSION;
    old.model_id = old.content_hash();
    let e = ModelArtifact::from_json_bytes(&old.to_json_bytes()).unwrap_err();
    assert!(matches!(e, Error::ArtifactCorrupt { .. }), "{e}");
    assert!(e.to_string().contains("holdout curves"), "{e}");
    old.holdout_curves = None;
    old.model_id = old.content_hash();
    let bytes = old.to_json_bytes();
    assert!(!String::from_utf8(bytes.clone())
        .unwrap()
        .contains("holdout_curves"));
    let loaded = ModelArtifact::from_json_bytes(&bytes).unwrap();
    assert_eq!(loaded, old);
    assert!(loaded.has_drift_reference());
    // The model is unchanged: the same scores.
    let rec = record(saas_table(), 5);
    assert_eq!(
        Scorer::new(&loaded).score_json(&rec).unwrap(),
        Scorer::new(&saas_model().artifact)
            .score_json(&rec)
            .unwrap()
    );
}

/// An artifact written before shape functions existed (by the build that
/// introduced them, checked in with 40 of its scores): it still loads,
/// verifies and scores bit for bit as it did, and retraining the same
/// linear model today writes the same artifact once the drift reference
/// (version 5) and the holdout curves (version 6) are taken out: the model
/// itself is unchanged. Numbers agree to rounding, not bit for bit: the
/// solver's sums are now taken in row blocks on the pool (the optimum is
/// the same; the last bits of its coefficients are not).
#[test]
fn pre_shape_artifacts_load_and_score_identically() {
    let bytes = include_bytes!("fixtures/v2_linear_artifact.json");
    let expected: Vec<Score> =
        serde_json::from_slice(include_bytes!("fixtures/v2_linear_scores.json")).unwrap();
    let art = ModelArtifact::from_json_bytes(bytes).unwrap();
    assert_eq!(art.schema_version, LINEAR_SCHEMA_VERSION);
    // The table the fixture was trained and scored on (the generator is seeded).
    let table = generate(&SyntheticConfig {
        customers: 1_500,
        seed: 11,
    });
    let scores: Vec<Score> = Scorer::new(&art)
        .score_table(&table)
        .into_iter()
        .take(expected.len())
        .map(|s| s.unwrap())
        .collect();
    assert_eq!(scores, expected);
    let config = TrainConfig::builder()
        .cv_folds(3usize)
        .l2_grid(vec![1e-3, 1e-2])
        .created_at("2026-01-01T00:00:00Z")
        .build()
        .unwrap();
    // The generator has since gained account attribute columns; without
    // them the table is the one the fixture was trained on.
    let table = without_attributes(table);
    let retrained = train(&table, &Schema::default(), &config).unwrap();
    assert_eq!(retrained.report.complexity, Complexity::Linear);
    let mut model_only = retrained.artifact.clone();
    assert!(model_only.has_drift_reference());
    assert!(model_only.holdout_curves.is_some());
    strip_newer_parts(&mut model_only);
    model_only.schema_version = LINEAR_SCHEMA_VERSION;
    let retrained: Value = serde_json::from_slice(&model_only.to_json_bytes()).unwrap();
    let fixture: Value = serde_json::from_slice(bytes).unwrap();
    assert_same_to_rounding(&retrained, &fixture, "");
}

/// `a` and `b` are the same JSON except for `model_id` (a hash of the
/// bytes) and numbers, which agree to 1e-10 relative.
fn assert_same_to_rounding(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys = |o: &serde_json::Map<String, Value>| o.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "keys of {path}");
            for (k, v) in x {
                if k != "model_id" {
                    assert_same_to_rounding(v, &y[k], &format!("{path}.{k}"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "length of {path}");
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert_same_to_rounding(u, v, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-10 * x.abs().max(y.abs()).max(1e-300),
                "{path}: {x} vs {y}"
            );
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// `artifact` as a build before the drift reference (and the holdout
/// curves) wrote it.
fn strip_newer_parts(artifact: &mut ModelArtifact) {
    artifact.holdout_curves = None;
    artifact.holdout_profile = None;
    for r in &mut artifact.reference {
        if let churn_model::reference::Bins::Deciles { shares, .. } = &mut r.bins {
            shares.clear();
        }
    }
}
