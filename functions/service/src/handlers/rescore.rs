//! Rescoring: stream a feature snapshot, score every row with the promoted
//! model, write flags in batches.
//!
//! Memory stays constant: the snapshot is read chunk by chunk on a blocking
//! thread (at most two chunks in flight), each chunk is scored and handed to
//! the flag store, then dropped. Rows that cannot be read or scored are
//! counted and reported with their row numbers; they never stop the run.
//! The store skips unchanged scores (same band, |Δp| < epsilon), which is
//! what makes a daily rerun cheap.
//!
//! Every flag carries its row's account attributes (from the columns the
//! model's artifact records): a recorded column missing from the snapshot
//! stops the run before anything is written; a value that does not parse
//! is null on its flag and counted in [`RescoreSummary::warnings`].

use crate::features::FeatureSources;
use crate::features::FeatureUri;
use crate::flag::{Flag, WriteFailure};
use crate::flag_store::FlagStore;
use crate::handlers::error::{HandlerError, Refusal};
use crate::handlers::model::ScoringModel;
use crate::handlers::run_finish::{finish_run, FinishedRun};
use crate::handlers::scored_stream::{ScoredStream, StreamTotals};
use crate::handlers::snapshot_check::{check_source, CheckedSnapshot};
use crate::notify::{DeliveryReport, Destination, EventCounts, EventOrigin};
use crate::run_record::{run_id_from, RunCounts, RunRecord};
use crate::run_store::{shard_name, RunStore};
use churn_model::check::{check_snapshot, CheckReport, CheckThresholds, SnapshotCounts};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

pub use crate::handlers::scored_stream::{
    AttributeWarning, FailedRow, CHUNK_ROWS, MAX_LISTED_FAILURES, MAX_LISTED_WARNING_ROWS,
};

/// What to rescore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RescoreEvent {
    /// An EventBridge scheduled event: the configured `CHURN_SNAPSHOT`.
    Scheduled,
    /// `{"snapshot": "s3://..."}` (also what the Distributed Map sends per shard).
    Snapshot(String),
}

impl RescoreEvent {
    /// Interprets an invocation payload:
    /// - an EventBridge event (`"source"`/`"detail-type"`): [`RescoreEvent::Scheduled`];
    /// - `{"snapshot": "..."}`;
    /// - a Distributed Map S3 listing item `{"Key": ..}` (or `{"key": ..}`), with the
    ///   bucket from `"Bucket"`/`"bucket"`/`"BatchInput": {"bucket"}` or else `CHURN_SNAPSHOT`'s bucket;
    /// - `{}` or `null`: [`RescoreEvent::Scheduled`].
    ///
    /// # Errors
    /// [`HandlerError::BadRequest`] for anything else.
    pub fn from_json(
        event: &Value,
        configured: Option<&str>,
    ) -> Result<RescoreEvent, HandlerError> {
        let bad = |m: &str| HandlerError::BadRequest(m.to_string());
        let obj = match event {
            Value::Null => return Ok(RescoreEvent::Scheduled),
            Value::Object(o) => o,
            _ => return Err(bad("expected a JSON object event")),
        };
        if let Some(s) = obj.get("snapshot") {
            return match s.as_str() {
                Some(s) if !s.trim().is_empty() => Ok(RescoreEvent::Snapshot(s.to_string())),
                _ => Err(bad("\"snapshot\" must be a non-empty string")),
            };
        }
        if let Some(key) = obj.get("Key").or_else(|| obj.get("key")) {
            let key = key
                .as_str()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| bad("\"Key\" must be a string"))?;
            let bucket = obj
                .get("Bucket")
                .or_else(|| obj.get("bucket"))
                .or_else(|| obj.get("BatchInput").and_then(|b| b.get("bucket")))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| match configured.map(FeatureUri::parse) {
                    Some(Ok(FeatureUri::S3 { bucket, .. })) => Some(bucket),
                    _ => None,
                })
                .ok_or_else(|| {
                    bad("a map item needs \"Bucket\" (or an s3:// CHURN_SNAPSHOT to take it from)")
                })?;
            return Ok(RescoreEvent::Snapshot(format!("s3://{bucket}/{key}")));
        }
        // Run options alone (`{"force": true}`): the configured snapshot.
        let options_only = obj.keys().all(|k| {
            matches!(
                k.as_str(),
                "force" | "run_id" | "as_of" | "shard" | "notify"
            )
        });
        if options_only
            || obj.contains_key("detail-type")
            || obj.get("source").and_then(Value::as_str) == Some("aws.events")
        {
            return Ok(RescoreEvent::Scheduled);
        }
        Err(bad(
            "expected an EventBridge scheduled event, {\"snapshot\": \"s3://...\"}, or a map item {\"Key\": ...}",
        ))
    }
}

/// What a rescore run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RescoreSummary {
    /// The run's record is `runs/<run_id>` (a shard's: under its run).
    #[serde(default)]
    pub run_id: String,
    pub snapshot: String,
    pub model_id: String,
    /// Data rows read.
    pub rows: usize,
    /// Rows scored (rows minus failed rows).
    pub scored: usize,
    pub written: usize,
    pub skipped_unchanged: usize,
    /// Older than what is stored (another run was newer): not written.
    pub stale_rejected: usize,
    pub newly_at_risk: usize,
    /// Scored rows with at least one value outside its feature's training
    /// range (valid, scored, flagged for monitoring).
    #[serde(default)]
    pub out_of_range_rows: usize,
    /// Rows that failed validation, first [`MAX_LISTED_FAILURES`].
    pub failed_rows: Vec<FailedRow>,
    pub failed_rows_count: usize,
    /// Flags the store could not write before the deadline, first [`MAX_LISTED_FAILURES`].
    pub write_failures: Vec<WriteFailure>,
    pub write_failures_count: usize,
    /// What the reader noted: columns it ignored, a delimiter it detected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Attribute values that did not parse (null on their flags, which are
    /// written all the same), per column with the first
    /// [`MAX_LISTED_WARNING_ROWS`] rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<AttributeWarning>,
    /// The snapshot check's verdict and figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    /// The check refused the snapshot and `force` overrode it.
    #[serde(default)]
    pub forced: bool,
    /// The run was one shard of a Distributed Map run.
    #[serde(default)]
    pub shard: bool,
    /// Risk-change events the run's writes recorded.
    #[serde(default)]
    pub events: EventCounts,
    /// What delivering them (and anything left pending before) did; `None`
    /// when the run did not deliver (a shard, `"notify": false`, no
    /// destination configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<DeliveryReport>,
    pub seconds: f64,
}

/// Knobs of a run (from `ServiceConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RescoreSettings {
    pub epsilon: f64,
    /// How long each batch's writes retry throttling.
    pub write_deadline: Duration,
    pub chunk_rows: usize,
    /// `scored_at` of every flag of the run (default: when it starts);
    /// an earlier time backfills history from a dated snapshot.
    pub as_of: Option<OffsetDateTime>,
    /// The snapshot check's limits; `None` skips the check's own pass (the
    /// verdict is then taken on the writing pass's counts, after the
    /// writes: benchmarks only).
    pub check: Option<CheckThresholds>,
    /// Write even when the check refuses (the run record says so).
    pub force: bool,
}

impl RescoreSettings {
    /// From `CHURN_SCORE_EPSILON` / `CHURN_WRITE_DEADLINE_SECS` / `CHURN_CHECK_*`.
    pub fn from_config(config: &crate::config::ServiceConfig) -> RescoreSettings {
        RescoreSettings {
            epsilon: config.score_epsilon,
            write_deadline: config.write_deadline,
            chunk_rows: CHUNK_ROWS,
            as_of: None,
            check: Some(config.check),
            force: false,
        }
    }
}

/// Which run a rescore is, and where its record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    /// A safe id ([`validate_run_id`]).
    pub run_id: String,
    /// One shard of a Distributed Map run: the record goes under the run
    /// (`runs/<run_id>/shards/`), and `{"finish_run"}` makes the run's.
    pub shard: bool,
}

impl RunIdentity {
    /// A run of its own with a new id.
    pub fn new_run() -> RunIdentity {
        RunIdentity {
            run_id: crate::run_record::new_run_id(OffsetDateTime::now_utc()),
            shard: false,
        }
    }
}

/// The stores a rescore reads from and writes to.
#[derive(Clone, Copy)]
pub struct RescoreStores<'a> {
    pub flags: &'a dyn FlagStore,
    pub runs: &'a dyn RunStore,
    pub sources: &'a FeatureSources,
    /// The destinations new events are due at.
    pub due: &'a [Destination],
}

impl<'a> RescoreStores<'a> {
    /// The process's stores.
    pub fn of(services: &'a crate::services::Services) -> RescoreStores<'a> {
        RescoreStores {
            flags: services.flags.as_ref(),
            runs: services.runs.as_ref(),
            sources: &services.sources,
            due: services.notifier.due(),
        }
    }
}

/// Rescores `snapshot` with `model` into the flag store: first the
/// snapshot check's pass (nothing written), then, unless it refuses (and
/// `settings.force` is off), the writing pass. Either way the run's record
/// is stored. `progress` is called with the number of rows of each chunk
/// the writing pass reads (the CLI's live row counter).
///
/// # Errors
/// [`HandlerError::Refused`] when the check refuses the snapshot (nothing
/// written, the record stored); [`HandlerError::BadRequest`] for an
/// unusable URI; [`HandlerError::Features`] for fatal read problems
/// (missing file, bad header); [`HandlerError::BadRequest`] when an
/// attribute column the model records is absent (before anything is
/// written); [`HandlerError::Service`] when the record cannot be stored.
/// Bad rows and unwritable flags are reported in the summary instead.
pub async fn handle_rescore(
    snapshot: &str,
    model: &ScoringModel,
    stores: RescoreStores<'_>,
    settings: RescoreSettings,
    run: &RunIdentity,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<RescoreSummary, HandlerError> {
    let started = Instant::now();
    let started_at = crate::timestamp::now();
    let uri = FeatureUri::parse(snapshot).map_err(|e| HandlerError::BadRequest(e.to_string()))?;
    // One timestamp per run: every flag of this run is equally fresh, and a
    // later run is always newer. A backfill gives its snapshot's time; the
    // store still refuses it where a newer score is stored.
    let scored_at = settings.as_of.unwrap_or(started_at);
    let recorder = Recorder {
        runs: stores.runs,
        run,
        started_at,
        as_of: scored_at,
    };
    let mut summary = RescoreSummary {
        run_id: run.run_id.clone(),
        snapshot: snapshot.to_string(),
        model_id: model.artifact.model_id().to_string(),
        shard: run.shard,
        ..RescoreSummary::default()
    };
    let checked = match &settings.check {
        // Silent: `progress` counts the rows as they are written.
        Some(limits) => Some(
            check_source(
                &uri,
                stores.sources,
                model,
                limits,
                settings.chunk_rows,
                &|_| {},
            )
            .await?,
        ),
        None => None,
    };
    if let Some(c) = checked.as_ref().filter(|c| c.report.refused()) {
        if !settings.force {
            return Err(refuse(c, &mut summary, &recorder).await);
        }
        summary.forced = true;
    }
    let limits = settings.check.unwrap_or_default();
    let written = write_flags(
        &uri,
        model,
        stores,
        settings,
        scored_at,
        &mut summary,
        progress,
    );
    let totals = match written.await {
        Ok(totals) => totals,
        Err(e) => {
            // Some batches may be written: the record says how far it got.
            let (report, counts) = match &checked {
                Some(c) => (c.report.clone(), c.counts.clone()),
                None => {
                    let none = SnapshotCounts::new(&model.artifact);
                    (check_snapshot(&model.artifact, &none, &limits), none)
                }
            };
            let error = Some(crate::error::report(&e));
            recorder
                .keep(&summary, &report, &counts, false, error)
                .await;
            return Err(e);
        }
    };
    let (report, counts) = verdict(model, checked, totals, &limits, &mut summary);
    summary.check = Some(report.clone());
    summary.seconds = started.elapsed().as_secs_f64();
    let record = recorder.record(&summary, &report, &counts, false, None);
    store_record(stores.runs, run, &record).await?;
    tracing::info!(
        run_id = %summary.run_id,
        snapshot = %summary.snapshot,
        model_id = %summary.model_id,
        check = report.status.as_str(),
        forced = summary.forced,
        rows = summary.rows,
        written = summary.written,
        skipped = summary.skipped_unchanged,
        failed_rows = summary.failed_rows_count,
        out_of_range_rows = summary.out_of_range_rows,
        write_failures = summary.write_failures_count,
        seconds = summary.seconds,
        "rescore done"
    );
    Ok(summary)
}

/// A refused run: its record kept (nothing written), and the error that
/// says why.
async fn refuse(
    checked: &CheckedSnapshot,
    summary: &mut RescoreSummary,
    recorder: &Recorder<'_>,
) -> HandlerError {
    summary.rows = checked.counts.rows as usize;
    summary.scored = checked.counts.scored as usize;
    summary.failed_rows_count = checked.failed.count;
    summary.failed_rows = checked.failed.listed.clone();
    recorder
        .keep(summary, &checked.report, &checked.counts, true, None)
        .await;
    tracing::warn!(run_id = %recorder.run.run_id, snapshot = %summary.snapshot, "snapshot refused");
    HandlerError::Refused(Box::new(Refusal {
        report: checked.report.clone(),
        run_id: Some(recorder.run.run_id.clone()),
        shard: recorder.run.shard,
    }))
}

/// The run's check: the check pass's, noting in `summary` when the writing
/// pass read something else (the snapshot changed between the passes);
/// without a check pass, or when it stopped early (a forced run), a
/// verdict under `limits` on what the writing pass read.
fn verdict(
    model: &ScoringModel,
    checked: Option<CheckedSnapshot>,
    written: StreamTotals,
    limits: &CheckThresholds,
    summary: &mut RescoreSummary,
) -> (CheckReport, SnapshotCounts) {
    match checked {
        Some(c) if !c.stopped_early => {
            if c.counts != written.counts {
                summary.notes.push(
                    "the snapshot changed between the check and the writes: the check's \
                     figures are of what was read first"
                        .to_string(),
                );
            }
            (c.report, c.counts)
        }
        _ => (
            check_snapshot(&model.artifact, &written.counts, limits),
            written.counts,
        ),
    }
}

/// The writing pass: streams `uri` again, scores every row with reasons
/// and writes the flags in batches, filling `summary`'s counts.
async fn write_flags(
    uri: &FeatureUri,
    model: &ScoringModel,
    stores: RescoreStores<'_>,
    settings: RescoreSettings,
    scored_at: OffsetDateTime,
    summary: &mut RescoreSummary,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<StreamTotals, HandlerError> {
    let artifact = &model.artifact;
    let origin = EventOrigin {
        run_id: Some(summary.run_id.clone()),
        due: stores.due.to_vec(),
    };
    let mut stream =
        ScoredStream::open(uri, stores.sources, model, None, settings.chunk_rows, true).await?;
    while let Some(chunk) = stream.next_chunk().await? {
        summary.rows += chunk.rows;
        progress(chunk.rows);
        let batch: Vec<Flag> = chunk
            .scored
            .into_iter()
            .map(|row| {
                let s = row.score;
                let mut flag = Flag::new(
                    row.customer_id,
                    s.churn_probability,
                    s.risk_band,
                    s.reasons,
                    artifact.model_id(),
                    scored_at,
                );
                flag.attributes = row.attributes;
                flag
            })
            .collect();
        summary.scored += batch.len();
        if batch.is_empty() {
            continue;
        }
        let deadline = Instant::now() + settings.write_deadline;
        let written = stores
            .flags
            .write_scores(&batch, settings.epsilon, deadline, &origin)
            .await?;
        summary.events.merge(written.events);
        summary.written += written.written;
        summary.skipped_unchanged += written.skipped_unchanged;
        summary.stale_rejected += written.stale_rejected;
        summary.newly_at_risk += written.newly_at_risk;
        summary.write_failures_count += written.failed.len();
        for f in written.failed {
            if summary.write_failures.len() < MAX_LISTED_FAILURES {
                summary.write_failures.push(f);
            }
        }
    }
    let mut totals = stream.finish();
    summary.failed_rows = std::mem::take(&mut totals.failed.listed);
    summary.failed_rows_count = totals.failed.count;
    summary.out_of_range_rows = totals.out_of_range_rows;
    summary.notes = std::mem::take(&mut totals.notes);
    summary.warnings = std::mem::take(&mut totals.attribute_warnings);
    Ok(totals)
}

/// Which run a record is of, and where records go.
struct Recorder<'a> {
    runs: &'a dyn RunStore,
    run: &'a RunIdentity,
    started_at: OffsetDateTime,
    /// The `scored_at` of the run's flags.
    as_of: OffsetDateTime,
}

impl Recorder<'_> {
    /// The record of a run that did what `summary` says.
    fn record(
        &self,
        summary: &RescoreSummary,
        report: &CheckReport,
        counts: &SnapshotCounts,
        refused: bool,
        error: Option<String>,
    ) -> RunRecord {
        RunRecord {
            run_id: summary.run_id.clone(),
            started_at: self.started_at,
            finished_at: crate::timestamp::now(),
            as_of: self.as_of,
            snapshot: summary.snapshot.clone(),
            model_id: summary.model_id.clone(),
            status: report.status,
            refused,
            forced: summary.forced,
            counts: RunCounts {
                rows: summary.rows as u64,
                scored: summary.scored as u64,
                failed_rows: summary.failed_rows_count as u64,
                written: summary.written as u64,
                skipped_unchanged: summary.skipped_unchanged as u64,
                stale_rejected: summary.stale_rejected as u64,
                newly_at_risk: summary.newly_at_risk as u64,
                write_failures: summary.write_failures_count as u64,
                out_of_range_rows: summary.out_of_range_rows as u64,
            },
            check: report.clone(),
            snapshot_counts: counts.clone(),
            shards: None,
            error,
        }
    }

    /// Stores the record of a run that ends with an error (refused, or
    /// failed while writing): the error is the answer either way, so a
    /// record that cannot be stored is logged, not returned (which would
    /// turn a refusal into a store failure, retried, exit 70).
    async fn keep(
        &self,
        summary: &RescoreSummary,
        report: &CheckReport,
        counts: &SnapshotCounts,
        refused: bool,
        error: Option<String>,
    ) {
        let record = self.record(summary, report, counts, refused, error);
        if let Err(e) = store_record(self.runs, self.run, &record).await {
            tracing::error!(
                run_id = %self.run.run_id,
                error = %crate::error::report(&e),
                "the run's record was not stored"
            );
        }
    }
}

/// Stores `record` as the run's, or as its shard's.
async fn store_record(
    runs: &dyn RunStore,
    run: &RunIdentity,
    record: &RunRecord,
) -> Result<(), HandlerError> {
    if run.shard {
        runs.put_shard(&run.run_id, &shard_name(&record.snapshot), record)
            .await?;
    } else {
        runs.put_run(record).await?;
    }
    Ok(())
}

/// The one check of a run's `as_of` (CLI `--as-of`, event `"as_of"`): an
/// RFC 3339 time not after `now` (a score from the future would make every
/// real run until then stale).
///
/// # Errors
/// A message naming the problem.
pub fn parse_as_of(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let t = crate::timestamp::parse(text.trim())?;
    if t > now {
        return Err(format!("{text:?} is in the future"));
    }
    Ok(t)
}

/// Runs a rescore event end to end with the process's services: picks the
/// snapshot, loads the promoted model (re-checking the pointer first, so a
/// run never uses a model older than the current promotion). `progress` as
/// for [`handle_rescore`].
///
/// # Errors
/// [`HandlerError::BadRequest`] when no snapshot is given or configured;
/// [`HandlerError::NoModel`]; otherwise as [`handle_rescore`].
pub async fn run_event(
    services: &crate::services::Services,
    event: &Value,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<RescoreSummary, HandlerError> {
    let snapshot = match RescoreEvent::from_json(event, services.config.snapshot.as_deref())? {
        RescoreEvent::Snapshot(s) => s,
        RescoreEvent::Scheduled => services.config.snapshot.clone().ok_or_else(|| {
            HandlerError::BadRequest("scheduled rescore, but CHURN_SNAPSHOT is not set".to_string())
        })?,
    };
    let now = OffsetDateTime::now_utc();
    let as_of = match event_field(event, "as_of") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            parse_as_of(s, now)
                .map_err(|m| HandlerError::BadRequest(format!("invalid as_of: {m}")))?,
        ),
        Some(_) => {
            return Err(HandlerError::BadRequest(
                "invalid as_of: expected an RFC 3339 string".into(),
            ))
        }
    };
    let force = event_flag(event, "force")?;
    // Delivery is the run's last step unless the event turns it off; a
    // shard never delivers (the state machine's notify step does, once).
    let notify = match event_field(event, "notify") {
        None | Some(Value::Null) => true,
        Some(_) => event_flag(event, "notify")?,
    };
    let run = run_identity(event, now)?;
    let model = services
        .cache
        .refresh_now()
        .await?
        .ok_or(HandlerError::NoModel)?;
    let mut summary = handle_rescore(
        &snapshot,
        &model.model,
        RescoreStores::of(services),
        RescoreSettings {
            as_of,
            force,
            ..RescoreSettings::from_config(&services.config)
        },
        &run,
        progress,
    )
    .await?;
    if notify && !run.shard && !services.notifier.due().is_empty() {
        summary.notify = Some(super::notify::deliver_now(services, Some(&run.run_id)).await);
    }
    Ok(summary)
}

/// What the rescore function returns: a run's summary, or a sharded run's
/// record summary (`{"finish_run": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RescoreOutput {
    Run(Box<RescoreSummary>),
    Finished(FinishedRun),
    Notified(super::notify::NotifyOutput),
}

/// Handles any event of the rescore function: `{"finish_run": "<run_id>"}`
/// makes a sharded run's record from its shards' ([`finish_run`]);
/// anything else is a rescore ([`run_event`]).
///
/// # Errors
/// As [`run_event`] and [`finish_run`].
pub async fn handle_event(
    services: &crate::services::Services,
    event: &Value,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<RescoreOutput, HandlerError> {
    if let Some(raw) = event.get("notify_run") {
        let run_id = match raw {
            Value::String(raw) => run_id_from(raw).map_err(HandlerError::BadRequest)?,
            _ => {
                return Err(HandlerError::BadRequest(
                    "\"notify_run\" must be the run id (a string)".into(),
                ))
            }
        };
        return Ok(RescoreOutput::Notified(
            super::notify::notify_run(services, &run_id).await,
        ));
    }
    match event.get("finish_run") {
        Some(Value::String(raw)) => {
            let run_id = &run_id_from(raw).map_err(HandlerError::BadRequest)?;
            finish_run(
                services.runs.as_ref(),
                services.models.as_ref(),
                run_id,
                &services.config.check,
            )
            .await
            .map(RescoreOutput::Finished)
        }
        Some(_) => Err(HandlerError::BadRequest(
            "\"finish_run\" must be the run id (a string)".into(),
        )),
        None => run_event(services, event, progress)
            .await
            .map(|s| RescoreOutput::Run(Box::new(s))),
    }
}

/// Field `name` of the event, or (Distributed Map items) of its `BatchInput`.
fn event_field<'e>(event: &'e Value, name: &str) -> Option<&'e Value> {
    event
        .get(name)
        .or_else(|| event.get("BatchInput").and_then(|b| b.get(name)))
}

/// A boolean event field (absent or null: false).
fn event_flag(event: &Value, name: &str) -> Result<bool, HandlerError> {
    match event_field(event, name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(HandlerError::BadRequest(format!(
            "invalid {name}: expected true or false"
        ))),
    }
}

/// The run an event belongs to: its `run_id` (the state machine's
/// execution name) or a new one; a shard (`"shard": true`) must name its run.
fn run_identity(event: &Value, now: OffsetDateTime) -> Result<RunIdentity, HandlerError> {
    let shard = event_flag(event, "shard")?;
    let run_id = match event_field(event, "run_id") {
        None | Some(Value::Null) if shard => {
            return Err(HandlerError::BadRequest(
                "a shard (\"shard\": true) needs its run's \"run_id\"".into(),
            ))
        }
        None | Some(Value::Null) => crate::run_record::new_run_id(now),
        Some(Value::String(raw)) => run_id_from(raw)
            .map_err(|m| HandlerError::BadRequest(format!("invalid run_id: {m}")))?,
        Some(_) => {
            return Err(HandlerError::BadRequest(
                "invalid run_id: expected a string".into(),
            ))
        }
    };
    Ok(RunIdentity { run_id, shard })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_recognised() {
        let scheduled = json!({"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","detail":{}});
        assert_eq!(
            RescoreEvent::from_json(&scheduled, None).unwrap(),
            RescoreEvent::Scheduled
        );
        assert_eq!(
            RescoreEvent::from_json(&json!({"snapshot":"s3://b/k.csv"}), None).unwrap(),
            RescoreEvent::Snapshot("s3://b/k.csv".into())
        );
        assert_eq!(
            RescoreEvent::from_json(
                &json!({"Key":"snap/p1.csv","Size":10}),
                Some("s3://data/snap/")
            )
            .unwrap(),
            RescoreEvent::Snapshot("s3://data/snap/p1.csv".into())
        );
        assert_eq!(
            RescoreEvent::from_json(&json!({"key":"p.csv","BatchInput":{"bucket":"b2"}}), None)
                .unwrap(),
            RescoreEvent::Snapshot("s3://b2/p.csv".into())
        );
        assert!(RescoreEvent::from_json(&json!({"Key":"p.csv"}), None).is_err());
        assert!(RescoreEvent::from_json(&json!({"snapshot": 3}), None).is_err());
        assert!(RescoreEvent::from_json(&json!({"what": 1}), None).is_err());
        assert_eq!(
            RescoreEvent::from_json(&json!({"force": true, "run_id": "r"}), None).unwrap(),
            RescoreEvent::Scheduled
        );
        assert!(RescoreEvent::from_json(&json!([1]), None).is_err());
    }

    #[test]
    fn run_ids_force_and_shards_come_from_the_event_or_its_batch_input() {
        let now = OffsetDateTime::now_utc();
        let run = run_identity(&json!({"snapshot": "x", "run_id": "exec-1"}), now).unwrap();
        assert_eq!((run.run_id.as_str(), run.shard), ("exec-1", false));
        let item = json!({"Key": "p1.csv", "BatchInput": {"run_id": "exec-2", "shard": true, "force": true}});
        let run = run_identity(&item, now).unwrap();
        assert_eq!((run.run_id.as_str(), run.shard), ("exec-2", true));
        assert!(event_flag(&item, "force").unwrap());
        assert!(run_identity(&json!({"snapshot": "x"}), now)
            .unwrap()
            .run_id
            .starts_with("run-"));
        for bad in [
            json!({"shard": true}),
            json!({"run_id": ""}),
            json!({"run_id": 3}),
            json!({"shard": "yes", "run_id": "a"}),
        ] {
            assert!(
                matches!(run_identity(&bad, now), Err(HandlerError::BadRequest(_))),
                "{bad}"
            );
        }
        assert!(event_flag(&json!({"force": "true"}), "force").is_err());
    }
}
