//! The monitoring routes: `GET /v1/runs` (the latest runs, newest first),
//! `GET /v1/runs/{run_id}` (one run with its per-feature check) and
//! `GET /v1/outcomes/report` (the latest realised-accuracy report, or with
//! `?model_id=` the latest covering that model).

use super::{check_query, number_param, ApiError, ScoreApi};
use crate::run_record::validate_run_id;
use http::StatusCode;
use serde_json::{json, Value};

/// Runs per `GET /v1/runs` when `limit` is absent.
pub const DEFAULT_RUNS: usize = 20;

/// The query of `GET /v1/runs`.
#[derive(Debug, serde::Deserialize)]
struct RunsQuery {
    limit: Option<String>,
}

/// The query of `GET /v1/outcomes/report`.
#[derive(Debug, serde::Deserialize)]
struct OutcomesQuery {
    model_id: Option<String>,
}

fn query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    check_query(query)?;
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "query", e.to_string()))
}

pub(super) async fn runs(api: ScoreApi<'_>, text: &str) -> Result<(StatusCode, Value), ApiError> {
    let params: RunsQuery = query(text)?;
    let limit = number_param(
        "limit",
        params.limit.as_deref(),
        1..=crate::run_store::MAX_LISTED_RUNS,
    )?
    .unwrap_or(DEFAULT_RUNS);
    let runs = api.runs.runs(limit).await.map_err(ApiError::service)?;
    let listed: Vec<_> = runs.iter().map(|r| r.summary()).collect();
    Ok((StatusCode::OK, json!({ "runs": listed })))
}

pub(super) async fn run(api: ScoreApi<'_>, run_id: &str) -> Result<(StatusCode, Value), ApiError> {
    validate_run_id(run_id).map_err(|m| ApiError::field(StatusCode::BAD_REQUEST, "run_id", m))?;
    match api.runs.run(run_id).await.map_err(ApiError::service)? {
        Some(record) => Ok((
            StatusCode::OK,
            serde_json::to_value(&record).unwrap_or(Value::Null),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run {run_id:?} is recorded"),
        )),
    }
}

pub(super) async fn outcomes(
    api: ScoreApi<'_>,
    text: &str,
) -> Result<(StatusCode, Value), ApiError> {
    let params: OutcomesQuery = query(text)?;
    let model_id = params.model_id.filter(|m| !m.is_empty());
    if let Some(m) = &model_id {
        crate::model_store::validate_model_id(m).map_err(|e| match e {
            crate::Error::InvalidInput { message, .. } => {
                ApiError::field(StatusCode::BAD_REQUEST, "model_id", message)
            }
            other => ApiError::service(other),
        })?;
    }
    match api
        .runs
        .outcomes(model_id.as_deref())
        .await
        .map_err(ApiError::service)?
    {
        Some(record) => Ok((
            StatusCode::OK,
            serde_json::to_value(&record).unwrap_or(Value::Null),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            match model_id {
                Some(m) => format!("no outcomes report covers model {m}; run `churn outcomes`"),
                None => "no outcomes report yet; run `churn outcomes`".to_string(),
            },
        )),
    }
}
