//! An in-process HTTP proxy in front of moto_server that injects the
//! DynamoDB behaviours moto lacks:
//!
//! - BatchWriteItem with more than 25 requests is refused with the
//!   `ValidationException` real DynamoDB returns;
//! - the next K requests (optionally of one operation) get
//!   `ProvisionedThroughputExceededException`;
//! - BatchWriteItem requests have items held back: they are removed from the
//!   request before it reaches moto (so they really are not written) and
//!   returned as `UnprocessedItems` in the response;
//! - EventBridge PutEvents entries fail: removed from the request before it
//!   reaches moto and answered as failed entries (`ErrorCode`) in their
//!   places, as EventBridge does under throttling or internal errors.
//!
//! The SDK signs requests, but moto does not check signatures, so rewriting
//! a body is invisible to both sides.

use super::HarnessError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest BatchWriteItem DynamoDB accepts.
const BATCH_WRITE_LIMIT: usize = 25;
const JSON_10: &str = "application/x-amz-json-1.0";

/// What the proxy has seen and done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests received, by operation (`BatchWriteItem`, `PutItem`, ...).
    pub requests: HashMap<String, usize>,
    /// Item count of every BatchWriteItem received, in order.
    pub batch_write_sizes: Vec<usize>,
    /// Requests answered with ProvisionedThroughputExceededException.
    pub throttled: usize,
    /// BatchWriteItem requests refused for exceeding 25 items.
    pub oversized_rejected: usize,
    /// Items returned as UnprocessedItems.
    pub unprocessed_returned: usize,
    /// PutEvents entries moto accepted (their JSON, in order).
    pub events_accepted: Vec<Value>,
    /// PutEvents entries answered as failed.
    pub event_entries_failed: usize,
}

#[derive(Default)]
struct State {
    enforce_batch_limit: AtomicBool,
    throttle_remaining: AtomicUsize,
    throttle_operation: Mutex<Option<String>>,
    unprocessed_remaining: AtomicUsize,
    unprocessed_per_request: AtomicUsize,
    failing_entries: AtomicUsize,
    stats: Mutex<ProxyStats>,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream`
    /// (moto's address). The 25-item limit is enforced from the start; no
    /// other fault is active until configured.
    ///
    /// # Errors
    /// [`HarnessError::Proxy`] when no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| HarnessError::Proxy(format!("bind: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| HarnessError::Proxy(format!("local_addr: {e}")))?;
        let state = Arc::new(State::default());
        state.enforce_batch_limit.store(true, Ordering::SeqCst);
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&task_state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(handle(&state, upstream, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FaultProxy { addr, state, task })
    }

    /// `http://127.0.0.1:<port>`: use as the SDK endpoint.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the next `count` requests (of `operation` only, e.g.
    /// `"BatchWriteItem"`, or of any operation) with
    /// ProvisionedThroughputExceededException. `usize::MAX` throttles forever.
    pub fn throttle_next(&self, count: usize, operation: Option<&str>) {
        *self
            .state
            .throttle_operation
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = operation.map(str::to_string);
        self.state.throttle_remaining.store(count, Ordering::SeqCst);
    }

    /// Holds back up to `per_request` items of each BatchWriteItem (all of
    /// them if it has no more), `total` items in all, returning them as
    /// UnprocessedItems. `usize::MAX` holds back forever.
    pub fn hold_back_items(&self, total: usize, per_request: usize) {
        self.state
            .unprocessed_per_request
            .store(per_request, Ordering::SeqCst);
        self.state
            .unprocessed_remaining
            .store(total, Ordering::SeqCst);
    }

    /// Fails the next `count` PutEvents entries (the first ones of each
    /// request until the budget is spent).
    pub fn fail_event_entries(&self, count: usize) {
        self.state.failing_entries.store(count, Ordering::SeqCst);
    }

    /// Turns the 25-item BatchWriteItem limit on or off.
    pub fn enforce_batch_limit(&self, on: bool) {
        self.state.enforce_batch_limit.store(on, Ordering::SeqCst);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        self.state
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error_response(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "__type": kind, "message": message }).to_string();
    Response::builder()
        .status(status)
        .header("content-type", JSON_10)
        .header("x-amzn-errortype", kind.rsplit('#').next().unwrap_or(kind))
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn take_budget(counter: &AtomicUsize, want: usize) -> usize {
    let mut taken = 0;
    let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
        taken = left.min(want);
        Some(left - taken)
    });
    taken
}

async fn handle(
    state: &State,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(StatusCode::BAD_GATEWAY, "ProxyError", &e.to_string()),
    };
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_string();
    let stats = |f: &mut dyn FnMut(&mut ProxyStats)| {
        f(&mut state.stats.lock().unwrap_or_else(|p| p.into_inner()))
    };
    stats(&mut |s| *s.requests.entry(operation.clone()).or_default() += 1);

    // Throttling applies before anything reaches moto, as in DynamoDB.
    let throttle_applies = state
        .throttle_operation
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_deref()
        .is_none_or(|op| op == operation);
    if throttle_applies && take_budget(&state.throttle_remaining, 1) == 1 {
        stats(&mut |s| s.throttled += 1);
        return error_response(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        );
    }

    if operation == "PutEvents" {
        return put_events(state, upstream, &parts, body).await;
    }

    let mut body = body;
    let mut held: Map<String, Value> = Map::new();
    let mut held_count = 0;
    if operation == "BatchWriteItem" {
        if let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&body) {
            let count: usize = doc
                .get("RequestItems")
                .and_then(Value::as_object)
                .map(|m| m.values().filter_map(Value::as_array).map(Vec::len).sum())
                .unwrap_or(0);
            stats(&mut |s| s.batch_write_sizes.push(count));
            if count > BATCH_WRITE_LIMIT && state.enforce_batch_limit.load(Ordering::SeqCst) {
                stats(&mut |s| s.oversized_rejected += 1);
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "com.amazon.coral.validation#ValidationException",
                    "1 validation error detected: Value at 'requestItems' failed to satisfy \
                     constraint: Map value must satisfy constraint: [Member must have length \
                     less than or equal to 25, Member must have length greater than or equal to 1]",
                );
            }
            let want = state
                .unprocessed_per_request
                .load(Ordering::SeqCst)
                .min(count);
            let hold = take_budget(&state.unprocessed_remaining, want);
            if hold > 0 {
                if let Some(Value::Object(tables)) = doc.get_mut("RequestItems") {
                    let mut left = hold;
                    for (table, requests) in tables.iter_mut() {
                        let Some(requests) = requests.as_array_mut() else {
                            continue;
                        };
                        let n = left.min(requests.len());
                        if n == 0 {
                            continue;
                        }
                        let kept = requests.len() - n;
                        held.insert(table.clone(), Value::Array(requests.split_off(kept)));
                        held_count += n;
                        left -= n;
                        if left == 0 {
                            break;
                        }
                    }
                }
                if held_count == count {
                    // Everything held back: DynamoDB may answer so, but an
                    // empty request cannot be forwarded; answer ourselves.
                    stats(&mut |s| s.unprocessed_returned += held_count);
                    let body = json!({ "UnprocessedItems": held }).to_string();
                    return Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", JSON_10)
                        .body(Full::new(Bytes::from(body)))
                        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())));
                }
                body = Bytes::from(Value::Object(doc).to_string());
            }
        }
    }

    let response = match forward_request(upstream, &parts, body).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    if held_count == 0 {
        return response;
    }
    merge_held(state, response, held, held_count).await
}

/// Sends `body` with the request's method, path and headers to moto.
async fn forward_request(
    upstream: SocketAddr,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
    let mut forward = Request::builder().method(parts.method.clone()).uri(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    );
    for (name, value) in &parts.headers {
        if name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let forward = forward
        .header("content-length", body.len())
        .body(Full::new(body))
        .map_err(|e| error_response(StatusCode::BAD_GATEWAY, "ProxyError", &e.to_string()))?;
    send_upstream(upstream, forward)
        .await
        .map_err(|e| error_response(StatusCode::BAD_GATEWAY, "ProxyError", &e))
}

/// Merges the held-back items into the response's UnprocessedItems.
async fn merge_held(
    state: &State,
    response: Response<Full<Bytes>>,
    held: Map<String, Value>,
    held_count: usize,
) -> Response<Full<Bytes>> {
    let stats = |f: &mut dyn FnMut(&mut ProxyStats)| {
        f(&mut state.stats.lock().unwrap_or_else(|p| p.into_inner()))
    };
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(StatusCode::BAD_GATEWAY, "ProxyError", &e.to_string()),
    };
    if !parts.status.is_success() {
        // Nothing was written upstream; the held items were never sent either.
        return Response::from_parts(parts, Full::new(bytes));
    }
    let mut doc = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(d)) => d,
        _ => Map::new(),
    };
    let unprocessed = doc
        .entry("UnprocessedItems")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(u) = unprocessed {
        for (table, items) in held {
            match u.entry(table).or_insert_with(|| Value::Array(vec![])) {
                Value::Array(existing) => {
                    if let Value::Array(items) = items {
                        existing.extend(items);
                    }
                }
                other => *other = items,
            }
        }
    }
    stats(&mut |s| s.unprocessed_returned += held_count);
    let body = Bytes::from(Value::Object(doc).to_string());
    parts.headers.remove("x-amz-crc32");
    parts.headers.insert("content-length", body.len().into());
    Response::from_parts(parts, Full::new(body))
}

async fn send_upstream(
    upstream: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Response<Full<Bytes>>, String> {
    let stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| format!("connect {upstream}: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| format!("read: {e}"))?
        .to_bytes();
    Ok(Response::from_parts(parts, Full::new(bytes)))
}

/// PutEvents with the failing budget applied: the failing entries never
/// reach moto and are answered as failed in their places.
async fn put_events(
    state: &State,
    upstream: SocketAddr,
    parts: &http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let Ok(Value::Object(mut doc)) = serde_json::from_slice::<Value>(&body) else {
        return error_response(StatusCode::BAD_REQUEST, "ValidationException", "not JSON");
    };
    let entries = match doc.get_mut("Entries") {
        Some(Value::Array(e)) => std::mem::take(e),
        _ => Vec::new(),
    };
    let failing = take_budget(&state.failing_entries, entries.len());
    let kept: Vec<Value> = entries[failing..].to_vec();
    let failed_entry =
        json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected by the fault proxy"});
    let mut answers: Vec<Value> = vec![failed_entry; failing];
    if !kept.is_empty() {
        doc.insert("Entries".into(), Value::Array(kept.clone()));
        let body = Bytes::from(Value::Object(doc).to_string());
        let response = match forward_request(upstream, parts, body).await {
            Ok(r) => r,
            Err(e) => return e,
        };
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !parts.status.is_success() {
            return Response::from_parts(parts, Full::new(bytes));
        }
        let moto: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let moto_entries = moto["Entries"].as_array().cloned().unwrap_or_default();
        let mut stats = state.stats.lock().unwrap_or_else(|p| p.into_inner());
        for (sent, answer) in kept.iter().zip(&moto_entries) {
            if answer.get("ErrorCode").is_none() {
                stats.events_accepted.push(sent.clone());
            }
        }
        answers.extend(moto_entries);
    }
    state
        .stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .event_entries_failed += failing;
    let failed_count = answers
        .iter()
        .filter(|a| a.get("ErrorCode").is_some())
        .count();
    let body = json!({"FailedEntryCount": failed_count, "Entries": answers}).to_string();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
