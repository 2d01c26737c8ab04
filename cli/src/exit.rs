//! Exit codes and error reporting. One table for every command:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | bad input or state, named in the message (a missing file, a wrong column, no promoted model, an unknown model id) |
//! | 2 | usage: the command line itself is wrong (clap's convention) |
//! | 3 | a snapshot refused by the snapshot check (reserved for it) |
//! | 70 | internal error (sysexits' `EX_SOFTWARE`): a bug, corrupt stored state, or a backend that failed (the message says when retrying may help) |
//!
//! The code is derived from the error's [`ErrorKind`] (each library error has
//! `kind()`), the same decision the HTTP API and the Lambda `errorType` make.
//!
//! `RUST_BACKTRACE` may be set in the environment, so errors are printed here
//! with `{:#}` (the chain on one line) and never returned from `main` as a
//! `Result`, which would print a backtrace.

use churn_model::ErrorKind;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// Exit code for bad input or state.
pub const INPUT: u8 = 1;
/// Exit code for a command line clap refuses.
pub const USAGE: u8 = 2;
/// Exit code for a snapshot the snapshot check refuses (nothing written).
pub const REFUSED: u8 = 3;
/// Exit code for an internal (or transient backend) error.
pub const INTERNAL: u8 = 70;

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

/// The kind of an error: the first typed error in its chain decides;
/// anything unknown is internal.
pub fn classify(err: &anyhow::Error) -> ErrorKind {
    for cause in err.chain() {
        if cause.is::<UserError>() {
            return ErrorKind::Input;
        }
        if let Some(kind) = kind_of(cause) {
            return kind;
        }
    }
    ErrorKind::Internal
}

/// The kind of one typed error from the service or model crates (their own
/// `kind()`), or of an I/O error; `None` when `cause` is not one we know.
fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(e) = cause.downcast_ref::<churn_service::handlers::HandlerError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<churn_service::Error>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<churn_model::Error>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<churn_service::features::FeatureError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<std::io::Error>() {
        return Some(match e.kind() {
            std::io::ErrorKind::NotFound
            | std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::AlreadyExists
            | std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::AddrInUse
            | std::io::ErrorKind::AddrNotAvailable => ErrorKind::Input,
            _ => ErrorKind::Internal,
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
/// usage errors exit 2 (clap's convention and GNU's).
pub fn usage(err: clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

/// Whether the error is a snapshot refused by the check.
pub fn is_refusal(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        matches!(
            c.downcast_ref::<churn_service::handlers::HandlerError>(),
            Some(churn_service::handlers::HandlerError::Refused(_))
        )
    })
}

/// Print the outcome and turn it into the process exit code.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_refusal(&err) => {
            let _ = std::io::stdout().flush();
            eprintln!(
                "error: {}. Nothing was written; `churn check` shows every figure, and rescore or score --force writes anyway.",
                one_line(&format!("{err:#}"))
            );
            ExitCode::from(REFUSED)
        }
        Err(err) => {
            let kind = classify(&err);
            let _ = std::io::stdout().flush();
            let mut message = one_line(&format!("{err:#}"));
            if !message.ends_with(['.', '!', '?']) {
                message.push('.');
            }
            match kind {
                ErrorKind::Input => {
                    eprintln!("error: {message}");
                    ExitCode::from(INPUT)
                }
                ErrorKind::Transient => {
                    eprintln!("error (temporary; retrying may help): {message}");
                    ExitCode::from(INTERNAL)
                }
                ErrorKind::Internal => {
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
        assert_eq!(classify(&err), ErrorKind::Input);
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
        assert_eq!(classify(&nf), ErrorKind::Input);
        assert_eq!(classify(&anyhow::anyhow!("bug")), ErrorKind::Internal);
    }
}
