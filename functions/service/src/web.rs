//! The web app `churn serve` serves next to the JSON API: the pages a
//! customer-success team opens every morning (who is at risk, why, how it
//! is trending, what is at stake, whether someone already acted) and the
//! model and run pages for the data person.
//!
//! One function from a whole request to a whole response, like the score
//! API's: `/v1/...` goes to [`crate::handlers::score_api::handle`] (after
//! the access check), everything else is a server-rendered page. The pages
//! read through the same stores and the same query parsing as the API, so
//! the risk list shows the API's customers in the API's order, and the
//! acknowledgement form writes through the API's acknowledgement path.
//! No JavaScript: filters are a GET form, the acknowledgement a POST form,
//! charts inline SVG drawn here; the one style sheet is embedded in the
//! binary. The Lambda score function stays JSON-only.
//!
//! # Layout
//! - `access.rs`: `CHURN_SERVE_TOKEN`, the session cookie, the login form,
//!   CSRF tokens and same-origin checks of form posts.
//! - `layout.rs`: the page shell, the security headers, number and date text.
//! - `charts.rs`: inline SVG charts (sparkline, history, reasons, curves).
//! - `risk_list.rs`: `/` and `/risk-list.csv`.
//! - `customer.rs`: `/customers/{id}` and its acknowledgement form.
//! - `model_page.rs`: `/model`, `/models/{id}/report.html`, and the
//!   self-contained `report.html` training writes beside each model.
//! - `run_page.rs`: `/runs/{run_id}`.
//! - `totals.rs`: the per-band totals of the list's header, refreshed in
//!   the background (a summary reads every at-risk flag).
//! - `style.css`: the style sheet.

mod access;
mod charts;
mod customer;
mod layout;
mod model_page;
mod risk_list;
mod run_page;
mod totals;

pub use access::{Access, MIN_TOKEN_CHARS, SESSION_COOKIE, TOKEN_VAR};
pub use layout::{CSP, STYLE_PATH};
pub use model_page::report_html;
pub use totals::Totals;

use crate::handlers::score_api::{self, ScoreApi};
use crate::services::Services;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use layout::PageError;

/// Every page route, as (method, path template); the JSON API's are
/// [`score_api::ROUTES`].
pub const PAGES: [(&str, &str); 10] = [
    ("GET", "/"),
    ("GET", "/risk-list.csv"),
    ("GET", "/customers/{id}"),
    ("POST", "/customers/{id}/ack"),
    ("GET", "/model"),
    ("GET", "/models/{model_id}/report.html"),
    ("GET", "/runs/{run_id}"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
];

/// What the pages need: the process's stores, who may read them, and the
/// header's totals.
#[derive(Clone, Copy)]
pub struct WebApp<'a> {
    pub services: &'a Services,
    pub access: &'a Access,
    pub totals: &'a std::sync::Arc<Totals>,
}

/// Answers one request (page, API call, style sheet or login). Never
/// panics on input; every failure is a page (or the API's JSON error).
pub async fn handle(app: WebApp<'_>, request: Request<Bytes>) -> Response<Bytes> {
    let path = request.uri().path().to_string();
    if !app.access.host_allowed(request.headers()) {
        return layout::secured(
            PageError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "Without CHURN_SERVE_TOKEN this server answers only for loopback names \
                 (127.0.0.1, localhost) and the hosts given with --allowed-host.",
            )
            .into_response(),
        );
    }
    if path == layout::STYLE_PATH {
        return layout::style_sheet();
    }
    if path == "/login" || path == "/logout" {
        return access::login_route(app.access, &request);
    }
    if !app.access.admits(request.headers()) {
        return if path.starts_with("/v1/") {
            layout::secured(access::unauthorized_json())
        } else {
            layout::secured(access::to_login(request.uri()))
        };
    }
    if path.starts_with("/v1/") {
        let response = score_api::handle(ScoreApi::of(app.services), request).await;
        return layout::secured(response);
    }
    let response = match page(app, &request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    layout::secured(response)
}

/// The page routes.
async fn page(app: WebApp<'_>, request: &Request<Bytes>) -> Result<Response<Bytes>, PageError> {
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or("");
    let method = request.method();
    let get = *method == Method::GET || *method == Method::HEAD;
    if let Some(raw) = path
        .strip_prefix("/customers/")
        .and_then(|p| p.strip_suffix("/ack"))
    {
        let id = customer_id(raw)?;
        require(*method == Method::POST, "POST")?;
        return customer::ack_form(app, &id, request).await;
    }
    if let Some(raw) = path.strip_prefix("/customers/") {
        require(get, "GET")?;
        return customer::page(app, &customer_id(raw)?, request.headers(), None).await;
    }
    if let Some(id) = path
        .strip_prefix("/models/")
        .and_then(|p| p.strip_suffix("/report.html"))
    {
        require(get, "GET")?;
        return model_page::stored_report(app, id).await;
    }
    if let Some(run_id) = path.strip_prefix("/runs/") {
        require(get, "GET")?;
        crate::run_record::validate_run_id(run_id).map_err(|message| {
            PageError::from(crate::error::Error::InvalidInput {
                field: "run_id",
                message,
            })
        })?;
        return run_page::page(app, run_id).await;
    }
    match path {
        "/" => {
            require(get, "GET")?;
            risk_list::page(app, query).await
        }
        "/risk-list.csv" => {
            require(get, "GET")?;
            risk_list::csv(app, query).await
        }
        "/model" => {
            require(get, "GET")?;
            model_page::page(app).await
        }
        _ => Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!("There is no page at {path}."),
        )),
    }
}

fn require(allowed: bool, method: &'static str) -> Result<(), PageError> {
    if allowed {
        Ok(())
    } else {
        let mut e = PageError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("This address only answers {method}."),
        );
        e.allow = Some(if method == "GET" { "GET, HEAD" } else { method });
        Err(e)
    }
}

fn customer_id(raw: &str) -> Result<String, PageError> {
    score_api::customer_id_of_path(raw).map_err(PageError::from)
}
