//! Work handed to another thread keeps the caller's tracing context.
//!
//! `tracing` keeps the current span (in Lambda: the runtime's
//! `Lambda runtime invoke` span carrying `requestId`) per thread, so a log
//! line written on tokio's blocking pool or a rayon worker would lose the
//! request id. Every hand-off in this crate goes through [`spawn`], [`run`]
//! or [`TraceContext::run`], which re-enter the caller's span (and its
//! subscriber, for callers that installed one only for their own thread, as
//! tests do) on the other thread; [`drop_detached`] alone does not, as it
//! only frees memory and logs nothing.

use tracing::{Dispatch, Span};

/// The caller's current span and subscriber, to re-enter on another thread.
#[derive(Debug, Clone)]
pub struct TraceContext {
    span: Span,
    dispatch: Dispatch,
}

impl TraceContext {
    /// The context of the calling thread.
    pub fn current() -> TraceContext {
        TraceContext {
            span: Span::current(),
            dispatch: tracing::dispatcher::get_default(Dispatch::clone),
        }
    }

    /// Runs `f` inside the captured span, logging to the captured subscriber.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        tracing::dispatcher::with_default(&self.dispatch, || self.span.in_scope(f))
    }
}

/// `tokio::task::spawn_blocking` inside the caller's span.
///
/// # Panics
/// Outside a tokio runtime, as `spawn_blocking`.
pub fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let context = TraceContext::current();
    tokio::task::spawn_blocking(move || context.run(f))
}

/// Runs `f` on the blocking pool inside the caller's span and waits for it,
/// keeping CPU-heavy or blocking work off the async worker threads. A panic
/// in `f` resumes in the caller. Without a tokio runtime (a synchronous
/// caller that used another executor's `block_on`) `f` runs inline.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    join(spawn(f)).await
}

/// Waits for work [`spawn`]ed earlier; a panic in it resumes in the caller.
pub async fn join<T>(handle: tokio::task::JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels blocking tasks; nothing is left to return to.
        Err(e) => panic!("blocking task cancelled: {e}"),
    }
}

/// Drops `value` on a detached thread of its own. Freeing a large value
/// (a million-row table is a million allocations, tens of milliseconds of
/// `free` on one thread) then holds up neither the reply nor, in the CLI,
/// the process's exit. Where no thread can be started the value is dropped
/// here, as it would have been.
pub fn drop_detached<T: Send + 'static>(value: T) {
    // A failed spawn drops the closure, and the value with it, on this thread.
    let _detached = std::thread::Builder::new()
        .name("drop".into())
        .spawn(move || drop(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::logs::{this_thread_id, CapturedLogs};

    #[tokio::test]
    async fn blocking_work_logs_inside_the_callers_span() {
        let (logs, _guard) = CapturedLogs::install();
        let span = tracing::info_span!("invocation", requestId = "req-1");
        let nested_thread = {
            let _entered = span.enter();
            run(|| {
                tracing::info!("on the blocking pool");
                // A hand-off from there to yet another thread (as the readers do with rayon).
                let context = TraceContext::current();
                std::thread::spawn(move || {
                    context.run(|| tracing::info!("on a pool thread"));
                    this_thread_id()
                })
                .join()
                .unwrap()
            })
            .await
        };
        tracing::info!("after");
        let lines = logs.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        for (line, message) in lines
            .iter()
            .zip(["on the blocking pool", "on a pool thread"])
        {
            assert_eq!(line["fields"]["message"], message, "{line}");
            assert_eq!(line["span"]["requestId"], "req-1", "{line}");
            assert_ne!(line["threadId"], this_thread_id().as_str(), "{line}");
        }
        assert_eq!(lines[1]["threadId"], nested_thread.as_str());
        assert!(lines[2].get("span").is_none(), "{}", lines[2]);
    }

    #[tokio::test]
    async fn without_the_context_another_thread_loses_the_span() {
        // What the helpers exist for: a plain spawned thread logs nowhere
        // (no subscriber of its own here; in Lambda: without the request id).
        let (logs, _guard) = CapturedLogs::install();
        let span = tracing::info_span!("invocation", requestId = "req-2");
        let _entered = span.enter();
        tokio::task::spawn_blocking(|| tracing::info!("lost"))
            .await
            .unwrap();
        assert!(logs.with_message("lost").is_empty());
    }

    #[tokio::test]
    #[should_panic(expected = "boom")]
    async fn a_panic_resumes_in_the_caller() {
        run(|| panic!("boom")).await
    }

    #[test]
    fn a_detached_drop_runs_on_another_thread() {
        struct Reports(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Reports {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        drop_detached(Reports(tx));
        let dropped_on = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the value is dropped");
        assert_ne!(dropped_on, std::thread::current().id());
    }

    #[test]
    fn without_a_runtime_the_work_runs_inline() {
        let here = std::thread::current().id();
        let ran_on = futures::executor::block_on(run(|| std::thread::current().id()));
        assert_eq!(ran_on, here);
    }
}
