//! `churn serve`: the web pages for the CS team and, under `/v1/`, the
//! score API of the Lambda function, on a local HTTP/1 server. Requests are
//! handed, whole, to `churn_service::web::handle` (which passes API calls
//! to the very function the Lambda main calls); this file only moves bytes
//! between hyper and that function.

use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use churn_service::web::{self, Access, Totals, WebApp};

use super::{context, FlagsStoreArg, ModelsStoreArg};
use crate::progress::Progress;

/// Largest request body read, as for a Lambda Function URL (6 MB); the
/// score API applies its own, lower limit to what it is handed.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  churn serve            then open http://127.0.0.1:8080/\n  CHURN_SERVE_TOKEN=$(openssl rand -hex 24) churn serve --addr 0.0.0.0:8080 --models s3://bucket/models --flags dynamodb://churn-flags\n\n\
Pages: /  (risk list)   /customers/{id}   /model   /runs/{run_id}   /models/{id}/report.html\n\n\
Access: without CHURN_SERVE_TOKEN anyone who reaches the port can read and acknowledge, so the\n\
default address is 127.0.0.1, and only loopback host names (and --allowed-host) are answered.\n\
With it (16+ characters), pages ask for it on a login form and the API for\n\
`Authorization: Bearer <token>`. For a team, run it behind an authenticating proxy (docs/WEB.md).\n\n\
API routes (same as the Lambda function):\n  \
POST /v1/score             {\"customers\":[{\"customer_id\":\"c1\",\"features\":{...}}],\"persist\":false}\n  \
GET  /v1/customers/{id}    the stored flag\n  \
GET  /v1/risk-list?band=high&limit=100&cursor=...\n\n\
Try it:\n  curl -s 'http://127.0.0.1:8080/v1/risk-list?band=high&limit=5'\n\n\
Prints `listening on http://ADDR` on stdout once bound (use port 0 for any free port)."
)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default: see Access below).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Another host name the pages answer to without a token (the public
    /// name an authenticating proxy passes on in `Host`); loopback names
    /// always work. Repeat it or separate names with commas.
    #[arg(
        long = "allowed-host",
        value_name = "HOST",
        env = "CHURN_SERVE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    #[command(flatten)]
    pub models: ModelsStoreArg,
    #[command(flatten)]
    pub flags: FlagsStoreArg,
}

/// A handler from a whole request to a whole response.
pub type Handler = Arc<
    dyn Fn(http::Request<Bytes>) -> Pin<Box<dyn Future<Output = http::Response<Bytes>> + Send>>
        + Send
        + Sync,
>;

pub async fn run(args: ServeArgs, progress: Progress) -> anyhow::Result<()> {
    let access = Arc::new(
        Access::from_env()
            .map_err(|e| crate::exit::user(e.to_string()))?
            .with_allowed_hosts(args.allowed_hosts.clone()),
    );
    let config = context::config(Some(&args.models.models), Some(&args.flags.flags))?;
    // `persist: true` writes flags, so a missing local flag store is created.
    let services = context::services(&config, true).await?;
    match services.cache.get().await {
        Ok(Some(model)) => progress.note(format!(
            "serving model {} from {}",
            model.pointer.model_id,
            context::models_display(&config)
        )),
        Ok(None) => progress.note(format!(
            "warning: no model promoted in {} yet; POST /v1/score answers 503 until one is",
            context::models_display(&config)
        )),
        Err(e) => progress.note(format!(
            "warning: the current model cannot be loaded yet: {e}"
        )),
    }
    if !access.required() && !args.addr.ip().is_loopback() {
        progress.note(format!(
            "warning: {} is reachable from other machines and {} is not set: anyone who reaches it can read every flag and acknowledge",
            args.addr,
            web::TOKEN_VAR
        ));
    }
    // The list's header figures read every at-risk flag: start now, not on
    // the first page view.
    let totals = Arc::new(Totals::new());
    totals.refresh_in_background(services.flags.clone());
    let handler: Handler = Arc::new(move |request| {
        let (services, access, totals) = (services.clone(), access.clone(), totals.clone());
        Box::pin(async move {
            let app = WebApp {
                services: &services,
                access: &access,
                totals: &totals,
            };
            web::handle(app, request).await
        })
    });
    serve(args.addr, handler, progress).await
}

/// Bind `addr`, print the bound address on stdout, and serve `handler` until
/// Ctrl-C (or SIGTERM).
pub async fn serve(addr: SocketAddr, handler: Handler, progress: Progress) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| crate::exit::user(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{bound}")?;
        out.flush()?;
    }
    progress.note("press Ctrl-C to stop");

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of file descriptors and the like: keep serving.
                Err(_) => continue,
            },
            () = &mut shutdown => break,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handle(req, &handler).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    progress.note("stopped");
    Ok(())
}

/// Collect the body (bounded), call the handler, wrap the response.
async fn handle(req: http::Request<Incoming>, handler: &Handler) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let (status, message) = if e.is::<http_body_util::LengthLimitError>() {
                (
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {MAX_BODY_BYTES} bytes"),
                )
            } else {
                (
                    http::StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}"),
                )
            };
            return error_response(status, &message);
        }
    };
    let response = handler(http::Request::from_parts(parts, body)).await;
    let (parts, body) = response.into_parts();
    http::Response::from_parts(parts, Full::new(body))
}

fn error_response(status: http::StatusCode, message: &str) -> http::Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message, "details": [] }).to_string();
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
