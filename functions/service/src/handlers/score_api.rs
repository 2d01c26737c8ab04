//! The score HTTP API as one function from request to response, so the
//! Lambda (`lambda_http`, Function URL / API Gateway) and `churn serve`
//! answer identically.
//!
//! Routes:
//! - `POST /v1/score` `{"customers":[{"customer_id","features":{..}}],"persist":false}`
//! - `GET /v1/customers/{id}`: the flag with attributes, history, trend,
//!   days in band and acknowledgement
//! - `POST /v1/customers/{id}/ack` `{"by","note","until"?}`, `DELETE /v1/customers/{id}/ack`
//! - `GET /v1/risk-list?band=high|medium|at-risk&owner=..&segment=..&renewal_within_days=N
//!   &unacknowledged=true&sort=probability|value|renewal|rising&limit=100&cursor=..`
//! - `GET /v1/summary?by=band|owner|segment`
//! - `GET /v1/runs?limit=20`, `GET /v1/runs/{run_id}`, `GET /v1/outcomes/report?model_id=..`
//!   (run records and the realised-accuracy report; module `runs`)
//!
//! Errors are `{"error": "...", "details": [{"customer_id"|"field", "message"}]}`:
//! 400 malformed or invalid input, 413 body or batch too large, 404 unknown
//! route or customer, 405 wrong method, 415 a body that is not
//! `application/json`, 503 no promoted model or a store outage, 500 broken
//! stored state (an artifact that does not verify). Statuses of store
//! failures follow the error's kind (`Error::kind`). Bad input never yields
//! a 5xx. Feature values are never logged.
//!
//! The request rules are the product's, not this module's: customer ids pass
//! [`churn_model::customer_id`] (as every snapshot row does), feature values
//! pass the scorer's domain rule (a negative value where training saw none is
//! a 400 naming the field). A score response lists, in `warnings`, every
//! value that was valid but outside its feature's training range.
//!
//! Account attributes: a customer's `features` may carry the model's
//! attribute columns (by column name, as in a snapshot; see
//! `churn_model::attributes`). They are no features and not counted as
//! ignored fields; with `"persist": true` they are stored on the flag, and a
//! value that does not parse is stored as null with a warning (code
//! `invalid_attribute`), the customer still scored.

use crate::config::ServiceConfig;
use crate::error::Error;
use crate::flag::{Acknowledgement, CustomerRecord, Flag};
use crate::flag_store::{BandFilter, FlagStore, ListQuery, ListSort, SummaryBy, MAX_PAGE_LIMIT};
use crate::handlers::model::ScoringModel;
use crate::model_store::ModelCache;

mod runs;
use bytes::Bytes;
use churn_model::scoring::json_type;
use churn_model::ErrorKind;
use http::{header, Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Every route, as (method, path template). `docs/openapi.yaml` describes
/// exactly these (the CLI's OpenAPI test checks both ways).
pub const ROUTES: [(&str, &str); 9] = [
    ("POST", "/v1/score"),
    ("GET", "/v1/customers/{id}"),
    ("POST", "/v1/customers/{id}/ack"),
    ("DELETE", "/v1/customers/{id}/ack"),
    ("GET", "/v1/risk-list"),
    ("GET", "/v1/summary"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{run_id}"),
    ("GET", "/v1/outcomes/report"),
];

/// Most customers per `POST /v1/score`.
pub const MAX_CUSTOMERS: usize = 1000;
/// Largest request body accepted (Lambda's synchronous payload limit is 6 MB).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Risk-list page size when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 100;

/// What the API needs.
#[derive(Clone, Copy)]
pub struct ScoreApi<'a> {
    pub models: &'a ModelCache<ScoringModel>,
    pub flags: &'a dyn FlagStore,
    /// Run records and outcomes reports (the monitoring routes).
    pub runs: &'a dyn crate::run_store::RunStore,
    pub config: &'a ServiceConfig,
}

impl<'a> ScoreApi<'a> {
    /// The API over the process's services.
    pub fn of(services: &'a crate::services::Services) -> ScoreApi<'a> {
        ScoreApi {
            models: &services.cache,
            flags: services.flags.as_ref(),
            runs: services.runs.as_ref(),
            config: &services.config,
        }
    }
}

/// One entry of `details`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

/// What one request did to customer rows, for the function's metrics
/// (`crate::metrics`). All zero unless it was a `POST /v1/score` whose body
/// listed customers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreCounts {
    /// Customers in the request.
    pub read: usize,
    /// Customers scored (all of them, or none when any entry is invalid).
    pub scored: usize,
    /// Invalid customer entries (the 400's `details`).
    pub failed: usize,
    /// Flags written (`"persist": true`).
    pub written: usize,
    /// Written flags newly at risk.
    pub newly_at_risk: usize,
    /// Flags the store could not write.
    pub write_failures: usize,
}

/// An error response.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    error: String,
    details: Vec<Detail>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            details: Vec::new(),
        }
    }

    fn field(status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            status,
            error: format!("invalid {field}: {message}"),
            details: vec![Detail {
                customer_id: None,
                field: Some(field.to_string()),
                message,
            }],
        }
    }

    /// A service error, its status derived from its kind: the caller's
    /// input 400 (naming the field), a backend failing for now 503, broken
    /// stored state 500. Bad input never gets a 5xx.
    fn service(e: Error) -> Self {
        let status = status_of(&e);
        match e {
            Error::InvalidCursor(m) => ApiError::field(StatusCode::BAD_REQUEST, "cursor", m),
            Error::BandNotListed(b) => ApiError::field(
                StatusCode::BAD_REQUEST,
                "band",
                format!("{b} is not an at-risk band; use high or medium"),
            ),
            Error::InvalidInput { field, message } => {
                ApiError::field(StatusCode::BAD_REQUEST, field, message)
            }
            Error::CustomerNotFound(id) => not_found(&id),
            other if status == StatusCode::BAD_REQUEST => {
                ApiError::new(status, crate::error::report(&other))
            }
            // The log got the whole chain; the caller a short message.
            other if status == StatusCode::SERVICE_UNAVAILABLE => {
                ApiError::new(status, format!("storage unavailable: {other}"))
            }
            other => ApiError::new(status, format!("internal error: {other}")),
        }
    }
}

/// The HTTP status of a service error, the one rule of the API and the web
/// pages: an unknown customer 404, the caller's input 400, a backend
/// failing for now 503, broken stored state 500. Bad input never gets a
/// 5xx. A 5xx is logged here with the error's whole chain.
pub fn status_of(e: &Error) -> StatusCode {
    let status = match (e.kind(), e) {
        (_, Error::CustomerNotFound(_)) => StatusCode::NOT_FOUND,
        (ErrorKind::Input, _) => StatusCode::BAD_REQUEST,
        (ErrorKind::Transient, _) => StatusCode::SERVICE_UNAVAILABLE,
        (ErrorKind::Internal, _) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(error = %crate::error::report(e), "store unavailable");
    } else if status.is_server_error() {
        tracing::error!(error = %crate::error::report(e), "internal error");
    }
    status
}

/// Answers one request. Never panics on input; every failure is a JSON error.
pub async fn handle(api: ScoreApi<'_>, request: Request<Bytes>) -> Response<Bytes> {
    handle_counted(api, request).await.0
}

/// [`handle`], with what the request did to customer rows.
pub async fn handle_counted(
    api: ScoreApi<'_>,
    request: Request<Bytes>,
) -> (Response<Bytes>, ScoreCounts) {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut counts = ScoreCounts::default();
    let result = route(api, request, &mut counts).await;
    let response = match result {
        Ok((status, body)) => json_response(status, &body),
        Err(e) => json_response(e.status, &json!({"error": e.error, "details": e.details})),
    };
    // Path and status only: customer ids in paths are identifiers, not features.
    tracing::info!(
        %method,
        route = route_name(&path),
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    (response, counts)
}

fn route_name(path: &str) -> &'static str {
    match path {
        "/v1/score" => "score",
        "/v1/risk-list" => "risk-list",
        "/v1/summary" => "summary",
        "/v1/runs" => "runs",
        "/v1/outcomes/report" => "outcomes",
        p if p.starts_with("/v1/runs/") => "run",
        p if p.starts_with("/v1/customers/") && p.ends_with("/ack") => "ack",
        p if p.starts_with("/v1/customers/") => "customer",
        _ => "other",
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Bytes> {
    let bytes = serde_json::to_vec(body)
        .unwrap_or_else(|_| b"{\"error\":\"serialization failed\"}".to_vec());
    let mut r = Response::new(Bytes::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn route(
    api: ScoreApi<'_>,
    request: Request<Bytes>,
    counts: &mut ScoreCounts,
) -> Result<(StatusCode, Value), ApiError> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let method = request.method().clone();
    let allow = |m: &Method| {
        if method == *m || (m == Method::GET && method == Method::HEAD) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}; use {m}"),
            ))
        }
    };
    if path == "/v1/score" {
        allow(&Method::POST)?;
        require_json(request.headers())?;
        return score(api, request.body(), counts).await;
    }
    if path == "/v1/risk-list" {
        allow(&Method::GET)?;
        return risk_list(api, request.uri().query().unwrap_or("")).await;
    }
    if path == "/v1/summary" {
        allow(&Method::GET)?;
        return summary(api, request.uri().query().unwrap_or("")).await;
    }
    if path == "/v1/runs" {
        allow(&Method::GET)?;
        return runs::runs(api, request.uri().query().unwrap_or("")).await;
    }
    if let Some(run_id) = path.strip_prefix("/v1/runs/") {
        allow(&Method::GET)?;
        return runs::run(api, run_id).await;
    }
    if path == "/v1/outcomes/report" {
        allow(&Method::GET)?;
        return runs::outcomes(api, request.uri().query().unwrap_or("")).await;
    }
    if let Some(raw) = path
        .strip_prefix("/v1/customers/")
        .and_then(|p| p.strip_suffix("/ack"))
    {
        let id = path_customer_id(raw)?;
        return match method {
            Method::POST => {
                require_json(request.headers())?;
                acknowledge(api, &id, request.body()).await
            }
            Method::DELETE => unacknowledge(api, &id).await,
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on {path}; use POST or DELETE"),
            )),
        };
    }
    if let Some(raw) = path.strip_prefix("/v1/customers/") {
        allow(&Method::GET)?;
        let id = path_customer_id(raw)?;
        return customer(api, &id).await;
    }
    let routes: Vec<String> = ROUTES.iter().map(|(m, p)| format!("{m} {p}")).collect();
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {path}; routes: {}",
            routes.join(", ")
        ),
    ))
}

/// The customer id of a path segment, decoded and checked by the one id rule.
fn path_customer_id(raw: &str) -> Result<String, ApiError> {
    customer_id_of_path(raw).map_err(ApiError::service)
}

/// The customer id of a percent-encoded path segment (API and web pages),
/// checked by [`churn_model::customer_id`].
///
/// # Errors
/// [`Error::InvalidInput`] naming `customer_id`.
pub fn customer_id_of_path(raw: &str) -> Result<String, Error> {
    let id = percent_decode(raw)
        .ok_or_else(|| input("customer_id", "invalid percent-encoding in the path".into()))?;
    // A literal `/` would be another path level; ids containing one are sent as %2F.
    if raw.contains('/') {
        return Err(input(
            "customer_id",
            "contains an unencoded '/' (send it as %2F)".into(),
        ));
    }
    let id = churn_model::customer_id(&id).map_err(|e| input("customer_id", e.to_string()))?;
    Ok(id.to_string())
}

/// 415 unless the body is declared `application/json` (parameters such as
/// `charset=utf-8` allowed): a form or text body is not parsed on a guess.
fn require_json(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let media_type = declared
        .as_deref()
        .map(|v| v.split(';').next().unwrap_or("").trim());
    if media_type.is_some_and(|m| m.eq_ignore_ascii_case("application/json")) {
        return Ok(());
    }
    let found = match &declared {
        None => "no Content-Type".to_string(),
        // Shortened: the header is the caller's text, quoted back.
        Some(v) => format!("Content-Type {:?}", v.chars().take(60).collect::<String>()),
    };
    Err(ApiError {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        error: format!(
            "the request body must be JSON sent as Content-Type: application/json; found {found}"
        ),
        details: vec![Detail {
            customer_id: None,
            field: Some("Content-Type".to_string()),
            message: format!("expected application/json, found {found}"),
        }],
    })
}

/// The model to score with, or 503.
async fn current_model(
    api: ScoreApi<'_>,
) -> Result<std::sync::Arc<crate::model_store::LoadedModel<ScoringModel>>, ApiError> {
    match api.models.get().await {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no model has been promoted yet; train and promote one first",
        )),
        Err(e) => Err(ApiError::service(e)),
    }
}

async fn score(
    api: ScoreApi<'_>,
    body: &Bytes,
    counts: &mut ScoreCounts,
) -> Result<(StatusCode, Value), ApiError> {
    let envelope = ScoreEnvelope::parse(body)?;
    counts.read = envelope.customers.len();
    // Shape first, so malformed requests fail without needing a model.
    let parsed = parse_customers(envelope.customers).map_err(|details| {
        counts.failed = details.len();
        invalid(details)
    })?;
    let model = current_model(api).await?;
    let scored = score_all(&model.model, &parsed, envelope.persist).map_err(|details| {
        counts.failed = details.len();
        invalid(details)
    })?;
    counts.scored = scored.scores.len();
    let mut body = json!({
        "model_id": model.model.model_id(),
        "scores": scored.scores,
        "warnings": scored.warnings,
    });
    if envelope.persist {
        let deadline = Instant::now() + api.config.write_deadline.min(Duration::from_secs(20));
        // Events of API scores wait in the outbox for the next run's
        // delivery or `churn notify`: a request never waits on a receiver.
        let origin = crate::notify::EventOrigin {
            run_id: None,
            due: api.config.notify.destinations(),
        };
        let summary = api
            .flags
            .write_scores(&scored.flags, api.config.score_epsilon, deadline, &origin)
            .await
            .map_err(ApiError::service)?;
        counts.written = summary.written;
        counts.newly_at_risk = summary.newly_at_risk;
        counts.write_failures = summary.failed.len();
        body["persisted"] = serde_json::to_value(&summary).unwrap_or(Value::Null);
    }
    Ok((StatusCode::OK, body))
}

/// The body of `POST /v1/score` with its envelope checked (size, JSON,
/// `persist`, 1..=[`MAX_CUSTOMERS`] customers); the entries are not yet.
#[derive(Debug)]
struct ScoreEnvelope {
    persist: bool,
    customers: Vec<Value>,
}

impl ScoreEnvelope {
    fn parse(body: &Bytes) -> Result<ScoreEnvelope, ApiError> {
        let bad =
            |field: &str, message: &str| ApiError::field(StatusCode::BAD_REQUEST, field, message);
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is {} bytes; the limit is {MAX_BODY_BYTES}",
                    body.len()
                ),
            ));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
        let Value::Object(mut top) = value else {
            return Err(bad("body", "expected a JSON object"));
        };
        let persist = match top.remove("persist") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(bad("persist", "expected true or false")),
        };
        let customers = match top.remove("customers") {
            Some(Value::Array(c)) => c,
            None => return Err(bad("customers", "missing")),
            Some(_) => return Err(bad("customers", "expected an array")),
        };
        if customers.is_empty() {
            return Err(bad(
                "customers",
                &format!("empty; send 1 to {MAX_CUSTOMERS} customers"),
            ));
        }
        if customers.len() > MAX_CUSTOMERS {
            return Err(ApiError::field(
                StatusCode::PAYLOAD_TOO_LARGE,
                "customers",
                format!(
                    "{} customers; at most {MAX_CUSTOMERS} per request",
                    customers.len()
                ),
            ));
        }
        Ok(ScoreEnvelope { persist, customers })
    }
}

/// One checked entry: the customer id and its feature values.
type Entry = (String, Map<String, Value>);

/// Every entry checked; all problems at once, each naming its entry.
fn parse_customers(customers: Vec<Value>) -> Result<Vec<Entry>, Vec<Detail>> {
    let mut parsed = Vec::with_capacity(customers.len());
    let mut details = Vec::new();
    for (i, c) in customers.into_iter().enumerate() {
        match parse_entry(i, c) {
            Ok(entry) => parsed.push(entry),
            Err(detail) => details.push(detail),
        }
    }
    if details.is_empty() {
        Ok(parsed)
    } else {
        Err(details)
    }
}

/// Entry `i`: an object with a valid `customer_id` (the model crate's rule)
/// and a `features` object.
fn parse_entry(i: usize, entry: Value) -> Result<Entry, Detail> {
    let at = |field: &str| Some(format!("customers[{i}]{field}"));
    let Value::Object(mut c) = entry else {
        return Err(Detail {
            customer_id: None,
            field: at(""),
            message: "expected an object with customer_id and features".to_string(),
        });
    };
    let found = |v: Option<Value>| {
        v.map_or("missing".to_string(), |v| {
            format!("found {}", json_type(&v))
        })
    };
    let id = match c.remove("customer_id") {
        Some(Value::String(s)) => {
            churn_model::customer_id(&s)
                .map(str::to_string)
                .map_err(|e| Detail {
                    customer_id: None,
                    field: at(".customer_id"),
                    message: e.to_string(),
                })?
        }
        other => {
            return Err(Detail {
                customer_id: None,
                field: at(".customer_id"),
                message: format!("expected a non-empty string, {}", found(other)),
            })
        }
    };
    match c.remove("features") {
        Some(Value::Object(f)) => Ok((id, f)),
        other => Err(Detail {
            customer_id: Some(id),
            field: Some("features".to_string()),
            message: format!("expected an object of feature values, {}", found(other)),
        }),
    }
}

/// The scores of a request, the flags to persist and the out-of-range warnings.
#[derive(Debug, Default)]
struct Scored {
    scores: Vec<Value>,
    flags: Vec<Flag>,
    warnings: Vec<Value>,
}

/// Scores every entry with `model` (flags only when `persist`); a value the
/// model cannot use fails its entry, and any failure fails the request.
fn score_all(
    model: &ScoringModel,
    entries: &[Entry],
    persist: bool,
) -> Result<Scored, Vec<Detail>> {
    let scored_at = OffsetDateTime::now_utc();
    let mut out = Scored::default();
    let mut details = Vec::new();
    for (id, features) in entries {
        let record = match model.scorer.score_json(features) {
            Ok(record) => record,
            Err(e) => {
                details.push(Detail {
                    customer_id: Some(id.clone()),
                    field: field_of(&e),
                    message: e.to_string(),
                });
                continue;
            }
        };
        out.warnings.extend(
            record
                .out_of_range
                .iter()
                .map(|o| out_of_range_warning(id, o)),
        );
        let s = record.score;
        out.scores.push(json!({
            "customer_id": id,
            "churn_probability": s.churn_probability,
            "risk_band": s.risk_band,
            "reasons": s.reasons,
        }));
        if persist {
            let (attributes, invalid) = model.artifact.attributes.extract_json(features);
            out.warnings
                .extend(invalid.iter().map(|b| invalid_attribute_warning(id, b)));
            let mut flag = Flag::new(
                id.clone(),
                s.churn_probability,
                s.risk_band,
                s.reasons,
                model.model_id(),
                scored_at,
            );
            flag.attributes = attributes;
            out.flags.push(flag);
        }
    }
    if details.is_empty() {
        Ok(out)
    } else {
        Err(details)
    }
}

/// The response's warning for a value beyond the training range.
fn out_of_range_warning(id: &str, o: &churn_model::OutOfRange) -> Value {
    json!({
        "customer_id": id,
        "field": o.field,
        "code": "out_of_range",
        "value": o.value,
        "training_min": o.training_min,
        "training_max": o.training_max,
        "message": o.to_string(),
    })
}

/// The response's warning for an attribute value that did not parse (stored
/// as null).
fn invalid_attribute_warning(id: &str, bad: &churn_model::InvalidAttribute) -> Value {
    json!({
        "customer_id": id,
        "field": bad.column,
        "code": "invalid_attribute",
        "role": bad.role,
        "message": format!("{}: {}; stored as null", bad.role, bad.message),
    })
}

fn invalid(details: Vec<Detail>) -> ApiError {
    let n = details.len();
    ApiError {
        status: StatusCode::BAD_REQUEST,
        error: format!(
            "{n} invalid customer entr{}",
            if n == 1 { "y" } else { "ies" }
        ),
        details,
    }
}

/// The field a model error is about, if any.
fn field_of(e: &churn_model::Error) -> Option<String> {
    use churn_model::Error::*;
    match e {
        NonFiniteField { field, .. }
        | WrongType { field, .. }
        | MissingField { field, .. }
        | NegativeValue { field, .. }
        | ValueOutOfRange { field, .. } => Some(field.clone()),
        _ => None,
    }
}

/// 404 for a customer without a flag.
fn not_found(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        error: format!("customer {id:?} has no stored score"),
        details: vec![Detail {
            customer_id: Some(id.to_string()),
            field: None,
            message: "not found".to_string(),
        }],
    }
}

async fn customer(api: ScoreApi<'_>, id: &str) -> Result<(StatusCode, Value), ApiError> {
    let now = crate::timestamp::now();
    match api
        .flags
        .customer(id, now)
        .await
        .map_err(ApiError::service)?
    {
        Some(record) => Ok((StatusCode::OK, customer_json(&record))),
        None => Err(not_found(id)),
    }
}

/// The body of `POST /v1/customers/{id}/ack`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
    note: String,
    #[serde(default)]
    until: Option<String>,
}

async fn acknowledge(
    api: ScoreApi<'_>,
    id: &str,
    body: &Bytes,
) -> Result<(StatusCode, Value), ApiError> {
    let body: AckBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "body", e.to_string()))?;
    let now = crate::timestamp::now();
    let flag = acknowledge_customer(
        api.flags,
        id,
        &body.by,
        &body.note,
        body.until.as_deref(),
        now,
    )
    .await
    .map_err(ApiError::service)?;
    Ok((StatusCode::OK, flag_json(&flag)))
}

/// Acknowledges `id`'s flag at `now`: the one path of the API and the web
/// form (`until` as `YYYY-MM-DD` or RFC 3339, default
/// [`crate::flag::DEFAULT_ACK_DAYS`] days). Returns the flag as now seen.
///
/// # Errors
/// [`Error::InvalidInput`] naming `by`, `note` or `until`;
/// [`Error::CustomerNotFound`]; store errors.
pub async fn acknowledge_customer(
    flags: &dyn FlagStore,
    id: &str,
    by: &str,
    note: &str,
    until: Option<&str>,
    now: OffsetDateTime,
) -> Result<Flag, Error> {
    let until = until
        .filter(|u| !u.is_empty())
        .map(Acknowledgement::parse_until)
        .transpose()
        .map_err(|message| input("until", message))?;
    let ack = Acknowledgement::new(by, note, until, now)?;
    Ok(flags.acknowledge(id, &ack).await?.seen_at(now))
}

async fn unacknowledge(api: ScoreApi<'_>, id: &str) -> Result<(StatusCode, Value), ApiError> {
    let flag = api
        .flags
        .unacknowledge(id)
        .await
        .map_err(ApiError::service)?;
    Ok((
        StatusCode::OK,
        flag_json(&flag.seen_at(crate::timestamp::now())),
    ))
}

/// A flag as the API shows it: the stored fields and `at_risk` (the CLI's
/// `--format json` prints the same).
pub fn flag_json(flag: &Flag) -> Value {
    let mut v = serde_json::to_value(flag).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("at_risk".to_string(), Value::Bool(flag.at_risk()));
    }
    v
}

/// A customer as the API shows it: the flag with its history.
pub fn customer_json(record: &CustomerRecord) -> Value {
    let mut v = flag_json(&record.flag);
    if let Value::Object(m) = &mut v {
        m.insert(
            "history".to_string(),
            serde_json::to_value(&record.history).unwrap_or(Value::Null),
        );
    }
    v
}

/// Refuses a query string with a malformed escape or non-UTF-8 bytes
/// (serde_urlencoded would let them through, lossily).
fn check_query(query: &str) -> Result<(), ApiError> {
    valid_query(query).map_err(ApiError::service)
}

/// The one check of a query string's escapes (see [`check_query`]).
fn valid_query(query: &str) -> Result<(), Error> {
    match percent_decode(query) {
        Some(_) => Ok(()),
        None => Err(input("query", "invalid percent-encoding".into())),
    }
}

/// A query parameter through its type's one parser, 400 naming it.
fn param<T: std::str::FromStr<Err = String>>(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<T>, ApiError> {
    parsed(field, value).map_err(ApiError::service)
}

/// A whole-number query parameter in `range`, 400 naming it.
fn number_param(
    field: &'static str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Option<usize>, ApiError> {
    whole_number(field, value, range).map_err(ApiError::service)
}

async fn risk_list(api: ScoreApi<'_>, query: &str) -> Result<(StatusCode, Value), ApiError> {
    let request = ListRequest::parse(query).map_err(ApiError::service)?;
    let page = api
        .flags
        .list(&request.query, request.limit, request.cursor.as_deref())
        .await
        .map_err(ApiError::service)?;
    let flags: Vec<Value> = page.flags.iter().map(flag_json).collect();
    Ok((
        StatusCode::OK,
        json!({"band": request.query.band, "sort": request.query.sort, "flags": flags, "next_cursor": page.next_cursor}),
    ))
}

/// One page of a risk list as asked for in a query string: the one reading
/// of `band`, `owner`, `segment`, `renewal_within_days`, `unacknowledged`,
/// `sort`, `limit` and `cursor`, shared by `GET /v1/risk-list` and the web
/// page (whose rows must be the API's).
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub query: ListQuery,
    pub limit: usize,
    pub cursor: Option<String>,
}

impl ListRequest {
    /// Parses a query string (without `?`); unknown parameters are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the parameter.
    pub fn parse(query: &str) -> Result<ListRequest, Error> {
        valid_query(query)?;
        let params: RiskListQuery =
            serde_urlencoded::from_str(query).map_err(|e| input("query", e.to_string()))?;
        let band: BandFilter = parsed("band", params.band.as_deref())?.unwrap_or(BandFilter::High);
        let limit = whole_number("limit", params.limit.as_deref(), 1..=MAX_PAGE_LIMIT)?
            .unwrap_or(DEFAULT_LIMIT);
        let renewal_within_days = whole_number(
            "renewal_within_days",
            params.renewal_within_days.as_deref(),
            0..=MAX_RENEWAL_DAYS as usize,
        )?
        .map(|n| n as u32);
        let unacknowledged = match params.unacknowledged.as_deref() {
            None | Some("false") | Some("") => false,
            Some("true") => true,
            Some(v) => {
                return Err(input(
                    "unacknowledged",
                    format!("{v:?}: expected true or false"),
                ))
            }
        };
        let query = ListQuery {
            band,
            owner: params.owner.filter(|o| !o.is_empty()),
            segment: params.segment.filter(|s| !s.is_empty()),
            renewal_within_days,
            unacknowledged,
            sort: parsed::<ListSort>("sort", params.sort.as_deref())?.unwrap_or_default(),
            now: crate::timestamp::now(),
        };
        Ok(ListRequest {
            query,
            limit,
            cursor: params.cursor.filter(|c| !c.is_empty()),
        })
    }
}

fn input(field: &'static str, message: String) -> Error {
    Error::InvalidInput { field, message }
}

/// A query parameter through its type's one parser, an error naming it.
fn parsed<T: std::str::FromStr<Err = String>>(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<T>, Error> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<T>().map_err(|m| input(field, m)))
        .transpose()
}

/// A whole-number query parameter in `range` (empty = absent).
fn whole_number(
    field: &'static str,
    value: Option<&str>,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Option<usize>, Error> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| match v.parse::<usize>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(input(
                field,
                format!(
                    "{v:?}: expected an integer from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        })
        .transpose()
}

/// Longest renewal window a list accepts, in days (ten years).
pub const MAX_RENEWAL_DAYS: u32 = 3660;

async fn summary(api: ScoreApi<'_>, query: &str) -> Result<(StatusCode, Value), ApiError> {
    check_query(query)?;
    let params: SummaryQuery = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::field(StatusCode::BAD_REQUEST, "query", e.to_string()))?;
    let by: SummaryBy = param("by", params.by.as_deref())?.unwrap_or_default();
    let summary = api.flags.summary(by).await.map_err(ApiError::service)?;
    Ok((
        StatusCode::OK,
        serde_json::to_value(&summary).unwrap_or(Value::Null),
    ))
}

/// The query of `GET /v1/summary`.
#[derive(Debug, serde::Deserialize)]
struct SummaryQuery {
    by: Option<String>,
}

/// The query of `GET /v1/risk-list` (other parameters are ignored).
#[derive(Debug, serde::Deserialize)]
struct RiskListQuery {
    band: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    owner: Option<String>,
    segment: Option<String>,
    renewal_within_days: Option<String>,
    unacknowledged: Option<String>,
    sort: Option<String>,
}

/// Decodes `%XX` escapes (percent-encoding); `None` where that crate would
/// guess: a `%` not followed by two hex digits, or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).is_some_and(u8::is_ascii_hexdigit);
    let malformed = (0..b.len()).any(|i| b[i] == b'%' && !(hex(i + 1) && hex(i + 2)));
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_is_checked_before_any_entry() {
        let parse = |body: &str| ScoreEnvelope::parse(&Bytes::from(body.to_string()));
        let e = parse(r#"{"customers": [], "persist": true}"#).unwrap_err();
        assert_eq!(e.details[0].field.as_deref(), Some("customers"), "{e:?}");
        let e = parse(r#"{"customers": [{}], "persist": "yes"}"#).unwrap_err();
        assert_eq!(e.details[0].field.as_deref(), Some("persist"), "{e:?}");
        let ok = parse(r#"{"customers": [1, {"x": 2}]}"#).unwrap();
        assert_eq!((ok.persist, ok.customers.len()), (false, 2));
    }

    #[test]
    fn every_bad_entry_is_named_by_its_index() {
        let entries: Vec<Value> = serde_json::from_str(
            r#"[{"customer_id": "a", "features": {}}, 7, {"customer_id": 5}, {"customer_id": "b"}]"#,
        )
        .unwrap();
        let details = parse_customers(entries).unwrap_err();
        let fields: Vec<_> = details.iter().map(|d| d.field.clone().unwrap()).collect();
        assert_eq!(
            fields,
            ["customers[1]", "customers[2].customer_id", "features"]
        );
        assert_eq!(
            details[1].message,
            "expected a non-empty string, found a number"
        );
        assert_eq!(details[2].customer_id.as_deref(), Some("b"));
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("c%2F1%20x").as_deref(), Some("c/1 x"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("a%"), None);
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF"), None, "not UTF-8");
    }
}
