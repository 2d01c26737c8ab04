//! The one retry loop of the DynamoDB adapter: every call (a batch read, a
//! conditional put, a batch write, a query) reports what one attempt
//! achieved as an [`Outcome`], and [`retrying`] decides whether to back off
//! and try again, restart the backoff ladder after progress, or give up at
//! the deadline.

use crate::retry::RetryPolicy;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::future::Future;
use std::time::Instant;

/// What one attempt of a call achieved.
pub(super) enum Outcome<T> {
    /// Finished.
    Done(T),
    /// Part of the work was done (fewer unprocessed keys or items); the rest
    /// is retried with the backoff ladder restarted. The text says what is left.
    Progress(String),
    /// Throttled or transient: back off and try again.
    Retry(String),
    /// A condition failed: someone else wrote the item.
    Conflict,
    /// Will not succeed by retrying.
    Fatal(String),
}

/// Why [`retrying`] stopped without finishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GaveUp {
    /// The deadline passed; `last` is the last problem seen.
    Deadline {
        attempts: u32,
        last: String,
    },
    Conflict,
    Fatal(String),
}

impl GaveUp {
    /// One sentence for a failure report.
    pub(super) fn reason(&self) -> String {
        match self {
            GaveUp::Deadline { attempts, last } => {
                format!("deadline exceeded after {attempts} attempts: {last}")
            }
            GaveUp::Conflict => "conditional check failed".to_string(),
            GaveUp::Fatal(m) => m.clone(),
        }
    }
}

/// The outcome of a failed SDK call: throttling, 5xx and transport errors
/// are retried, a failed condition is a conflict, anything else is fatal.
pub(super) fn classify<T, E, R>(err: SdkError<E, R>) -> Outcome<T>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().unwrap_or_default().to_string();
    let message = match err.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        _ => DisplayErrorContext(&err).to_string(),
    };
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Outcome::Retry(message)
        }
        SdkError::ServiceError(_) => match code.as_str() {
            "ConditionalCheckFailedException" => Outcome::Conflict,
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException" => Outcome::Retry(message),
            _ => Outcome::Fatal(message),
        },
        _ => Outcome::Fatal(message),
    }
}

/// Runs `call` on `state` until it is done, backing off with full jitter
/// between attempts (the ladder restarts after progress) and giving up at
/// `deadline`. The state goes in and out of each attempt (e.g. the keys
/// still unprocessed) and is handed back either way.
pub(super) async fn retrying<S, T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Instant,
    mut state: S,
    mut call: F,
) -> (S, Result<T, GaveUp>)
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = (S, Outcome<T>)>,
{
    let mut attempt = 0u32;
    let mut last = String::new();
    loop {
        if attempt > 0 && !policy.wait(attempt - 1, deadline).await {
            return (
                state,
                Err(GaveUp::Deadline {
                    attempts: attempt,
                    last,
                }),
            );
        }
        attempt += 1;
        let (next, outcome) = call(state).await;
        state = next;
        match outcome {
            Outcome::Done(t) => return (state, Ok(t)),
            Outcome::Progress(m) => {
                last = m;
                attempt = attempt.min(1);
            }
            Outcome::Retry(m) => last = m,
            Outcome::Conflict => return (state, Err(GaveUp::Conflict)),
            Outcome::Fatal(m) => return (state, Err(GaveUp::Fatal(m))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn retries_until_done_and_hands_the_state_back() {
        let deadline = Instant::now() + Duration::from_secs(5);
        // Each attempt processes one of three items; one throttle in between.
        let (left, result) = retrying(&fast(), deadline, (3u32, 0u32), |(left, n)| async move {
            match (left, n) {
                (0, _) => ((0, n), Outcome::Done(n)),
                (_, 1) => ((left, n + 1), Outcome::Retry("throttled".into())),
                _ => (
                    (left - 1, n + 1),
                    Outcome::Progress(format!("{} left", left - 1)),
                ),
            }
        })
        .await;
        // Three progress steps and one throttle before the final call.
        assert_eq!(left.0, 0);
        assert_eq!(result, Ok(4));
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_naming_the_last_problem() {
        let deadline = Instant::now() + Duration::from_millis(20);
        let (_, result) = retrying(&fast(), deadline, (), |()| async {
            (
                (),
                Outcome::<()>::Retry("ThrottlingException: slow down".into()),
            )
        })
        .await;
        match result {
            Err(GaveUp::Deadline { attempts, last }) => {
                assert!(attempts > 1);
                assert_eq!(last, "ThrottlingException: slow down");
            }
            other => panic!("{other:?}"),
        }
        let (_, result) = retrying(&fast(), deadline, (), |()| async {
            (
                (),
                Outcome::<()>::Fatal("ValidationException: bad key".into()),
            )
        })
        .await;
        assert_eq!(
            result,
            Err(GaveUp::Fatal("ValidationException: bad key".into()))
        );
    }
}
