//! AWS Lambda function `train`: `TrainRequest` (features URI, id/label
//! columns, schema, options) -> trains, stores the artifact, applies the
//! promotion gate, returns the `TrainSummary`. Wiring only: the handler is
//! `churn_service::handlers::train`. The summary's counts and AUC are also
//! written as one CloudWatch EMF line (`churn_service::metrics`).

use churn_service::config::ServiceConfig;
use churn_service::handlers::train::{handle_train_with, TrainRequest, TrainSettings};
use churn_service::metrics::{measure, Function};
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
            let (request, context) = event.into_parts();
            // A `HandlerError` becomes a Runtime API error whose `errorType`
            // says input, transient or internal.
            // Boxed: the handler's future is deep enough that computing the
            // layout of this whole block inline exceeds the compiler's
            // query depth; one allocation per invocation is nothing here.
            let train = Box::pin(handle_train_with(
                &request,
                services.models.as_ref(),
                &services.sources,
                TrainSettings::from_config(&services.config),
            ));
            measure(Function::Train, &context.request_id, train).await
        },
    ))
    .await
}
