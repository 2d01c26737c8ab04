//! A small AWS Lambda Runtime API emulator: the HTTP interface a Lambda
//! function's runtime loop talks to, on a free loopback port.
//!
//! Implements `GET /2018-06-01/runtime/invocation/next` (long poll),
//! `POST .../invocation/{id}/response`, `POST .../invocation/{id}/error` and
//! `POST .../init/error`. [`RuntimeApi::invoke`] queues an event and waits
//! for the function's answer, so a test drives a real function binary the
//! way the Lambda service does.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function's response body.
    Response(Bytes),
    /// `/invocation/{id}/error`: the error document the runtime posted.
    Error(Bytes),
    /// `/init/error`: the function failed before its loop started.
    InitError(Bytes),
}

impl Outcome {
    /// The response body as JSON.
    ///
    /// # Errors
    /// When the invocation failed or the body is not JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        match self {
            Outcome::Response(b) => Ok(serde_json::from_slice(b)?),
            Outcome::Error(b) => anyhow::bail!("invocation error: {}", String::from_utf8_lossy(b)),
            Outcome::InitError(b) => anyhow::bail!("init error: {}", String::from_utf8_lossy(b)),
        }
    }
}

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<(String, Bytes)>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<oneshot::Sender<Outcome>>>,
    init_error_seen: Mutex<Option<Bytes>>,
    /// When the function first asked for work (its runtime loop is up).
    first_next: Mutex<Option<Instant>>,
    notify: Notify,
    next_id: Mutex<u64>,
}

/// A running emulator; stops when dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Starts on `127.0.0.1:<free port>`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> anyhow::Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let s = state.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| serve(s.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(RuntimeApi {
            addr,
            state,
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first polled `/next`, if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.state.first_next.lock().unwrap()
    }

    /// The body of an `/init/error` post, if any.
    pub fn init_error(&self) -> Option<Bytes> {
        self.state.init_error_seen.lock().unwrap().clone()
    }

    /// Queues `event` and waits up to `timeout` for the function's answer.
    ///
    /// # Errors
    /// On timeout (the message says whether the function ever polled).
    pub async fn invoke(
        &self,
        event: &serde_json::Value,
        timeout: Duration,
    ) -> anyhow::Result<Outcome> {
        let id = {
            let mut n = self.state.next_id.lock().unwrap();
            *n += 1;
            format!("req-{:08}", *n)
        };
        let (tx, rx) = oneshot::channel();
        let (init_tx, init_rx) = oneshot::channel();
        self.state.waiting.lock().unwrap().insert(id.clone(), tx);
        *self.state.init_error.lock().unwrap() = Some(init_tx);
        if let Some(body) = self.init_error() {
            return Ok(Outcome::InitError(body));
        }
        self.state
            .queue
            .lock()
            .unwrap()
            .push_back((id.clone(), Bytes::from(serde_json::to_vec(event)?)));
        self.state.notify.notify_one();
        tokio::select! {
            r = rx => Ok(r?),
            r = init_rx => Ok(r?),
            _ = tokio::time::sleep(timeout) => {
                self.state.waiting.lock().unwrap().remove(&id);
                anyhow::bail!(
                    "no answer to {id} within {timeout:?} (the function {} polled for work)",
                    if self.first_poll().is_some() { "had" } else { "never" }
                )
            }
        }
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

async fn serve(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let rest = path.strip_prefix("/2018-06-01/runtime/").unwrap_or("");
    if method == Method::GET && rest == "invocation/next" {
        state
            .first_next
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
        let (id, event) = loop {
            let notified = state.notify.notified();
            if let Some(item) = state.queue.lock().unwrap().pop_front() {
                break item;
            }
            notified.await;
        };
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 900_000;
        let mut r = Response::new(Full::new(event));
        let h = r.headers_mut();
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
        h.insert(
            "lambda-runtime-deadline-ms",
            deadline.to_string().parse().unwrap(),
        );
        h.insert(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:e2e"
                .parse()
                .unwrap(),
        );
        h.insert(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".parse().unwrap(),
        );
        return Ok(r);
    }
    if method == Method::POST {
        let body = req.into_body().collect().await?.to_bytes();
        if rest == "init/error" {
            *state.init_error_seen.lock().unwrap() = Some(body.clone());
            if let Some(tx) = state.init_error.lock().unwrap().take() {
                let _ = tx.send(Outcome::InitError(body));
            }
            return Ok(reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}"));
        }
        if let Some(tail) = rest.strip_prefix("invocation/") {
            let (id, kind) = tail.split_once('/').unwrap_or((tail, ""));
            let outcome = match kind {
                "response" => Outcome::Response(body),
                "error" => Outcome::Error(body),
                _ => return Ok(reply(StatusCode::NOT_FOUND, "{}")),
            };
            if let Some(tx) = state.waiting.lock().unwrap().remove(id) {
                let _ = tx.send(outcome);
                return Ok(reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}"));
            }
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                "{\"errorMessage\":\"unknown request id\"}",
            ));
        }
    }
    Ok(reply(StatusCode::NOT_FOUND, "{}"))
}
