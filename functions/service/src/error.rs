//! The service crate's error type.
//!
//! One enum for the whole crate so handlers can map every failure to an HTTP
//! status or a CLI exit code in one place. Variants carry what a reader needs
//! to act (the variable, the model id, the customer) rather than a bare string.
//! Adapters convert their SDK/driver errors into [`Error::Storage`] with the
//! operation named, so no AWS or SQLite type leaks through the ports.

use churn_model::{ErrorKind, RiskBand};

/// Errors of the churn service (configuration, storage ports, handlers).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An environment variable (or URI inside it) could not be understood.
    #[error("configuration {variable}={value:?}: {message}")]
    Config {
        variable: &'static str,
        value: String,
        message: String,
    },

    /// A storage backend call failed (S3, DynamoDB, SQLite, filesystem).
    #[error("{backend} {operation} failed: {message}")]
    Storage {
        backend: &'static str,
        operation: &'static str,
        message: String,
    },

    /// Bytes handed to the model store are not a model artifact we can store.
    #[error("invalid model artifact: {0}")]
    InvalidArtifact(String),

    /// The model id is not stored.
    #[error("model {model_id} not found")]
    ModelNotFound { model_id: String },

    /// Stored artifact bytes do not hash to what the pointer (or caller) expects.
    #[error("model {model_id}: sha256 mismatch (expected {expected}, found {actual})")]
    ShaMismatch {
        model_id: String,
        expected: String,
        actual: String,
    },

    /// Rollback was asked for but there is no earlier promotion to return to.
    #[error("no previously promoted model to roll back to")]
    NoPreviousModel,

    /// A stored document (pointer, history, flag row) could not be decoded.
    #[error("corrupt stored {what}: {message}")]
    Corrupt { what: &'static str, message: String },

    /// A risk-list cursor was not produced by this store for this band.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),

    /// Risk lists exist only for at-risk bands.
    #[error("band {0} is not an at-risk band; risk lists hold high and medium")]
    BandNotListed(RiskBand),

    /// A request parameter is out of range (limit, epsilon, ...).
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
}

impl Error {
    /// Shorthand for [`Error::Storage`].
    pub(crate) fn storage(
        backend: &'static str,
        operation: &'static str,
        message: impl std::fmt::Display,
    ) -> Self {
        Error::Storage {
            backend,
            operation,
            message: message.to_string(),
        }
    }
}

/// `Result` with the service [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whose fault it is (see [`ErrorKind`]): what the caller configured or
    /// asked for is input; a backend call that failed is transient; stored
    /// state that does not decode or verify is internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. }
            | Error::ModelNotFound { .. }
            | Error::NoPreviousModel
            | Error::InvalidCursor(_)
            | Error::BandNotListed(_)
            | Error::InvalidInput { .. } => ErrorKind::Input,
            Error::Storage { .. } => ErrorKind::Transient,
            // Artifacts are written by training; one that does not load or
            // verify is broken stored state, not the caller's input.
            Error::InvalidArtifact(_) | Error::ShaMismatch { .. } | Error::Corrupt { .. } => {
                ErrorKind::Internal
            }
        }
    }
}
