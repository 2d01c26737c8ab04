//! `/customers/{id}`: one account: its attributes, its probability history
//! with the band cutoffs and model changes marked, the reasons as bars of
//! their contribution (the customer's value beside the typical one), and
//! the acknowledgement with its form.
//!
//! The form posts to `/customers/{id}/ack` (CSRF token and same-origin
//! checked), which acknowledges through the API's own
//! [`acknowledge_customer`] (or clears through the store's
//! `unacknowledge`, as `DELETE /v1/customers/{id}/ack` does), then sends
//! the browser back here (303). Input the rule refuses comes back on this
//! page, the field named, what was typed kept.

use super::charts::{history_chart, reasons_chart};
use super::layout::{
    amount, date, date_time, html_response, page as page_shell, percent, see_other, segment,
    short_id, Nav, PageError,
};
use super::WebApp;
use crate::error::Error;
use crate::flag::{CustomerRecord, DEFAULT_ACK_DAYS, MAX_ACK_TEXT_CHARS};
use crate::handlers::score_api::acknowledge_customer;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use maud::{html, Markup};

/// What was typed into a refused acknowledgement form.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AckForm {
    #[serde(default)]
    csrf: String,
    /// `acknowledge` (default) or `clear`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    until: String,
}

/// A refused form: the message, and what was typed.
pub struct Refused {
    message: String,
    form: AckForm,
}

/// The page (`refused`: after a form the rule refused, shown with a 400).
pub async fn page(
    app: WebApp<'_>,
    id: &str,
    headers: &HeaderMap,
    refused: Option<Refused>,
) -> Result<Response<Bytes>, PageError> {
    let now = crate::timestamp::now();
    let record = app
        .services
        .flags
        .customer(id, now)
        .await?
        .ok_or_else(|| Error::CustomerNotFound(id.to_string()))?;
    // The band cutoffs drawn are the current model's; a model that cannot
    // be loaded just leaves them out.
    let model = app.services.cache.get().await.ok().flatten();
    let cutoffs = model.as_ref().map(|m| m.model.artifact.bands);
    let mut history = record.history.clone();
    history.sort_by_key(|p| p.scored_at);
    let flag = &record.flag;
    let title = flag
        .attributes
        .name
        .clone()
        .unwrap_or_else(|| flag.customer_id.clone());
    let status = if refused.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        p.crumbs { a href="/" { "Risk list" } " › " (title) }
        h1 #customer-name { (title) }
        p.lead {
            span class=(format!("band band-{}", flag.risk_band.as_str())) { (flag.risk_band.as_str()) }
            " " strong { (percent(flag.churn_probability)) } " churn probability"
            @if let Some(since) = flag.band_changed_at { ", in this band since " (date(since)) }
            "."
        }
        (attributes(&record))
        section #history aria-labelledby="history-title" {
            h2 #history-title { "Probability history" }
            (history_chart(&history, cutoffs.as_ref()))
            p.muted { "Dashed lines: the current model's band cutoffs. Vertical lines: a new model scored from there." }
        }
        section #reasons aria-labelledby="reasons-title" {
            h2 #reasons-title { "Why" }
            @if flag.reasons.is_empty() {
                p { "No reasons were stored with this score." }
            } @else {
                (reasons_chart(&flag.reasons))
                ol.reasons-text {
                    @for r in &flag.reasons {
                        li { (r.to_string()) ": " (if r.contribution >= 0.0 { "raises" } else { "lowers" }) " the risk" }
                    }
                }
            }
        }
        (acknowledgement(app, &record, headers, refused.as_ref()))
    };
    Ok(html_response(
        status,
        page_shell(app.access, &title, Nav::RiskList, body),
    ))
}

fn attributes(record: &CustomerRecord) -> Markup {
    let flag = &record.flag;
    let a = &flag.attributes;
    let dash = || "–".to_string();
    let trend = |d: Option<f64>| d.map_or_else(dash, |d| format!("{:+.1} pts", d * 100.0));
    html! {
        section #attributes aria-labelledby="attributes-title" {
            h2 #attributes-title { "Account" }
            dl.attributes {
                dt { "Customer id" } dd { (flag.customer_id) }
                dt { "Owner" } dd { (a.owner.clone().unwrap_or_else(dash)) }
                dt { "Segment" } dd { (a.segment.clone().unwrap_or_else(dash)) }
                dt { "Value" } dd { (a.value.map(amount).unwrap_or_else(dash)) }
                dt { "Value at risk" } dd { (a.value.map(|v| amount(v * flag.churn_probability)).unwrap_or_else(dash)) }
                dt { "Renewal date" } dd { (a.renewal_date.clone().unwrap_or_else(dash)) }
                dt { "CRM id" } dd { (a.crm_id.clone().unwrap_or_else(dash)) }
                dt { "Change over 7 days" } dd { (trend(flag.trend.d7)) }
                dt { "Change over 30 days" } dd { (trend(flag.trend.d30)) }
                dt { "Scored" } dd { (date_time(flag.scored_at)) " by model " code { (short_id(&flag.model_id)) } }
            }
        }
    }
}

fn acknowledgement(
    app: WebApp<'_>,
    record: &CustomerRecord,
    headers: &HeaderMap,
    refused: Option<&Refused>,
) -> Markup {
    let flag = &record.flag;
    let now = crate::timestamp::now();
    let csrf = app.access.csrf_token(now);
    let action = format!("/customers/{}/ack", segment(&flag.customer_id));
    // Behind an authenticating proxy, who is signed in (a pre-fill only).
    let signed_in = ["x-forwarded-email", "x-forwarded-user"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    let typed = refused.map(|r| &r.form);
    let by = typed.map_or(signed_in, |f| f.by.as_str());
    let note = typed.map_or("", |f| f.note.as_str());
    let until = typed.map_or("", |f| f.until.as_str());
    let default_until = date(now + time::Duration::days(DEFAULT_ACK_DAYS));
    html! {
        section #acknowledgement aria-labelledby="ack-title" {
            h2 #ack-title { "Acknowledgement" }
            @if let Some(ack) = &flag.acknowledgement {
                p #ack-state.acked {
                    "Acknowledged by " strong { (ack.by) } " on " (date(ack.at)) ": “" (ack.note) "”. "
                    "Alerts about this account are held until " (date(ack.until)) " unless it escalates."
                }
            } @else {
                p #ack-state { "Not acknowledged." }
            }
            @if let Some(r) = refused {
                p.error role="alert" { (r.message) }
            }
            form #ack-form method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="action" value="acknowledge";
                div.field {
                    label for="ack-by" { "By" }
                    input #ack-by name="by" required maxlength=(MAX_ACK_TEXT_CHARS) autocomplete="email" value=(by);
                }
                div.field.wide {
                    label for="ack-note" { "What you are doing about it" }
                    input #ack-note name="note" required maxlength=(MAX_ACK_TEXT_CHARS) value=(note);
                }
                div.field {
                    label for="ack-until" { "Until (default " (default_until) ")" }
                    input #ack-until type="date" name="until" value=(until);
                }
                button #ack-submit type="submit" {
                    @if flag.acknowledgement.is_some() { "Update acknowledgement" } @else { "Acknowledge" }
                }
            }
            @if flag.acknowledgement.is_some() {
                form #ack-clear-form method="post" action=(action) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="action" value="clear";
                    button #ack-clear.secondary type="submit" { "Clear acknowledgement" }
                }
            }
        }
    }
}

/// `POST /customers/{id}/ack`.
pub async fn ack_form(
    app: WebApp<'_>,
    id: &str,
    request: &Request<Bytes>,
) -> Result<Response<Bytes>, PageError> {
    let form: AckForm = serde_urlencoded::from_bytes(request.body()).map_err(|e| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            format!("The form could not be read: {e}."),
        )
    })?;
    let now = crate::timestamp::now();
    app.access
        .check_post(request.headers(), &form.csrf, now)
        .map_err(|why| PageError::new(StatusCode::FORBIDDEN, format!("Not saved: {why}.")))?;
    let flags = app.services.flags.as_ref();
    let done = match form.action.as_str() {
        "clear" => flags.unacknowledge(id).await.map(|_| ()),
        "" | "acknowledge" => {
            let until = Some(form.until.as_str()).filter(|u| !u.trim().is_empty());
            acknowledge_customer(flags, id, &form.by, &form.note, until, now)
                .await
                .map(|_| ())
        }
        other => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!("Unknown action {other:?}; use acknowledge or clear."),
            ))
        }
    };
    match done {
        Ok(()) => Ok(see_other(&format!(
            "/customers/{}#acknowledgement",
            segment(id)
        ))),
        Err(Error::InvalidInput { field, message }) => {
            let refused = Refused {
                message: format!("Not saved: {field} {message}."),
                form,
            };
            page(app, id, request.headers(), Some(refused)).await
        }
        Err(e) => Err(e.into()),
    }
}
