//! The web pages through `churn_service::web::handle`, the function
//! `churn serve` hands every request to, on the local default (model
//! directory, SQLite): the risk list shows the API's rows in the API's
//! order for every filter, sort and page; the CSV is the whole view; the
//! acknowledgement form writes through the API path and refuses forged
//! posts; account names with markup are text; the token guards pages and
//! API; the model, run and report pages show what the stores hold. (The
//! same pages in a real browser: `cli/tests/web_browser.rs`.)

use bytes::Bytes;
use churn_service::flag_store::SqliteFlagStore;
use churn_service::handlers::rescore::run_event;
use churn_service::services::Services;
use churn_service::web::{self, Access, Totals, WebApp};
use http::{header, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

#[path = "shared/requests.rs"]
mod requests;
use requests::{trained_services, write_csv};

/// A trained model, two rescores a day apart (so customers have a
/// history), and the run id of the second.
struct Fixture {
    services: Services,
    access: Access,
    totals: Arc<Totals>,
    model_id: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    let (services, trained) =
        trained_services(dir.path(), store.clone(), store.clone(), store).await;
    let now = time::OffsetDateTime::now_utc();
    for (days_ago, seed) in [(1, 21), (0, 22)] {
        let snapshot = churn_model::generate(&churn_model::SyntheticConfig {
            customers: 1200,
            seed,
        });
        let csv = write_csv(dir.path(), &format!("snapshot-{seed}.csv"), &snapshot);
        let as_of = churn_service::timestamp::format(
            now - time::Duration::days(days_ago) - time::Duration::hours(1),
        );
        let event = json!({"snapshot": csv.display().to_string(), "as_of": as_of, "run_id": format!("run-{seed}"), "notify": false});
        run_event(&services, &event, &|_| {}).await.unwrap();
    }
    Fixture {
        services,
        access: Access::open(),
        totals: Arc::new(Totals::new()),
        model_id: trained.model_id,
        _dir: dir,
    }
}

impl Fixture {
    fn app(&self) -> WebApp<'_> {
        WebApp {
            services: &self.services,
            access: &self.access,
            totals: &self.totals,
        }
    }

    async fn send(&self, request: Request<Bytes>) -> Response<Bytes> {
        web::handle(self.app(), request).await
    }

    async fn get(&self, uri: &str) -> Response<Bytes> {
        self.send(Request::get(uri).body(Bytes::new()).unwrap())
            .await
    }

    async fn page(&self, uri: &str) -> String {
        let r = self.get(uri).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}: {}", text(&r));
        text(&r)
    }

    async fn api(&self, uri: &str) -> Value {
        let r = self.get(uri).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}: {}", text(&r));
        serde_json::from_slice(r.body()).unwrap()
    }

    /// A same-origin form post, as the browser sends it.
    async fn post_form(&self, uri: &str, pairs: &[(&str, &str)]) -> Response<Bytes> {
        let body = serde_urlencoded::to_string(pairs).unwrap();
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, "http://127.0.0.1:8080")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Bytes::from(body))
            .unwrap();
        self.send(request).await
    }
}

fn text(r: &Response<Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// The `data-customer-id`s of the page's rows, in order.
fn row_ids(html: &str) -> Vec<String> {
    html.split("<tr data-customer-id=\"")
        .skip(1)
        .map(|s| unescape(s.split('"').next().unwrap()))
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the first `name="..."` input after `form id="form"`.
fn form_value(html: &str, form: &str, name: &str) -> String {
    let form = html.split(&format!("<form id=\"{form}\"")).nth(1).unwrap();
    let input = form
        .split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .unwrap();
    unescape(input.split('"').next().unwrap())
}

fn api_ids(page: &Value) -> Vec<String> {
    page["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["customer_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_risk_list_shows_the_apis_rows_in_its_order_for_every_view() {
    let f = fixture().await;
    let top = f.api("/v1/risk-list?band=at-risk&limit=1").await;
    let owner = top["flags"][0]["attributes"]["owner"]
        .as_str()
        .unwrap()
        .to_string();
    let owner_q = serde_urlencoded::to_string([("owner", &owner)]).unwrap();
    let views = [
        String::new(),
        "band=medium&sort=value".to_string(),
        format!("band=at-risk&{owner_q}&sort=renewal&limit=20"),
        "band=at-risk&sort=rising&renewal_within_days=200".to_string(),
        "band=at-risk&unacknowledged=true&limit=7".to_string(),
    ];
    for view in &views {
        let html = f.page(&format!("/?{view}")).await;
        let api = f.api(&format!("/v1/risk-list?{view}")).await;
        assert!(
            !api_ids(&api).is_empty(),
            "{view}: empty view tests nothing"
        );
        assert_eq!(row_ids(&html), api_ids(&api), "view {view:?}");
        // The next page is the API's next page.
        if let Some(cursor) = api["next_cursor"].as_str() {
            let next = serde_urlencoded::to_string([("cursor", cursor)]).unwrap();
            assert!(
                html.contains(&next.replace('&', "&amp;")),
                "{view}: no link to {next}"
            );
            let page2 = f.page(&format!("/?{view}&{next}")).await;
            let api2 = f.api(&format!("/v1/risk-list?{view}&{next}")).await;
            assert_eq!(row_ids(&page2), api_ids(&api2), "second page of {view:?}");
        }
    }
    // The owner filter narrowed the list to that owner.
    let html = f.page(&format!("/?band=at-risk&{owner_q}")).await;
    let all = f.page("/?band=at-risk").await;
    assert!(row_ids(&html).len() < row_ids(&all).len() || row_ids(&all).len() == 100);
    assert_eq!(
        html.matches("<td class=\"owner\">").count(),
        html.matches(&format!("<td class=\"owner\">{owner}</td>"))
            .count()
    );
    // Header: customers per band are the summary's.
    let summary = f.api("/v1/summary?by=band").await;
    let high = summary["total"]["high"]["customers"].as_u64().unwrap();
    assert!(
        html.contains(&format!("{high} customers")) || high >= 1000,
        "{high}"
    );
    // Every row has a sparkline of its history; customers scored twice have two points.
    assert_eq!(
        all.matches("<svg class=\"sparkline\"").count(),
        row_ids(&all).len()
    );
    assert!(
        all.contains("2 scores"),
        "no customer with a two-point history"
    );
    // A bad parameter is a 400 page naming it, as the API's 400 does.
    let r = f.get("/?band=purple").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(text(&r).contains("band"), "{}", text(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_download_is_every_row_of_the_view() {
    let f = fixture().await;
    let r = f.get("/risk-list.csv?band=at-risk&sort=value").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(r.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let mut reader = csv::Reader::from_reader(r.body().as_ref());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        headers,
        [
            "customer_id",
            "name",
            "owner",
            "segment",
            "value",
            "renewal_date",
            "churn_probability",
            "risk_band",
            "band_since",
            "top_reason",
            "acknowledged_by",
            "acknowledged_until"
        ]
    );
    let ids: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    // Every page of the API, in order.
    let mut expected = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = f
            .api(&format!(
                "/v1/risk-list?band=at-risk&sort=value&limit=1000{cursor}"
            ))
            .await;
        expected.extend(api_ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => {
                cursor = format!("&{}", serde_urlencoded::to_string([("cursor", c)]).unwrap())
            }
            None => break,
        }
    }
    assert!(expected.len() > 100, "more than one page of the list");
    assert_eq!(ids, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acknowledgement_form_writes_through_the_api_and_refuses_forgeries() {
    let f = fixture().await;
    let id = api_ids(&f.api("/v1/risk-list?band=high&limit=1").await).remove(0);
    let page_uri = format!("/customers/{id}");
    let ack_uri = format!("/customers/{id}/ack");
    let html = f.page(&page_uri).await;
    assert!(
        html.contains("id=\"ack-state\">Not acknowledged."),
        "{html}"
    );
    let csrf = form_value(&html, "ack-form", "csrf");

    // A forged post: no token, a fresh token of another key, an expired
    // one, another site.
    let foreign = Access::open().csrf_token(time::OffsetDateTime::now_utc());
    for (csrf, site) in [
        ("", "same-origin"),
        (foreign.as_str(), "same-origin"),
        ("1.00ff", "same-origin"),
        (csrf.as_str(), "cross-site"),
    ] {
        let request = Request::builder()
            .method(Method::POST)
            .uri(&ack_uri)
            .header(header::HOST, "127.0.0.1:8080")
            .header("sec-fetch-site", site)
            .body(Bytes::from(
                serde_urlencoded::to_string([("csrf", csrf), ("by", "mallory"), ("note", "x")])
                    .unwrap(),
            ))
            .unwrap();
        let r = f.send(request).await;
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{csrf:?} {site}: {}",
            text(&r)
        );
    }
    let flag = f.api(&format!("/v1/customers/{id}")).await;
    assert!(
        flag["acknowledgement"].is_null(),
        "a forged post changed nothing"
    );

    // Input the rule refuses: the page again, 400, the field named, the note kept.
    let r = f
        .post_form(
            &ack_uri,
            &[("csrf", &csrf), ("by", " "), ("note", "calling <them>")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = text(&r);
    assert!(body.contains("Not saved: by must not be empty"), "{body}");
    assert!(body.contains("value=\"calling &lt;them&gt;\""), "{body}");

    // Acknowledge: 303 back to the page, stored as the API shows it, shown.
    let r = f
        .post_form(
            &ack_uri,
            &[
                ("csrf", &csrf),
                ("action", "acknowledge"),
                ("by", "ana.silva@example.com"),
                ("note", "QBR booked"),
                ("until", "2099-01-31"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(&r));
    assert_eq!(
        r.headers()[header::LOCATION],
        format!("/customers/{id}#acknowledgement")
    );
    let flag = f.api(&format!("/v1/customers/{id}")).await;
    assert_eq!(flag["acknowledgement"]["by"], "ana.silva@example.com");
    assert_eq!(flag["acknowledgement"]["note"], "QBR booked");
    assert!(flag["acknowledgement"]["until"]
        .as_str()
        .unwrap()
        .starts_with("2099-01-31"));
    let html = f.page(&page_uri).await;
    assert!(
        html.contains("Acknowledged by <strong>ana.silva@example.com</strong>"),
        "{html}"
    );
    // The list shows it, and the unacknowledged view leaves it out.
    assert!(f
        .page("/?band=high")
        .await
        .contains("✓ ana.silva@example.com"));
    assert!(!row_ids(&f.page("/?band=high&unacknowledged=true").await).contains(&id));

    // Clear.
    let csrf = form_value(&html, "ack-clear-form", "csrf");
    let r = f
        .post_form(&ack_uri, &[("csrf", &csrf), ("action", "clear")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", text(&r));
    let flag = f.api(&format!("/v1/customers/{id}")).await;
    assert!(flag["acknowledgement"].is_null(), "{flag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_name_with_markup_is_shown_as_text() {
    let f = fixture().await;
    let name = "<script>alert(1)</script><img src=x onerror=alert(2)> & \"Sons\"";
    // Scored and stored through the API with the features of a listed customer.
    let top = api_ids(&f.api("/v1/risk-list?band=high&limit=1").await).remove(0);
    let snapshot = churn_model::generate(&churn_model::SyntheticConfig {
        customers: 1200,
        seed: 22,
    });
    let row: usize = snapshot
        .column("customer_id")
        .map(|c| match &c.values {
            churn_model::ColumnValues::Text(v) => v
                .iter()
                .position(|i| i.as_deref() == Some(top.as_str()))
                .unwrap(),
            churn_model::ColumnValues::Numeric(_) => panic!("text ids"),
        })
        .unwrap();
    let mut features = serde_json::Map::new();
    for column in &snapshot.columns {
        let value = match &column.values {
            churn_model::ColumnValues::Text(v) => json!(v[row]),
            churn_model::ColumnValues::Numeric(v) => json!(v[row]),
        };
        features.insert(column.name.clone(), value);
    }
    features.remove("customer_id");
    features.remove("churned");
    features.insert("account_name".into(), json!(name));
    let body =
        json!({"customers": [{"customer_id": "xss-probe", "features": features}], "persist": true});
    let r = f
        .send(
            Request::post("/v1/score")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Bytes::from(body.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", text(&r));
    let escaped =
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; &quot;Sons&quot;";
    for uri in ["/customers/xss-probe", "/?band=high&limit=1000"] {
        let r = f.get(uri).await;
        let html = text(&r);
        assert!(html.contains(escaped), "{uri}: {html}");
        assert!(!html.contains("<script") && !html.contains("<img"), "{uri}");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("script-src"),
            "{csp}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_server_answers_only_its_own_host_names() {
    // DNS rebinding: another site's name pointed at 127.0.0.1 is refused,
    // pages and API alike, unless it is an allowed host.
    let mut f = fixture().await;
    let with_host = |uri: &str, host: &str| {
        Request::get(uri)
            .header(header::HOST, host)
            .body(Bytes::new())
            .unwrap()
    };
    for uri in ["/", "/v1/risk-list", "/model"] {
        let r = f.send(with_host(uri, "evil.example:8080")).await;
        assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{uri}");
        assert_eq!(
            f.send(with_host(uri, "localhost:8080")).await.status(),
            StatusCode::OK
        );
    }
    f.access = Access::open().with_allowed_hosts(["churn.example.com".to_string()]);
    let r = f.send(with_host("/", "churn.example.com")).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_pages_and_the_api() {
    let mut f = fixture().await;
    let token = "s3cret-token-for-tests-0123";
    f.access = Access::with_token(token).unwrap();

    let r = f.get("/customers/c%2F1?x=1").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/login?next=%2Fcustomers%2Fc%252F1%3Fx%3D1"
    );
    let r = f.get("/v1/risk-list").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(
        f.get(web::STYLE_PATH).await.status(),
        StatusCode::OK,
        "the style sheet is open"
    );
    assert_eq!(f.get("/login").await.status(), StatusCode::OK);

    let bearer = |uri: &str| {
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Bytes::new())
            .unwrap()
    };
    assert_eq!(
        f.send(bearer("/v1/risk-list")).await.status(),
        StatusCode::OK
    );
    assert_eq!(f.send(bearer("/")).await.status(), StatusCode::OK);

    let r = f
        .post_form(
            "/login",
            &[("token", "wrong-token-wrong-token"), ("next", "/model")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!r.headers().contains_key(header::SET_COOKIE));
    let r = f
        .post_form("/login", &[("token", token), ("next", "//evil.example/")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/",
        "never a redirect elsewhere"
    );
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(token), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap().to_string();
    let with_cookie = Request::get("/model")
        .header(header::COOKIE, &session)
        .body(Bytes::new())
        .unwrap();
    assert_eq!(f.send(with_cookie).await.status(), StatusCode::OK);
    let r = f.post_form("/logout", &[]).await;
    assert!(r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_run_and_report_pages_show_what_is_stored() {
    let f = fixture().await;
    let html = f.page("/model").await;
    for chart in ["roc-chart", "pr-chart", "calibration-chart", "lift-chart"] {
        let svg = html
            .split(&format!("id=\"{chart}\""))
            .nth(1)
            .unwrap()
            .split("</svg>")
            .next()
            .unwrap();
        assert!(
            svg.contains("class=\"curve\"") || svg.contains("class=\"curve-dot\""),
            "{chart}"
        );
    }
    assert!(html.contains("<table id=\"coefficients\">"));
    assert_eq!(html.matches("<tr class=\"current\">").count(), 1);
    assert!(html.contains(&f.model_id[..12]));
    // The last runs, newest first, linking to their pages.
    let a = html.find("href=\"/runs/run-22\"").unwrap();
    let b = html.find("href=\"/runs/run-21\"").unwrap();
    assert!(a < b);

    let run = f.page("/runs/run-22").await;
    let record = f.api("/v1/runs/run-22").await;
    let features = record["check"]["features"].as_array().unwrap();
    assert_eq!(
        run.split("<table id=\"run-check\">")
            .nth(1)
            .unwrap()
            .matches("<tr>")
            .count(),
        features.len() + 1
    );
    let rows = record["counts"]["rows"].as_u64().unwrap();
    assert_eq!(rows, 1200);
    assert!(
        run.contains("<th scope=\"row\">Rows read</th><td class=\"num\">1,200</td>"),
        "{run}"
    );
    assert_eq!(
        f.get("/runs/no-such-run").await.status(),
        StatusCode::NOT_FOUND
    );

    // The report: training stored it beside model.json; served, it is the same file.
    let stored = f
        .services
        .models
        .report(&f.model_id)
        .await
        .unwrap()
        .unwrap();
    let r = f.get(&format!("/models/{}/report.html", f.model_id)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.body().as_ref(), stored.as_slice());
    let report = String::from_utf8(stored).unwrap();
    assert!(report.contains("<style>") && report.contains("id=\"roc-chart\""));
    for external in ["<link", "src=", "<script", "href=\"http", "@import", "url("] {
        assert!(
            !report.contains(external),
            "the report fetches nothing: {external}"
        );
    }
    assert!(f
        .get("/models/nope/report.html")
        .await
        .status()
        .is_client_error());
    assert_eq!(
        f.get("/customers/nobody").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(f.get("/nothing-here").await.status(), StatusCode::NOT_FOUND);
}
