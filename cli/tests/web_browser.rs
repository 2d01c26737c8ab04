//! The web pages of `churn serve` in a real headless Chromium, driven over
//! the DevTools protocol (tests/support/cdp.rs), against a small `churn demo`
//! (3,000 customers): the risk list is the API's list in its order and its
//! filter form narrows it, the customer page shows the reasons and the
//! history and takes an acknowledgement, markup in an account name stays
//! text with no script running anywhere, and the model page draws its charts.
//!
//! Needs Chromium: `chromium` on PATH or CHURN_CHROMIUM (scripts/test.sh
//! installs it when missing); the tests fail, not skip, without it.
//! Screenshots of the pages go to `<target>/screenshots/`.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::cdp::{Browser, Page};
use support::cli::{demo, demo_copy, http, http_raw, Server};

/// A page size of the risk list, the web page's and the API's `limit`.
const PAGE_ROWS: usize = 100;

/// Where the screenshots go: `<target dir>/screenshots`, the target dir
/// being CARGO_TARGET_DIR (relative to the workspace) or the workspace's.
fn screenshot(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("screenshots").join(name)
}

// ---------------------------------------------------------------- server

/// `s` percent-encoded for a query string.
fn query_value(s: &str) -> String {
    let mut encoded = String::new();
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The first page of the API's high-risk list (optionally one owner's).
fn api_high_risk(addr: &str, owner: Option<&str>) -> Vec<Value> {
    let owner = owner
        .map(|o| format!("&owner={}", query_value(o)))
        .unwrap_or_default();
    let path = format!("/v1/risk-list?band=high{owner}&limit={PAGE_ROWS}");
    let (status, page) = http(addr, "GET", &path, "");
    assert_eq!(status, 200, "GET {path}: {page}");
    page["flags"].as_array().unwrap().clone()
}

fn ids(flags: &[Value]) -> Vec<String> {
    flags
        .iter()
        .map(|f| f["customer_id"].as_str().unwrap().to_string())
        .collect()
}

/// What the pages show for a customer: the account name, else the id.
fn display_name(flag: &Value) -> String {
    flag["attributes"]["name"]
        .as_str()
        .or(flag["customer_id"].as_str())
        .unwrap()
        .to_string()
}

fn strings(value: Value) -> Vec<String> {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("expected a list of strings ({e}): {value}"))
}

// ---------------------------------------------------------------- pages

/// The `data-customer-id` of the risk list's rows, top to bottom.
fn row_ids(page: &mut Page) -> Vec<String> {
    assert_eq!(
        page.count("table#risk-list"),
        1,
        "no <table id=\"risk-list\">"
    );
    strings(page.eval(
        "Array.from(document.querySelectorAll('#risk-list tbody tr'))\
         .map(r => r.getAttribute('data-customer-id'))",
    ))
}

/// What every page holds to: no `<script>` element, a CSP that forbids
/// inline scripts, and nothing logged: no console message, uncaught
/// exception, CSP violation or failed load (the favicon aside).
fn assert_no_script_ran(page: &mut Page, server: &Server, path: &str) {
    assert_eq!(page.count("script"), 0, "{path} has <script> elements");
    let (status, head, _) = http_raw(&server.addr, "GET", path, "");
    assert_eq!(status, 200, "GET {path}");
    let csp = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-security-policy")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{path} is served without a Content-Security-Policy"));
    // Scripts follow script-src, else default-src: 'none' or 'self' only
    // (no 'unsafe-inline', no other origin).
    let directive = |wanted: &str| {
        csp.split(';').find_map(|directive| {
            let mut words = directive.split_whitespace();
            let name = words.next()?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| words.collect::<Vec<_>>().join(" "))
        })
    };
    let scripts = directive("script-src").or_else(|| directive("default-src"));
    assert!(
        matches!(scripts.as_deref(), Some("'none'" | "'self'")),
        "{path}: the CSP {csp:?} does not restrict scripts to 'none' or 'self'"
    );
    let logged: Vec<String> = page
        .messages()
        .iter()
        .filter(|m| m.level != "verbose" && !m.url.ends_with("/favicon.ico"))
        .map(ToString::to_string)
        .collect();
    assert!(
        logged.is_empty(),
        "{path}: the page logged:\n{}",
        logged.join("\n")
    );
}

/// (a) `/` lists the API's high-risk customers in its order, each row
/// linking to its customer page with the account name, its owner and a
/// sparkline; plus the screenshots at desktop and phone width.
#[test]
fn the_risk_list_shows_the_apis_high_risk_customers_in_its_order() {
    let server = Server::start(demo());
    let (status, api) = http(
        &server.addr,
        "GET",
        &format!("/v1/risk-list?band=high&limit={PAGE_ROWS}"),
        "",
    );
    assert_eq!(status, 200, "{api}");
    let flags = api["flags"].as_array().unwrap();
    assert!(flags.len() > 10, "the demo has high-risk customers: {api}");

    let browser = Browser::launch();
    let mut page = browser.new_page();
    page.set_viewport(1280, 900, false);
    assert_eq!(page.goto(&server.url("/")), 200, "GET /");
    assert_eq!(
        row_ids(&mut page),
        ids(flags),
        "the rows of / are not GET /v1/risk-list?band=high's customers in its order"
    );

    let rows = page.eval(
        "Array.from(document.querySelectorAll('#risk-list tbody tr')).map(r => {
            const link = r.querySelector('td:first-child a.customer-link');
            const owner = r.querySelector('td.owner');
            return {
                href: link && decodeURIComponent(link.getAttribute('href')),
                name: link && link.textContent.trim(),
                owner: owner && owner.textContent.trim(),
                sparklines: r.querySelectorAll('svg.sparkline').length,
                top_reason: r.querySelectorAll('td.top-reason').length,
                ack: r.querySelectorAll('td.ack').length,
            };
        })",
    );
    for (row, flag) in rows.as_array().unwrap().iter().zip(flags) {
        let id = flag["customer_id"].as_str().unwrap();
        assert_eq!(row["href"], format!("/customers/{id}"), "row {id}: {row}");
        assert_eq!(row["name"], display_name(flag), "row {id}: {row}");
        if let Some(owner) = flag["attributes"]["owner"].as_str() {
            assert_eq!(row["owner"], owner, "row {id}: {row}");
        }
        assert_eq!(row["sparklines"], 1, "row {id}: {row}");
        assert_eq!(row["top_reason"], 1, "row {id}: {row}");
        assert_eq!(row["ack"], 1, "row {id}: {row}");
    }
    for selector in [
        "section#summary",
        "nav#bands a",
        "form#filters",
        "#filters [name=owner]",
        "#filters [name=sort]",
        "button#apply-filters",
        "a#download-csv",
    ] {
        assert!(page.count(selector) >= 1, "/ has no {selector}");
    }
    assert_eq!(
        page.count("a#next-page"),
        usize::from(api["next_cursor"].is_string()),
        "a#next-page should be there exactly when the API has a next page: {}",
        api["next_cursor"]
    );
    page.screenshot(&screenshot("risk-list.png"));
    assert_no_script_ran(&mut page, &server, "/");

    let mut phone = browser.new_page();
    phone.set_viewport(390, 844, true);
    assert_eq!(phone.goto(&server.url("/")), 200, "GET / at phone width");
    assert_eq!(
        row_ids(&mut phone),
        ids(flags),
        "the phone shows other rows"
    );
    phone.screenshot_viewport(&screenshot("risk-list-phone.png"));
    assert_no_script_ran(&mut phone, &server, "/");
}

/// (b) Choosing an owner in the filter form and applying it shows exactly
/// the API's list for that owner, fewer rows than before.
#[test]
fn the_owner_filter_narrows_the_list_through_the_form() {
    let server = Server::start(demo());
    let all = api_high_risk(&server.addr, None);
    // The owner with the fewest high-risk customers on the first page, so
    // that the filtered list is visibly shorter.
    let mut per_owner: BTreeMap<&str, usize> = BTreeMap::new();
    for flag in &all {
        if let Some(owner) = flag["attributes"]["owner"].as_str() {
            *per_owner.entry(owner).or_default() += 1;
        }
    }
    let owner = per_owner
        .iter()
        .min_by_key(|(_, n)| **n)
        .map(|(owner, _)| owner.to_string())
        .expect("the demo's customers have owners");
    let wanted = ids(&api_high_risk(&server.addr, Some(&owner)));
    assert!(
        !wanted.is_empty() && wanted.len() < all.len(),
        "{owner} has {} of the {} high-risk customers: no narrowing to see",
        wanted.len(),
        all.len()
    );

    let browser = Browser::launch();
    let mut page = browser.new_page();
    assert_eq!(page.goto(&server.url("/")), 200, "GET /");
    let before = row_ids(&mut page);
    assert_eq!(before.len(), all.len(), "/ before filtering");
    assert_eq!(
        page.set_value("#filters [name=owner]", &owner),
        owner,
        "the owner field does not take {owner:?} (a <select> without that option?)"
    );
    assert_eq!(page.click_and_wait_load("#apply-filters"), 200);
    let url = page.url();
    assert!(
        url.contains(&format!("owner={}", query_value(&owner))),
        "the form did not submit the owner: {url}"
    );

    let rows = row_ids(&mut page);
    assert!(
        rows.len() < before.len(),
        "{url}: {} rows, as many as before",
        rows.len()
    );
    assert_eq!(
        rows, wanted,
        "{url} does not list GET /v1/risk-list?band=high&owner={owner}'s customers in its order"
    );
    let owners = strings(page.eval(
        "Array.from(document.querySelectorAll('#risk-list tbody tr'))\
         .map(r => { const td = r.querySelector('td.owner'); return td ? td.textContent.trim() : null; })",
    ));
    assert!(
        owners.iter().all(|o| *o == owner),
        "{url}: rows of other owners: {owners:?}"
    );
    let path = server.path_of(&url).to_string();
    assert_no_script_ran(&mut page, &server, &path);
}

/// The demo's CSV row of `id` as the score API's `features`: every column
/// but the id and the label, numbers as numbers, empty cells left out.
fn csv_features(dir: &Path, id: &str) -> serde_json::Map<String, Value> {
    let mut reader = csv::Reader::from_path(dir.join("churn-data/customers.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let id_column = headers.iter().position(|h| h == "customer_id").unwrap();
    let row = reader
        .records()
        .map(Result::unwrap)
        .find(|r| &r[id_column] == id)
        .unwrap_or_else(|| panic!("{id} is not in customers.csv"));
    headers
        .iter()
        .zip(row.iter())
        .filter(|(column, cell)| !cell.is_empty() && !["customer_id", "churned"].contains(column))
        .map(|(column, cell)| {
            let value = cell
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::String(cell.to_string()), Value::Number);
            (column.to_string(), value)
        })
        .collect()
}

/// Scores (and stores) one customer through the API.
fn score(addr: &str, id: &str, features: &serde_json::Map<String, Value>) -> Value {
    let body = json!({
        "customers": [{ "customer_id": id, "features": features }],
        "persist": true,
    });
    let (status, scored) = http(addr, "POST", "/v1/score", &body.to_string());
    assert_eq!(status, 200, "POST /v1/score: {scored}");
    scored
}

/// (c) The customer page names the customer, draws one reason per API
/// reason in the API's order, and a history chart of the API's history.
#[test]
fn the_customer_page_shows_the_reasons_and_the_history() {
    let dir = demo_copy();
    let server = Server::start(dir.path());
    let top = api_high_risk(&server.addr, None)[0].clone();
    let id = top["customer_id"].as_str().unwrap();
    // Two more scores with more support tickets give it a history line.
    let mut features = csv_features(dir.path(), id);
    let tickets = features["support_tickets_90d"].as_f64().unwrap();
    for more in [2.0, 4.0] {
        features.insert("support_tickets_90d".into(), json!(tickets + more));
        score(&server.addr, id, &features);
    }
    let (status, flag) = http(&server.addr, "GET", &format!("/v1/customers/{id}"), "");
    assert_eq!(status, 200, "{flag}");
    let reasons: Vec<String> = flag["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["feature"].as_str().unwrap().to_string())
        .collect();
    assert!(!reasons.is_empty(), "{flag}");
    let history = flag["history"].as_array().unwrap().len();

    let browser = Browser::launch();
    let mut page = browser.new_page();
    page.set_viewport(1280, 900, false);
    let path = format!("/customers/{id}");
    assert_eq!(page.goto(&server.url(&path)), 200, "GET {path}");
    assert_eq!(page.text("h1#customer-name").trim(), display_name(&flag));
    assert_eq!(
        page.count("svg#reasons-chart"),
        1,
        "no <svg id=\"reasons-chart\">"
    );
    let drawn = strings(page.eval(
        "Array.from(document.querySelectorAll('#reasons-chart g.reason'))\
         .map(g => g.getAttribute('data-feature'))",
    ));
    assert_eq!(
        drawn, reasons,
        "the reasons chart is not the API's reasons in order"
    );

    assert_eq!(
        page.count("svg#history-chart"),
        1,
        "no <svg id=\"history-chart\">"
    );
    if history == 1 {
        assert!(
            page.count("#history-chart circle.history-point") >= 1,
            "a one-score history is drawn as a circle.history-point"
        );
    } else {
        let points = page.eval(
            "(() => { const line = document.querySelector('#history-chart polyline.history-line');\
             return line ? line.points.numberOfItems : null; })()",
        );
        assert_eq!(
            points,
            json!(history),
            "the history line should have one point per score of the API's history ({history})"
        );
    }
    page.screenshot(&screenshot("customer.png"));
    assert_no_script_ran(&mut page, &server, &path);
}

/// (d) An acknowledgement typed into the customer page is stored (the API
/// shows it) and shown; clearing it from the page removes it.
#[test]
fn acknowledging_on_the_customer_page_stores_and_shows_it() {
    let dir = demo_copy();
    let server = Server::start(dir.path());
    let id = ids(&api_high_risk(&server.addr, None))[0].clone();
    let path = format!("/customers/{id}");
    let by = "Dana Browser-Test";
    let note = "Renewal call booked <b>Friday</b> & discount offered";

    let browser = Browser::launch();
    let mut page = browser.new_page();
    assert_eq!(page.goto(&server.url(&path)), 200, "GET {path}");
    assert!(
        page.text("#ack-state").contains("Not acknowledged"),
        "before: {:?}",
        page.text("#ack-state")
    );
    assert_eq!(
        page.count("#ack-clear"),
        0,
        "a clear button with nothing to clear"
    );
    assert_eq!(
        page.eval("decodeURIComponent(document.querySelector('#ack-form').getAttribute('action'))"),
        json!(format!("/customers/{id}/ack"))
    );
    let csrf =
        page.eval("(document.querySelector('#ack-form input[name=csrf]') || {}).value || ''");
    assert_ne!(csrf, json!(""), "the ack form carries no csrf token");
    assert_eq!(page.set_value("#ack-form [name=by]", by), by);
    assert_eq!(page.set_value("#ack-form [name=note]", note), note);

    assert_eq!(page.click_and_wait_load("#ack-submit"), 200);
    assert_eq!(
        page.eval("location.pathname"),
        json!(path),
        "not back on the customer page"
    );
    let state = page.text("#ack-state");
    assert!(
        state.contains(by) && state.contains(note),
        "the page does not show the acknowledgement: {state:?}"
    );
    let (status, flag) = http(&server.addr, "GET", &format!("/v1/customers/{id}"), "");
    assert_eq!(status, 200, "{flag}");
    assert_eq!(flag["acknowledgement"]["by"], by, "{flag}");
    assert_eq!(flag["acknowledgement"]["note"], note, "{flag}");
    page.screenshot(&screenshot("customer-acknowledged.png"));
    assert_no_script_ran(&mut page, &server, &path);

    assert_eq!(page.click_and_wait_load("#ack-clear"), 200);
    assert_eq!(
        page.eval("location.pathname"),
        json!(path),
        "not back on the customer page"
    );
    assert!(
        page.text("#ack-state").contains("Not acknowledged"),
        "after clearing: {:?}",
        page.text("#ack-state")
    );
    let (_, flag) = http(&server.addr, "GET", &format!("/v1/customers/{id}"), "");
    assert!(
        flag["acknowledgement"].is_null(),
        "still acknowledged: {}",
        flag["acknowledgement"]
    );
}

/// (e) An account name made of markup is shown as that text on the risk
/// list and the customer page; nothing of it runs or loads.
#[test]
fn markup_in_an_account_name_is_shown_as_text_and_runs_nothing() {
    const NAME: &str =
        r#"<script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">"#;
    const ID: &str = "xss-probe";
    let dir = demo_copy();
    let server = Server::start(dir.path());
    let top = api_high_risk(&server.addr, None)[0].clone();
    // The top customer's features under a new id: the same probability, so
    // it is on the first page of the high-risk list.
    let mut features = csv_features(dir.path(), top["customer_id"].as_str().unwrap());
    features.insert("account_name".into(), json!(NAME));
    score(&server.addr, ID, &features);
    let (status, flag) = http(&server.addr, "GET", &format!("/v1/customers/{ID}"), "");
    assert_eq!(status, 200, "{flag}");
    assert_eq!(flag["attributes"]["name"], NAME, "{flag}");
    assert_eq!(flag["risk_band"], "high", "{flag}");

    let browser = Browser::launch();
    let mut page = browser.new_page();
    assert_eq!(page.goto(&server.url("/")), 200, "GET /");
    assert!(
        row_ids(&mut page).iter().any(|id| id == ID),
        "{ID} is not on the risk list"
    );
    assert_eq!(
        page.text(&format!(
            "#risk-list tr[data-customer-id=\"{ID}\"] a.customer-link"
        ))
        .trim(),
        NAME
    );
    assert_eq!(
        page.count("#risk-list img"),
        0,
        "an <img> got into the risk list"
    );
    assert_eq!(
        page.count("[onerror]"),
        0,
        "an onerror attribute got into /"
    );
    assert_ne!(page.eval("document.title"), json!("pwned"));
    assert_no_script_ran(&mut page, &server, "/");

    let path = format!("/customers/{ID}");
    assert_eq!(page.goto(&server.url(&path)), 200, "GET {path}");
    assert_eq!(page.text("h1#customer-name").trim(), NAME);
    assert_eq!(
        page.count("img[src=x], [onerror]"),
        0,
        "the <img> got into {path}"
    );
    assert_ne!(page.eval("document.title"), json!("pwned"));
    assert_no_script_ran(&mut page, &server, &path);
}

/// (f) The model page draws its four charts and lists the coefficients,
/// the models (the current one marked) and the runs, whose pages load.
#[test]
fn the_model_page_draws_its_charts_and_tables() {
    let server = Server::start(demo());
    let browser = Browser::launch();
    let mut page = browser.new_page();
    page.set_viewport(1280, 900, false);
    assert_eq!(page.goto(&server.url("/model")), 200, "GET /model");
    for chart in ["roc-chart", "pr-chart", "calibration-chart", "lift-chart"] {
        assert_eq!(
            page.count(&format!("svg#{chart}")),
            1,
            "no <svg id=\"{chart}\">"
        );
        assert!(
            page.count(&format!("#{chart} path.curve, #{chart} polyline.curve")) >= 1,
            "#{chart} draws no .curve"
        );
    }
    assert!(
        page.count("table#coefficients tbody tr") > 0,
        "no coefficients"
    );
    assert_eq!(
        page.count("table#models tbody tr.current"),
        1,
        "the current model's row is not marked"
    );
    assert_eq!(page.count("table#runs"), 1, "no <table id=\"runs\">");
    page.screenshot(&screenshot("model.png"));
    assert_no_script_ran(&mut page, &server, "/model");

    let (status, runs) = http(&server.addr, "GET", "/v1/runs", "");
    assert_eq!(status, 200, "{runs}");
    let run_id = runs["runs"][0]["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the demo records a run: {runs}"));
    let path = format!("/runs/{run_id}");
    assert_eq!(page.goto(&server.url(&path)), 200, "GET {path}");
    assert_no_script_ran(&mut page, &server, &path);
}
