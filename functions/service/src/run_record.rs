//! What a rescore run leaves behind ([`RunRecord`]: its counts, the
//! snapshot check with per-feature figures, whether it was refused or
//! forced) and the stored outcomes report ([`OutcomesRecord`]).
//!
//! Run ids are safe path segments (they name `runs/<run_id>.json` objects
//! and files): a run gets the `run_id` its event carries (the state
//! machine's execution name), or else a new `run-<UTC time>-<random hex>`.

use churn_model::check::{CheckReport, CheckStatus, SnapshotCounts};
use churn_model::outcomes::OutcomesReport;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest run id (a Step Functions execution name is at most 80).
pub const MAX_RUN_ID_CHARS: usize = 80;

/// A new run id: `run-20261201T041500Z-3f9a1c`, which sorts by start time.
pub fn new_run_id(now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    format!(
        "run-{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:06x}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// The one check of a run id: 1 to [`MAX_RUN_ID_CHARS`] ASCII letters,
/// digits, `-`, `_` or `.`, not starting with `.`.
///
/// # Errors
/// A message saying what is wrong.
pub fn validate_run_id(run_id: &str) -> Result<(), String> {
    let ok = !run_id.is_empty()
        && run_id.len() <= MAX_RUN_ID_CHARS
        && !run_id.starts_with('.')
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "run id {run_id:?} must be 1 to {MAX_RUN_ID_CHARS} letters, digits, '-', '_' or '.'"
        ))
    }
}

/// The run id for `raw` (a Step Functions execution name may hold
/// characters a key should not): each character outside letters, digits,
/// `-`, `_` and `.` becomes `-`, a leading `.` too, cut to
/// [`MAX_RUN_ID_CHARS`]; the same name always gives the same id, so a run's
/// shards and its finish agree.
///
/// # Errors
/// A message when `raw` is empty.
pub fn run_id_from(raw: &str) -> Result<String, String> {
    let id: String = raw
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let safe = c.is_ascii_alphanumeric() || matches!(c, '-' | '_') || (c == '.' && i > 0);
            if safe {
                c
            } else {
                '-'
            }
        })
        .take(MAX_RUN_ID_CHARS)
        .collect();
    if id.is_empty() {
        return Err("a run id must not be empty".to_string());
    }
    Ok(id)
}

/// What a run did to the flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Data rows read.
    pub rows: u64,
    pub scored: u64,
    /// Rows that failed validation (not scored).
    pub failed_rows: u64,
    pub written: u64,
    pub skipped_unchanged: u64,
    pub stale_rejected: u64,
    pub newly_at_risk: u64,
    pub write_failures: u64,
    pub out_of_range_rows: u64,
}

impl RunCounts {
    /// Adds `other` (another shard of the run).
    pub fn add(&mut self, other: &RunCounts) {
        self.rows += other.rows;
        self.scored += other.scored;
        self.failed_rows += other.failed_rows;
        self.written += other.written;
        self.skipped_unchanged += other.skipped_unchanged;
        self.stale_rejected += other.stale_rejected;
        self.newly_at_risk += other.newly_at_risk;
        self.write_failures += other.write_failures;
        self.out_of_range_rows += other.out_of_range_rows;
    }
}

/// The shards of a Distributed Map run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardsSummary {
    pub shards: usize,
    /// Shards refused by their check (nothing of theirs was written).
    pub refused: usize,
    /// Shards whose refusal was overridden.
    pub forced: usize,
    /// The snapshots of the refused shards.
    pub refused_snapshots: Vec<String>,
    /// Shards that failed while writing (their records say why).
    #[serde(default)]
    pub failed: usize,
}

/// One rescore run (or one shard of one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub finished_at: OffsetDateTime,
    /// The `scored_at` of the run's flags.
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub as_of: OffsetDateTime,
    pub snapshot: String,
    pub model_id: String,
    /// The check's verdict (of all shards together for a sharded run).
    pub status: CheckStatus,
    /// Nothing was written because of the check (for a sharded run: some
    /// shard's rows were not).
    pub refused: bool,
    /// A refusal was overridden (`--force`, `"force": true`).
    pub forced: bool,
    pub counts: RunCounts,
    pub check: CheckReport,
    /// What the check counted, kept so shards can be merged.
    pub snapshot_counts: SnapshotCounts,
    /// A sharded run's shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsSummary>,
    /// The run failed while writing (a store outage past its deadline, a
    /// part that could not be read): why. `counts` are what it did until
    /// then; the flags it wrote stay (a rerun completes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RunRecord {
    /// The record as listed (`GET /v1/runs`, `churn runs list --format
    /// json`): every field but the check and its counts, and the check's
    /// largest feature PSI as `max_psi`.
    pub fn summary(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("check");
            o.remove("snapshot_counts");
            o.insert("max_psi".into(), self.check.max_psi().into());
        }
        v
    }
}

/// A stored outcomes report: when and how it was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomesRecord {
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub computed_at: OffsetDateTime,
    /// Where the outcomes came from.
    pub source: String,
    pub horizon_days: u32,
    /// Matched outcomes whose customer had no score `horizon_days` before
    /// the outcome, matched with its earliest score before it instead
    /// (closer to the outcome, so easier to get right: many of them flatter
    /// the figures).
    #[serde(default)]
    pub matched_before_horizon: u64,
    #[serde(flatten)]
    pub report: OutcomesReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_safe_path_segments_and_sort_by_time() {
        let t = time::macros::datetime!(2026-12-01 04:15:00 UTC);
        let id = new_run_id(t);
        assert!(id.starts_with("run-20261201T041500Z-"), "{id}");
        assert_eq!(validate_run_id(&id), Ok(()));
        assert!(new_run_id(t + time::Duration::hours(1)) > id);
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(81)] {
            assert!(validate_run_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(validate_run_id("3f0c-aa_1.2"), Ok(()));
        // Execution names Step Functions allows become safe ids, always alike.
        for raw in ["nightly+2026=12@eu(1)", "ünïcode", ".x", &"y".repeat(90)] {
            let id = run_id_from(raw).unwrap();
            assert_eq!(validate_run_id(&id), Ok(()), "{raw:?} -> {id:?}");
            assert_eq!(run_id_from(raw).unwrap(), id);
        }
        assert_eq!(run_id_from("a/b").unwrap(), "a-b");
        assert!(run_id_from("").is_err());
    }
}
