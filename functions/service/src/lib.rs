//! churn-service: handlers, ports and adapters shared by the churn-risk
//! Lambda functions and the CLI.
//!
//! # Layout
//! - [`error`]: the crate's `Error` and `Result`.
//! - [`aws`]: the SDK configuration and S3 client, built one way everywhere.
//! - [`features`]: feature tables from CSV/Parquet, local or S3 (whole or streamed), writers.
//! - [`config`]: `ServiceConfig` from the environment, store URIs.
//! - [`timestamp`]: the stored RFC 3339 form (fixed width, sortable).
//! - [`retry`]: exponential backoff with full jitter.
//! - [`flag`]: the stored flag (attributes, acknowledgement, trend), its
//!   history points, write summary, risk-list page.
//! - [`flag_store`]: `FlagStore` port and its shared write rule; score history
//!   window and trend (`history`); list query, sort key and summary (`query`);
//!   DynamoDB and SQLite adapters.
//! - [`model_store`]: `ModelStore` port; S3 and directory adapters; `ModelCache`.
//! - [`notify`]: risk-change events, the outbox port, delivery to Slack,
//!   signed webhooks and EventBridge.
//! - [`run_record`]: what a rescore run leaves (counts, snapshot check, refused/forced), outcomes reports.
//! - [`run_store`]: `RunStore` port; SQLite (the flag file) and object (S3, directory) adapters.
//! - [`handlers`]: train, score API, rescore, score-to-file handlers (plain async functions).
//! - [`services`]: adapters and AWS clients built from `ServiceConfig`.
//! - [`metrics`]: one CloudWatch EMF document per Lambda invocation.
//! - [`web`]: the pages `churn serve` serves next to the API (risk list,
//!   customer, model and runs, login) and the training report.
//! - [`blocking`]: hand-offs to other threads that keep the tracing span (request id).
//! - `test_support` (feature `test-support`): moto_server launcher,
//!   fault-injecting DynamoDB proxy, SDK clients for tests.

pub mod aws;
pub mod blocking;
pub mod config;
pub mod error;
pub mod features;
pub mod flag;
pub mod flag_store;
pub mod handlers;
pub mod metrics;
pub mod model_store;
pub mod notify;
pub mod retry;
pub mod run_record;
pub mod run_store;
pub mod services;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod timestamp;
pub mod web;

pub use error::{Error, Result};
