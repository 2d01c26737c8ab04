//! Handlers against the AWS adapters on moto_server: training from an S3
//! prefix into the S3 model store, a Distributed Map item rescored into
//! DynamoDB, and the score API persisting to and reading from DynamoDB.

use bytes::Bytes;
use churn_model::{generate, SyntheticConfig};
use churn_service::config::ServiceConfig;
use churn_service::features::FeatureSources;
use churn_service::flag_store::{DynamoFlagStore, FlagStore};
use churn_service::handlers::rescore::run_event;
use churn_service::handlers::score_api::{handle, ScoreApi};
use churn_service::handlers::train::{handle_train, Gate, TrainRequest};
use churn_service::model_store::{ModelStore, S3ModelStore};
use churn_service::run_store::ObjectRunStore;
use churn_service::services::Services;
use churn_service::test_support::{unique_name, MotoServer};
use serde_json::{json, Value};
use std::sync::Arc;

#[path = "shared/invalid_inputs.rs"]
mod invalid_inputs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_rescore_and_serve_on_moto() {
    let moto = MotoServer::start().await.unwrap();
    let clients = moto.clients().await;
    let bucket = clients.new_bucket("handlers").await;
    let table_name = unique_name("flags");
    let flags = Arc::new(DynamoFlagStore::new(
        clients.dynamodb.clone(),
        table_name.clone(),
        4,
    ));
    flags.create_table_if_missing().await.unwrap();
    let models = Arc::new(S3ModelStore::new(
        clients.s3.clone(),
        bucket.clone(),
        "models",
    ));
    let runs = Arc::new(ObjectRunStore::new(Arc::new(S3ModelStore::new(
        clients.s3.clone(),
        bucket.clone(),
        "",
    ))));

    // Training data as a two-part prefix.
    let train = generate(&SyntheticConfig {
        customers: 3000,
        seed: 21,
    });
    let mut csv = Vec::new();
    churn_service::features::write_csv(&train, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let part1 = format!("{}\n{}\n", lines[0], lines[1..1500].join("\n"));
    let part2 = format!("{}\n{}\n", lines[0], lines[1500..].join("\n"));
    for (key, body) in [("train/a.csv", part1), ("train/b.csv", part2)] {
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    let request: TrainRequest = serde_json::from_value(json!({
        "features": format!("s3://{bucket}/train/"),
        "id_column": "customer_id",
        "label_column": "churned",
        "options": {"seed": 3}
    }))
    .unwrap();
    let gate = Gate {
        min_auc: 0.6,
        max_auc_drop: 0.01,
    };
    let summary = handle_train(
        &request,
        models.as_ref(),
        &FeatureSources::with_s3_client(clients.s3.clone()),
        gate,
    )
    .await
    .unwrap();
    assert!(summary.promoted, "{}", summary.reason);
    assert_eq!(summary.rows, 3000);
    assert_eq!(
        models.current_pointer().await.unwrap().unwrap().model_id,
        summary.model_id
    );
    let unknown: Result<TrainRequest, _> =
        serde_json::from_value(json!({"features": "x.csv", "colour": 1}));
    assert!(unknown.is_err(), "unknown request fields are refused");

    // A Distributed Map item (an S3 listing entry) rescored into DynamoDB.
    let snapshot = generate(&SyntheticConfig {
        customers: 2000,
        seed: 22,
    });
    let mut body = Vec::new();
    churn_service::features::write_csv(&snapshot, &mut body).unwrap();
    clients
        .s3
        .put_object()
        .bucket(&bucket)
        .key("snap/p0.csv")
        .body(body.into())
        .send()
        .await
        .unwrap();
    let config = ServiceConfig {
        snapshot: Some(format!("s3://{bucket}/snap/")),
        ..ServiceConfig::default()
    };
    let services = Services::with_stores(
        config,
        models.clone(),
        flags.clone(),
        runs.clone(),
        flags.clone(),
    )
    .with_s3(clients.s3.clone());
    let item =
        json!({"Key": "snap/p0.csv", "Size": 1, "Etag": "\"x\"", "StorageClass": "STANDARD"});
    let out = run_event(&services, &item, &|_| {}).await.unwrap();
    assert_eq!(out.scored, 2000, "{out:?}");
    assert_eq!(out.written, 2000);
    assert_eq!(out.model_id, summary.model_id);
    let out = run_event(
        &services,
        &json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(out.written, 0, "unchanged rerun writes nothing: {out:?}");
    assert_eq!(out.skipped_unchanged, 2000);

    // The API reads those flags from DynamoDB.
    let api = ScoreApi::of(&services);
    let get = |uri: String| http::Request::get(uri).body(Bytes::new()).unwrap();
    let r = handle(api, get("/v1/risk-list?band=high&limit=3".into())).await;
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(v["flags"].as_array().unwrap().len(), 3, "{v}");
    let id = v["flags"][0]["customer_id"].as_str().unwrap().to_string();
    let r = handle(api, get(format!("/v1/customers/{id}"))).await;
    assert_eq!(r.status(), 200);
    let stored = flags.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.model_id, summary.model_id);

    let dir = tempfile::tempdir().unwrap();
    invalid_inputs::invalid_inputs_change_nothing(&services, dir.path()).await;
}
