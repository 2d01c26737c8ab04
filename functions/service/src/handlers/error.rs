//! Errors of the event handlers (train, rescore, score_file). The HTTP API maps its own
//! failures to status codes and never returns this type.

use crate::features::FeatureError;

/// Why a train, rescore or score-to-file invocation failed as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The snapshot check refused the snapshot: nothing was written. The
    /// message starts `snapshot refused:` and names each failed check with
    /// its figures.
    #[error("snapshot refused: {}", .0.report.failed_checks())]
    Refused(Box<Refusal>),
}

/// A refused run: its check and where its record is.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub report: churn_model::check::CheckReport,
    /// The refused rescore run (`None` for a refused scores file).
    pub run_id: Option<String>,
    /// The run was one shard of a Distributed Map run.
    pub shard: bool,
}

impl HandlerError {
    /// Whose fault it is, from the error inside.
    pub fn kind(&self) -> churn_model::ErrorKind {
        match self {
            HandlerError::BadRequest(_) | HandlerError::NoModel | HandlerError::Refused(_) => {
                churn_model::ErrorKind::Input
            }
            HandlerError::Features(e) => e.kind(),
            HandlerError::Model(e) => e.kind(),
            HandlerError::Service(e) => e.kind(),
        }
    }
}

/// What a Lambda invocation reports to the Runtime API: `errorType` is the
/// kind's name (`ChurnInputError`, `ChurnTransientError`,
/// `ChurnInternalError`), so the state machine retries transient failures
/// only and sends input errors straight to its failure path.
impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.kind().lambda_error_type().to_string(),
            // With its causes: the Display of a storage error names the
            // operation, its source says what the backend answered.
            error_message: crate::error::report(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_lambda_error_type() {
        let cases = [
            (
                HandlerError::BadRequest("no snapshot".into()),
                "ChurnInputError",
            ),
            (HandlerError::NoModel, "ChurnInputError"),
            (
                HandlerError::Service(crate::Error::Storage {
                    backend: "dynamodb",
                    operation: "put",
                    source: "throttled".into(),
                }),
                "ChurnTransientError",
            ),
            (
                HandlerError::Service(crate::Error::Corrupt {
                    what: "pointer",
                    message: "not json".into(),
                }),
                "ChurnInternalError",
            ),
            (
                HandlerError::Model(churn_model::Error::EmptyTable),
                "ChurnInputError",
            ),
        ];
        for (error, expected) in cases {
            let message = crate::error::report(&error);
            let diagnostic = lambda_runtime::Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, expected, "{message}");
            assert_eq!(diagnostic.error_message, message);
        }
    }

    #[test]
    fn the_lambda_error_message_carries_the_cause() {
        let io = std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "read-only file system",
        );
        let error =
            HandlerError::Service(crate::Error::storage_at("sqlite", "open", "/flags.db", io));
        // The cause is kept as a source, not flattened into the message...
        let source = std::error::Error::source(&error).expect("a source");
        assert_eq!(source.to_string(), "/flags.db");
        assert!(source
            .source()
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied));
        // ...and the message a caller sees shows the whole chain.
        assert_eq!(
            lambda_runtime::Diagnostic::from(error).error_message,
            "sqlite open failed: /flags.db: read-only file system"
        );
    }
}
