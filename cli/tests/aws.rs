//! The AWS side of the CLI against a local moto_server: models in S3, flags
//! in DynamoDB, features read from an S3 prefix, all through the standard
//! credential chain and `AWS_ENDPOINT_URL`, as a deployed setup would be.
//!
//! Skipped (with a note) when no moto_server binary is found; `scripts/test.sh`
//! installs one in `.venv`.

use assert_cmd::Command;
use churn_service::flag_store::{DynamoFlagStore, FlagStore};
use churn_service::test_support::{unique_name, MotoServer};
use serde_json::Value;
use std::path::Path;

#[path = "support/cli.rs"]
mod cli;

fn churn(dir: &Path, endpoint: &str) -> Command {
    let mut cmd = Command::cargo_bin("churn").unwrap();
    cmd.current_dir(dir)
        .env_remove("CHURN_MODELS")
        .env_remove("CHURN_FLAGS")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("--quiet");
    cmd
}

fn ok_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_models_and_dynamodb_flags_end_to_end() {
    let moto = match MotoServer::start().await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    let endpoint = moto.endpoint_url();
    let clients = moto.clients().await;
    let bucket = clients.new_bucket("churn-cli").await;
    let table = unique_name("churn-cli-flags");
    DynamoFlagStore::new(clients.dynamodb.clone(), &table, 8)
        .create_table_if_missing()
        .await
        .unwrap();

    // Features: two parts under an S3 prefix.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    churn(d, &endpoint)
        .args([
            "generate",
            "--customers",
            "2400",
            "--seed",
            "3",
            "--out",
            "all.csv",
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(d.join("all.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    for (k, part) in rows.chunks(1200).enumerate() {
        let body = format!("{header}\n{}\n", part.join("\n"));
        clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(format!("snapshot/part-{k}.csv"))
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    let data = format!("s3://{bucket}/snapshot/");
    let models = format!("s3://{bucket}/models");
    let flags = format!("dynamodb://{table}");

    // An empty S3 model store is a user error.
    let out = churn(d, &endpoint)
        .args([
            "rescore", "--data", &data, "--models", &models, "--flags", &flags,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no model has been promoted"));

    let report = ok_json(
        churn(d, &endpoint).args(["train", "--data", &data, "--models", &models, "--json"]),
    );
    assert_eq!(report["promoted"], true);
    assert_eq!(report["rows"], 2400);
    let model_id = report["model_id"].as_str().unwrap().to_string();
    let head = clients
        .s3
        .head_object()
        .bucket(&bucket)
        .key(format!("models/{model_id}/model.json"))
        .send()
        .await;
    assert!(head.is_ok(), "artifact not in S3");
    // Training wrote the report beside it; `models report` writes the same page.
    let stored = clients
        .s3
        .get_object()
        .bucket(&bucket)
        .key(format!("models/{model_id}/report.html"))
        .send()
        .await
        .expect("report.html beside model.json")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    churn(d, &endpoint)
        .args([
            "models",
            "report",
            "--models",
            &models,
            "--out",
            "report.html",
        ])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(d.join("report.html")).unwrap(),
        stored.to_vec()
    );

    let listed = ok_json(
        churn(d, &endpoint).args(["models", "list", "--models", &models, "--format", "json"]),
    );
    assert_eq!(listed[0]["model_id"], model_id.as_str());
    assert_eq!(listed[0]["current"], true);

    let summary = ok_json(churn(d, &endpoint).args([
        "rescore", "--data", &data, "--models", &models, "--flags", &flags, "--json",
    ]));
    assert_eq!(summary["scored"], 2400);
    assert_eq!(summary["written"], 2400);
    assert_eq!(summary["write_failures_count"], 0);

    let list = ok_json(churn(d, &endpoint).args([
        "risk-list",
        "--flags",
        &flags,
        "--limit",
        "25",
        "--format",
        "json",
    ]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 25);
    let probs: Vec<f64> = list
        .iter()
        .map(|f| f["churn_probability"].as_f64().unwrap())
        .collect();
    assert!(
        probs.windows(2).all(|w| w[0] >= w[1]),
        "shards not merged in order: {probs:?}"
    );
    assert!(list
        .iter()
        .all(|f| f["risk_band"] == "high" && f["model_id"] == model_id.as_str()));

    churn(d, &endpoint)
        .args([
            "score",
            "--data",
            &data,
            "--models",
            &models,
            "--out",
            "scores.csv",
        ])
        .assert()
        .success();
    let scores = std::fs::read_to_string(d.join("scores.csv")).unwrap();
    assert_eq!(scores.lines().count(), 2401);

    // The web pages over the same S3 models and DynamoDB flags.
    let mut serve = std::process::Command::new(assert_cmd::cargo::cargo_bin("churn"));
    serve
        .current_dir(d)
        .env_remove("CHURN_SERVE_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "--quiet",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--models",
            &models,
            "--flags",
            &flags,
        ]);
    let server = cli::Server::spawn(serve);
    let get = |path: &str| {
        let (status, _, body) = cli::http_raw(&server.addr, "GET", path, "");
        (status, body)
    };
    let (status, api) = get("/v1/risk-list?band=at-risk&sort=value&limit=50");
    assert_eq!(status, 200, "{api}");
    let api: Value = serde_json::from_str(&api).unwrap();
    let ids: Vec<&str> = api["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 50);
    let (status, page) = get("/?band=at-risk&sort=value&limit=50");
    assert_eq!(status, 200, "{page}");
    let rows: Vec<&str> = page
        .split("<tr data-customer-id=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(rows, ids, "the page's rows are the API's, in its order");
    let (status, customer) = get(&format!("/customers/{}", ids[0]));
    assert_eq!(status, 200);
    assert!(customer.contains("id=\"reasons-chart\"") && customer.contains("id=\"ack-form\""));
    let (status, model) = get("/model");
    assert_eq!(status, 200);
    assert!(model.contains("id=\"roc-chart\"") && model.contains(&model_id[..12]));
}
