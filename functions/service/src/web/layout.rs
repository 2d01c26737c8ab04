//! The page shell (header, navigation, main), the headers every response
//! carries, the error page, and the text of numbers and dates.
//!
//! Every value reaches the page through maud's `html!`, which escapes it:
//! an account name with markup shows as text.

use crate::error::Error;
use crate::handlers::score_api;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::OffsetDateTime;

/// Where the style sheet is served.
pub const STYLE_PATH: &str = "/static/style.css";

/// The one style sheet, embedded in the binary.
pub const STYLE: &str = include_str!("style.css");

/// No script at all, styles and images from here only, forms post here
/// only, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page that could not be shown, as an HTML error page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    /// The methods a 405 names in its `Allow` header.
    pub allow: Option<&'static str>,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    /// The error page.
    pub fn into_response(self) -> Response<Bytes> {
        let title = self
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string();
        let body = shell(
            &title,
            Nav::None,
            html! {
                h1 { (title) }
                p.error role="alert" { (self.message) }
                p { a href="/" { "Back to the risk list" } }
            },
        );
        let mut r = html_response(self.status, body);
        if let Some(allow) = self.allow {
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        r
    }
}

/// Statuses are the JSON API's ([`score_api::status_of`]): the caller's
/// input 400 (or 404 for an unknown customer), a store failing for now
/// 503, broken stored state 500 (details in the log only).
impl From<Error> for PageError {
    fn from(e: Error) -> PageError {
        let status = score_api::status_of(&e);
        let message = match (&e, status) {
            (Error::CustomerNotFound(id), _) => format!("Customer {id} has no stored score."),
            (_, StatusCode::BAD_REQUEST) => e.to_string(),
            (_, StatusCode::SERVICE_UNAVAILABLE) => {
                format!("The store is unavailable right now ({e}); try again shortly.")
            }
            _ => format!("Internal error: {e}"),
        };
        PageError::new(status, message)
    }
}

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    RiskList,
    Model,
    None,
}

/// A whole page: head with the style sheet, navigation, `main`.
pub fn shell(title: &str, current: Nav, main: Markup) -> Markup {
    document(title, Some(current), false, linked_style(), main)
}

/// [`shell`] with a "Sign out" button when the server asks for a token.
pub fn page(access: &super::Access, title: &str, current: Nav, main: Markup) -> Markup {
    document(
        title,
        Some(current),
        access.required(),
        linked_style(),
        main,
    )
}

fn linked_style() -> Markup {
    html! { link rel="stylesheet" href=(STYLE_PATH); }
}

/// A page whose style sheet is inside it (the report that travels).
pub fn standalone(title: &str, main: Markup) -> Markup {
    document(
        title,
        None,
        false,
        html! { style { (PreEscaped(STYLE)) } },
        main,
    )
}

/// `current` is `None` for a page without navigation (the report).
fn document(
    title: &str,
    current: Option<Nav>,
    sign_out: bool,
    style: Markup,
    main: Markup,
) -> Markup {
    let item = |nav: Nav, href: &str, label: &str| {
        html! {
            @if Some(nav) == current {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · churn-risk" }
                (style)
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "churn-risk" }
                    @if current.is_some() {
                        nav aria-label="Pages" {
                            (item(Nav::RiskList, "/", "Risk list"))
                            (item(Nav::Model, "/model", "Model and runs"))
                        }
                    }
                    @if sign_out {
                        form.sign-out method="post" action="/logout" {
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (main) }
            }
        }
    }
}

/// A 200 (or other) HTML response.
pub fn html_response(status: StatusCode, body: Markup) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(body.into_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A 303 to `location` (after a form post, or to the login form).
pub fn see_other(location: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::new());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The style sheet, cacheable for an hour.
pub fn style_sheet() -> Response<Bytes> {
    let mut r = Response::new(Bytes::from_static(STYLE.as_bytes()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    secured(r)
}

/// Adds the headers every response carries: the CSP (unless the response
/// set a stricter one of its own), no sniffing, no
/// framing, same-origin referrers, and `no-store` unless the response set
/// its own caching (pages hold customer data).
pub fn secured(mut r: Response<Bytes>) -> Response<Bytes> {
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// `42.3 %`.
pub fn percent(p: f64) -> String {
    format!("{:.1} %", p * 100.0)
}

/// A money amount with thousands separators and no decimals: `1,234,567`.
pub fn amount(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_string();
    }
    let whole = format!("{:.0}", v.abs());
    let mut out = String::with_capacity(whole.len() + whole.len() / 3 + 1);
    if v < -0.5 {
        out.push('-');
    }
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2026-12-01`.
pub fn date(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `2026-12-01 04:15 UTC`.
pub fn date_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", date(t), t.hour(), t.minute())
}

/// The first 12 characters of a model id, the way the pages show it.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A query string from pairs, percent-encoded (empty values left out).
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment percent-encoded (customer ids may hold `/` or spaces).
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_have_thousands_separators() {
        assert_eq!(amount(0.0), "0");
        assert_eq!(amount(999.4), "999");
        assert_eq!(amount(1000.0), "1,000");
        assert_eq!(amount(1234567.8), "1,234,568");
        assert_eq!(amount(-25000.0), "-25,000");
        assert_eq!(amount(f64::NAN), "–");
    }

    #[test]
    fn markup_is_escaped_and_headers_are_set() {
        let name = "<script>alert(1)</script>";
        let page = shell("t", Nav::RiskList, html! { p { (name) } }).into_string();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script"), "{page}");
        let r = secured(html_response(StatusCode::OK, html! {}));
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(CSP.contains("default-src 'none'") && !CSP.contains("script-src"));
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn queries_and_segments_are_encoded() {
        assert_eq!(
            query_string(&[("band", "high"), ("owner", "A & B"), ("segment", "")]),
            "band=high&owner=A+%26+B"
        );
        assert_eq!(segment("c/1 x"), "c%2F1%20x");
        assert_eq!(segment("cust-0_1.a~"), "cust-0_1.a~");
    }
}
