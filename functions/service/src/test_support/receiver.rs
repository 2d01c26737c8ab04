//! A webhook receiver on a loopback port: records every request (headers
//! and exact body) and answers from a script (status, `Retry-After`, delay),
//! then 200 once the script is used up. Stops when dropped.

use super::HarnessError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Answer {
    /// `status` at once.
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }

    /// 429 with `Retry-After: secs`.
    pub fn too_many(secs: u64) -> Answer {
        Answer {
            status: 429,
            retry_after: Some(secs),
            delay: Duration::ZERO,
        }
    }

    /// 200 after `delay`.
    pub fn slow(delay: Duration) -> Answer {
        Answer {
            status: 200,
            retry_after: None,
            delay,
        }
    }
}

/// A request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Received>>,
}

/// A running receiver.
pub struct Receiver {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Receiver {
    /// Starts on a free loopback port, answering 200 until scripted otherwise.
    ///
    /// # Errors
    /// [`HarnessError::Proxy`] when no port can be bound.
    pub async fn start() -> Result<Receiver, HarnessError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| HarnessError::Proxy(format!("receiver bind: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::Proxy(format!("receiver local_addr: {e}")))?;
        let state = Arc::new(State::default());
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&task_state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, state, task })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with `answers`, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(answers);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.state
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let at = std::time::Instant::now();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let next = state
        .script
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop_front()
        .unwrap_or(Answer::status(200));
    if !next.delay.is_zero() {
        tokio::time::sleep(next.delay).await;
    }
    state
        .received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Received {
            path,
            headers,
            body,
            at,
            status: next.status,
        });
    let mut response = Response::builder()
        .status(StatusCode::from_u16(next.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    if let Some(secs) = next.retry_after {
        response = response.header("retry-after", secs.to_string());
    }
    response
        .body(Full::new(Bytes::from_static(b"ok")))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
