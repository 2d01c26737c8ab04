//! `/model`: how good the current model is (holdout metrics, ROC,
//! precision-recall, calibration and lift charts from the curve points the
//! artifact stores, coefficients, band cutoffs), the stored models with the
//! current one marked, and the last runs with their snapshot check and the
//! outcomes report when one exists.
//!
//! The model part is also the report that travels: [`report_html`] is a
//! self-contained page (style inside, inline SVG, no external asset) that
//! training writes beside each `model.json`, `churn models report` writes
//! for any stored model, and `/models/{id}/report.html` serves.

use super::charts::{curve_chart, Curve, Reference};
use super::layout::{
    amount, date_time, html_response, page as page_shell, secured, short_id, standalone, Nav,
    PageError,
};
use super::WebApp;
use crate::model_store::{validate_model_id, ModelEntry};
use crate::run_record::{OutcomesRecord, RunRecord};
use bytes::Bytes;
use churn_model::{BandPolicy, ModelArtifact};
use http::{header, HeaderValue, Response, StatusCode};
use maud::{html, Markup};

/// Runs listed on the page.
const RUNS_SHOWN: usize = 10;

/// The page.
pub async fn page(app: WebApp<'_>) -> Result<Response<Bytes>, PageError> {
    let s = app.services;
    let (current, models, runs) =
        futures::join!(s.cache.get(), s.models.list(), s.runs.runs(RUNS_SHOWN));
    // A current model that does not load is shown as such: the models and
    // runs below are what helps find out why.
    let (current, broken) = match current {
        Ok(m) => (m, None),
        Err(e) => {
            tracing::error!(error = %crate::error::report(&e), "current model does not load");
            (None, Some(e.to_string()))
        }
    };
    let models = models?;
    let runs = runs?;
    let outcomes = match &current {
        Some(m) => s.runs.outcomes(Some(m.model.model_id())).await?,
        None => None,
    };
    let body = html! {
        @match &current {
            Some(m) => {
                h1 { "Model " code { (short_id(m.model.model_id())) } }
                p.lead { "Promoted " (date_time(m.pointer.promoted_at)) ". "
                    a href=(format!("/models/{}/report.html", m.model.model_id())) { "Report to share (one file)" } }
                (model_section(&m.model.artifact))
            }
            None => {
                h1 { "Model" }
                @if let Some(why) = &broken {
                    p.error role="alert" { "The current model does not load: " (why) }
                } @else {
                    p #no-model { "No model is promoted yet: run " code { "churn train" } " and " code { "churn models promote" } "." }
                }
            }
        }
        @if let Some(o) = &outcomes { (outcomes_section(o)) }
        (models_section(&models))
        (runs_section(&runs))
    };
    Ok(html_response(
        StatusCode::OK,
        page_shell(app.access, "Model and runs", Nav::Model, body),
    ))
}

/// `/models/{id}/report.html`: the report of any stored model, drawn from
/// its artifact.
pub async fn stored_report(app: WebApp<'_>, model_id: &str) -> Result<Response<Bytes>, PageError> {
    validate_model_id(model_id)?;
    let bytes = app
        .services
        .models
        .artifact(model_id)
        .await?
        .ok_or_else(|| {
            PageError::new(
                StatusCode::NOT_FOUND,
                format!("No stored model {model_id}."),
            )
        })?;
    let artifact = ModelArtifact::from_json_bytes(&bytes).map_err(|e| {
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Model {model_id} does not load: {e}"),
        )
    })?;
    let mut r = html_response(StatusCode::OK, maud::PreEscaped(report_html(&artifact)));
    // The report's style is inside it (it travels alone); still no script.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    Ok(secured(r))
}

/// The self-contained report of one model: one HTML file with its style
/// and charts inside, nothing fetched.
pub fn report_html(artifact: &ModelArtifact) -> String {
    let body = html! {
        h1 { "Churn model " code { (short_id(artifact.model_id())) } }
        p.lead {
            "Trained " (artifact.created_at()) " on " (amount(artifact.training.train_rows as f64)) " rows; "
            "figures from " (amount(artifact.training.holdout_rows as f64)) " held-out rows. Model id " code { (artifact.model_id()) } "."
        }
        (model_section(artifact))
    };
    standalone("Model report", body).into_string()
}

/// Metrics, charts, cutoffs, importance and coefficients of one model.
fn model_section(a: &ModelArtifact) -> Markup {
    let m = &a.metrics;
    let c = &m.confusion_at_high;
    let precision = ratio(c.true_positives, c.true_positives + c.false_positives);
    let recall = ratio(c.true_positives, c.true_positives + c.false_negatives);
    html! {
        section #metrics aria-labelledby="metrics-title" {
            h2 #metrics-title { "How good it is (holdout)" }
            dl.metrics {
                dt { "ROC AUC" } dd { (format!("{:.3}", m.roc_auc)) }
                dt { "PR AUC" } dd { (format!("{:.3}", m.pr_auc)) " (churn rate " (format!("{:.1} %", m.base_rate * 100.0)) ")" }
                dt { "Top-decile lift" } dd { (format!("{:.2}", m.top_decile_lift)) "×" }
                dt { "Calibration error (ECE)" } dd { (format!("{:.3}", m.ece)) }
                dt { "Log loss" } dd { (format!("{:.4}", m.log_loss)) }
                dt { "Brier score" } dd { (format!("{:.4}", m.brier)) }
                dt { "High band: precision" } dd { (precision) }
                dt { "High band: recall" } dd { (recall) }
                dt { "Rows" } dd { (amount(m.n as f64)) }
            }
        }
        (curves_section(a))
        section #cutoffs aria-labelledby="cutoffs-title" {
            h2 #cutoffs-title { "Band cutoffs" }
            p {
                "High from " strong { (format!("{:.1} %", a.bands.high * 100.0)) }
                ", medium from " strong { (format!("{:.1} %", a.bands.medium * 100.0)) } " churn probability ("
                (policy(&a.bands.policy)) ")."
            }
        }
        @if let Some(profile) = &a.holdout_profile {
            section #importance aria-labelledby="importance-title" {
                h2 #importance-title { "What drives the score" }
                table #importance-table {
                    caption { "Mean absolute contribution to the log-odds over the holdout" }
                    thead { tr { th scope="col" { "Feature" } th scope="col" .num { "Importance" } } }
                    tbody {
                        @for f in &profile.importance {
                            tr { td { (f.feature) } td.num { (format!("{:.3}", f.mean_abs_contribution)) } }
                        }
                    }
                }
            }
        }
        section #coefficients-section aria-labelledby="coefficients-title" {
            h2 #coefficients-title { "Coefficients" }
            p.muted { "On standardized design columns, largest first; intercept " (format!("{:.4}", a.intercept)) ", L2 " (format!("{:.2e}", a.l2)) "." }
            div.table-wrap {
                table #coefficients {
                    thead { tr { th scope="col" { "Term" } th scope="col" .num { "Coefficient" } } }
                    tbody {
                        @for coef in sorted_coefficients(a) {
                            tr { td { (coef.name) } td.num class=(if coef.value >= 0.0 { "raises" } else { "lowers" }) { (format!("{:+.4}", coef.value)) } }
                        }
                    }
                }
            }
        }
    }
}

fn ratio(num: u64, den: u64) -> String {
    if den == 0 {
        "–".into()
    } else {
        format!("{:.1} %", num as f64 / den as f64 * 100.0)
    }
}

fn policy(p: &BandPolicy) -> String {
    match p {
        BandPolicy::Quantile {
            high_share,
            medium_share,
        } => format!(
            "the top {:.0} % of holdout scores are high, the next {:.0} % medium",
            high_share * 100.0,
            medium_share * 100.0
        ),
        BandPolicy::Fixed { .. } => "fixed cutoffs".into(),
    }
}

fn sorted_coefficients(a: &ModelArtifact) -> Vec<&churn_model::artifact::Coefficient> {
    let mut coefs: Vec<_> = a.coefficients.iter().collect();
    coefs.sort_by(|x, y| y.value.abs().total_cmp(&x.value.abs()));
    coefs
}

/// The four curves, or a note that the model predates them.
fn curves_section(a: &ModelArtifact) -> Markup {
    let Some(c) = &a.holdout_curves else {
        return html! {
            section #curves {
                h2 { "Curves" }
                p #no-curves { "This model was trained before the artifact stored its curve points (format version "
                    (a.schema_version) "); retrain to see the ROC, precision-recall, calibration and lift charts." }
            }
        };
    };
    let lift_max = c.lift.iter().map(|p| p.lift).fold(1.0_f64, f64::max);
    let charts = [
        Curve {
            id: "roc-chart",
            title: "ROC curve",
            x_label: "false positive rate",
            y_label: "true positive rate",
            points: c.roc.iter().map(|p| (p.fpr, p.tpr)).collect(),
            x_max: 1.0,
            y_max: 1.0,
            reference: Reference::Diagonal,
            dots: false,
        },
        Curve {
            id: "pr-chart",
            title: "Precision-recall curve",
            x_label: "recall",
            y_label: "precision",
            points: c
                .precision_recall
                .iter()
                .map(|p| (p.recall, p.precision))
                .collect(),
            x_max: 1.0,
            y_max: 1.0,
            reference: Reference::Level(a.metrics.base_rate),
            dots: false,
        },
        Curve {
            id: "calibration-chart",
            title: "Calibration",
            x_label: "predicted probability",
            y_label: "observed churn rate",
            points: c
                .calibration
                .iter()
                .map(|b| (b.mean_predicted, b.observed_rate))
                .collect(),
            x_max: 1.0,
            y_max: 1.0,
            reference: Reference::Diagonal,
            dots: true,
        },
        Curve {
            id: "lift-chart",
            title: "Lift",
            x_label: "share of customers contacted, riskiest first",
            y_label: "lift over random",
            points: c.lift.iter().map(|p| (p.depth, p.lift)).collect(),
            x_max: 1.0,
            y_max: (lift_max * 1.1).ceil(),
            reference: Reference::Level(1.0),
            dots: false,
        },
    ];
    html! {
        section #curves aria-labelledby="curves-title" {
            h2 #curves-title { "Curves (holdout)" }
            div.curves { @for chart in &charts { (curve_chart(chart)) } }
        }
    }
}

fn outcomes_section(o: &OutcomesRecord) -> Markup {
    let r = &o.report.realised;
    let opt = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    html! {
        section #outcomes aria-labelledby="outcomes-title" {
            h2 #outcomes-title { "Realised accuracy" }
            p {
                "From " (o.source) " (computed " (date_time(o.computed_at)) ", horizon " (o.horizon_days) " days): "
                (amount(r.matched as f64)) " outcomes matched to scores, realised ROC AUC " (opt(r.roc_auc))
                ", PR AUC " (opt(r.pr_auc)) "."
            }
            @if o.report.retrain_recommended {
                p.warn role="status" { "Retraining is recommended: " (o.report.retrain_reasons.join(" ")) }
            }
        }
    }
}

fn models_section(models: &[ModelEntry]) -> Markup {
    html! {
        section #models-section aria-labelledby="models-title" {
            h2 #models-title { "Stored models" }
            div.table-wrap {
                table #models {
                    thead { tr { th scope="col" { "Model" } th scope="col" { "Stored" } th scope="col" { "Promoted" } th scope="col" { "Report" } } }
                    tbody {
                        @for m in models {
                            tr class=[m.promoted.then_some("current")] {
                                td { code { (short_id(&m.model_id)) } @if m.promoted { " " span.badge { "current" } } }
                                td { (m.stored_at.map(date_time).unwrap_or_else(|| "–".into())) }
                                td { (m.last_promoted_at.map(date_time).unwrap_or_else(|| "never".into())) }
                                td { a href=(format!("/models/{}/report.html", m.model_id)) { "report" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn runs_section(runs: &[RunRecord]) -> Markup {
    html! {
        section #runs-section aria-labelledby="runs-title" {
            h2 #runs-title { "Last runs" }
            @if runs.is_empty() {
                p { "No rescore run recorded yet." }
            } @else {
                div.table-wrap {
                    table #runs {
                        thead { tr {
                            th scope="col" { "Run" } th scope="col" { "Finished" } th scope="col" { "Snapshot check" }
                            th scope="col" .num { "Rows" } th scope="col" .num { "Written" } th scope="col" .num { "Newly at risk" } th scope="col" .num { "Failed" }
                        } }
                        tbody {
                            @for run in runs {
                                tr {
                                    td { a href=(format!("/runs/{}", super::layout::segment(&run.run_id))) { (run.run_id) } }
                                    td { (date_time(run.finished_at)) }
                                    td { (check_badge(run)) }
                                    td.num { (amount(run.counts.rows as f64)) }
                                    td.num { (amount(run.counts.written as f64)) }
                                    td.num { (amount(run.counts.newly_at_risk as f64)) }
                                    td.num { (amount((run.counts.failed_rows + run.counts.write_failures) as f64)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The run's verdict as a badge: ok, warn, refuse (refused or forced), or failed.
pub fn check_badge(run: &RunRecord) -> Markup {
    let status = run.status.as_str();
    html! {
        span class=(format!("check check-{status}")) { (status) }
        @if run.refused { " (nothing written)" }
        @if run.forced { " (forced)" }
        @if run.error.is_some() { " " span.check.check-refuse { "failed" } }
    }
}
