//! Handlers against the local adapters (model directory, SQLite): training
//! and the promotion gate, the HTTP API including every error status, and
//! streamed rescoring with bad rows and an unchanged rerun.

use bytes::Bytes;
use churn_model::check::CheckThresholds;
use churn_model::{generate, ColumnValues, SyntheticConfig, Table};
use churn_service::config::ServiceConfig;
use churn_service::features::FeatureSources;
use churn_service::features::FeatureUri;
use churn_service::flag_store::{FlagStore, SqliteFlagStore};
use churn_service::handlers::rescore::{
    handle_rescore, run_event, RescoreSettings, RescoreStores, RunIdentity,
};
use churn_service::handlers::score_api::{handle, ScoreApi};
use churn_service::handlers::score_file::{handle_score_file, ScoreFileOptions};
use churn_service::handlers::train::{handle_train, Gate, TrainSummary};
use churn_service::model_store::{DirModelStore, ModelStore};
use churn_service::services::Services;
use http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const GATE: Gate = Gate {
    min_auc: 0.60,
    max_auc_drop: 0.01,
};

fn synthetic(customers: usize, seed: u64) -> Table {
    generate(&SyntheticConfig { customers, seed })
}

#[path = "shared/requests.rs"]
mod requests;
use requests::{train_request, write_csv};

/// Labels replaced by a seeded coin flip: a model that cannot beat chance.
fn shuffled_labels(mut t: Table) -> Table {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for c in &mut t.columns {
        if c.name == "churned" {
            if let ColumnValues::Numeric(v) = &mut c.values {
                for x in v.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    *x = if state % 100 < 20 { 1.0 } else { 0.0 };
                }
            }
        }
    }
    t
}

/// Trains and promotes the first model of `store` on `dir/good.csv`.
async fn train_first_model(dir: &Path, store: &DirModelStore) -> TrainSummary {
    let good = write_csv(dir, "good.csv", &synthetic(4000, 1));
    let first = handle_train(&train_request(&good), store, &FeatureSources::new(), GATE)
        .await
        .unwrap();
    assert!(first.promoted, "{}", first.reason);
    first
}

#[tokio::test]
async fn train_promotes_then_gates_on_floor_and_champion() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirModelStore::new(dir.path().join("models"));
    let first = train_first_model(dir.path(), &store).await;
    let good = dir.path().join("good.csv");
    assert!(first.metrics.roc_auc > 0.7, "{}", first.metrics.roc_auc);
    assert!(first.reason.contains("first model"), "{}", first.reason);
    assert_eq!(first.rows, 4000);
    assert_eq!(
        store.current_pointer().await.unwrap().unwrap().model_id,
        first.model_id
    );

    // Same data, same settings: the same artifact, already the champion.
    let again = handle_train(&train_request(&good), &store, &FeatureSources::new(), GATE)
        .await
        .unwrap();
    assert_eq!(again.model_id, first.model_id);
    assert!(
        again.promoted && again.reason.contains("identical"),
        "{}",
        again.reason
    );

    // The artifact records created_at (normalised to the stored UTC form).
    let stored = store.artifact(&first.model_id).await.unwrap().unwrap();
    let artifact = churn_model::ModelArtifact::from_json_bytes(&stored).unwrap();
    assert_eq!(artifact.created_at, "2024-06-01T00:00:00.000000Z");

    // Retrained later (created_at now, not fixed): same model_id, other
    // bytes. The store keeps the first artifact and the pointer's sha256
    // still designates the stored bytes.
    let mut later = train_request(&good);
    later.options.created_at = None;
    let retrained = handle_train(&later, &store, &FeatureSources::new(), GATE)
        .await
        .unwrap();
    assert_eq!(retrained.model_id, first.model_id);
    assert!(retrained.promoted, "{}", retrained.reason);
    assert_eq!(
        store.artifact(&first.model_id).await.unwrap().unwrap(),
        stored,
        "never overwritten"
    );
    let (pointer, bytes) = store.current().await.unwrap().unwrap();
    assert_eq!(bytes, stored);
    assert_eq!(
        pointer.sha256,
        churn_service::model_store::sha256_hex(&stored)
    );

    // Without a champion the gate promotes the retrained model's stored bytes,
    // and its created_at is now.
    let fresh = DirModelStore::new(dir.path().join("fresh-models"));
    let now = handle_train(&later, &fresh, &FeatureSources::new(), GATE)
        .await
        .unwrap();
    assert!(now.promoted, "{}", now.reason);
    let (pointer, bytes) = fresh.current().await.unwrap().unwrap();
    assert_eq!(
        pointer.sha256,
        churn_service::model_store::sha256_hex(&bytes)
    );
    let created = churn_model::ModelArtifact::from_json_bytes(&bytes)
        .unwrap()
        .created_at;
    let created = churn_service::timestamp::parse(&created).unwrap();
    let age = time::OffsetDateTime::now_utc() - created;
    assert!(
        age >= time::Duration::ZERO && age < time::Duration::minutes(10),
        "created_at {created} is not now"
    );
    let mut bad_time = train_request(&good);
    bad_time.options.created_at = Some("yesterday".into());
    let err = handle_train(&bad_time, &fresh, &FeatureSources::new(), GATE)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("created_at"), "{err}");

    // Chance-level labels: below the floor, kept as a candidate.
    let noise = write_csv(
        dir.path(),
        "noise.csv",
        &shuffled_labels(synthetic(4000, 2)),
    );
    let weak = handle_train(&train_request(&noise), &store, &FeatureSources::new(), GATE)
        .await
        .unwrap();
    assert!(!weak.promoted);
    assert!(weak.reason.contains("below the floor"), "{}", weak.reason);
    assert_eq!(
        store.current_pointer().await.unwrap().unwrap().model_id,
        first.model_id
    );

    // With no floor the champion comparison on the same holdout decides.
    let no_floor = Gate {
        min_auc: 0.0,
        max_auc_drop: 0.01,
    };
    let weak = handle_train(
        &train_request(&noise),
        &store,
        &FeatureSources::new(),
        no_floor,
    )
    .await
    .unwrap();
    assert!(!weak.promoted, "{}", weak.reason);
    assert!(
        weak.reason.contains("below the champion"),
        "{}",
        weak.reason
    );
    let champion = weak.champion.unwrap();
    assert_eq!(champion.model_id, first.model_id);
    assert!(champion.roc_auc_on_new_holdout.is_some());
    assert!(
        store.artifact(&weak.model_id).await.unwrap().is_some(),
        "candidates are stored"
    );

    // Errors name what is wrong.
    let mut bad = train_request(&good);
    bad.label_column = Some("nope".into());
    let err = handle_train(&bad, &store, &FeatureSources::new(), GATE)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope"), "{err}");
    let mut bad = train_request(&dir.path().join("missing.csv"));
    bad.options.seed = Some(1);
    let err = handle_train(&bad, &store, &FeatureSources::new(), GATE)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.csv"), "{err}");
}

struct Api {
    services: Services,
    _dir: tempfile::TempDir,
}

async fn api_without_model() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let models: Arc<dyn ModelStore> = Arc::new(DirModelStore::new(dir.path().join("models")));
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    let flags: Arc<dyn FlagStore> = store.clone();
    let config = ServiceConfig {
        model_refresh: Duration::from_secs(0),
        ..ServiceConfig::default()
    };
    Api {
        services: Services::with_stores(config, models, flags, store.clone(), store),
        _dir: dir,
    }
}

async fn api_with_model() -> Api {
    let api = api_without_model().await;
    let csv = write_csv(api._dir.path(), "train.csv", &synthetic(3000, 5));
    let s = handle_train(
        &train_request(&csv),
        api.services.models.as_ref(),
        &FeatureSources::new(),
        GATE,
    )
    .await
    .unwrap();
    assert!(s.promoted);
    api
}

async fn call(api: &Api, method: Method, uri: &str, body: &str) -> (StatusCode, Value) {
    let content_type = (!body.is_empty()).then_some("application/json");
    call_as(api, method, uri, content_type, body).await
}

async fn call_as(
    api: &Api,
    method: Method,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(t) = content_type {
        request = request.header("content-type", t);
    }
    let request = request.body(Bytes::from(body.to_string())).unwrap();
    let s = &api.services;
    let response = handle(ScoreApi::of(s), request).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let v: Value = serde_json::from_slice(response.body()).unwrap();
    (response.status(), v)
}

fn customer(id: &str) -> Value {
    json!({"customer_id": id, "features": {
        "logins_30d": 2, "active_days_30d": 1, "sessions_30d": 3, "avg_session_minutes": 4.0,
        "features_used": 1, "seat_utilization": 0.1, "days_since_last_login": 40,
        "support_tickets_90d": 6, "nps": 2, "tenure_months": 3, "plan": "basic",
        "region": "emea", "billing_failures_90d": 2, "mrr": 49.0
    }})
}

#[tokio::test]
async fn api_without_a_model_answers_503_but_validates_first() {
    let api = api_without_model().await;
    let body = json!({"customers": [customer("c1")]}).to_string();
    let (status, v) = call(&api, Method::POST, "/v1/score", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no model"), "{v}");
    assert!(v["details"].is_array());
    let (status, _) = call(&api, Method::POST, "/v1/score", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn api_rejects_bad_input_with_named_fields() {
    let api = api_with_model().await;
    let (status, v) = call(&api, Method::POST, "/v1/score", "{\"customers\": [").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().starts_with("malformed JSON"),
        "{v}"
    );

    let (status, v) = call(&api, Method::POST, "/v1/score", r#"{"customers": []}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["details"][0]["field"], "customers");

    let many: Vec<Value> = (0..1001).map(|i| customer(&format!("c{i}"))).collect();
    let (status, v) = call(
        &api,
        Method::POST,
        "/v1/score",
        &json!({"customers": many}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    let huge = format!(
        "{{\"customers\": [], \"pad\": \"{}\"}}",
        "x".repeat(6 << 20)
    );
    let (status, _) = call(&api, Method::POST, "/v1/score", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let mut wrong = customer("c2");
    wrong["features"]["logins_30d"] = json!("many");
    let body = json!({"customers": [customer("c1"), wrong]}).to_string();
    let (status, v) = call(&api, Method::POST, "/v1/score", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let d = &v["details"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{v}");
    assert_eq!(d[0]["customer_id"], "c2");
    assert_eq!(d[0]["field"], "logins_30d");

    let body = json!({"customers": [{"customer_id": 7, "features": {}}, {"customer_id": "c3"}]})
        .to_string();
    let (status, v) = call(&api, Method::POST, "/v1/score", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["details"][0]["field"], "customers[0].customer_id");
    assert_eq!(v["details"][1]["customer_id"], "c3");
    assert_eq!(v["details"][1]["field"], "features");

    let (status, _) = call(
        &api,
        Method::POST,
        "/v1/score",
        r#"{"customers": [], "persist": "yes"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&api, Method::GET, "/v1/score", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = call(&api, Method::GET, "/v2/nothing", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for q in [
        "band=low",
        "band=purple",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=garbage",
    ] {
        let (status, v) = call(&api, Method::GET, &format!("/v1/risk-list?{q}"), "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
}

#[tokio::test]
async fn api_scores_persists_and_reads_back() {
    let api = api_with_model().await;
    let healthy = json!({"customer_id": "ok1", "features": {"logins_30d": 60, "active_days_30d": 28, "tenure_months": 40}});
    let body = json!({"customers": [customer("risky/1"), healthy], "persist": true}).to_string();
    let (status, v) = call(&api, Method::POST, "/v1/score", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let scores = v["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2);
    let p0 = scores[0]["churn_probability"].as_f64().unwrap();
    let p1 = scores[1]["churn_probability"].as_f64().unwrap();
    assert!(p0 > p1, "the disengaged customer is riskier: {p0} vs {p1}");
    assert!(scores[0]["reasons"].as_array().unwrap().len() <= 3);
    assert_eq!(v["persisted"]["written"], 2);
    let model_id = v["model_id"].as_str().unwrap().to_string();

    let (status, v) = call(&api, Method::GET, "/v1/customers/risky%2F1", "").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["model_id"], model_id.as_str());
    assert_eq!(v["churn_probability"].as_f64().unwrap(), p0);
    let (status, v) = call(&api, Method::GET, "/v1/customers/nobody", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["details"][0]["customer_id"], "nobody");

    let band = scores[0]["risk_band"].as_str().unwrap();
    if band != "low" {
        let (status, v) = call(
            &api,
            Method::GET,
            &format!("/v1/risk-list?band={band}&limit=10"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["flags"][0]["customer_id"], "risky/1");
    }
}

#[tokio::test]
async fn rescore_streams_reports_bad_rows_and_skips_unchanged() {
    let api = api_with_model().await;
    let dir = api._dir.path();
    let table = synthetic(20_000, 9);
    let csv = write_csv(dir, "snapshot.csv", &table);
    // Corrupt two rows: a word in a numeric column, and a short row.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let logins = header.iter().position(|h| *h == "logins_30d").unwrap();
    let mut cells: Vec<String> = lines[100].split(',').map(str::to_string).collect();
    cells[logins] = "lots".into();
    lines[100] = cells.join(",");
    lines[12_000] = "short,row".into();
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();

    let model = api.services.cache.get().await.unwrap().unwrap();
    let settings = RescoreSettings {
        epsilon: 0.01,
        write_deadline: Duration::from_secs(10),
        chunk_rows: 4096,
        as_of: None,
        check: Some(CheckThresholds::default()),
        force: false,
    };
    let reported = std::sync::atomic::AtomicUsize::new(0);
    let first = handle_rescore(
        &csv.display().to_string(),
        &model.model,
        RescoreStores::of(&api.services),
        settings,
        &RunIdentity::new_run(),
        &|rows| {
            reported.fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .await
    .unwrap();
    assert_eq!(first.rows, 20_000);
    // Progress saw every row read, bad ones included.
    assert_eq!(reported.into_inner(), 20_000);
    assert_eq!(first.failed_rows_count, 2, "{:?}", first.failed_rows);
    assert_eq!(first.failed_rows[0].row, 100);
    assert!(
        first.failed_rows[0].message.contains("logins_30d"),
        "{:?}",
        first.failed_rows
    );
    assert_eq!(first.failed_rows[1].row, 12_000);
    assert_eq!(first.scored, 19_998);
    assert_eq!(first.written, 19_998);
    assert!(first.newly_at_risk > 0);
    assert_eq!(first.model_id, model.model.model_id());

    // Same features again: nothing to rewrite.
    let again = handle_rescore(
        &csv.display().to_string(),
        &model.model,
        RescoreStores::of(&api.services),
        settings,
        &RunIdentity::new_run(),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(again.skipped_unchanged, 19_998);
    assert_eq!(again.newly_at_risk, 0);

    // The event entry point: a {"snapshot"} event, and a scheduled event without CHURN_SNAPSHOT.
    let via_event = run_event(
        &api.services,
        &json!({"snapshot": csv.display().to_string()}),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(via_event.scored, 19_998);
    let err = run_event(
        &api.services,
        &json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
        &|_| {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("CHURN_SNAPSHOT"), "{err}");
}

#[tokio::test]
async fn score_file_writes_scores_and_reports_bad_rows_and_missing_columns() {
    let api = api_with_model().await;
    let dir = api._dir.path();
    // Input without its last feature column and with three bad rows: a word in a numeric column, a short row, no id.
    let table = synthetic(5_000, 11);
    let csv = write_csv(dir, "input.csv", &table);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<String> = lines[0].split(',').map(str::to_string).collect();
    let model = api.services.cache.get().await.unwrap().unwrap();
    let dropped = header
        .iter()
        .rposition(|h| h != "churned" && h != "customer_id" && h != "logins_30d")
        .unwrap();
    let dropped_name = header[dropped].clone();
    for line in &mut lines {
        let mut cells: Vec<&str> = line.split(',').collect();
        if cells.len() > dropped {
            cells.remove(dropped);
        }
        *line = cells.join(",");
    }
    let logins = lines[0].split(',').position(|h| h == "logins_30d").unwrap();
    let mut cells: Vec<String> = lines[10].split(',').map(str::to_string).collect();
    cells[logins] = "lots".into();
    lines[10] = cells.join(",");
    lines[4_000] = "short,row".into();
    let mut cells: Vec<String> = lines[4_500].split(',').map(str::to_string).collect();
    cells[0] = String::new();
    lines[4_500] = cells.join(",");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();

    let out = dir.join("scores.csv");
    // The snapshot check refuses an input without a model feature: no
    // scores file, and no staged file left beside it.
    let options = ScoreFileOptions {
        id_column: None,
        chunk_rows: 1_000,
        ..ScoreFileOptions::default()
    };
    let refused = score_file(&csv, &model.model, &out, &options)
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert!(message.starts_with("snapshot refused: "), "{message}");
    assert!(message.contains(&dropped_name), "{message}");
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Forced, it scores with the column imputed, as the summary says.
    let rows_seen = std::sync::atomic::AtomicUsize::new(0);
    let options = ScoreFileOptions {
        force: true,
        ..options
    };
    let summary = handle_score_file(
        &FeatureUri::parse(&csv.display().to_string()).unwrap(),
        &FeatureSources::new(),
        &model.model,
        &out,
        &options,
        &|n| {
            rows_seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        },
    )
    .await
    .unwrap();
    assert_eq!(rows_seen.into_inner(), 5_000);
    assert_eq!(summary.scored, 4_997);
    assert_eq!(summary.failed_rows_count, 3, "{:?}", summary.failed_rows);
    let failed: Vec<usize> = summary.failed_rows.iter().map(|f| f.row).collect();
    assert_eq!(failed, [10, 4_000, 4_500]);
    assert!(summary.failed_rows[0].message.contains("logins_30d"));
    assert!(summary.failed_rows[2]
        .message
        .contains("customer id is missing"));
    let expect_missing: Vec<String> =
        if model
            .model
            .artifact
            .preprocessing
            .features
            .iter()
            .any(|f| match f {
                churn_model::preprocess::FeaturePrep::Numeric(p) => p.name == dropped_name,
                churn_model::preprocess::FeaturePrep::Categorical(p) => p.name == dropped_name,
            })
        {
            vec![dropped_name.clone()]
        } else {
            Vec::new()
        };
    assert!(
        !expect_missing.is_empty(),
        "{dropped_name} is not a model feature"
    );
    assert_eq!(summary.missing_feature_columns, expect_missing);
    assert!(summary.forced);
    assert!(summary.check.as_ref().unwrap().refused());

    let written = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(
        lines[0],
        "customer_id,churn_probability,risk_band,reason_1,reason_2,reason_3"
    );
    assert_eq!(lines.len(), 1 + 4_997);
    for line in &lines[1..] {
        let cells: Vec<&str> = line.splitn(4, ',').collect();
        let p: f64 = cells[1].parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{line}");
        assert!(["high", "medium", "low"].contains(&cells[2]), "{line}");
    }

    // Failures are listed up to the cap, with the exact count (forced: the
    // check refuses a file of bad rows).
    let mut all_bad = vec![lines_header(&csv)];
    for i in 0..250 {
        all_bad.push(format!(",{i}"));
    }
    let bad_csv = dir.join("bad.csv");
    std::fs::write(&bad_csv, all_bad.join("\n") + "\n").unwrap();
    let summary = handle_score_file(
        &FeatureUri::parse(&bad_csv.display().to_string()).unwrap(),
        &FeatureSources::new(),
        &model.model,
        &dir.join("none.csv"),
        &options,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.scored, 0);
    assert_eq!(summary.failed_rows_count, 250);
    assert_eq!(
        summary.failed_rows.len(),
        churn_service::handlers::scored_stream::MAX_LISTED_FAILURES
    );

    // No id column: a clear error naming it.
    let err = handle_score_file(
        &FeatureUri::parse(&csv.display().to_string()).unwrap(),
        &FeatureSources::new(),
        &model.model,
        &dir.join("x.csv"),
        &ScoreFileOptions {
            id_column: Some("account".into()),
            ..ScoreFileOptions::default()
        },
        &|_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("no id column \"account\""), "{err}");
}

/// Scores the local file `csv` into `out` with no progress reporting.
async fn score_file(
    csv: &Path,
    model: &churn_service::handlers::model::ScoringModel,
    out: &Path,
    options: &ScoreFileOptions,
) -> Result<
    churn_service::handlers::score_file::ScoreFileSummary,
    churn_service::handlers::error::HandlerError,
> {
    let uri = FeatureUri::parse(&csv.display().to_string()).unwrap();
    handle_score_file(&uri, &FeatureSources::new(), model, out, options, &|_| {}).await
}

/// The scores file is formatted in parallel blocks with the reasons written
/// straight from the scored table; each line must be the one the row gets
/// scored alone and written through the stored reasons' text.
#[tokio::test]
async fn score_file_lines_are_each_rows_own_score_written_alone() {
    use churn_service::features::{read_local_file, ReadOptions, ScoresWriter};
    let api = api_with_model().await;
    let dir = api._dir.path();
    let model = api.services.cache.get().await.unwrap().unwrap();
    let mut table = synthetic(3_000, 23);
    // Some missing values, so reasons that say "missing" are among them.
    for c in &mut table.columns {
        if let ColumnValues::Numeric(v) = &mut c.values {
            if c.name != "churned" {
                for x in v.iter_mut().step_by(7) {
                    *x = f64::NAN;
                }
            }
        }
    }
    let csv = write_csv(dir, "input.csv", &table);
    let read = read_local_file(&csv, &ReadOptions::default()).unwrap();
    let ids: Vec<String> = match &read.column("customer_id").unwrap().values {
        ColumnValues::Text(v) => v.iter().map(|s| s.clone().unwrap()).collect(),
        ColumnValues::Numeric(_) => panic!("text ids"),
    };
    let mut expected = ScoresWriter::csv(Vec::new()).unwrap();
    let mut reasons_text = Vec::new();
    let mut scored = 0;
    // The check's mean: the probabilities summed in row order, exactly.
    let mut probability_sum = 0.0;
    for (id, score) in ids.iter().zip(model.model.scorer.score_table(&read)) {
        if let Ok(score) = score {
            probability_sum += score.churn_probability;
            expected.write(id, &score).unwrap();
            reasons_text.push(
                score
                    .reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>(),
            );
            scored += 1;
        }
    }
    let expected = String::from_utf8(expected.finish().unwrap()).unwrap();
    assert!(
        expected.contains("missing"),
        "no missing value among the reasons"
    );
    assert!(scored > 2_000, "{scored} rows scored");
    let options = ScoreFileOptions {
        chunk_rows: 700,
        force: true,
        ..ScoreFileOptions::default()
    };
    for name in ["scores.csv", "scores.parquet"] {
        let out = dir.join(name);
        let summary = score_file(&csv, &model.model, &out, &options)
            .await
            .unwrap();
        assert_eq!(summary.scored, scored);
        let mean = summary.check.as_ref().unwrap().mean_probability;
        assert_eq!(mean, Some(probability_sum / scored as f64));
        if name.ends_with(".csv") {
            assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
            continue;
        }
        let back = read_local_file(&out, &ReadOptions::default()).unwrap();
        for k in 0..3 {
            let column = format!("reason_{}", k + 1);
            let ColumnValues::Text(cells) = &back.column(&column).unwrap().values else {
                panic!("{column} is text");
            };
            let want: Vec<Option<String>> =
                reasons_text.iter().map(|r| r.get(k).cloned()).collect();
            assert_eq!(cells, &want, "{column}");
        }
    }
}

/// The header line of a CSV file.
fn lines_header(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn rescore_without_a_model_or_with_missing_columns_fails_clearly() {
    let api = api_without_model().await;
    let err = run_event(&api.services, &json!({"snapshot": "x.csv"}), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no model"), "{err}");
    let api = api_with_model().await;
    let p = api._dir.path().join("thin.csv");
    std::fs::write(&p, "id,logins_30d\nc1,3\n").unwrap();
    let err = run_event(
        &api.services,
        &json!({"snapshot": p.display().to_string()}),
        &|_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("no id column"), "{err}");
}

/// Percent-encodes a query value (cursors are opaque and may hold `+`, `/`, `=`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn risk_list_pages_follow_the_cursor_and_failures_are_capped() {
    let api = api_with_model().await;
    let dir = api._dir.path();
    // 3000 customers, 150 of them with a word where a number belongs.
    let csv = write_csv(dir, "snap.csv", &synthetic(3000, 31));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let tenure = header.iter().position(|h| *h == "tenure_months").unwrap();
    for row in (1..=150).map(|k| k * 20) {
        let mut cells: Vec<String> = lines[row].split(',').map(str::to_string).collect();
        cells[tenure] = "long".into();
        lines[row] = cells.join(",");
    }
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let summary = run_event(
        &api.services,
        &json!({"snapshot": csv.display().to_string()}),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.failed_rows_count, 150);
    assert_eq!(
        summary.failed_rows.len(),
        100,
        "the list is capped, the count is not"
    );
    assert_eq!(summary.scored, 2850);

    // Pages of 7 over the high band: disjoint, each sorted, and together sorted.
    let mut seen = Vec::new();
    let mut probs = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..4 {
        let query = match &cursor {
            Some(c) => format!("band=high&limit=7&cursor={}", encode(c)),
            None => "band=high&limit=7".to_string(),
        };
        let (status, v) = call(&api, Method::GET, &format!("/v1/risk-list?{query}"), "").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        for f in v["flags"].as_array().unwrap() {
            seen.push(f["customer_id"].as_str().unwrap().to_string());
            probs.push(f["churn_probability"].as_f64().unwrap());
            assert_eq!(f["risk_band"], "high");
        }
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen.len(), 28, "four full pages");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "pages do not overlap");
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
}

#[path = "shared/invalid_inputs.rs"]
mod invalid_inputs;

#[tokio::test]
async fn invalid_inputs_change_no_stored_flag() {
    let api = api_with_model().await;
    invalid_inputs::invalid_inputs_change_nothing(&api.services, api._dir.path()).await;
}

#[tokio::test]
async fn a_champion_that_refuses_some_new_values_is_compared_on_the_rows_it_can_score() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirModelStore::new(dir.path().join("models"));
    let first = train_first_model(dir.path(), &store).await;
    // A newer export writes -1 for "unknown" logins in a tenth of the rows:
    // the champion (trained on counts >= 0) refuses those rows.
    let mut newer = synthetic(4000, 3);
    for c in newer.columns.iter_mut().filter(|c| c.name == "logins_30d") {
        if let churn_model::ColumnValues::Numeric(v) = &mut c.values {
            for x in v.iter_mut().step_by(10) {
                *x = -1.0;
            }
        }
    }
    let newer = write_csv(dir.path(), "newer.csv", &newer);
    let second = handle_train(&train_request(&newer), &store, &FeatureSources::new(), GATE)
        .await
        .unwrap();
    let champion = second.champion.as_ref().unwrap();
    assert_eq!(champion.model_id, first.model_id);
    assert!(
        champion.roc_auc_on_new_holdout.is_some(),
        "{}",
        second.reason
    );
    assert!(
        second
            .reason
            .contains("holdout rows the champion can score"),
        "{}",
        second.reason
    );
}
