//! AWS Lambda function `rescore`: an EventBridge scheduled event (rescores
//! `CHURN_SNAPSHOT`), `{"snapshot": "s3://..."}`, one Step Functions
//! Distributed Map item, or `{"finish_run": "<run_id>"}` (the run record
//! of a sharded run, after the map). Wiring only: the handler is
//! `churn_service::handlers::rescore`. Returns the rescore summary as JSON
//! and writes its counts as one CloudWatch EMF line (`churn_service::metrics`).

use churn_service::config::ServiceConfig;
use churn_service::handlers::rescore::handle_event;
use churn_service::metrics::{measure, Function};
use churn_service::services::Services;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ServiceConfig::from_env()?;
    churn_service::config::init_thread_pool(config.threads)?;
    let services = Services::from_config(config).await?;
    let services = &services;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // A `HandlerError` becomes a Runtime API error whose `errorType`
        // says input, transient or internal.
        let run = handle_event(services, &event.payload, &|_| {});
        measure(Function::Rescore, &event.context.request_id, run).await
    }))
    .await
}
