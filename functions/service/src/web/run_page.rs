//! `/runs/{run_id}`: one rescore run: what it read, scored and wrote, and
//! its snapshot check feature by feature (the record `GET /v1/runs/{id}`
//! returns, for a person).

use super::layout::{
    amount, date_time, html_response, page as page_shell, short_id, Nav, PageError,
};
use super::model_page::check_badge;
use super::WebApp;
use crate::run_record::RunRecord;
use bytes::Bytes;
use churn_model::check::CheckReport;
use http::{Response, StatusCode};
use maud::{html, Markup};

/// The page.
pub async fn page(app: WebApp<'_>, run_id: &str) -> Result<Response<Bytes>, PageError> {
    let run = app.services.runs.run(run_id).await?.ok_or_else(|| {
        PageError::new(
            StatusCode::NOT_FOUND,
            format!("No run {run_id} is recorded."),
        )
    })?;
    let title = format!("Run {}", run.run_id);
    let body = html! {
        p.crumbs { a href="/model" { "Model and runs" } " › " (run.run_id) }
        h1 { (title) }
        p.lead {
            "Snapshot check: " (check_badge(&run)) ". Scored " code { (run.snapshot) } " with model "
            code { (short_id(&run.model_id)) } ", finished " (date_time(run.finished_at)) "."
        }
        @if let Some(error) = &run.error {
            p.error role="alert" { "The run failed while writing: " (error) }
        }
        (counts(&run))
        (check(&run.check))
    };
    Ok(html_response(
        StatusCode::OK,
        page_shell(app.access, &title, Nav::Model, body),
    ))
}

fn counts(run: &RunRecord) -> Markup {
    let c = &run.counts;
    let rows = [
        ("Rows read", c.rows),
        ("Scored", c.scored),
        ("Rows that failed validation", c.failed_rows),
        ("Flags written", c.written),
        ("Unchanged (not written)", c.skipped_unchanged),
        (
            "Older than the stored score (not written)",
            c.stale_rejected,
        ),
        ("Newly at risk", c.newly_at_risk),
        ("Write failures", c.write_failures),
        (
            "Rows with a value outside the training range",
            c.out_of_range_rows,
        ),
    ];
    html! {
        section #counts aria-labelledby="counts-title" {
            h2 #counts-title { "Counts" }
            table #run-counts {
                tbody { @for (label, n) in rows { tr { th scope="row" { (label) } td.num { (amount(n as f64)) } } } }
            }
        }
    }
}

fn check(report: &CheckReport) -> Markup {
    let share = |v: f64| format!("{:.1} %", v * 100.0);
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "–".to_string(), f);
    html! {
        section #check aria-labelledby="check-title" {
            h2 #check-title { "Snapshot check" }
            p {
                "Mean probability " (opt(report.mean_probability, &share))
                " (holdout " (opt(report.holdout_mean_probability, &share)) "); high band "
                (share(report.band_shares.high))
                @if let Some(h) = &report.holdout_band_shares { " (holdout " (share(h.high)) ")" }
                "; " (amount(report.invalid_rows as f64)) " invalid rows of " (amount(report.rows as f64)) "."
            }
            ul.checks {
                @for item in &report.checks {
                    li { span class=(format!("check check-{}", item.status)) { (item.status) } " " strong { (item.name) } ": " (item.detail) }
                }
            }
            div.table-wrap {
                table #run-check {
                    caption { "Per feature, most important first" }
                    thead { tr {
                        th scope="col" { "Feature" } th scope="col" .num { "Rank" } th scope="col" .num { "PSI" }
                        th scope="col" { "Drift" } th scope="col" .num { "Missing" } th scope="col" .num { "Missing at training" }
                        th scope="col" .num { "Outside training range" }
                    } }
                    tbody {
                        @for f in &report.features {
                            tr {
                                td { (f.feature) @if f.absent { " " span.check.check-refuse { "absent" } } }
                                td.num { (f.importance_rank) }
                                td.num { (opt(f.psi, &|v| format!("{v:.3}"))) }
                                td { span class=(format!("drift drift-{}", f.level.as_str())) { (f.level.as_str()) } }
                                td.num { (share(f.missing_share)) }
                                td.num { (share(f.reference_missing_share)) }
                                td.num { (opt(f.out_of_range_share, &share)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
