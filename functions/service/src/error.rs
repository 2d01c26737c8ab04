//! The service crate's error type.
//!
//! One enum for the whole crate so handlers can map every failure to an HTTP
//! status or a CLI exit code in one place. Variants carry what a reader needs
//! to act (the variable, the model id, the customer) rather than a bare string.
//! Adapters convert their SDK/driver errors into [`Error::Storage`] with the
//! operation named; the SDK or driver error is kept as the `source` (boxed,
//! so no AWS or SQLite type appears in a port's signature) for callers that
//! walk the chain. [`report`] renders an error with its causes on one line.

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
    #[error("{backend} {operation} failed")]
    Storage {
        backend: &'static str,
        operation: &'static str,
        /// The SDK, driver or I/O error (or what was wrong, as text).
        #[source]
        source: BoxError,
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

    /// No flag has been written for this customer.
    #[error("unknown customer {0:?}: no flag has been written for it")]
    CustomerNotFound(String),

    /// A request parameter is out of range (limit, epsilon, ...).
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
}

/// Any error, owned and shareable between threads (the cause of a storage
/// or I/O failure).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// Shorthand for [`Error::Storage`] caused by `cause`.
    pub(crate) fn storage(
        backend: &'static str,
        operation: &'static str,
        cause: impl Into<BoxError>,
    ) -> Self {
        Error::Storage {
            backend,
            operation,
            source: cause.into(),
        }
    }

    /// [`Error::Storage`] caused by `cause` at `place` (a path or an
    /// `s3://` URI, shown before the cause).
    pub(crate) fn storage_at(
        backend: &'static str,
        operation: &'static str,
        place: impl std::fmt::Display,
        cause: impl Into<BoxError>,
    ) -> Self {
        Error::storage(backend, operation, At::new(place, cause))
    }
}

/// A cause and where it happened (`/models/current.json`, `s3://b/k`).
#[derive(Debug, thiserror::Error)]
#[error("{place}")]
pub struct At {
    place: String,
    #[source]
    source: BoxError,
}

impl At {
    /// `cause` at `place`.
    pub fn new(place: impl std::fmt::Display, cause: impl Into<BoxError>) -> Self {
        At {
            place: place.to_string(),
            source: cause.into(),
        }
    }
}

/// `err` and its causes on one line, outermost first, separated by `: `
/// (what a response body, a Lambda error message or a log line shows).
/// A cause whose text its parent already ends with is not repeated.
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
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
            | Error::CustomerNotFound(_)
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
