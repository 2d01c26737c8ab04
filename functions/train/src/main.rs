//! AWS Lambda function `train`: `TrainRequest` (features URI, id/label
//! columns, schema, options) -> trains, stores the artifact, applies the
//! promotion gate, returns the `TrainSummary`. Wiring only: the handler is
//! `churn_service::handlers::train`.

use churn_service::config::ServiceConfig;
use churn_service::handlers::train::{handle_train_with, TrainRequest, TrainSettings};
use churn_service::services::Services;
use lambda_runtime::{service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = ServiceConfig::from_env()?;
    churn_service::config::init_thread_pool(config.threads)?;
    let services = Services::from_config(config).await?;
    let services = &services;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<TrainRequest>| async move {
            let request = event.payload;
            // A `HandlerError` becomes a Runtime API error whose `errorType`
            // says input, transient or internal.
            handle_train_with(
                &request,
                services.models.as_ref(),
                &services.sources,
                TrainSettings::from_config(&services.config),
            )
            .await
        },
    ))
    .await
}
