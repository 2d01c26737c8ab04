//! Operational signals of real handler runs against the local adapters
//! (model directory, SQLite): the EMF document of an invocation reports the
//! counts of the handler's own summary, and every log line of an invocation,
//! including those written on the blocking reader threads, carries the
//! Lambda request id of the runtime's invocation span.

use bytes::Bytes;
use churn_model::{generate, SyntheticConfig};
use churn_service::config::ServiceConfig;
use churn_service::flag_store::{FlagStore, SqliteFlagStore};
use churn_service::handlers::rescore::run_event;
use churn_service::handlers::score_api::{handle_counted, ScoreApi};
use churn_service::handlers::train::{handle_train, Gate};
use churn_service::metrics::{self, measured, Document, Function};
use churn_service::model_store::{DirModelStore, ModelStore};
use churn_service::services::Services;
use churn_service::test_support::logs::{this_thread_id, CapturedLogs};
use http::Request;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

const GATE: Gate = Gate {
    min_auc: 0.60,
    max_auc_drop: 0.01,
};

#[path = "shared/requests.rs"]
mod requests;
use requests::{train_request, write_csv};

async fn services(dir: &Path) -> Services {
    let models: Arc<dyn ModelStore> = Arc::new(DirModelStore::new(dir.join("models")));
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    let flags: Arc<dyn FlagStore> = store.clone();
    let config = ServiceConfig {
        model_refresh: Duration::from_secs(0),
        ..ServiceConfig::default()
    };
    Services::with_stores(config, models, flags, store.clone(), store)
}

/// A snapshot of `customers` rows whose row 10 has a word in a numeric column.
fn snapshot_with_a_bad_row(dir: &Path, customers: usize) -> PathBuf {
    let csv = write_csv(
        dir,
        "snapshot.csv",
        &generate(&SyntheticConfig { customers, seed: 9 }),
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let logins = header.iter().position(|h| *h == "logins_30d").unwrap();
    let mut cells: Vec<String> = lines[10].split(',').map(str::to_string).collect();
    cells[logins] = "lots".into();
    lines[10] = cells.join(",");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    csv
}

/// The document's value of `name`, as CloudWatch would extract it: a number
/// at the top level, declared in the directive.
fn value(doc: &Document, name: &str) -> f64 {
    let json = doc.to_json();
    let declared = json["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["Name"] == name);
    assert!(declared, "{name} not declared: {json}");
    json[name]
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: {json}"))
}

fn declared_names(doc: &Document) -> Vec<String> {
    doc.to_json()["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn emf_documents_report_the_handlers_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let services = services(dir.path()).await;

    // train
    let table = generate(&SyntheticConfig {
        customers: 3000,
        seed: 5,
    });
    let train_csv = write_csv(dir.path(), "train.csv", &table);
    let request = train_request(&train_csv);
    let (trained, doc) = measured(
        Function::Train,
        "req-train",
        handle_train(&request, services.models.as_ref(), &services.sources, GATE),
    )
    .await;
    let trained = trained.unwrap();
    assert!(trained.promoted, "{}", trained.reason);
    assert_eq!(doc.to_json()["function"], "train");
    assert_eq!(doc.to_json()["requestId"], "req-train");
    assert_eq!(value(&doc, metrics::ROWS_READ), trained.rows as f64);
    assert_eq!(value(&doc, metrics::HOLDOUT_AUC), trained.metrics.roc_auc);
    assert_eq!(value(&doc, metrics::PROMOTED_AUC), trained.metrics.roc_auc);
    assert_eq!(value(&doc, metrics::PROMOTED), 1.0);
    assert!(value(&doc, metrics::DURATION) > 0.0);
    // The first invocation measured in this process (no other test here measures).
    assert_eq!(value(&doc, metrics::COLD_START), 1.0);

    // rescore: one bad row, then an unchanged rerun
    let snapshot = snapshot_with_a_bad_row(dir.path(), 5000);
    let event = json!({"snapshot": snapshot.display().to_string()});
    for run in ["first", "rerun"] {
        let (summary, doc) = measured(
            Function::Rescore,
            run,
            run_event(&services, &event, &|_| {}),
        )
        .await;
        let summary = summary.unwrap();
        assert_eq!(summary.failed_rows_count, 1, "{run}");
        assert_eq!(doc.to_json()["function"], "rescore");
        for (name, expected) in [
            (metrics::ROWS_READ, summary.rows),
            (metrics::ROWS_SCORED, summary.scored),
            (metrics::ROWS_WRITTEN, summary.written),
            (metrics::ROWS_FAILED, summary.failed_rows_count),
            (metrics::NEWLY_AT_RISK, summary.newly_at_risk),
            (metrics::WRITE_FAILURES, summary.write_failures_count),
            (metrics::OUT_OF_RANGE_ROWS, summary.out_of_range_rows),
        ] {
            assert_eq!(value(&doc, name), expected as f64, "{run}: {name}");
        }
        if run == "first" {
            assert_eq!(summary.rows, 5000);
            assert!(summary.newly_at_risk > 0);
        } else {
            assert_eq!(summary.written, 0);
            assert_eq!(value(&doc, metrics::NEWLY_AT_RISK), 0.0);
        }
        // Not the first invocation of this process.
        assert_eq!(value(&doc, metrics::COLD_START), 0.0);
    }

    // score: two customers persisted, then a request with an invalid entry
    let api = ScoreApi::of(&services);
    let customer = |id: &str, logins: u32| json!({"customer_id": id, "features": {"logins_30d": logins, "tenure_months": 3}});
    let post = |body: Value| {
        Request::builder()
            .method("POST")
            .uri("/v1/score")
            .header("content-type", "application/json")
            .body(Bytes::from(body.to_string()))
            .unwrap()
    };
    let body = json!({"customers": [customer("new-1", 0), customer("new-2", 40)], "persist": true});
    let ((response, _), doc) = measured(
        Function::Score,
        "req-score",
        handle_counted(api, post(body)),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(value(&doc, metrics::ROWS_READ), 2.0);
    assert_eq!(value(&doc, metrics::ROWS_SCORED), 2.0);
    assert_eq!(value(&doc, metrics::ROWS_FAILED), 0.0);
    assert_eq!(
        value(&doc, metrics::ROWS_WRITTEN),
        body["persisted"]["written"].as_f64().unwrap()
    );
    assert_eq!(
        value(&doc, metrics::NEWLY_AT_RISK),
        body["persisted"]["newly_at_risk"].as_f64().unwrap()
    );

    let mut wrong = customer("c2", 1);
    wrong["features"]["logins_30d"] = json!("many");
    let body = json!({"customers": [customer("c1", 1), wrong, customer("c3", 2)]});
    let ((response, _), doc) =
        measured(Function::Score, "req-bad", handle_counted(api, post(body))).await;
    assert_eq!(response.status(), 400);
    assert_eq!(value(&doc, metrics::ROWS_READ), 3.0);
    assert_eq!(value(&doc, metrics::ROWS_FAILED), 1.0);
    assert_eq!(value(&doc, metrics::ROWS_SCORED), 0.0);

    // A GET reports no row metrics, only duration and cold start.
    let get = Request::builder()
        .uri("/v1/customers/new-1")
        .body(Bytes::new())
        .unwrap();
    let ((response, _), doc) = measured(Function::Score, "req-get", handle_counted(api, get)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        declared_names(&doc),
        [metrics::DURATION, metrics::COLD_START]
    );
}

/// The span the Lambda runtime opens around each invocation (the runtime's
/// own constructor, so a renamed field would show here).
fn invocation_span(request_id: &str) -> tracing::Span {
    let mut context = lambda_runtime::Context::default();
    context.request_id = request_id.to_string();
    context.xray_trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into());
    lambda_runtime::layers::trace::request_span(&context)
}

/// Every line carries `request_id` in its span list.
fn assert_all_carry(lines: &[Value], request_id: &str) {
    assert!(!lines.is_empty());
    for line in lines {
        let spans = line["spans"].as_array();
        assert!(
            spans.is_some_and(|s| s.iter().any(|s| s["requestId"] == request_id)),
            "a log line without the request id {request_id}: {line}"
        );
    }
}

#[tokio::test]
async fn log_lines_of_reader_threads_carry_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let services = services(dir.path()).await;
    let train_csv = write_csv(
        dir.path(),
        "train.csv",
        &generate(&SyntheticConfig {
            customers: 3000,
            seed: 5,
        }),
    );
    let snapshot = snapshot_with_a_bad_row(dir.path(), 4000);
    let (logs, _guard) = CapturedLogs::install();
    let test_thread = this_thread_id();

    // Training: the whole-table reader parses on the blocking pool.
    let request = train_request(&train_csv);
    let trained = handle_train(&request, services.models.as_ref(), &services.sources, GATE)
        .instrument(invocation_span("req-train"))
        .await
        .unwrap();
    assert!(trained.promoted);
    let train_lines = logs.lines();
    assert_all_carry(&train_lines, "req-train");
    let parts: Vec<&Value> = train_lines
        .iter()
        .filter(|l| l["fields"]["message"] == "part read")
        .collect();
    assert_eq!(parts.len(), 1, "{train_lines:?}");
    assert_eq!(parts[0]["fields"]["rows"], 3000);
    assert_ne!(
        parts[0]["threadId"],
        test_thread.as_str(),
        "read on the blocking pool"
    );

    // Rescoring: the stream reads on its own blocking thread, the SQLite
    // store writes on the blocking pool.
    let event = json!({"snapshot": snapshot.display().to_string()});
    let summary = run_event(&services, &event, &|_| {})
        .instrument(invocation_span("req-rescore"))
        .await
        .unwrap();
    assert_eq!(summary.rows, 4000);
    let rescore_lines: Vec<Value> = logs.lines().split_off(train_lines.len());
    assert_all_carry(&rescore_lines, "req-rescore");
    let part = logs.with_message("part read").pop().unwrap();
    assert_eq!(part["fields"]["rows"], 4000, "{part}");
    assert_eq!(part["span"]["requestId"], "req-rescore", "{part}");
    assert_ne!(part["threadId"], test_thread.as_str(), "{part}");
    let done = logs.with_message("rescore done").pop().unwrap();
    assert_eq!(done["span"]["requestId"], "req-rescore", "{done}");
}
