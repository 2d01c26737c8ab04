//! The one HTTP client of notifications and its retry loop.
//!
//! hyper 1 with rustls (aws-lc-rs, the system's root certificates): the
//! stack the AWS SDK already brings, so no second TLS library. A request is
//! retried on connection failures, timeouts, 408, 429 and 5xx with
//! exponential backoff and full jitter until the deadline; a `Retry-After`
//! (429 or 503) is honoured as given. Any other 4xx is final: the receiver
//! said the request itself is wrong, and repeating it will not help.

use super::settings::Endpoint;
use crate::retry::RetryPolicy;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// Longest wait for one request (connect, send, read the answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest part of an error body kept in a delivery error.
const ERROR_BODY_CHARS: usize = 200;

/// Backoff of notification retries: 250 ms doubling up to 8 s.
pub const NOTIFY_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(8),
};

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx.
    Accepted,
    /// Worth another try (after `after` if the receiver said so).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The receiver refused the request itself (4xx other than 408/429).
    Rejected(String),
}

/// The outcome of a request with its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Attempts made (1 when the first one was accepted).
    pub attempts: u32,
    /// `Err` holds the last error when retries ran out or the request was rejected.
    pub result: Result<(), String>,
    /// The receiver refused the request itself (a 4xx other than 408/429).
    pub rejected: bool,
}

/// An HTTPS (and, for loopback receivers, HTTP) client, built once per process.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client trusting the system's root certificates.
    ///
    /// # Errors
    /// A message when the system's certificates cannot be loaded.
    pub fn new() -> Result<HttpClient, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// One POST of `body` with `headers`, waiting at most `timeout`.
    pub async fn post_once(
        &self,
        url: &Endpoint,
        headers: &[(&str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Attempt {
        let mut request =
            Request::post(url.uri().clone()).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = match request.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => return Attempt::Rejected(format!("cannot build the request: {e}")),
        };
        let call = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
                status,
                retry_after,
                body.unwrap_or_default(),
            ))
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Attempt::Retry {
                error: format!(
                    "{}: no answer within {:.1} s",
                    url.origin(),
                    timeout.as_secs_f64()
                ),
                after: None,
            },
            Ok(Err(e)) => Attempt::Retry {
                error: format!("{}: {}", url.origin(), crate::error::report(&*e)),
                after: None,
            },
            Ok(Ok((status, after, body))) => classify(status, after, &body, url),
        }
    }

    /// POSTs until accepted, rejected, or `deadline` (no attempt starts after it).
    pub async fn post(
        &self,
        url: &Endpoint,
        headers: &[(&str, String)],
        body: Bytes,
        deadline: Instant,
    ) -> Sent {
        let mut attempts = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            attempts += 1;
            let attempt = self
                .post_once(
                    url,
                    headers,
                    body.clone(),
                    left.min(REQUEST_TIMEOUT).max(Duration::from_millis(100)),
                )
                .await;
            let (error, after) = match attempt {
                Attempt::Accepted => {
                    return Sent {
                        attempts,
                        result: Ok(()),
                        rejected: false,
                    }
                }
                Attempt::Rejected(e) => {
                    return Sent {
                        attempts,
                        result: Err(e),
                        rejected: true,
                    }
                }
                Attempt::Retry { error, after } => (error, after),
            };
            // The receiver's Retry-After, but never less than our own
            // backoff (a `Retry-After: 0` must not make a busy loop).
            let waited = match after {
                Some(after) => {
                    wait_exactly(after.max(NOTIFY_RETRY.backoff(attempts - 1)), deadline).await
                }
                None => NOTIFY_RETRY.wait(attempts - 1, deadline).await,
            };
            if !waited || Instant::now() >= deadline {
                let why = match after {
                    Some(a) if !waited => format!(
                        "{error} (Retry-After {} s is past the deadline)",
                        a.as_secs()
                    ),
                    _ => format!("{error} (gave up at the deadline after {attempts} attempts)"),
                };
                return Sent {
                    attempts,
                    result: Err(why),
                    rejected: false,
                };
            }
        }
    }
}

/// Sleeps `after` unless that ends past `deadline` (then returns `false` at once).
async fn wait_exactly(after: Duration, deadline: Instant) -> bool {
    if Instant::now() + after >= deadline {
        return false;
    }
    tokio::time::sleep(after).await;
    true
}

/// `Retry-After` in seconds (the HTTP-date form is read as "no hint").
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// What a status means for the request.
fn classify(status: StatusCode, after: Option<Duration>, body: &[u8], url: &Endpoint) -> Attempt {
    if status.is_success() {
        return Attempt::Accepted;
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(ERROR_BODY_CHARS)
        .collect();
    let error = format!(
        "{}: HTTP {}{}{}",
        url.origin(),
        status.as_u16(),
        if text.is_empty() { "" } else { ": " },
        text.trim()
    );
    let transient = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    if transient {
        Attempt::Retry { error, after }
    } else {
        Attempt::Rejected(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let url = Endpoint::parse("X", "http://127.0.0.1:1/h").unwrap();
        assert_eq!(classify(StatusCode::OK, None, b"", &url), Attempt::Accepted);
        assert_eq!(
            classify(StatusCode::NO_CONTENT, None, b"", &url),
            Attempt::Accepted
        );
        let after = Some(Duration::from_secs(2));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, after, b"slow down", &url),
            Attempt::Retry { after: Some(a), .. } if a == Duration::from_secs(2)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, None, b"", &url),
            Attempt::Retry { .. }
        ));
        match classify(StatusCode::NOT_FOUND, None, b"no_service", &url) {
            Attempt::Rejected(e) => assert_eq!(e, "http://127.0.0.1:1: HTTP 404: no_service"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_seconds_are_read() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[tokio::test]
    async fn the_client_builds_with_the_system_roots() {
        assert!(HttpClient::new().is_ok());
    }
}
