//! Operational metrics in CloudWatch Embedded Metric Format (EMF): one JSON
//! document per invocation, written to stdout as a line of its own, from
//! which CloudWatch Logs extracts the metrics (namespace [`NAMESPACE`],
//! dimension [`DIMENSION`] = the function). Names and units are a contract
//! (docs/CONTRACTS.md, "Metrics"): dashboards and alarms use them.
//!
//! A Lambda main wraps its handler call in [`measure`]; what a handler's
//! outcome reports is its [`Measured`] implementation, taken from the
//! summary the handler returns anyway, so the metrics and the summary
//! cannot disagree.
//!
//! Written here rather than with `metrics_cloudwatch_embedded`: that crate
//! routes through the global `metrics` recorder, wraps the runtime's service
//! in its own layer, and turns on `lambda_http`'s default features (more
//! event types than the score function builds); the format itself is a few
//! fields of JSON.

use crate::handlers::notify::NotifyOutput;
use crate::handlers::rescore::{RescoreOutput, RescoreSummary};
use crate::handlers::run_finish::FinishedRun;
use crate::handlers::score_api::ScoreCounts;
use crate::handlers::train::TrainSummary;
use crate::handlers::HandlerError;
use serde_json::{json, Map, Value};
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "ChurnRisk";
/// The one dimension: which function emitted the metric.
pub const DIMENSION: &str = "function";

/// Rows read from the source (a snapshot, a training table, a score request's customers).
pub const ROWS_READ: &str = "RowsRead";
/// Rows scored.
pub const ROWS_SCORED: &str = "RowsScored";
/// Flags written to the flag store (changed band or probability).
pub const ROWS_WRITTEN: &str = "RowsWritten";
/// Rows that failed validation (invalid id or value, ragged row): not scored.
pub const ROWS_FAILED: &str = "RowsFailed";
/// Written flags whose customer is at risk (high or medium) now and was not before.
pub const NEWLY_AT_RISK: &str = "NewlyAtRisk";
/// Flags the store could not write before the deadline.
pub const WRITE_FAILURES: &str = "WriteFailures";
/// Scored rows with a value outside its feature's training range.
pub const OUT_OF_RANGE_ROWS: &str = "OutOfRangeRows";
/// The largest feature PSI of a rescore's snapshot check (a sharded run's:
/// of the whole snapshot, from `finish_run`).
pub const MAX_PSI: &str = "MaxPsi";
/// 1 when a rescore run was refused by its snapshot check (nothing of it
/// written), else 0; a sharded run reports it once, from `finish_run`.
pub const REFUSED_RUNS: &str = "RefusedRuns";
/// Holdout ROC AUC of the model a training produced.
pub const HOLDOUT_AUC: &str = "HoldoutAuc";
/// 1 when the training's model was promoted (or already was the champion), else 0.
pub const PROMOTED: &str = "Promoted";
/// Holdout ROC AUC of a promoted model: absent when nothing was promoted.
pub const PROMOTED_AUC: &str = "PromotedAuc";
/// Risk-change events a run's writes recorded.
pub const EVENTS_RECORDED: &str = "EventsRecorded";
/// Events a delivery round handed to a destination (per destination).
pub const EVENTS_DELIVERED: &str = "EventsDelivered";
/// Deliveries left pending after a round (what `NotifyBacklogAlarm` watches).
pub const EVENTS_PENDING: &str = "EventsPending";
/// Delivery errors in a round (retries exhausted or refused requests).
pub const DELIVERY_FAILURES: &str = "DeliveryFailures";
/// Wall time of the invocation's handler.
pub const DURATION: &str = "Duration";
/// 1 on the first invocation of the process, else 0.
pub const COLD_START: &str = "ColdStart";

/// The function a document is about: the value of [`DIMENSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Train,
    Score,
    Rescore,
}

impl Function {
    /// `train`, `score` or `rescore`.
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Train => "train",
            Function::Score => "score",
            Function::Rescore => "rescore",
        }
    }
}

/// A CloudWatch unit (the subset used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    /// A ratio or score without a unit (ROC AUC).
    None,
}

impl Unit {
    /// The unit's name in the EMF directive.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One metric value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: f64,
}

impl Metric {
    /// A count.
    pub fn count(name: &'static str, value: usize) -> Metric {
        Metric {
            name,
            unit: Unit::Count,
            value: value as f64,
        }
    }

    /// A duration, in milliseconds.
    pub fn duration(name: &'static str, value: Duration) -> Metric {
        Metric {
            name,
            unit: Unit::Milliseconds,
            value: value.as_secs_f64() * 1e3,
        }
    }

    /// A value without a unit.
    pub fn plain(name: &'static str, value: f64) -> Metric {
        Metric {
            name,
            unit: Unit::None,
            value,
        }
    }
}

/// What a handler's outcome reports as metrics (besides [`DURATION`] and
/// [`COLD_START`], which [`measure`] adds to every document).
pub trait Measured {
    fn metrics(&self) -> Vec<Metric>;
}

impl Measured for RescoreSummary {
    fn metrics(&self) -> Vec<Metric> {
        let mut out = vec![
            Metric::count(ROWS_READ, self.rows),
            Metric::count(ROWS_SCORED, self.scored),
            Metric::count(ROWS_WRITTEN, self.written),
            Metric::count(ROWS_FAILED, self.failed_rows_count),
            Metric::count(NEWLY_AT_RISK, self.newly_at_risk),
            Metric::count(WRITE_FAILURES, self.write_failures_count),
            Metric::count(OUT_OF_RANGE_ROWS, self.out_of_range_rows),
            Metric::count(EVENTS_RECORDED, self.events.total()),
        ];
        if let Some(r) = &self.notify {
            out.extend(delivery_metrics(r.delivered(), r.pending(), r.errors()));
        }
        out.extend(check_metrics(
            self.check.as_ref().and_then(|c| c.max_psi()),
            false,
            self.shard,
        ));
        out
    }
}

/// The snapshot check's metrics: [`MAX_PSI`] when one was judged and
/// [`REFUSED_RUNS`], except from a shard: its run reports both once, from
/// `finish_run`, over the whole snapshot (a shard's own PSI is of its part).
fn check_metrics(max_psi: Option<f64>, refused: bool, shard: bool) -> Vec<Metric> {
    if shard {
        return Vec::new();
    }
    let mut out: Vec<Metric> = max_psi
        .map(|p| Metric::plain(MAX_PSI, p))
        .into_iter()
        .collect();
    out.push(Metric::count(REFUSED_RUNS, usize::from(refused)));
    out
}

impl Measured for FinishedRun {
    fn metrics(&self) -> Vec<Metric> {
        check_metrics(
            self.max_psi,
            self.status == churn_model::check::CheckStatus::Refuse,
            false,
        )
    }
}

/// A delivery round's metrics.
fn delivery_metrics(delivered: usize, pending: usize, failures: usize) -> Vec<Metric> {
    vec![
        Metric::count(EVENTS_DELIVERED, delivered),
        Metric::count(EVENTS_PENDING, pending),
        Metric::count(DELIVERY_FAILURES, failures),
    ]
}

impl Measured for NotifyOutput {
    fn metrics(&self) -> Vec<Metric> {
        delivery_metrics(
            self.delivered.values().sum(),
            self.pending,
            self.failures.len(),
        )
    }
}

impl Measured for RescoreOutput {
    fn metrics(&self) -> Vec<Metric> {
        match self {
            RescoreOutput::Run(s) => s.metrics(),
            RescoreOutput::Finished(f) => f.metrics(),
            RescoreOutput::Notified(n) => n.metrics(),
        }
    }
}

/// What a failed invocation reports besides [`DURATION`] and
/// [`COLD_START`] (Lambda's own `Errors` metric counts it): nothing, but
/// for a refused snapshot its check ([`REFUSED_RUNS`] 1, [`MAX_PSI`]) and
/// the rows read and failing validation.
pub trait FailureMetrics {
    fn failure_metrics(&self) -> Vec<Metric>;
}

impl FailureMetrics for HandlerError {
    fn failure_metrics(&self) -> Vec<Metric> {
        let HandlerError::Refused(refusal) = self else {
            return Vec::new();
        };
        let report = &refusal.report;
        let mut out = vec![
            Metric::count(ROWS_READ, report.rows as usize),
            Metric::count(ROWS_FAILED, report.invalid_rows as usize),
        ];
        out.extend(check_metrics(report.max_psi(), true, refusal.shard));
        out
    }
}

impl Measured for TrainSummary {
    fn metrics(&self) -> Vec<Metric> {
        let mut out = vec![
            Metric::count(ROWS_READ, self.rows),
            Metric::plain(HOLDOUT_AUC, self.metrics.roc_auc),
            Metric::count(PROMOTED, usize::from(self.promoted)),
        ];
        if self.promoted {
            out.push(Metric::plain(PROMOTED_AUC, self.metrics.roc_auc));
        }
        out
    }
}

impl Measured for ScoreCounts {
    /// Nothing for a request that read no customers (the GET routes, a
    /// body that is not a score request): their zeros would only dilute
    /// the per-request statistics of the score requests.
    fn metrics(&self) -> Vec<Metric> {
        if *self == ScoreCounts::default() {
            return Vec::new();
        }
        vec![
            Metric::count(ROWS_READ, self.read),
            Metric::count(ROWS_SCORED, self.scored),
            Metric::count(ROWS_WRITTEN, self.written),
            Metric::count(ROWS_FAILED, self.failed),
            Metric::count(NEWLY_AT_RISK, self.newly_at_risk),
            Metric::count(WRITE_FAILURES, self.write_failures),
        ]
    }
}

/// A failed invocation reports its [`FailureMetrics`].
impl<T: Measured, E: FailureMetrics> Measured for Result<T, E> {
    fn metrics(&self) -> Vec<Metric> {
        match self {
            Ok(t) => t.metrics(),
            Err(e) => e.failure_metrics(),
        }
    }
}

/// A response and what producing it measured.
impl<R, M: Measured> Measured for (R, M) {
    fn metrics(&self) -> Vec<Metric> {
        self.1.metrics()
    }
}

/// One EMF document: a function's metrics at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub function: Function,
    /// The Lambda request id, kept as a log field (not a dimension) so a
    /// document can be matched with the invocation's log lines.
    pub request_id: String,
    pub timestamp: SystemTime,
    pub metrics: Vec<Metric>,
}

impl Document {
    /// The document as JSON. A metric whose value is not finite (the AUC of
    /// a holdout with one class) is left out: CloudWatch rejects the whole
    /// document for one invalid value.
    pub fn to_json(&self) -> Value {
        let metrics: Vec<&Metric> = self
            .metrics
            .iter()
            .filter(|m| m.value.is_finite())
            .collect();
        let timestamp_ms = self
            .timestamp
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut doc = Map::new();
        doc.insert(
            "_aws".to_string(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": metrics
                        .iter()
                        .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        doc.insert(DIMENSION.to_string(), json!(self.function.as_str()));
        doc.insert("requestId".to_string(), json!(self.request_id));
        for m in metrics {
            doc.insert(m.name.to_string(), number(m.value));
        }
        Value::Object(doc)
    }

    /// Writes the document as one stdout line of its own: CloudWatch
    /// extracts metrics only from a log event that is the document itself,
    /// not from one nested in a log line's message.
    pub fn emit(&self) {
        let line = self.to_json().to_string();
        let mut out = std::io::stdout().lock();
        // Metrics are best effort: a closed stdout must not fail the invocation.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }
}

/// Whole numbers as JSON integers (how the counts read in the logs).
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && (0.0..9.0e15).contains(&value) {
        json!(value as u64)
    } else {
        json!(value)
    }
}

/// Whether the process has not been invoked before: true exactly once.
static COLD: AtomicBool = AtomicBool::new(true);

/// True on the first call in the process, false afterwards.
pub fn take_cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// Awaits one invocation's handler and returns its outcome with the
/// invocation's document (its [`Measured`] metrics, [`DURATION`] and
/// [`COLD_START`]).
pub async fn measured<F>(function: Function, request_id: &str, handler: F) -> (F::Output, Document)
where
    F: Future,
    F::Output: Measured,
{
    let cold_start = take_cold_start();
    let started = Instant::now();
    let output = handler.await;
    let mut metrics = output.metrics();
    metrics.push(Metric::duration(DURATION, started.elapsed()));
    metrics.push(Metric::count(COLD_START, usize::from(cold_start)));
    let document = Document {
        function,
        request_id: request_id.to_string(),
        timestamp: SystemTime::now(),
        metrics,
    };
    (output, document)
}

/// [`measured`], then the document written to stdout ([`Document::emit`]).
pub async fn measure<F>(function: Function, request_id: &str, handler: F) -> F::Output
where
    F: Future,
    F::Output: Measured,
{
    let (output, document) = measured(function, request_id, handler).await;
    document.emit();
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks what CloudWatch requires of a document and returns the
    /// metrics it declares: name -> (unit, value).
    fn declared(doc: &Value) -> Vec<(String, String, f64)> {
        let directive = &doc["_aws"]["CloudWatchMetrics"];
        assert_eq!(directive.as_array().unwrap().len(), 1, "{doc}");
        let directive = &directive[0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        assert_eq!(directive["Dimensions"], json!([[DIMENSION]]));
        assert!(doc["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        assert!(
            doc[DIMENSION].is_string(),
            "dimension value must be a string"
        );
        directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let name = m["Name"].as_str().unwrap().to_string();
                let unit = m["Unit"].as_str().unwrap().to_string();
                assert!(
                    ["Count", "Milliseconds", "None"].contains(&unit.as_str()),
                    "{unit}"
                );
                let value = doc[&name]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{name} is not a number at the top level: {doc}"));
                (name, unit, value)
            })
            .collect()
    }

    fn document(function: Function, metrics: Vec<Metric>) -> Document {
        Document {
            function,
            request_id: "req-1".into(),
            timestamp: SystemTime::now(),
            metrics,
        }
    }

    #[test]
    fn a_rescore_summary_becomes_a_valid_document() {
        let summary = RescoreSummary {
            rows: 3000,
            scored: 2999,
            written: 2990,
            newly_at_risk: 412,
            failed_rows_count: 1,
            write_failures_count: 9,
            out_of_range_rows: 3,
            events: crate::notify::EventCounts {
                became_at_risk: 5,
                escalated: 2,
                recovered: 1,
                held: 1,
            },
            notify: Some(crate::notify::DeliveryReport {
                destinations: vec![crate::notify::DestinationReport {
                    destination: Some(crate::notify::Destination::Webhook),
                    delivered: 6,
                    pending: Some(2),
                    requests: 3,
                    errors: vec!["HTTP 500".into()],
                }],
            }),
            ..RescoreSummary::default()
        };
        let doc = document(Function::Rescore, summary.metrics()).to_json();
        // One line of JSON that parses back to itself.
        let line = doc.to_string();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), doc);
        assert_eq!(doc["function"], "rescore");
        assert_eq!(doc["requestId"], "req-1");
        let found = declared(&doc);
        let expected = [
            (ROWS_READ, 3000.0),
            (ROWS_SCORED, 2999.0),
            (ROWS_WRITTEN, 2990.0),
            (ROWS_FAILED, 1.0),
            (NEWLY_AT_RISK, 412.0),
            (WRITE_FAILURES, 9.0),
            (OUT_OF_RANGE_ROWS, 3.0),
            (EVENTS_RECORDED, 8.0),
            (EVENTS_DELIVERED, 6.0),
            (EVENTS_PENDING, 2.0),
            (DELIVERY_FAILURES, 1.0),
            (REFUSED_RUNS, 0.0),
        ];
        assert_eq!(found.len(), expected.len());
        for ((name, unit, value), (want, v)) in found.iter().zip(expected) {
            assert_eq!((name.as_str(), unit.as_str(), *value), (want, "Count", v));
        }
        // Counts are written as integers.
        assert_eq!(line.matches("3000").count(), 1);
        assert!(doc[ROWS_READ].is_u64());
    }

    /// A check report with one feature at PSI `psi` and verdict `status`.
    fn report(
        max_psi: f64,
        status: churn_model::check::CheckStatus,
    ) -> churn_model::check::CheckReport {
        use churn_model::check::{CheckReport, DriftLevel, FeatureCheck};
        CheckReport {
            status,
            model_id: "m".into(),
            rows: 500,
            invalid_rows: 40,
            scored: 460,
            mean_probability: Some(0.2),
            holdout_mean_probability: None,
            band_shares: Default::default(),
            holdout_band_shares: None,
            features: vec![FeatureCheck {
                feature: "mrr".into(),
                psi: Some(max_psi),
                missing_share: 0.0,
                reference_missing_share: 0.0,
                out_of_range_share: Some(0.9),
                level: DriftLevel::Alert,
                absent: false,
                importance_rank: 1,
            }],
            checks: Vec::new(),
        }
    }

    #[test]
    fn the_snapshot_check_reports_max_psi_and_refused_runs_once_per_run() {
        use churn_model::check::CheckStatus;
        let value = |metrics: &[Metric], name: &str| {
            metrics.iter().find(|m| m.name == name).map(|m| m.value)
        };
        // A refused run: an error that still counts the refusal.
        let refused: Result<RescoreSummary, HandlerError> =
            Err(HandlerError::Refused(Box::new(crate::handlers::Refusal {
                report: report(3.5, CheckStatus::Refuse),
                run_id: Some("r".into()),
                shard: false,
            })));
        let m = refused.metrics();
        assert_eq!(value(&m, REFUSED_RUNS), Some(1.0));
        assert_eq!(value(&m, MAX_PSI), Some(3.5));
        assert_eq!(value(&m, ROWS_FAILED), Some(40.0));
        // A refused shard leaves the count to its run's finish.
        let shard: Result<RescoreSummary, HandlerError> =
            Err(HandlerError::Refused(Box::new(crate::handlers::Refusal {
                report: report(3.5, CheckStatus::Refuse),
                run_id: Some("r".into()),
                shard: true,
            })));
        assert_eq!(value(&shard.metrics(), REFUSED_RUNS), None);
        assert_eq!(value(&shard.metrics(), MAX_PSI), None);
        // A run that wrote (forced or not) is no refused run.
        let forced = RescoreSummary {
            check: Some(report(2.0, CheckStatus::Refuse)),
            forced: true,
            ..RescoreSummary::default()
        };
        assert_eq!(value(&forced.metrics(), REFUSED_RUNS), Some(0.0));
        assert_eq!(value(&forced.metrics(), MAX_PSI), Some(2.0));
        let finished = FinishedRun {
            run_id: "r".into(),
            status: CheckStatus::Refuse,
            shards: 3,
            refused_shards: 1,
            forced: false,
            max_psi: Some(0.4),
        };
        let m = RescoreOutput::Finished(finished).metrics();
        assert_eq!(value(&m, REFUSED_RUNS), Some(1.0));
        assert_eq!(value(&m, MAX_PSI), Some(0.4));
        // Other failures report nothing of their own.
        let other: Result<RescoreSummary, HandlerError> = Err(HandlerError::NoModel);
        assert!(other.metrics().is_empty());
    }

    #[test]
    fn units_and_non_finite_values() {
        let doc = document(
            Function::Train,
            vec![
                Metric::duration(DURATION, Duration::from_micros(1500)),
                Metric::plain(HOLDOUT_AUC, 0.8125),
                Metric::plain(PROMOTED_AUC, f64::NAN),
                Metric::count(COLD_START, 1),
            ],
        )
        .to_json();
        let found = declared(&doc);
        assert_eq!(
            found,
            vec![
                (DURATION.into(), "Milliseconds".into(), 1.5),
                (HOLDOUT_AUC.into(), "None".into(), 0.8125),
                (COLD_START.into(), "Count".into(), 1.0),
            ]
        );
        assert!(doc.get(PROMOTED_AUC).is_none(), "{doc}");
    }

    #[test]
    fn score_counts_report_only_score_requests() {
        assert!(ScoreCounts::default().metrics().is_empty());
        let counts = ScoreCounts {
            read: 3,
            failed: 1,
            ..ScoreCounts::default()
        };
        let names: Vec<&str> = counts.metrics().iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                ROWS_READ,
                ROWS_SCORED,
                ROWS_WRITTEN,
                ROWS_FAILED,
                NEWLY_AT_RISK,
                WRITE_FAILURES
            ]
        );
        let failed: Result<ScoreCounts, HandlerError> = Err(HandlerError::NoModel);
        assert!(failed.metrics().is_empty());
        assert_eq!(("response", counts).metrics(), counts.metrics());
    }

    #[tokio::test]
    async fn measured_adds_duration_and_cold_start_once() {
        let (_, first) = measured(Function::Score, "a", async { ScoreCounts::default() }).await;
        let (_, second) = measured(Function::Score, "b", async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            ScoreCounts::default()
        })
        .await;
        let value = |d: &Document, name: &str| {
            d.metrics
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.value)
                .unwrap()
        };
        // The first of the process may have been taken by another test of
        // this binary; the second is never a cold start.
        assert!(value(&first, COLD_START) <= 1.0);
        assert_eq!(value(&second, COLD_START), 0.0);
        assert!(value(&second, DURATION) >= 5.0);
        assert_eq!(second.request_id, "b");
        assert_eq!(declared(&second.to_json()).len(), 2);
        assert!(!take_cold_start());
    }
}
