//! The real `churn-train`, `churn-score` and `churn-rescore` binaries, run
//! through the Lambda Runtime API emulator against moto_server (S3 +
//! DynamoDB): a training event on an S3 object, Function URL events, an
//! EventBridge scheduled event and a sharded run (shards, one refused by
//! the snapshot check, then `finish_run`), with assertions on the responses, on the
//! model store in S3 and on the flags stored in DynamoDB, and on the
//! CloudWatch EMF document each invocation writes to stdout.
//!
//! The binaries are built by the test itself (`cargo build --workspace
//! --bins`, a no-op when up to date), see `churn_e2e::binaries`.

use churn_e2e::binaries::function_binary;
use churn_e2e::function::{
    aws_env, function_url_event, http_response, scheduled_event, spawn_function,
};
use churn_e2e::runtime_api::{Outcome, RuntimeApi};
use churn_model::{generate, SyntheticConfig};
use churn_service::features::write_table;
use churn_service::flag_store::{DynamoFlagStore, FlagStore};
use churn_service::model_store::{ModelStore, S3ModelStore};
use churn_service::test_support::{unique_name, MotoServer, Receiver};
use serde_json::{json, Value};
use std::time::Duration;

const BUCKET: &str = "churn-e2e";
const TABLE: &str = "churn-flags";
/// Longest wait for one invocation. The first rescore records an event for
/// every at-risk customer (about 900 here: a put of its own item and an
/// update of its flag each, then three delivery marks), and moto serves a
/// few hundred requests a second: that run takes over a minute.
const TIMEOUT: Duration = Duration::from_secs(240);

fn customer(id: &str, logins: f64) -> Value {
    json!({"customer_id": id, "features": {
        "logins_30d": logins, "active_days_30d": 2, "sessions_30d": 3, "tenure_months": 4,
        "plan": "basic", "support_tickets_90d": 5, "days_since_last_login": 30
    }})
}

async fn invoke_http(
    api: &RuntimeApi,
    method: &str,
    path: &str,
    query: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let out = invoke_json(api, &function_url_event(method, path, query, body)).await;
    http_response(&out).unwrap()
}

/// Invokes `api` with `event`; the function's JSON response.
async fn invoke_json(api: &RuntimeApi, event: &Value) -> Value {
    api.invoke(event, TIMEOUT).await.unwrap().json().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_score_and_rescore_binaries_against_moto() {
    let train_bin = function_binary("churn-train", "churn-train").unwrap();
    let score_bin = function_binary("churn-score", "churn-score").unwrap();
    let rescore_bin = function_binary("churn-rescore", "churn-rescore").unwrap();
    let moto = MotoServer::start().await.unwrap();
    let clients = moto.clients().await;
    let s3 = clients.s3.clone();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let flags = DynamoFlagStore::new(clients.dynamodb.clone(), TABLE, 8);
    flags.create_table_if_missing().await.unwrap();

    let mut env = aws_env(&moto.endpoint_url());
    env.push(("CHURN_MODELS", format!("s3://{BUCKET}/models")));
    env.push(("CHURN_FLAGS", format!("dynamodb://{TABLE}")));
    env.push(("CHURN_SNAPSHOT", format!("s3://{BUCKET}/snapshots/latest/")));

    // --- train: a training event on an S3 object promotes the first model ---
    let dir = tempfile::tempdir().unwrap();
    let train_csv = dir.path().join("train.csv");
    write_table(
        &generate(&SyntheticConfig {
            customers: 3000,
            seed: 3,
        }),
        &train_csv,
    )
    .unwrap();
    s3.put_object()
        .bucket(BUCKET)
        .key("training/customers.csv")
        .body(std::fs::read(&train_csv).unwrap().into())
        .send()
        .await
        .unwrap();
    let train_api = RuntimeApi::start().await.unwrap();
    let train = spawn_function(&train_bin, "churn-train", &train_api, &env).unwrap();
    let trained = invoke_json(
        &train_api,
        &json!({"features": format!("s3://{BUCKET}/training/customers.csv")}),
    )
    .await;
    assert_eq!(trained["promoted"], true, "{trained}");
    assert_eq!(trained["rows"], 3000, "{trained}");
    assert!(
        trained["metrics"]["roc_auc"].as_f64().unwrap() > 0.6,
        "{trained}"
    );
    let model_id = trained["model_id"].as_str().unwrap().to_string();
    let models = S3ModelStore::new(s3.clone(), BUCKET, "models");
    let pointer = models.current_pointer().await.unwrap().unwrap();
    assert_eq!(pointer.model_id, model_id);
    let docs = train.emf_documents(1, TIMEOUT).await.unwrap();
    assert_emf(&docs[0], "train", "req-00000001", 1);
    assert_eq!(docs[0]["RowsRead"], 3000, "{}", docs[0]);
    assert_eq!(docs[0]["Promoted"], 1, "{}", docs[0]);
    assert_eq!(docs[0]["HoldoutAuc"], trained["metrics"]["roc_auc"]);
    // Training on a missing object is that invocation's error: nothing stored
    // changes and the process keeps serving.
    let missing = train_api
        .invoke(
            &json!({"features": format!("s3://{BUCKET}/training/nope.csv")}),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_error_type(&missing, "ChurnInputError");
    assert_eq!(
        models.current_pointer().await.unwrap().unwrap().model_id,
        model_id
    );

    // A two-part snapshot; the second part has one row with a word in a numeric column.
    let snapshot = generate(&SyntheticConfig {
        customers: 3000,
        seed: 4,
    });
    let csv = dir.path().join("snap.csv");
    write_table(&snapshot, &csv).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines[0];
    let logins = header.split(',').position(|h| h == "logins_30d").unwrap();
    let mut bad: Vec<String> = lines[2500].split(',').map(str::to_string).collect();
    bad[logins] = "plenty".into();
    let part1 = format!("{header}\n{}\n", lines[1..2001].join("\n"));
    let part2 = format!(
        "{header}\n{}\n{}\n{}\n",
        lines[2001..2500].join("\n"),
        bad.join(","),
        lines[2501..].join("\n")
    );
    for (key, body) in [
        ("snapshots/latest/part-0001.csv", part1),
        ("snapshots/latest/part-0002.csv", part2),
    ] {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    }

    // --- score: Function URL events ---
    let score_api = RuntimeApi::start().await.unwrap();
    let score = spawn_function(&score_bin, "churn-score", &score_api, &env).unwrap();
    let body = json!({"customers": [customer("u1", 0.0), customer("u2", 40.0)], "persist": true})
        .to_string();
    let (status, v) = invoke_http(&score_api, "POST", "/v1/score", "", Some(&body)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model_id"], model_id.as_str());
    assert_eq!(v["scores"].as_array().unwrap().len(), 2);
    assert_eq!(v["persisted"]["written"], 2);
    let docs = score.emf_documents(1, TIMEOUT).await.unwrap();
    assert_emf(&docs[0], "score", "req-00000001", 1);
    assert_eq!(docs[0]["RowsRead"], 2, "{}", docs[0]);
    assert_eq!(docs[0]["RowsScored"], 2, "{}", docs[0]);
    assert_eq!(docs[0]["RowsWritten"], 2, "{}", docs[0]);
    assert_eq!(docs[0]["NewlyAtRisk"], v["persisted"]["newly_at_risk"]);
    let (status, v) = invoke_http(&score_api, "GET", "/v1/customers/u1", "", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["customer_id"], "u1");
    let (status, _) = invoke_http(&score_api, "GET", "/v1/customers/nobody", "", None).await;
    assert_eq!(status, 404);
    let (status, v) = invoke_http(
        &score_api,
        "POST",
        "/v1/score",
        "",
        Some("{\"customers\": 3"),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = invoke_http(
        &score_api,
        "POST",
        "/v1/score",
        "",
        Some(r#"{"customers": []}"#),
    )
    .await;
    assert_eq!(status, 400, "{v}");

    // --- rescore: EventBridge scheduled event over the configured prefix ---
    // The rescore function tells a signed webhook (its URL and key in a
    // Secrets Manager secret, as the template deploys it) and an event bus.
    let hook = Receiver::start().await.unwrap();
    let bus = unique_name("risk");
    clients
        .events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let secret = clients
        .secrets
        .create_secret()
        .name(unique_name("notify"))
        .secret_string(
            json!({"webhook_url": hook.url("/crm"), "webhook_secret": "e2e-secret"}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let mut rescore_env = env.clone();
    rescore_env.push(("CHURN_NOTIFY_SECRET_ARN", secret.arn().unwrap().to_string()));
    rescore_env.push(("CHURN_NOTIFY_EVENT_BUS", bus.clone()));
    rescore_env.push(("CHURN_NOTIFY_DEADLINE_SECS", "120".into()));
    let rescore_api = RuntimeApi::start().await.unwrap();
    let rescore =
        spawn_function(&rescore_bin, "churn-rescore", &rescore_api, &rescore_env).unwrap();
    let summary = invoke_json(&rescore_api, &scheduled_event()).await;
    // Every at-risk customer is new: one event each, delivered before the
    // invocation answered, to both destinations.
    let became = summary["events"]["became_at_risk"].as_u64().unwrap();
    assert!(became > 0, "{summary}");
    for d in summary["notify"]["destinations"].as_array().unwrap() {
        assert_eq!(
            (d["delivered"].as_u64(), d["pending"].as_u64()),
            (Some(became), Some(0)),
            "{d}"
        );
    }
    let mut sent = 0;
    for r in hook.accepted() {
        let sig = r.header("x-churn-signature").unwrap();
        assert!(churn_service::notify::webhook::verify(
            "e2e-secret",
            &r.body,
            &sig
        ));
        sent += r.json()["events"].as_array().unwrap().len() as u64;
    }
    assert_eq!(sent, became);
    assert_eq!(summary["rows"], 3000, "{summary}");
    assert_eq!(summary["scored"], 2999, "{summary}");
    assert_eq!(summary["failed_rows_count"], 1, "{summary}");
    let failed = &summary["failed_rows"][0];
    assert_eq!(failed["row"], 500, "{summary}");
    assert!(
        failed["part"].as_str().unwrap().ends_with("part-0002.csv"),
        "{summary}"
    );
    assert!(
        failed["message"].as_str().unwrap().contains("logins_30d"),
        "{summary}"
    );
    assert_eq!(summary["written"], 2999, "{summary}");
    assert_eq!(summary["model_id"], model_id.as_str());

    // The flags are in DynamoDB.
    let ids = match &snapshot.column("customer_id").unwrap().values {
        churn_model::ColumnValues::Text(v) => v.clone(),
        _ => panic!("ids are text"),
    };
    let stored = flags
        .get(ids[0].as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.model_id, model_id);
    assert!(
        flags
            .get(ids[2499].as_deref().unwrap())
            .await
            .unwrap()
            .is_none(),
        "the bad row is not written"
    );

    // The risk list through the score function, highest first.
    let (status, v) = invoke_http(
        &score_api,
        "GET",
        "/v1/risk-list",
        "band=high&limit=5",
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let probs: Vec<f64> = v["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["churn_probability"].as_f64().unwrap())
        .collect();
    assert_eq!(probs.len(), 5, "{v}");
    assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");

    // A second scheduled run in the warm process: nothing changed, nothing written.
    let again = invoke_json(&rescore_api, &scheduled_event()).await;
    assert_eq!(again["written"], 0, "{again}");
    assert_eq!(again["skipped_unchanged"], 2999, "{again}");

    // A missing snapshot is an invocation error, and the process keeps serving.
    let missing = rescore_api
        .invoke(
            &json!({"snapshot": format!("s3://{BUCKET}/nope.csv")}),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_error_type(&missing, "ChurnInputError");
    let one = invoke_json(
        &rescore_api,
        &json!({"snapshot": format!("s3://{BUCKET}/snapshots/latest/part-0001.csv")}),
    )
    .await;
    assert_eq!(one["scored"], 2000, "{one}");

    // One EMF line per invocation, with the summary's counts; a cold start
    // only on the first.
    let docs = rescore.emf_documents(4, TIMEOUT).await.unwrap();
    assert_eq!(docs.len(), 4, "{docs:?}");
    for (i, doc) in docs.iter().enumerate() {
        assert_emf(
            doc,
            "rescore",
            &format!("req-{:08}", i + 1),
            usize::from(i == 0),
        );
    }
    for (key, value) in [
        ("RowsRead", &summary["rows"]),
        ("RowsScored", &summary["scored"]),
        ("RowsWritten", &summary["written"]),
        ("RowsFailed", &summary["failed_rows_count"]),
        ("NewlyAtRisk", &summary["newly_at_risk"]),
        ("WriteFailures", &summary["write_failures_count"]),
    ] {
        assert_eq!(&docs[0][key], value, "{key}: {}", docs[0]);
    }
    assert_eq!(docs[0]["RowsFailed"], 1);
    assert!(docs[0]["NewlyAtRisk"].as_u64().unwrap() > 0, "{}", docs[0]);
    assert_eq!(docs[1]["RowsWritten"], 0, "{}", docs[1]);
    assert_eq!(docs[1]["NewlyAtRisk"], 0, "{}", docs[1]);
    // The failed invocation: duration and cold start only.
    assert!(docs[2].get("RowsRead").is_none(), "{}", docs[2]);
    assert_eq!(docs[3]["RowsScored"], 2000, "{}", docs[3]);
    assert_eq!(docs[0]["RefusedRuns"], 0, "{}", docs[0]);
    assert!(docs[0]["MaxPsi"].as_f64().unwrap() < 0.1, "{}", docs[0]);

    // --- a sharded run as the Distributed Map drives it: one shard in cents ---
    let mrr = header.split(',').position(|h| h == "mrr").unwrap();
    let cents: Vec<String> = lines[1001..2001]
        .iter()
        .map(|l| {
            let mut cells: Vec<String> = l.split(',').map(str::to_string).collect();
            if let Ok(x) = cells[mrr].parse::<f64>() {
                cells[mrr] = (x * 100.0).to_string();
            }
            cells.join(",")
        })
        .collect();
    for (key, body) in [
        (
            "snapshots/sharded/a.csv",
            format!("{header}\n{}\n", lines[1..1001].join("\n")),
        ),
        (
            "snapshots/sharded/b.csv",
            format!("{header}\n{}\n", cents.join("\n")),
        ),
    ] {
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    let b_ids: Vec<String> = lines[1001..2001]
        .iter()
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let mut before = Vec::new();
    for id in &b_ids {
        before.push(flags.get(id).await.unwrap());
    }
    let shard = |key: &str| json!({"Key": key, "BatchInput": {"bucket": BUCKET, "run_id": "exec-e2e", "force": false}, "shard": true});
    let a = invoke_json(&rescore_api, &shard("snapshots/sharded/a.csv")).await;
    assert_eq!(a["run_id"], "exec-e2e", "{a}");
    assert_eq!(a["shard"], true, "{a}");
    let refused = rescore_api
        .invoke(&shard("snapshots/sharded/b.csv"), TIMEOUT)
        .await
        .unwrap();
    let Outcome::Error(body) = &refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    let error: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(error["errorType"], "ChurnInputError", "{error}");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("snapshot refused: ") && message.contains("mrr"),
        "{message}"
    );
    let mut after = Vec::new();
    for id in &b_ids {
        after.push(flags.get(id).await.unwrap());
    }
    assert_eq!(after, before, "the refused shard changed flags");
    let finished = invoke_json(&rescore_api, &json!({"finish_run": "exec-e2e"})).await;
    assert_eq!(finished["status"], "refuse", "{finished}");
    assert_eq!(
        (
            finished["shards"].clone(),
            finished["refused_shards"].clone()
        ),
        (json!(2), json!(1))
    );
    assert_eq!(finished["forced"], false);
    // The run's record, in the model bucket where the template grants it.
    let record = s3
        .get_object()
        .bucket(BUCKET)
        .key("runs/exec-e2e.json")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let record: Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(record["shards"]["refused"], 1, "{record}");
    assert_eq!(record["counts"]["rows"], 2000, "{record}");
    assert_eq!(
        record["shards"]["refused_snapshots"][0],
        format!("s3://{BUCKET}/snapshots/sharded/b.csv")
    );
    // The run reports one refusal and its drift, from its finish; the
    // shards their rows.
    let docs = rescore.emf_documents(7, TIMEOUT).await.unwrap();
    let (ok, no, finish) = (&docs[4], &docs[5], &docs[6]);
    for shard in [ok, no] {
        assert!(
            shard.get("RefusedRuns").is_none() && shard.get("MaxPsi").is_none(),
            "{shard}"
        );
    }
    assert_eq!(no["RowsRead"], 1000, "{no}");
    assert_eq!(finish["RefusedRuns"], 1, "{finish}");
    assert!(finish["MaxPsi"].as_f64().unwrap() > 0.25, "{finish}");
    assert_eq!(docs[0]["EventsRecorded"], became, "{}", docs[0]);
    assert_eq!(docs[0]["EventsDelivered"], 2 * became, "{}", docs[0]);

    // The state machine's notify step after the map: nothing is left.
    let notified = invoke_json(&rescore_api, &json!({"notify_run": "exec-e2e"})).await;
    assert_eq!(notified["run_id"], "exec-e2e", "{notified}");
    assert_eq!(notified["pending"], 0, "{notified}");
    assert_eq!(notified["failures"], json!([]), "{notified}");
    let docs = rescore.emf_documents(8, TIMEOUT).await.unwrap();
    assert_eq!(docs[7]["EventsPending"], 0, "{}", docs[7]);
}

/// An EMF document of `function` for `request_id`, every declared metric a
/// number at the top level, with a duration and the expected cold start.
fn assert_emf(doc: &Value, function: &str, request_id: &str, cold_start: usize) {
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "ChurnRisk", "{doc}");
    assert_eq!(directive["Dimensions"], json!([["function"]]), "{doc}");
    assert_eq!(doc["function"], function, "{doc}");
    assert_eq!(doc["requestId"], request_id, "{doc}");
    for metric in directive["Metrics"].as_array().unwrap() {
        let name = metric["Name"].as_str().unwrap();
        assert!(doc[name].is_number(), "{name} is not a number: {doc}");
    }
    assert!(doc["Duration"].as_f64().unwrap() > 0.0, "{doc}");
    assert_eq!(doc["ColdStart"], cold_start, "{doc}");
}

/// An invocation error whose Runtime API `errorType` is `expected` (what
/// the state machine's Retry and Catch clauses match).
fn assert_error_type(outcome: &Outcome, expected: &str) {
    let Outcome::Error(body) = outcome else {
        panic!("expected an invocation error, got {outcome:?}");
    };
    let error: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(error["errorType"], expected, "{error}");
    assert!(
        error["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("nope")),
        "{error}"
    );
}
