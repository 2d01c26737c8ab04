//! Who may read the pages and the API, and whether a form post is ours.
//!
//! Without `CHURN_SERVE_TOKEN` everything is open to whoever reaches the
//! port (so `churn serve` binds 127.0.0.1 by default). With it, every page
//! and API route asks for the token: `Authorization: Bearer <token>` for
//! API clients, or the login form, which sets the `churn_session` cookie
//! (HttpOnly, SameSite=Strict) to an HMAC derived from the token, never
//! the token itself. Comparisons go through `Mac::verify_slice` (constant
//! time).
//!
//! Form posts (acknowledgement, login, logout) must come from our own
//! pages: an `Origin` other than the request's host or a `Sec-Fetch-Site`
//! other than `same-origin`/`none` is refused, and the acknowledgement form
//! carries a CSRF token: `<unix seconds>.<hex HMAC>` under a key drawn at
//! start (a restart invalidates open forms: the page says to reload), valid
//! for [`CSRF_LIFETIME_SECS`].

use super::layout::{html_response, see_other, shell, Nav};
use crate::error::Error;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use maud::html;
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// The variable that turns the access check on.
pub const TOKEN_VAR: &str = "CHURN_SERVE_TOKEN";
/// Shortest token accepted (a guessable token is no protection).
pub const MIN_TOKEN_CHARS: usize = 16;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "churn_session";
/// How long a form's CSRF token is accepted (12 hours).
pub const CSRF_LIFETIME_SECS: i64 = 12 * 3600;

/// The access rule of one `churn serve` process.
pub struct Access {
    /// `CHURN_SERVE_TOKEN`, when set.
    token: Option<String>,
    /// Signs CSRF tokens and keys the comparisons.
    key: [u8; 32],
    /// Host names (besides loopback ones) an open server answers to.
    allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Access")
            .field("token_required", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// No token: open to whoever reaches the port.
    pub fn open() -> Access {
        Access {
            token: None,
            key: rand::random(),
            allowed_hosts: Vec::new(),
        }
    }

    /// Pages and API ask for `token`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `CHURN_SERVE_TOKEN` when it is
    /// shorter than [`MIN_TOKEN_CHARS`] or holds whitespace or control
    /// characters (it travels in a header). The value is never echoed.
    pub fn with_token(token: &str) -> Result<Access, Error> {
        let chars = token.chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(Error::InvalidInput {
                field: TOKEN_VAR,
                message: format!(
                    "{chars} characters; use at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 24`)"
                ),
            });
        }
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::InvalidInput {
                field: TOKEN_VAR,
                message: "only printable ASCII without spaces is accepted".into(),
            });
        }
        Ok(Access {
            token: Some(token.to_string()),
            key: rand::random(),
            allowed_hosts: Vec::new(),
        })
    }

    /// From the environment: `CHURN_SERVE_TOKEN` unset or empty is open.
    ///
    /// # Errors
    /// As [`Access::with_token`].
    pub fn from_env() -> Result<Access, Error> {
        match std::env::var(TOKEN_VAR) {
            Ok(t) if !t.is_empty() => Access::with_token(&t),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Access::open()),
            // Never "open" because the token could not be read.
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidInput {
                field: TOKEN_VAR,
                message: "is not valid UTF-8".into(),
            }),
        }
    }

    /// Also answers requests for these host names (the public name an
    /// authenticating proxy passes on); loopback names always work.
    pub fn with_allowed_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Access {
        self.allowed_hosts = hosts
            .into_iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        self
    }

    /// Whether the request names a host this server answers for. Without a
    /// token the pages are open to whatever reaches the port, so a page of
    /// another site that re-points its own name at 127.0.0.1 (DNS
    /// rebinding) would be same-origin with them: an open server answers
    /// only loopback names and the allowed hosts. With a token the host is
    /// not what protects it. No `Host` (not a browser) passes.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        if self.token.is_some() {
            return true;
        }
        let Some(host) = headers.get(header::HOST) else {
            return true;
        };
        let Ok(host) = host.to_str() else {
            return false;
        };
        let name = host_name(host).to_ascii_lowercase();
        is_loopback(&name) || self.allowed_hosts.contains(&name)
    }

    /// Whether a token is asked for.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the request may read: no token asked, or the bearer header
    /// or the session cookie is right.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|given| self.equal(given.trim(), token));
        bearer
            || cookies(headers, SESSION_COOKIE)
                .any(|given| self.equal(given, &self.session_value(token)))
    }

    /// Constant-time equality of `given` and `expected` (HMACs of both
    /// under the process key, compared by `verify_slice`).
    fn equal(&self, given: &str, expected: &str) -> bool {
        let tag = self.mac(&[expected.as_bytes()]);
        self.keyed(&[given.as_bytes()]).verify_slice(&tag).is_ok()
    }

    /// HMAC-SHA256 under the process key of length-prefixed `parts`.
    fn keyed(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        self.keyed(parts).finalize().into_bytes().to_vec()
    }

    /// The cookie value: an HMAC of a fixed label under the token, so the
    /// same across restarts and processes with one token, and not the
    /// token itself.
    fn session_value(&self, token: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(token.as_bytes()).expect("any key length");
        mac.update(b"churn-serve session v1");
        crate::notify::event::hex(&mac.finalize().into_bytes())
    }

    /// A CSRF token for a form rendered at `now`.
    pub fn csrf_token(&self, now: OffsetDateTime) -> String {
        let at = now.unix_timestamp().to_string();
        let tag = self.mac(&[b"csrf", at.as_bytes()]);
        format!("{at}.{}", crate::notify::event::hex(&tag))
    }

    /// Whether a form post is ours: same origin, and `csrf` a token this
    /// process signed within [`CSRF_LIFETIME_SECS`].
    ///
    /// # Errors
    /// A sentence for the refusal page.
    pub fn check_post(
        &self,
        headers: &HeaderMap,
        csrf: &str,
        now: OffsetDateTime,
    ) -> Result<(), &'static str> {
        same_origin(self, headers)?;
        let (at, tag) = csrf
            .split_once('.')
            .ok_or("the form's security token is malformed; reload the page")?;
        let age = at
            .parse::<i64>()
            .ok()
            .and_then(|issued| now.unix_timestamp().checked_sub(issued))
            .ok_or("the form's security token is malformed; reload the page")?;
        if !(0..=CSRF_LIFETIME_SECS).contains(&age) {
            return Err("the form has expired; reload the page and send it again");
        }
        let expected = crate::notify::event::hex(&self.mac(&[b"csrf", at.as_bytes()]));
        if self.equal(tag, &expected) {
            Ok(())
        } else {
            Err("the form's security token is not this server's (was it restarted?); reload the page and send it again")
        }
    }
}

/// The name part of a `Host` value: `[::1]:8080` -> `::1`, `a.b:80` -> `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn is_loopback(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a post another site made the browser send: `Sec-Fetch-Site`
/// (sent by every current browser) must be `same-origin` or `none`, and an
/// `Origin` must name the request's own host (or the one a proxy forwarded,
/// or an allowed host: a proxy may send its upstream's name as `Host`).
fn same_origin(access: &Access, headers: &HeaderMap) -> Result<(), &'static str> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Err("the form was sent from another site");
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        // Behind a proxy the Host is the proxy's upstream; it forwards the original.
        let forwarded = headers
            .get("x-forwarded-host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(host);
        let allowed = access
            .allowed_hosts
            .contains(&host_name(origin_host).to_ascii_lowercase());
        if origin == "null" || (origin_host != host && origin_host != forwarded && !allowed) {
            return Err("the form was sent from another site");
        }
    }
    Ok(())
}

/// Every value of cookie `name` in the request.
fn cookies<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// 401 for an API call without the token.
pub fn unauthorized_json() -> Response<Bytes> {
    let body = serde_json::json!({
        "error": format!("this server asks for a token: send Authorization: Bearer <{TOKEN_VAR}>"),
        "details": [],
    });
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"churn-risk\""),
    );
    r
}

/// 303 to the login form, coming back to `uri` after.
pub fn to_login(uri: &Uri) -> Response<Bytes> {
    let next = uri.path_and_query().map_or("/", |p| p.as_str());
    see_other(&format!(
        "/login?{}",
        super::layout::query_string(&[("next", next)])
    ))
}

/// `GET /login` (the form), `POST /login` (the token), `POST /logout`.
pub fn login_route(access: &Access, request: &Request<Bytes>) -> Response<Bytes> {
    let response = match (request.uri().path(), request.method()) {
        ("/logout", &Method::POST) => logout(access, request),
        ("/login", &Method::POST) => login(access, request),
        ("/login", m) if *m == Method::GET || *m == Method::HEAD => {
            let next = query_next(request.uri().query().unwrap_or(""));
            if access.required() {
                login_page(StatusCode::OK, &next, None)
            } else {
                see_other(&next)
            }
        }
        (path, _) => {
            let mut e = super::layout::PageError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Use the login form.",
            );
            e.allow = Some(if path == "/login" {
                "GET, HEAD, POST"
            } else {
                "POST"
            });
            e.into_response()
        }
    };
    super::layout::secured(response)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

fn login(access: &Access, request: &Request<Bytes>) -> Response<Bytes> {
    let form: LoginForm = serde_urlencoded::from_bytes(request.body()).unwrap_or(LoginForm {
        token: String::new(),
        next: String::new(),
    });
    let next = local_path(&form.next);
    if let Err(why) = same_origin(access, request.headers()) {
        return login_page(StatusCode::FORBIDDEN, &next, Some(why));
    }
    let Some(token) = &access.token else {
        return see_other(&next);
    };
    if !access.equal(form.token.trim(), token) {
        return login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That is not the token."),
        );
    }
    let secure = request
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{}",
        access.session_value(token),
        if secure { "; Secure" } else { "" }
    );
    let mut r = see_other(&next);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn logout(access: &Access, request: &Request<Bytes>) -> Response<Bytes> {
    if same_origin(access, request.headers()).is_err() {
        return see_other("/");
    }
    let mut r = see_other("/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("churn_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// Only a path on this server: `/` then printable ASCII with no space, and
/// no `//` or `/\\` start (a browser drops tabs and newlines, so `/\t/x`
/// would become `//x`, another host). Never a redirect elsewhere.
fn local_path(next: &str) -> String {
    let b = next.as_bytes();
    let printable = b.iter().all(|c| (0x21..0x7f).contains(c));
    let local = b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/' | b'\\'));
    if printable && local {
        next.to_string()
    } else {
        "/".to_string()
    }
}

fn query_next(query: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Next {
        next: Option<String>,
    }
    let next = serde_urlencoded::from_str::<Next>(query)
        .ok()
        .and_then(|n| n.next)
        .unwrap_or_default();
    local_path(&next)
}

fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response<Bytes> {
    let body = shell(
        "Sign in",
        Nav::None,
        html! {
            h1 { "Sign in" }
            p { "This server asks for its access token (" code { (TOKEN_VAR) } ")." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form #login-form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Access token" }
                input #token type="password" name="token" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    );
    html_response(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_token_is_asked_for_by_bearer_or_cookie() {
        assert!(Access::open().admits(&HeaderMap::new()));
        let e = Access::with_token("short").unwrap_err().to_string();
        assert!(e.contains(TOKEN_VAR) && !e.contains("short"), "{e}");
        assert!(Access::with_token("has a space in it!!").is_err());
        let token = "0123456789abcdef0123";
        let a = Access::with_token(token).unwrap();
        assert!(!a.admits(&HeaderMap::new()));
        assert!(a.admits(&headers(&[("authorization", &format!("Bearer {token}"))])));
        assert!(!a.admits(&headers(&[(
            "authorization",
            "Bearer 0123456789abcdef0124"
        )])));
        let cookie = format!("a=b; {SESSION_COOKIE}={}", a.session_value(token));
        assert!(a.admits(&headers(&[("cookie", &cookie)])));
        // The cookie holds an HMAC, not the token.
        assert!(!a.admits(&headers(&[(
            "cookie",
            &format!("{SESSION_COOKIE}={token}")
        )])));
        assert!(!format!("{a:?}").contains(token));
    }

    #[test]
    fn csrf_tokens_are_signed_fresh_and_same_origin() {
        let a = Access::open();
        let now = crate::timestamp::now();
        let ok = a.csrf_token(now);
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert_eq!(a.check_post(&same, &ok, now), Ok(()));
        let other = Access::open().csrf_token(now);
        assert!(a.check_post(&same, &other, now).is_err(), "another key");
        let later = now + time::Duration::seconds(CSRF_LIFETIME_SECS + 1);
        assert!(a.check_post(&same, &ok, later).is_err(), "expired");
        for bad in [
            "garbage",
            "",
            "-9223372036854775808.00",
            "9223372036854775807.00",
        ] {
            assert!(a.check_post(&same, bad, now).is_err(), "{bad}");
        }
        let cross = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(a.check_post(&cross, &ok, now).is_err());
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://churn.example.com"),
        ]);
        assert!(a.check_post(&proxied, &ok, now).is_err());
        let behind = Access::open().with_allowed_hosts(["churn.example.com".to_string()]);
        let ok_behind = behind.csrf_token(now);
        assert_eq!(behind.check_post(&proxied, &ok_behind, now), Ok(()));
        let fetch = headers(&[("sec-fetch-site", "cross-site")]);
        assert!(a.check_post(&fetch, &ok, now).is_err());
    }

    #[test]
    fn redirects_stay_on_this_server() {
        assert_eq!(local_path("/customers/c1"), "/customers/c1");
        assert_eq!(local_path("//evil.example/x"), "/");
        assert_eq!(local_path("https://evil.example"), "/");
        assert_eq!(local_path("/\\evil"), "/");
        assert_eq!(local_path("/\t/evil.example"), "/");
        assert_eq!(local_path("/a b"), "/");
        assert_eq!(
            local_path("/?band=high&owner=a%20b"),
            "/?band=high&owner=a%20b"
        );
    }

    #[test]
    fn an_open_server_answers_only_loopback_and_allowed_names() {
        let open = Access::open().with_allowed_hosts(["Churn.Example.com".to_string()]);
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "[::1]:80",
            "churn.example.com",
            "127.0.0.2",
        ] {
            assert!(open.host_allowed(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.5:8080",
            "127.0.0.1.evil.example",
        ] {
            assert!(!open.host_allowed(&headers(&[("host", bad)])), "{bad}");
        }
        let guarded = Access::with_token("0123456789abcdef0123").unwrap();
        assert!(guarded.host_allowed(&headers(&[("host", "churn.internal")])));
    }
}
