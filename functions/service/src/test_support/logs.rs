//! Log lines captured in memory, formatted as the Lambda functions format
//! them with JSON logging on (`lambda_runtime`'s default subscriber with
//! `.json()`), plus the thread id of each line, so tests can check which
//! span (request id) a line was written in and on which thread.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The captured lines; the subscriber is the calling thread's default until
/// the guard returned by [`CapturedLogs::install`] is dropped.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

/// One writer per log line, appending to the shared buffer.
struct LineWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Installs a JSON subscriber at `DEBUG` as this thread's default.
    /// Work handed to other threads logs here too when it carries the
    /// caller's context (`churn_service::blocking`), and only then.
    pub fn install() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        let logs = CapturedLogs::default();
        let buffer = Arc::clone(&logs.buffer);
        let subscriber = lambda_runtime::tracing::subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_thread_ids(true)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LineWriter(Arc::clone(&buffer)))
            .json()
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    /// Every line so far, parsed.
    ///
    /// # Panics
    /// When a line is not JSON (the subscriber writes one object per line).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buffer)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// The lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }
}

/// The `threadId` field value of a line written on the calling thread.
pub fn this_thread_id() -> String {
    format!("{:?}", std::thread::current().id())
}
