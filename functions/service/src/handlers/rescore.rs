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
use crate::handlers::error::HandlerError;
use crate::handlers::model::ScoringModel;
use crate::handlers::scored_stream::ScoredStream;
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
        if obj.is_empty()
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
}

impl RescoreSettings {
    /// From `CHURN_SCORE_EPSILON` / `CHURN_WRITE_DEADLINE_SECS`.
    pub fn from_config(config: &crate::config::ServiceConfig) -> RescoreSettings {
        RescoreSettings {
            epsilon: config.score_epsilon,
            write_deadline: config.write_deadline,
            chunk_rows: CHUNK_ROWS,
            as_of: None,
        }
    }
}

/// Rescores `snapshot` with `model` into `flags`; `progress` is called with
/// the number of rows of each chunk read (the CLI's live row counter).
///
/// # Errors
/// [`HandlerError::BadRequest`] for an unusable URI; [`HandlerError::Features`]
/// for fatal read problems (missing file, bad header, a feature column the
/// model needs is absent); [`HandlerError::BadRequest`] when an attribute
/// column the model records is absent (before anything is written);
/// [`HandlerError::Service`] for invalid settings.
/// Bad rows and unwritable flags are reported in the summary instead.
pub async fn handle_rescore(
    snapshot: &str,
    model: &ScoringModel,
    flags: &dyn FlagStore,
    sources: &FeatureSources,
    settings: RescoreSettings,
    progress: &(dyn Fn(usize) + Send + Sync),
) -> Result<RescoreSummary, HandlerError> {
    let started = Instant::now();
    let uri = FeatureUri::parse(snapshot).map_err(|e| HandlerError::BadRequest(e.to_string()))?;
    let artifact = &model.artifact;
    let mut stream =
        ScoredStream::open(&uri, sources, model, None, settings.chunk_rows, true).await?;
    // One timestamp per run: every flag of this run is equally fresh, and a
    // later run is always newer. A backfill gives its snapshot's time; the
    // store still refuses it where a newer score is stored.
    let scored_at = settings.as_of.unwrap_or_else(OffsetDateTime::now_utc);
    let mut summary = RescoreSummary {
        snapshot: snapshot.to_string(),
        model_id: artifact.model_id().to_string(),
        ..RescoreSummary::default()
    };
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
        let written = flags
            .write_batch(&batch, settings.epsilon, deadline)
            .await?;
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
    let totals = stream.finish();
    summary.failed_rows = totals.failed.listed;
    summary.failed_rows_count = totals.failed.count;
    summary.out_of_range_rows = totals.out_of_range_rows;
    summary.notes = totals.notes;
    summary.warnings = totals.attribute_warnings;
    summary.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        snapshot = %summary.snapshot,
        model_id = %summary.model_id,
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
    // On the event, or (Distributed Map items) in its `BatchInput`.
    let as_of = event
        .get("as_of")
        .or_else(|| event.get("BatchInput").and_then(|b| b.get("as_of")));
    let as_of = match as_of {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            parse_as_of(s, OffsetDateTime::now_utc())
                .map_err(|m| HandlerError::BadRequest(format!("invalid as_of: {m}")))?,
        ),
        Some(_) => {
            return Err(HandlerError::BadRequest(
                "invalid as_of: expected an RFC 3339 string".into(),
            ))
        }
    };
    let model = services
        .cache
        .refresh_now()
        .await?
        .ok_or(HandlerError::NoModel)?;
    handle_rescore(
        &snapshot,
        &model.model,
        services.flags.as_ref(),
        &services.sources,
        RescoreSettings {
            as_of,
            ..RescoreSettings::from_config(&services.config)
        },
        progress,
    )
    .await
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
        assert!(RescoreEvent::from_json(&json!([1]), None).is_err());
    }
}
