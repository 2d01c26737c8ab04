//! Handlers: one plain async function per entry point, taking its
//! dependencies explicitly, shared by the Lambda functions and the CLI.
//!
//! # Layout
//! - [`model`]: `ScoringModel` (artifact + scorer) cached per promoted pointer.
//! - [`error`]: `HandlerError` for the event handlers (train, rescore).
//! - [`train`]: `TrainRequest` -> train, store, promotion gate -> `TrainSummary`.
//! - [`score_api`]: the HTTP API (`/v1/score`, `/v1/customers/{id}`, `/v1/risk-list`).
//! - [`rescore`]: scheduled / `{"snapshot"}` / Distributed Map item -> streamed rescoring.
//! - [`score_file`]: feature source -> streamed scoring into a scores CSV file.
//! - [`scored_stream`]: the streamed chunk-scoring loop shared by rescore and score_file.
//! - [`snapshot_check`]: the snapshot check's own pass over a source (`churn check`, rescore's first pass).
//! - [`outcomes`]: known churn outcomes matched with the scores before them -> realised accuracy report.
//! - [`run_finish`]: a sharded run's record from its shards' records (`{"finish_run": ...}`).

pub mod error;
pub mod model;
pub mod notify;
pub mod outcomes;
pub mod rescore;
pub mod run_finish;
pub mod score_api;
pub mod score_file;
pub mod scored_stream;
pub mod snapshot_check;
pub mod train;

pub use error::{HandlerError, Refusal};
pub use model::ScoringModel;
