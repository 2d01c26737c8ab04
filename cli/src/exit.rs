//! Exit codes and error reporting.
//!
//! - `0`: success;
//! - `1`: user error (bad input, missing file, unknown model id, empty model
//!   store...), reported as one sentence on stderr;
//! - `2`: internal error (I/O failure we did not expect, a bug, AWS errors
//!   other than "not found"/"access denied").
//!
//! `RUST_BACKTRACE` may be set in the environment, so errors are printed here
//! with `{:#}` (the chain on one line) and never returned from `main` as a
//! `Result`, which would print a backtrace.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// Exit code for a user error.
pub const USER: u8 = 1;
/// Exit code for an internal error.
pub const INTERNAL: u8 = 2;

/// How an error is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Internal,
}

/// An error caused by what the user asked for (exit code 1).
#[derive(Debug)]
pub struct UserError(pub String);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// A user error with the given message, as an `anyhow::Error`.
pub fn user(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UserError(message.into()))
}

/// Classify an error by the typed errors in its chain.
pub fn classify(err: &anyhow::Error) -> Kind {
    for cause in err.chain() {
        if cause.is::<UserError>() {
            return Kind::User;
        }
        if let Some(kind) = classify_typed(cause) {
            return kind;
        }
    }
    Kind::Internal
}

/// The classification of one typed error from the service or model crates,
/// or `None` when `cause` is not one we know (look further down the chain).
fn classify_typed(cause: &(dyn std::error::Error + 'static)) -> Option<Kind> {
    if let Some(e) = cause.downcast_ref::<churn_service::handlers::HandlerError>() {
        use churn_service::handlers::HandlerError as H;
        // `#[error(transparent)]` variants hide the inner error from the
        // source chain, so look inside here.
        return Some(match e {
            H::BadRequest(_) | H::Features(_) | H::NoModel => Kind::User,
            H::Model(m) => model_kind(m),
            H::Service(s) => service_kind(s),
        });
    }
    if let Some(e) = cause.downcast_ref::<churn_service::Error>() {
        return Some(service_kind(e));
    }
    if let Some(e) = cause.downcast_ref::<churn_model::Error>() {
        return Some(model_kind(e));
    }
    if cause.is::<churn_service::features::FeatureError>() {
        // Every feature error is about the source the user named: a missing
        // file or object, a bad header, a bad cell, a missing column.
        return Some(Kind::User);
    }
    if let Some(e) = cause.downcast_ref::<std::io::Error>() {
        return Some(match e.kind() {
            std::io::ErrorKind::NotFound
            | std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::AlreadyExists
            | std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::AddrInUse
            | std::io::ErrorKind::AddrNotAvailable => Kind::User,
            _ => Kind::Internal,
        });
    }
    None
}

/// Folds a multi-line message (e.g. a TOML parse error with a source
/// snippet) into one line: snippet lines (`1 | text`, `  ^`) are dropped,
/// the rest joined with `: `.
pub fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !l.contains(" | ") && !l.starts_with('|'))
        .filter(|l| !l.chars().all(|c| matches!(c, '^' | '~' | '-' | ' ')))
        .collect();
    parts.join(": ")
}

/// Report a command-line parsing outcome: `--help`/`--version` exit 0,
/// usage errors exit 1 (clap's own default would be 2, our "internal").
pub fn usage(err: clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(USER)
    } else {
        ExitCode::SUCCESS
    }
}

/// Service errors: what the user asked for or gave is wrong (1), or a
/// backend/stored state is broken (2).
fn service_kind(e: &churn_service::Error) -> Kind {
    use churn_service::Error as E;
    match e {
        E::Config { .. }
        | E::ModelNotFound { .. }
        | E::NoPreviousModel
        | E::InvalidCursor(_)
        | E::BandNotListed(_)
        | E::InvalidInput { .. } => Kind::User,
        E::Storage { .. }
        | E::InvalidArtifact(_)
        | E::ArtifactConflict { .. }
        | E::ShaMismatch { .. }
        | E::Corrupt { .. } => Kind::Internal,
        #[allow(unreachable_patterns)]
        _ => Kind::Internal,
    }
}

/// Model errors: problems with the data or schema the user handed in (1);
/// a failed fit or a broken stored artifact (2).
fn model_kind(e: &churn_model::Error) -> Kind {
    use churn_model::Error as E;
    match e {
        E::Solver { .. }
        | E::ArtifactCorrupt { .. }
        | E::ArtifactTampered { .. }
        | E::UnsupportedVersion { .. } => Kind::Internal,
        _ => Kind::User,
    }
}

/// Print the outcome and turn it into the process exit code.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let kind = classify(&err);
            let _ = std::io::stdout().flush();
            let mut message = one_line(&format!("{err:#}"));
            if !message.ends_with(['.', '!', '?']) {
                message.push('.');
            }
            match kind {
                Kind::User => {
                    eprintln!("error: {message}");
                    ExitCode::from(USER)
                }
                Kind::Internal => {
                    eprintln!("internal error: {message}");
                    ExitCode::from(INTERNAL)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn user_error_anywhere_in_the_chain_is_a_user_error() {
        let err: anyhow::Error = Err::<(), _>(user("no such column \"x\""))
            .context("reading data.csv")
            .unwrap_err();
        assert_eq!(classify(&err), Kind::User);
        assert_eq!(format!("{err:#}"), "reading data.csv: no such column \"x\"");
    }

    #[test]
    fn multi_line_messages_fold_into_one() {
        let toml = "invalid request: schema: TOML parse error at line 1, column 6\n  |\n1 | this is = = not toml [\n  |      ^\nexpected `.`, `=`\n";
        assert_eq!(
            one_line(toml),
            "invalid request: schema: TOML parse error at line 1, column 6: expected `.`, `=`"
        );
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn missing_file_is_a_user_error_and_other_errors_are_internal() {
        let nf = anyhow::Error::new(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        assert_eq!(classify(&nf), Kind::User);
        assert_eq!(classify(&anyhow::anyhow!("bug")), Kind::Internal);
    }
}
