//! Errors of the event handlers (train, rescore, score_file). The HTTP API maps its own
//! failures to status codes and never returns this type.

use crate::features::FeatureError;

/// Why a train, rescore or score-to-file invocation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event could not be understood (missing snapshot, bad URI, bad option).
    #[error("invalid request: {0}")]
    BadRequest(String),
    /// Reading the features failed (names the location, row and column).
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// The model crate refused the data or the configuration.
    #[error(transparent)]
    Model(#[from] churn_model::Error),
    /// A store or configuration failure.
    #[error(transparent)]
    Service(#[from] crate::error::Error),
    /// Rescoring needs a promoted model.
    #[error("no model has been promoted yet; train one first")]
    NoModel,
}
