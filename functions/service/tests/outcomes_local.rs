//! Realised accuracy on the demo's kind of data: outcomes matched with the
//! scores in force before them give the figures a direct computation
//! gives; the report is stored and served (`GET /v1/outcomes/report`),
//! as are the run records (`GET /v1/runs`, `GET /v1/runs/{run_id}`).

use bytes::Bytes;
use churn_model::metrics::{pr_auc, roc_auc};
use churn_model::{generate, ColumnValues, RiskBand, SyntheticConfig};
use churn_service::flag_store::SqliteFlagStore;
use churn_service::handlers::outcomes::{handle_outcomes, OutcomesRequest, OutcomesStores};
use churn_service::handlers::rescore::run_event;
use churn_service::handlers::score_api::{handle, ScoreApi};
use churn_service::services::Services;
use serde_json::{json, Value};
use std::sync::Arc;
use time::OffsetDateTime;

#[path = "shared/requests.rs"]
mod requests;
use requests::{trained_services, write_csv};

async fn get(services: &Services, uri: &str) -> (u16, Value) {
    let r = handle(
        ScoreApi::of(services),
        http::Request::get(uri).body(Bytes::new()).unwrap(),
    )
    .await;
    (
        r.status().as_u16(),
        serde_json::from_slice(r.body()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_equal_a_direct_computation_and_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    let (services, trained) =
        trained_services(dir.path(), store.clone(), store.clone(), store).await;

    // Scored 120 days ago; the outcomes are known today.
    let snapshot = generate(&SyntheticConfig {
        customers: 1500,
        seed: 8,
    });
    let csv = write_csv(dir.path(), "snapshot.csv", &snapshot);
    let now = OffsetDateTime::now_utc();
    let as_of = churn_service::timestamp::format(now - time::Duration::days(120));
    let event =
        json!({"snapshot": csv.display().to_string(), "as_of": as_of, "run_id": "backfill"});
    run_event(&services, &event, &|_| {}).await.unwrap();

    let ids: Vec<String> = match &snapshot.column("customer_id").unwrap().values {
        ColumnValues::Text(v) => v.iter().map(|i| i.clone().unwrap()).collect(),
        ColumnValues::Numeric(_) => panic!("ids are text"),
    };
    let labels: Vec<bool> = churn_model::label::labels(&snapshot, "churned").unwrap();
    let mut lines = vec!["customer_id,churned".to_string()];
    for (id, y) in ids.iter().zip(&labels) {
        lines.push(format!("{id},{}", if *y { "yes" } else { "no" }));
    }
    for unknown in ["ghost-1", "ghost-2"] {
        lines.push(format!("{unknown},1"));
    }
    let outcomes_csv = dir.path().join("outcomes.csv");
    std::fs::write(&outcomes_csv, lines.join("\n") + "\n").unwrap();
    let request = OutcomesRequest {
        data: outcomes_csv.display().to_string(),
        id_column: "customer_id".into(),
        label_column: "churned".into(),
        observed_at_column: None,
        horizon_days: 90,
    };
    let stores = OutcomesStores {
        flags: services.flags.as_ref(),
        models: services.models.as_ref(),
        runs: services.runs.as_ref(),
        sources: &services.sources,
    };
    let record = handle_outcomes(&request, stores, now).await.unwrap();
    let r = &record.report;

    // The direct computation: every customer's stored score against its label.
    let mut probs = Vec::new();
    let mut bands = Vec::new();
    for id in &ids {
        let flag = services.flags.get(id).await.unwrap().unwrap();
        probs.push(flag.churn_probability);
        bands.push(flag.risk_band);
    }
    assert_eq!(r.realised.matched, ids.len() as u64);
    assert_eq!(
        record.matched_before_horizon, 0,
        "every score is 120 days old"
    );
    assert_eq!(r.unmatched, 2);
    assert_eq!(r.unmatched_ids, ["ghost-1", "ghost-2"]);
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
    let churned = labels.iter().filter(|&&y| y).count();
    assert!(close(
        r.realised.base_rate,
        churned as f64 / ids.len() as f64
    ));
    assert!(close(r.realised.roc_auc, roc_auc(&labels, &probs)));
    assert!(close(r.realised.pr_auc, pr_auc(&labels, &probs)));
    let in_band = |b: RiskBand| {
        (0..ids.len())
            .filter(|&i| bands[i] == b)
            .collect::<Vec<_>>()
    };
    let high = in_band(RiskBand::High);
    let high_churned = high.iter().filter(|&&i| labels[i]).count();
    assert_eq!(r.realised.bands.high.customers, high.len() as u64);
    assert!(close(
        r.realised.bands.high.precision,
        high_churned as f64 / high.len() as f64
    ));
    assert!(close(
        r.realised.bands.high.recall,
        high_churned as f64 / churned as f64
    ));
    let at_risk = high.len() + in_band(RiskBand::Medium).len();
    assert_eq!(r.realised.bands.at_risk.customers, at_risk as u64);
    assert!(close(
        r.realised.bands.high.lift,
        (high_churned as f64 / high.len() as f64) / (churned as f64 / ids.len() as f64)
    ));
    // Calibration: ten groups of 150, the first the lowest probabilities.
    assert_eq!(r.realised.calibration.len(), 10);
    let mut sorted = probs.clone();
    sorted.sort_by(f64::total_cmp);
    let first_mean = sorted[..150].iter().sum::<f64>() / 150.0;
    assert!((r.realised.calibration[0].mean_predicted - first_mean).abs() < 1e-12);
    // One model, judged against its holdout.
    let m = &r.by_model[&trained.model_id];
    assert_eq!(m.holdout_roc_auc, Some(trained.metrics.roc_auc));
    assert_eq!(m.retrain_recommended, r.retrain_recommended);

    // Stored, and served.
    assert_eq!(services.runs.outcomes(None).await.unwrap().unwrap(), record);
    let (status, body) = get(&services, "/v1/outcomes/report").await;
    assert_eq!(status, 200, "{body}");
    for key in [
        "roc_auc",
        "pr_auc",
        "base_rate",
        "matched",
        "unmatched",
        "bands",
        "calibration",
        "by_model",
        "retrain_recommended",
    ] {
        assert!(body.get(key).is_some(), "{key}: {body}");
    }
    assert_eq!(body["bands"]["high"]["customers"], high.len());
    let (status, _) = get(
        &services,
        &format!("/v1/outcomes/report?model_id={}", trained.model_id),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = get(&services, "/v1/outcomes/report?model_id=..%2Fx").await;
    assert_eq!(status, 400, "{body}");

    // The run records behind them.
    let (status, body) = get(&services, "/v1/runs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"][0]["run_id"], "backfill");
    assert_eq!(body["runs"][0]["status"], "ok");
    assert!(body["runs"][0].get("max_psi").is_some());
    let (status, body) = get(&services, "/v1/runs/backfill").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["check"]["features"].as_array().unwrap().len(),
        trained_features(&services).await
    );
    assert_eq!(get(&services, "/v1/runs/nope").await.0, 404);
    assert_eq!(get(&services, "/v1/runs/a%20b").await.0, 400);
    assert_eq!(get(&services, "/v1/runs?limit=0").await.0, 400);

    // A label that does not parse: an error naming row and column.
    lines[5] = format!("{},maybe", ids[4]);
    std::fs::write(&outcomes_csv, lines.join("\n") + "\n").unwrap();
    let err = handle_outcomes(&request, stores, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 5") && err.contains("churned"), "{err}");
    // A customer listed twice: an error naming both rows.
    lines[5] = format!("{},yes", ids[0]);
    std::fs::write(&outcomes_csv, lines.join("\n") + "\n").unwrap();
    let err = handle_outcomes(&request, stores, now)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 5") && err.contains("row 1"), "{err}");
    // The stored report is untouched by the failed ones.
    assert_eq!(services.runs.outcomes(None).await.unwrap().unwrap(), record);
}

async fn trained_features(services: &Services) -> usize {
    let model = services.cache.get().await.unwrap().unwrap();
    model.model.artifact.preprocessing.features.len()
}
