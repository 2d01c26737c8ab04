//! `/`: the risk list a CS manager opens every morning, and
//! `/risk-list.csv`: every row of the same view as a file.
//!
//! The query string is read by the API's own [`ListRequest::parse`] and the
//! rows come from the same [`FlagStore::list`] call, so the page shows the
//! customers of `GET /v1/risk-list` in its order, with its filters, sorts
//! and cursors.

use super::charts::sparkline;
use super::layout::{
    amount, date, date_time, html_response, page as page_shell, percent, query_string, segment,
    Nav, PageError,
};
use super::WebApp;
use crate::flag::Flag;
use crate::flag_store::{FlagStore, ListQuery, ListSort, Totals, MAX_PAGE_LIMIT};
use crate::handlers::score_api::ListRequest;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use maud::{html, Markup};
use serde::Serialize;
use std::collections::HashMap;

/// Most rows a CSV download holds; a larger view is refused with a hint
/// to narrow it or use `churn risk-list --format csv`.
pub const MAX_CSV_ROWS: usize = 100_000;

/// Histories read at once for the sparklines (one read per row).
const HISTORY_READS: usize = 16;

/// The page.
pub async fn page(app: WebApp<'_>, query: &str) -> Result<Response<Bytes>, PageError> {
    let request = ListRequest::parse(query)?;
    let flags = &app.services.flags;
    let (page, figures) = futures::join!(
        flags.list(&request.query, request.limit, request.cursor.as_deref()),
        app.totals.get(flags),
    );
    let page = page?;
    let figures = figures?;
    let histories = histories(flags.as_ref(), &page.flags, request.query.now).await;
    let view = View::of(&request);
    let body = html! {
        h1 { "At-risk customers" }
        (summary_section(&figures.by_band, figures.computed_at))
        (band_tabs(&view))
        (filter_form(&view, &figures.owners, &figures.segments))
        p.actions {
            a #download-csv href=(format!("/risk-list.csv?{}", view.query(None))) download { "Download CSV" }
            " of this view (every page)"
        }
        @if page.flags.is_empty() {
            p #empty { "No customer matches this view." }
        } @else {
            div.table-wrap {
                table #risk-list {
                    caption { (view.caption()) }
                    thead { tr {
                        th scope="col" { "Account" }
                        th scope="col" { "Owner" }
                        th scope="col" .num { "Value" }
                        th scope="col" { "Renewal" }
                        th scope="col" { "Churn probability" }
                        th scope="col" { "Band" }
                        th scope="col" { "Top reason" }
                        th scope="col" { "Acknowledged" }
                    } }
                    tbody {
                        @for flag in &page.flags {
                            (row(flag, histories.get(flag.customer_id.as_str()).map(Vec::as_slice)))
                        }
                    }
                }
            }
        }
        nav.pages aria-label="Pages of the list" {
            @if request.cursor.is_some() {
                a #first-page href=(format!("/?{}", view.query(None))) { "First page" }
            }
            @if let Some(next) = &page.next_cursor {
                a #next-page href=(format!("/?{}", view.query(Some(next)))) { "Next page" }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page_shell(app.access, "Risk list", Nav::RiskList, body),
    ))
}

/// Each listed customer's probabilities, oldest first (one read per row,
/// [`HISTORY_READS`] at a time; a failed read leaves that sparkline empty
/// rather than the page).
async fn histories<'f>(
    flags: &dyn FlagStore,
    listed: &'f [Flag],
    now: time::OffsetDateTime,
) -> HashMap<&'f str, Vec<f64>> {
    let mut out = HashMap::with_capacity(listed.len());
    for chunk in listed.chunks(HISTORY_READS) {
        let reads: Vec<_> = chunk.iter().map(|f| history(flags, f, now)).collect();
        for (flag, probabilities) in chunk.iter().zip(futures::future::join_all(reads).await) {
            out.insert(flag.customer_id.as_str(), probabilities);
        }
    }
    out
}

async fn history(flags: &dyn FlagStore, flag: &Flag, now: time::OffsetDateTime) -> Vec<f64> {
    let record = flags.customer(&flag.customer_id, now).await.ok().flatten();
    let mut points = record.map(|r| r.history).unwrap_or_default();
    points.sort_by_key(|p| p.scored_at);
    points.iter().map(|p| p.churn_probability).collect()
}

/// The view's parameters as text, to link to other pages of it.
struct View {
    band: String,
    owner: String,
    segment: String,
    renewal: String,
    unacknowledged: bool,
    sort: String,
    limit: String,
}

fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl View {
    fn of(request: &ListRequest) -> View {
        let q = &request.query;
        View {
            band: name(&q.band),
            owner: q.owner.clone().unwrap_or_default(),
            segment: q.segment.clone().unwrap_or_default(),
            renewal: q
                .renewal_within_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            unacknowledged: q.unacknowledged,
            sort: name(&q.sort),
            limit: if request.limit == crate::handlers::score_api::DEFAULT_LIMIT {
                String::new()
            } else {
                request.limit.to_string()
            },
        }
    }

    /// This view's query string (from its first page, or at `cursor`).
    fn query(&self, cursor: Option<&str>) -> String {
        self.with_band(&self.band, cursor)
    }

    fn with_band(&self, band: &str, cursor: Option<&str>) -> String {
        query_string(&[
            ("band", band),
            ("owner", &self.owner),
            ("segment", &self.segment),
            ("renewal_within_days", &self.renewal),
            (
                "unacknowledged",
                if self.unacknowledged { "true" } else { "" },
            ),
            ("sort", &self.sort),
            ("limit", &self.limit),
            ("cursor", cursor.unwrap_or("")),
        ])
    }

    fn caption(&self) -> String {
        let mut parts = vec![format!("Band {}", self.band)];
        if !self.owner.is_empty() {
            parts.push(format!("owner {}", self.owner));
        }
        if !self.segment.is_empty() {
            parts.push(format!("segment {}", self.segment));
        }
        if !self.renewal.is_empty() {
            parts.push(format!("renewing within {} days", self.renewal));
        }
        if self.unacknowledged {
            parts.push("unacknowledged".into());
        }
        parts.push(format!("by {}", self.sort));
        parts.join(", ")
    }
}

fn summary_section(by_band: &crate::flag_store::Summary, at: time::OffsetDateTime) -> Markup {
    let total = |name: &str| -> Totals {
        match name {
            "high" => by_band.total.high,
            "medium" => by_band.total.medium,
            _ => by_band.total.at_risk,
        }
    };
    html! {
        section #summary aria-label="Customers and value at risk per band" {
            @for (band, label) in [("high", "High"), ("medium", "Medium"), ("at-risk", "At risk")] {
                @let t = total(band);
                div class=(format!("tile tile-{band}")) {
                    span.tile-label { (label) }
                    span.tile-count { (amount(t.customers as f64)) " customers" }
                    span.tile-value { (amount(t.value_at_risk)) " value at risk" }
                }
            }
            p.as-of { "Totals as of " (date_time(at)) }
        }
    }
}

fn band_tabs(view: &View) -> Markup {
    html! {
        nav #bands aria-label="Bands" {
            @for (band, label) in [("high", "High"), ("medium", "Medium"), ("at-risk", "High and medium")] {
                @if band == view.band {
                    a.tab href=(format!("/?{}", view.with_band(band, None))) aria-current="page" { (label) }
                } @else {
                    a.tab href=(format!("/?{}", view.with_band(band, None))) { (label) }
                }
            }
        }
    }
}

fn filter_form(view: &View, owners: &[String], segments: &[String]) -> Markup {
    let sorts = [
        (ListSort::Probability, "Churn probability"),
        (ListSort::Value, "Value at risk"),
        (ListSort::Renewal, "Soonest renewal"),
        (ListSort::Rising, "Rising fastest (7 days)"),
    ];
    html! {
        form #filters method="get" action="/" {
            input type="hidden" name="band" value=(view.band);
            (choice("owner", "Owner", "Anyone", owners, &view.owner))
            (choice("segment", "Segment", "Any", segments, &view.segment))
            div.field {
                label for="renewal_within_days" { "Renewing within (days)" }
                input #renewal_within_days type="number" name="renewal_within_days" min="0"
                    max=(crate::handlers::score_api::MAX_RENEWAL_DAYS) inputmode="numeric" value=(view.renewal);
            }
            div.field.checkbox {
                input #unacknowledged type="checkbox" name="unacknowledged" value="true" checked[view.unacknowledged];
                label for="unacknowledged" { "Unacknowledged only" }
            }
            div.field {
                label for="sort" { "Sort by" }
                select #sort name="sort" {
                    @for (sort, label) in sorts {
                        @let value = name(&sort);
                        option value=(value) selected[value == view.sort] { (label) }
                    }
                }
            }
            button #apply-filters type="submit" { "Apply" }
            a.reset href=(format!("/?{}", query_string(&[("band", &view.band)]))) { "Clear filters" }
        }
    }
}

/// A labelled select of `options` with an "any" choice, `current` selected
/// (kept as a choice when it is not among them: a value typed into the
/// address that has no at-risk account now).
fn choice(name: &str, label: &str, any: &str, options: &[String], current: &str) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" { (any) }
                @for o in options {
                    option value=(o) selected[o == current] { (o) }
                }
                @if !current.is_empty() && !options.iter().any(|o| o == current) {
                    option value=(current) selected { (current) }
                }
            }
        }
    }
}

fn row(flag: &Flag, history: Option<&[f64]>) -> Markup {
    let a = &flag.attributes;
    let id = &flag.customer_id;
    let history = match history {
        Some(h) if !h.is_empty() => h.to_vec(),
        _ => vec![flag.churn_probability],
    };
    let band = flag.risk_band.as_str();
    html! {
        tr data-customer-id=(id) {
            td.account {
                a.customer-link href=(format!("/customers/{}", segment(id))) { (a.name.as_deref().unwrap_or(id)) }
                @if a.name.is_some() { br; span.muted.id { (id) } }
            }
            td.owner { (a.owner.as_deref().unwrap_or("–")) }
            td.value.num { (a.value.map(amount).unwrap_or_else(|| "–".into())) }
            td.renewal { (a.renewal_date.as_deref().unwrap_or("–")) }
            td.probability {
                span.p { (percent(flag.churn_probability)) }
                (sparkline(&history))
                @if let Some(d7) = flag.trend.d7 {
                    @if d7.abs() >= 0.0005 {
                        span class=(if d7 > 0.0 { "trend up" } else { "trend down" }) title="change over 7 days" {
                            (if d7 > 0.0 { "▲ " } else { "▼ " }) (format!("{:.1} pts", d7.abs() * 100.0))
                        }
                    }
                }
            }
            td.band {
                span class=(format!("band band-{band}")) { (band) }
                @if let Some(since) = flag.band_changed_at {
                    br; span.muted { "since " (date(since)) }
                }
            }
            td.top-reason { (flag.reasons.first().map(ToString::to_string).unwrap_or_else(|| "–".into())) }
            td.ack {
                @if let Some(ack) = &flag.acknowledgement {
                    span.acked { "✓ " (ack.by) } br; span.muted { "until " (date(ack.until)) }
                } @else {
                    span.muted { "Not yet" }
                }
            }
        }
    }
}

/// `/risk-list.csv`: every row of the view (all pages), at most
/// [`MAX_CSV_ROWS`].
pub async fn csv(app: WebApp<'_>, query: &str) -> Result<Response<Bytes>, PageError> {
    let request = ListRequest::parse(query)?;
    let rows = all_rows(app.services.flags.as_ref(), &request.query).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
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
        "acknowledged_until",
    ];
    let write_err =
        |e: csv::Error| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    out.write_record(header).map_err(write_err)?;
    for flag in &rows {
        let a = &flag.attributes;
        let ack = flag.acknowledgement.as_ref();
        out.write_record([
            text(Some(&flag.customer_id)),
            text(a.name.as_deref()),
            text(a.owner.as_deref()),
            text(a.segment.as_deref()),
            a.value.map(|v| v.to_string()).unwrap_or_default(),
            a.renewal_date.clone().unwrap_or_default(),
            format!("{:.6}", flag.churn_probability),
            flag.risk_band.as_str().to_string(),
            flag.band_changed_at.map(date).unwrap_or_default(),
            text(flag.reasons.first().map(ToString::to_string).as_deref()),
            text(ack.map(|a| a.by.as_str())),
            ack.map(|a| date(a.until)).unwrap_or_default(),
        ])
        .map_err(write_err)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut r = Response::new(Bytes::from(bytes));
    let file = format!(
        "risk-list-{}-{}.csv",
        name(&request.query.band),
        date(request.query.now)
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Every flag of the view, page after page.
async fn all_rows(flags: &dyn FlagStore, query: &ListQuery) -> Result<Vec<Flag>, PageError> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = flags.list(query, MAX_PAGE_LIMIT, cursor.as_deref()).await?;
        rows.extend(page.flags);
        if rows.len() > MAX_CSV_ROWS {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "This view has more than {} rows; narrow it with the filters.",
                    amount(MAX_CSV_ROWS as f64)
                ),
            ));
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(rows),
        }
    }
}

/// A text cell that a spreadsheet would run as a formula (`=`, `+`, `-`,
/// `@`, tab or CR first) gets a leading `'`: account names come from
/// snapshots, and a CS team opens this file in a spreadsheet.
fn text(value: Option<&str>) -> String {
    match value {
        Some(v) if v.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{v}"),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(text(Some("=HYPERLINK(\"x\")")), "'=HYPERLINK(\"x\")");
        assert_eq!(text(Some("@SUM(A1)")), "'@SUM(A1)");
        assert_eq!(text(Some("Acme")), "Acme");
        assert_eq!(text(None), "");
    }

    #[test]
    fn a_view_links_to_its_pages_and_bands() {
        let request =
            ListRequest::parse("band=medium&owner=Ana%20Lee&sort=value&cursor=abc").unwrap();
        let view = View::of(&request);
        assert_eq!(view.query(None), "band=medium&owner=Ana+Lee&sort=value");
        assert_eq!(
            view.query(Some("n/1")),
            "band=medium&owner=Ana+Lee&sort=value&cursor=n%2F1"
        );
        assert_eq!(
            view.with_band("high", None),
            "band=high&owner=Ana+Lee&sort=value"
        );
    }
}
