//! AWS Lambda function `score`: the HTTP API (`POST /v1/score`,
//! `GET /v1/customers/{id}`, `GET /v1/risk-list`) behind a Function URL or
//! API Gateway. Wiring only: the handler is `churn_service::handlers::score_api`;
//! each request's row counts go out as one CloudWatch EMF line
//! (`churn_service::metrics`).
//!
//! Cold start: only configuration and clients are built before the runtime
//! loop; the promoted model is fetched on the first request and re-checked
//! every `CHURN_MODEL_REFRESH_SECS`.

use bytes::Bytes;
use churn_service::config::ServiceConfig;
use churn_service::handlers::score_api::{handle_counted, ScoreApi};
use churn_service::metrics::{measure, Function};
use churn_service::services::Services;
use lambda_http::{service_fn, Body, Request, RequestExt};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let config = ServiceConfig::from_env()?;
    churn_service::config::init_thread_pool(config.threads)?;
    let services = Services::from_config(config).await?;
    let services = &services;
    lambda_http::run(service_fn(move |request: Request| async move {
        let api = ScoreApi::of(services);
        let request_id = request
            .lambda_context_ref()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        let (parts, body) = request.into_parts();
        let request =
            lambda_http::http::Request::from_parts(parts, Bytes::copy_from_slice(body.as_ref()));
        let (response, _) =
            measure(Function::Score, &request_id, handle_counted(api, request)).await;
        Ok::<_, lambda_http::Error>(
            response.map(|b| Body::Text(String::from_utf8_lossy(&b).into_owned())),
        )
    }))
    .await
}
