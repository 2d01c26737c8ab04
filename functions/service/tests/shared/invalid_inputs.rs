//! One check run against both flag stores (SQLite in `handlers_local`,
//! DynamoDB on moto in `handlers_moto`): every invalid value or request is
//! refused with an error naming the field, row or column, and nothing already
//! stored changes because of it.

use bytes::Bytes;
use churn_model::{generate, SyntheticConfig};
use churn_service::flag::Flag;
use churn_service::handlers::rescore::{
    handle_rescore, RescoreSettings, RescoreStores, RunIdentity,
};
use churn_service::handlers::score_api::{handle, ScoreApi};
use churn_service::services::Services;
use serde_json::{json, Value};
use std::path::Path;

/// The stored flag of every id in `ids`.
async fn stored(services: &Services, ids: &[String]) -> Vec<Option<Flag>> {
    let mut out = Vec::new();
    for id in ids {
        out.push(services.flags.get(id).await.unwrap());
    }
    out
}

async fn rescore(
    services: &Services,
    model: &churn_service::handlers::model::ScoringModel,
    snapshot: &Path,
) -> churn_service::handlers::rescore::RescoreSummary {
    handle_rescore(
        &snapshot.display().to_string(),
        model,
        RescoreStores::of(services),
        RescoreSettings::from_config(&services.config),
        &RunIdentity::new_run(),
        &|_| {},
    )
    .await
    .unwrap()
}

async fn post(services: &Services, content_type: &str, body: &str) -> (u16, Value) {
    let api = ScoreApi::of(services);
    let request = http::Request::post("/v1/score")
        .header("content-type", content_type)
        .body(Bytes::from(body.to_string()))
        .unwrap();
    let response = handle(api, request).await;
    let v: Value = serde_json::from_slice(response.body()).unwrap();
    (response.status().as_u16(), v)
}

/// Rescoring a damaged snapshot and posting invalid requests leave the flags
/// of a first, valid run exactly as they were. `services` has a promoted model.
pub async fn invalid_inputs_change_nothing(services: &Services, dir: &Path) {
    let model = services.cache.refresh_now().await.unwrap().unwrap();
    let table = generate(&SyntheticConfig {
        customers: 200,
        seed: 77,
    });
    let mut csv = Vec::new();
    churn_service::features::write_csv(&table, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(&good, &text).unwrap();
    let first = rescore(services, &model.model, &good).await;
    // Written, or already stored from the caller's earlier runs.
    assert_eq!(first.scored, 200, "{first:?}");
    assert_eq!(first.written + first.skipped_unchanged, 200, "{first:?}");

    // Damage rows 1-3 (a negative count, an over-long id, a control
    // character in an id) and move every other row's logins, so a rerun
    // would rewrite them.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let header: Vec<String> = lines[0].split(',').map(str::to_string).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (id_col, logins) = (col("customer_id"), col("logins_30d"));
    let ids: Vec<String> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(id_col).unwrap().to_string())
        .collect();
    let before = stored(services, &ids[..3]).await;
    let mut set = |row: usize, column: usize, value: String| {
        let mut cells: Vec<String> = lines[row].split(',').map(str::to_string).collect();
        cells[column] = value;
        lines[row] = cells.join(",");
    };
    for row in 4..=200 {
        set(row, logins, "0".into());
    }
    set(1, logins, "-5".into());
    set(2, id_col, "x".repeat(300));
    set(3, id_col, "bad\u{1}id".into());
    let damaged = dir.join("damaged.csv");
    std::fs::write(&damaged, lines.join("\n") + "\n").unwrap();
    let second = rescore(services, &model.model, &damaged).await;
    assert_eq!(second.failed_rows_count, 3, "{:?}", second.failed_rows);
    // The valid rows were scored, and those whose score moved were rewritten.
    assert_eq!(second.scored, 197, "{second:?}");
    assert!(second.written > 0, "{second:?}");
    let rows: Vec<usize> = second.failed_rows.iter().map(|f| f.row).collect();
    assert_eq!(rows, [1, 2, 3]);
    let messages: Vec<&str> = second
        .failed_rows
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        messages[0].contains("logins_30d is -5; every training value was >= 0"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("customer_id") && messages[1].contains("300 bytes"),
        "{messages:?}"
    );
    assert!(messages[2].contains("control character"), "{messages:?}");
    assert_eq!(
        stored(services, &ids[..3]).await,
        before,
        "damaged rows changed flags"
    );
    let refused = ["x".repeat(300), "bad\u{1}id".to_string()];
    assert_eq!(stored(services, &refused).await, [None, None]);

    // The API: one bad customer refuses the whole request, persisted or not.
    let customer = |id: &str, logins: f64| json!({"customer_id": id, "features": {"logins_30d": logins, "tenure_months": 12}});
    let before = stored(services, &ids[3..5]).await;
    let body = json!({
        "customers": [customer(&ids[3], 1.0), customer(&ids[4], -3.0)],
        "persist": true
    });
    let (status, v) = post(services, "application/json", &body.to_string()).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["details"][0]["customer_id"], ids[4].as_str());
    assert_eq!(v["details"][0]["field"], "logins_30d");
    let long = "y".repeat(257);
    for (persist, id) in [
        (false, long.as_str()),
        (true, long.as_str()),
        (false, "a\nb"),
        (false, "  "),
    ] {
        let body = json!({"customers": [customer(id, 1.0)], "persist": persist});
        let (status, v) = post(services, "application/json", &body.to_string()).await;
        assert_eq!(status, 400, "{id:?}: {v}");
        assert_eq!(v["details"][0]["field"], "customers[0].customer_id", "{v}");
    }
    let body = json!({"customers": [customer(&ids[3], 1.0)], "persist": true}).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let (status, v) = post(services, content_type, &body).await;
        assert_eq!(status, 415, "{content_type}: {v}");
        assert_eq!(v["details"][0]["field"], "Content-Type");
    }
    assert_eq!(
        stored(services, &ids[3..5]).await,
        before,
        "refused requests changed flags"
    );
    // Parameters are allowed, and a value beyond the training range is
    // scored with a warning naming it.
    let body = json!({"customers": [customer(&ids[3], 1e6)], "persist": false}).to_string();
    let (status, v) = post(services, "application/json; charset=utf-8", &body).await;
    assert_eq!(status, 200, "{v}");
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    assert_eq!(warnings[0]["field"], "logins_30d");
    assert_eq!(warnings[0]["code"], "out_of_range");
    assert_eq!(warnings[0]["customer_id"], ids[3].as_str());
}
