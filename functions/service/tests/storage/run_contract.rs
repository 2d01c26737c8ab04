//! The run store contract, written once against `&dyn RunStore` and run
//! against the SQLite flag file, S3 on moto and a directory.

use churn_model::check::{CheckReport, SnapshotCounts};
use churn_model::outcomes::{outcomes_report, MatchedOutcome, ModelReference, OutcomesConfig};
use churn_model::RiskBand;
use churn_service::flag_store::SqliteFlagStore;
use churn_service::model_store::{DirModelStore, S3ModelStore};
use churn_service::run_record::{OutcomesRecord, RunCounts, RunRecord, ShardsSummary};
use churn_service::run_store::{shard_name, ObjectRunStore, RunStore};
use churn_service::test_support::MotoServer;
use std::sync::Arc;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn check(status: &str, psi: f64) -> CheckReport {
    serde_json::from_value(serde_json::json!({
        "status": status, "model_id": "m1", "rows": 10, "invalid_rows": 0, "scored": 10,
        "mean_probability": 0.2, "holdout_mean_probability": 0.2,
        "band_shares": {"high": 0.1, "medium": 0.2, "low": 0.7},
        "holdout_band_shares": null,
        "features": [{"feature": "mrr", "psi": psi, "missing_share": 0.0,
                      "reference_missing_share": 0.0, "out_of_range_share": 0.0,
                      "level": "ok", "absent": false, "importance_rank": 1}],
        "checks": [{"name": "drift", "status": "ok", "detail": "fine"}]
    }))
    .unwrap()
}

fn record(run_id: &str, started_at: OffsetDateTime, snapshot: &str) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        started_at,
        finished_at: started_at + Duration::seconds(5),
        as_of: started_at,
        snapshot: snapshot.into(),
        model_id: "m1".into(),
        status: churn_model::check::CheckStatus::Ok,
        refused: false,
        forced: false,
        counts: RunCounts {
            rows: 10,
            scored: 10,
            written: 7,
            ..RunCounts::default()
        },
        check: check("ok", 0.01),
        snapshot_counts: SnapshotCounts::default(),
        shards: None,
        error: None,
    }
}

fn outcomes(model_ids: &[&str]) -> OutcomesRecord {
    let matched: Vec<MatchedOutcome> = model_ids
        .iter()
        .enumerate()
        .map(|(i, m)| MatchedOutcome {
            customer_id: format!("c{i}"),
            churned: i % 2 == 0,
            churn_probability: 0.1 + 0.1 * i as f64,
            risk_band: RiskBand::Low,
            model_id: m.to_string(),
        })
        .collect();
    let models = [ModelReference {
        model_id: model_ids[0].into(),
        holdout_roc_auc: 0.8,
    }];
    OutcomesRecord {
        computed_at: datetime!(2026-11-30 10:00 UTC),
        source: "outcomes.csv".into(),
        horizon_days: 90,
        matched_before_horizon: 1,
        report: outcomes_report(&matched, &[], &models, &OutcomesConfig::default()),
    }
}

pub async fn run_contract(adapter: &str, store: &dyn RunStore) {
    eprintln!("run contract [{adapter}]");
    assert!(store.run("run-a").await.unwrap().is_none());
    assert!(store.runs(10).await.unwrap().is_empty());
    assert!(store.shards("run-a").await.unwrap().is_empty());
    assert!(store.outcomes(None).await.unwrap().is_none());

    // Round trip, replacing, newest first.
    let t0 = datetime!(2026-11-01 06:00 UTC);
    let a = record("run-a", t0, "s3://b/a.csv");
    store.put_run(&a).await.unwrap();
    assert_eq!(store.run("run-a").await.unwrap().unwrap(), a);
    let refused = RunRecord {
        refused: true,
        status: churn_model::check::CheckStatus::Refuse,
        check: check("refuse", 3.2),
        ..record("run-b", t0 + Duration::days(1), "s3://b/b.csv")
    };
    store.put_run(&refused).await.unwrap();
    // An execution name that sorts before the others: the finish time orders.
    store
        .put_run(&record("0000-first", t0 - Duration::days(1), "x"))
        .await
        .unwrap();
    let ids: Vec<String> = store
        .runs(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(ids, ["run-b", "run-a", "0000-first"]);
    assert_eq!(store.runs(2).await.unwrap().len(), 2);
    let listed = &store.runs(1).await.unwrap()[0];
    assert!(listed.refused);
    assert_eq!(listed.summary()["max_psi"], 3.2);
    assert!(listed.summary().get("check").is_none());
    let mut updated = a.clone();
    updated.counts.written = 9;
    store.put_run(&updated).await.unwrap();
    assert_eq!(store.run("run-a").await.unwrap().unwrap().counts.written, 9);
    assert_eq!(store.runs(10).await.unwrap().len(), 3);

    // Shards live under their run and are no runs themselves.
    let s1 = record("exec-9", t0, "s3://b/snap/p1.csv");
    let s2 = RunRecord {
        refused: true,
        ..record("exec-9", t0, "s3://b/snap/p2.csv")
    };
    store
        .put_shard("exec-9", &shard_name(&s1.snapshot), &s1)
        .await
        .unwrap();
    store
        .put_shard("exec-9", &shard_name(&s2.snapshot), &s2)
        .await
        .unwrap();
    // A retried shard replaces its own record.
    store
        .put_shard("exec-9", &shard_name(&s2.snapshot), &s2)
        .await
        .unwrap();
    let shards = store.shards("exec-9").await.unwrap();
    assert_eq!(shards.len(), 2);
    assert_eq!(shards.iter().filter(|s| s.refused).count(), 1);
    assert!(store.run("exec-9").await.unwrap().is_none());
    assert_eq!(store.runs(10).await.unwrap().len(), 3);
    let finished = RunRecord {
        shards: Some(ShardsSummary {
            shards: 2,
            refused: 1,
            forced: 0,
            refused_snapshots: vec![s2.snapshot.clone()],
            failed: 0,
        }),
        ..record("exec-9", t0 + Duration::days(2), "s3://b/snap/")
    };
    store.put_run(&finished).await.unwrap();
    assert_eq!(store.runs(1).await.unwrap()[0], finished);

    // Outcomes: the latest, and the latest per model.
    let first = outcomes(&["m1", "m1", "m2", "m2"]);
    store.put_outcomes(&first).await.unwrap();
    assert_eq!(store.outcomes(None).await.unwrap().unwrap(), first);
    assert_eq!(store.outcomes(Some("m2")).await.unwrap().unwrap(), first);
    let second = outcomes(&["m1", "m1", "m1"]);
    store.put_outcomes(&second).await.unwrap();
    assert_eq!(store.outcomes(None).await.unwrap().unwrap(), second);
    assert_eq!(store.outcomes(Some("m1")).await.unwrap().unwrap(), second);
    // m2 is not in the second report: its latest is still the first.
    assert_eq!(store.outcomes(Some("m2")).await.unwrap().unwrap(), first);
    assert!(store.outcomes(Some("m3")).await.unwrap().is_none());

    // Ids name keys and files: unsafe ones are refused, not stored.
    let bad = record("../escape", t0, "x");
    assert!(matches!(
        store.put_run(&bad).await,
        Err(churn_service::Error::InvalidInput { .. })
    ));
    assert!(store.put_shard("exec-9", "../x", &s1).await.is_err());
    assert!(store.run("../escape").await.unwrap().is_none());
}

#[tokio::test]
async fn run_contract_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteFlagStore::open(dir.path().join("flags.db"), 4)
        .await
        .unwrap();
    run_contract("sqlite", &store).await;
    // The records are in the file: a reopened store reads them.
    let reopened = SqliteFlagStore::open(dir.path().join("flags.db"), 4)
        .await
        .unwrap();
    assert_eq!(reopened.runs(10).await.unwrap().len(), 4);
}

#[tokio::test]
async fn run_contract_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectRunStore::new(Arc::new(DirModelStore::new(dir.path().join("models"))));
    run_contract("directory", &store).await;
    assert!(dir.path().join("models/runs/run-a.json").exists());
    assert!(dir.path().join("models/outcomes/latest.json").exists());
    assert!(!dir.path().join("escape.json").exists());
    // A record that no longer parses is left out of the list, not fatal.
    std::fs::write(dir.path().join("models/runs/run-a.json"), "{broken").unwrap();
    let ids: Vec<String> = store
        .runs(10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert!(
        !ids.contains(&"run-a".to_string()) && ids.len() == 3,
        "{ids:?}"
    );
    assert!(
        store.run("run-a").await.is_err(),
        "reading it alone says it is corrupt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_contract_s3() {
    let moto = MotoServer::start().await.unwrap();
    let clients = moto.clients().await;
    let bucket = clients.new_bucket("runs").await;
    let objects = Arc::new(S3ModelStore::new(clients.s3.clone(), bucket.clone(), ""));
    run_contract("s3", &ObjectRunStore::new(objects)).await;
    // Where the template grants access: runs/ and outcomes/ at the bucket root.
    let keys: Vec<String> = clients
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert!(keys.contains(&"runs/run-a.json".to_string()), "{keys:?}");
    assert!(
        keys.iter().any(|k| k.starts_with("runs/exec-9/shards/")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"outcomes/latest.json".to_string()),
        "{keys:?}"
    );
}
