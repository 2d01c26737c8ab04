//! The crate's one error type. Every variant that concerns input data names
//! the row (1-based, as the user sees it in the source file) and the column or
//! field, so a message can be acted on without a debugger.

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who is to blame for an error: the one decision every caller derives its
/// reaction from (CLI exit code, HTTP status, Lambda `errorType` and so
/// whether Step Functions retries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input, request or stored state the caller named is wrong or
    /// missing: retrying the same thing fails the same way.
    Input,
    /// A dependency failed for now (a store outage, throttling past the
    /// deadline, a network error): the same request may succeed later.
    Transient,
    /// A bug, or stored data that cannot be what it claims (a tampered or
    /// corrupt artifact): needs an operator.
    Internal,
}

impl ErrorKind {
    /// The Lambda Runtime API `errorType` of this kind, matched by the state
    /// machine's `Retry` (transient only) and `Catch` clauses.
    pub fn lambda_error_type(self) -> &'static str {
        match self {
            ErrorKind::Input => "ChurnInputError",
            ErrorKind::Transient => "ChurnTransientError",
            ErrorKind::Internal => "ChurnInternalError",
        }
    }
}

/// Formats an optional row number as `" at row N"` (or nothing).
fn at_row(row: &Option<usize>) -> String {
    match row {
        Some(r) => format!(" at row {r}"),
        None => String::new(),
    }
}

/// Everything that can go wrong in the model crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A column the configuration or schema names is not in the table.
    #[error("column {column:?} not found in the table (columns: {available})")]
    MissingColumn { column: String, available: String },

    /// Columns of different lengths.
    #[error("column {column:?} has {len} rows but the table has {expected}")]
    RaggedTable {
        column: String,
        len: usize,
        expected: usize,
    },

    /// The table has no rows.
    #[error("the table has no rows")]
    EmptyTable,

    /// A label value other than 1/0, true/false, yes/no.
    #[error("row {row}, column {column:?}: label {value:?} is not one of 1/0, true/false, yes/no")]
    BadLabel {
        row: usize,
        column: String,
        value: String,
    },

    /// An empty label cell.
    #[error("row {row}, column {column:?}: label is missing")]
    MissingLabel { row: usize, column: String },

    /// An empty customer id.
    #[error("row {row}, column {column:?}: customer id is missing")]
    MissingId { row: usize, column: String },

    /// A customer id that breaks the id rule (too long, control characters).
    #[error("row {row}, column {column:?}: {problem}")]
    InvalidId {
        row: usize,
        column: String,
        problem: crate::customer_id::CustomerIdError,
    },

    /// The same customer id appears twice.
    #[error("row {row}, column {column:?}: duplicate customer id {id:?} (first seen at row {first_row})")]
    DuplicateId {
        row: usize,
        first_row: usize,
        column: String,
        id: String,
    },

    /// Every label has the same value.
    #[error("column {column:?}: every one of the {rows} rows has label {class}; training needs both churned and retained customers")]
    OneClass {
        column: String,
        class: String,
        rows: usize,
    },

    /// Too few rows of the rarer class to fit and evaluate a model.
    #[error("column {column:?}: only {count} rows have label {class} (the minority class); at least {required} are needed")]
    TooFewMinority {
        column: String,
        class: String,
        count: usize,
        required: usize,
    },

    /// A cell that cannot be read as the column's kind.
    #[error("row {row}, column {column:?}: {value:?} is not a number")]
    NotANumber {
        row: usize,
        column: String,
        value: String,
    },

    /// A required feature is missing in training data.
    #[error(
        "row {row}, column {column:?}: value is missing but the schema marks the column required"
    )]
    MissingRequired { row: usize, column: String },

    /// The schema TOML could not be parsed or is inconsistent.
    #[error("schema: {message}")]
    Schema { message: String },

    /// A configuration value is out of range.
    #[error("training configuration: {message}")]
    InvalidConfig { message: String },

    /// After preprocessing nothing is left to learn from.
    #[error("no usable feature columns (all were ignored, constant or absent)")]
    NoFeatures,

    /// The optimiser failed.
    #[error("model fit failed: {message}")]
    Solver { message: String },

    /// The artifact bytes are not a valid artifact (truncated, not JSON, missing fields).
    #[error("model artifact is corrupt or truncated: {message}")]
    ArtifactCorrupt { message: String },

    /// The artifact content does not match its `model_id`.
    #[error("model artifact has been modified: its content hashes to {actual} but it claims model_id {claimed}")]
    ArtifactTampered { claimed: String, actual: String },

    /// The artifact was written by a newer (or unknown) format version.
    #[error("model artifact schema_version {found} is not supported (this build reads up to {supported})")]
    UnsupportedVersion { found: u64, supported: u32 },

    /// A scoring field holds NaN or an infinity.
    #[error("field {field:?}{}: value is not a finite number", at_row(.row))]
    NonFiniteField { field: String, row: Option<usize> },

    /// A value outside the model's input domain: negative where every
    /// training value was >= 0 (a count, a duration, money). Log1p'd
    /// features and the model's coefficients only make sense on that domain,
    /// so scoring it would be a silent guess.
    #[error("field {field:?}{}: {field} is {value}; every training value was >= 0", at_row(.row))]
    NegativeValue {
        field: String,
        row: Option<usize>,
        value: f64,
    },

    /// A finite number so large that the model's logit overflows.
    #[error("field {field:?}{}: value is too large to score", at_row(.row))]
    ValueOutOfRange { field: String, row: Option<usize> },

    /// A scoring field has the wrong JSON type.
    #[error("field {field:?}{}: expected {expected}, found {found}", at_row(.row))]
    WrongType {
        field: String,
        row: Option<usize>,
        expected: &'static str,
        found: String,
    },

    /// A required feature is absent or null at scoring time.
    #[error("field {field:?}{}: required feature is missing", at_row(.row))]
    MissingField { field: String, row: Option<usize> },
}

impl Error {
    /// Whose fault it is: a failed fit or an artifact that does not verify is
    /// internal; everything else concerns the data, schema or configuration
    /// the caller handed in.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Solver { .. }
            | Error::ArtifactCorrupt { .. }
            | Error::ArtifactTampered { .. }
            | Error::UnsupportedVersion { .. } => ErrorKind::Internal,
            _ => ErrorKind::Input,
        }
    }
}
