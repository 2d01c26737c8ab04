//! Errors of the feature readers and writers.
//!
//! Every variant about the data names where it is (`location`: a path or an
//! `s3://` URI) and, when it concerns a cell, the row and the column, so a
//! user can open the file and fix it. Rows are 1-based data rows: row 1 is
//! the first line after the header, as in a spreadsheet minus the header.

/// A feature source could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    /// The source string is neither a local path nor a usable `s3://bucket/key`.
    #[error("invalid feature source {uri:?}: {message}")]
    InvalidUri { uri: String, message: String },

    /// The format cannot be told from the name, or is not CSV/Parquet.
    #[error("{location}: {message}")]
    UnsupportedFormat { location: String, message: String },

    /// Opening, reading or writing failed (file system or S3).
    #[error("{operation} {location}")]
    Io {
        operation: &'static str,
        location: String,
        /// The I/O or SDK error (or what was missing, as text).
        #[source]
        source: crate::error::BoxError,
        /// The backend failed for now (S3 5xx, throttling, timeout): the
        /// same read may succeed later. A missing file or object, or access
        /// denied, is not transient.
        transient: bool,
    },

    /// An S3 prefix with no objects (or a directory with no data files).
    #[error("{location}: no CSV or Parquet parts found")]
    NoParts { location: String },

    /// The header is missing, empty or has duplicate names.
    #[error("{location}: header: {message}")]
    Header { location: String, message: String },

    /// A part of a multi-part source has different columns than the first part.
    #[error("{location}: columns differ from the first part {first}: {message}")]
    PartMismatch {
        location: String,
        first: String,
        message: String,
    },

    /// A row has a different number of fields than the header.
    #[error("{location}: row {row}: {found} fields, but the header has {expected}")]
    Ragged {
        location: String,
        row: usize,
        expected: usize,
        found: usize,
    },

    /// A cell cannot be read as its column's kind (non-finite or non-numeric
    /// text in a numeric column, malformed quoting).
    #[error("{location}: row {row}, column {column:?}: {message}")]
    Cell {
        location: String,
        row: usize,
        column: String,
        message: String,
    },

    /// A row that cannot be used (a cell the reader could not parse, a
    /// missing or unknown label); `message` names the row and column.
    #[error("{location}: {message}")]
    Row {
        location: String,
        row: usize,
        message: String,
    },

    /// A column requested by the caller is absent.
    #[error("{location}: column {column:?} not found (columns: {available})")]
    MissingColumn {
        location: String,
        column: String,
        available: String,
    },

    /// The Parquet file could not be decoded, or has a column type we do not read.
    #[error("{location}: parquet: {message}")]
    Parquet { location: String, message: String },

    /// The table handed to a writer is inconsistent (ragged columns).
    #[error("cannot write {location}: {message}")]
    InvalidTable { location: String, message: String },
}

impl FeatureError {
    pub(crate) fn io(
        operation: &'static str,
        location: impl Into<String>,
        cause: impl Into<crate::error::BoxError>,
    ) -> Self {
        FeatureError::Io {
            operation,
            location: location.into(),
            source: cause.into(),
            transient: false,
        }
    }

    /// An S3 call's failure, transient when S3 says so (5xx, `SlowDown`) or
    /// the request never got an answer (timeout, connection failure).
    pub(crate) fn s3<E>(
        operation: &'static str,
        location: impl Into<String>,
        err: aws_sdk_s3::error::SdkError<E>,
    ) -> Self
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        use aws_sdk_s3::error::SdkError;
        let transient = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(s) => {
                s.raw().status().as_u16() >= 500
                    || matches!(s.err().code(), Some("SlowDown" | "RequestTimeout"))
            }
            _ => false,
        };
        FeatureError::Io {
            operation,
            location: location.into(),
            source: Box::new(err),
            transient,
        }
    }

    /// Whose fault it is: the source the caller named (missing, malformed,
    /// wrong columns) is input; a transient backend failure is transient; a
    /// writer handed an inconsistent table is a bug.
    pub fn kind(&self) -> churn_model::ErrorKind {
        use churn_model::ErrorKind;
        match self {
            FeatureError::Io {
                transient: true, ..
            } => ErrorKind::Transient,
            FeatureError::InvalidTable { .. } => ErrorKind::Internal,
            _ => ErrorKind::Input,
        }
    }

    pub(crate) fn parquet(location: impl Into<String>, err: impl std::fmt::Display) -> Self {
        FeatureError::Parquet {
            location: location.into(),
            message: err.to_string(),
        }
    }

    /// The data row the error is about, if any (used by the rescore handler
    /// to report a failed row without stopping the run).
    pub fn row(&self) -> Option<usize> {
        match self {
            FeatureError::Ragged { row, .. }
            | FeatureError::Cell { row, .. }
            | FeatureError::Row { row, .. } => Some(*row),
            _ => None,
        }
    }
}

/// A row that could not be read while streaming; the stream goes on.
///
/// The row stays in the chunk's table (with missing values where the bad
/// cells were) so row numbers stay contiguous; consumers must skip it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based data row in the source.
    pub row: usize,
    /// What is wrong, naming the column when one cell is at fault.
    pub message: String,
}

/// `Result` with [`FeatureError`].
pub type FeatureResult<T> = std::result::Result<T, FeatureError>;
