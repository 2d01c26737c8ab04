//! A sharded run's record from its shards' records: the last step of the
//! Distributed Map (`{"finish_run": "<run_id>"}`).
//!
//! Each shard checked its own rows and stored its record (refused or
//! not) under the run; here their counts are summed, their check counts
//! merged into one verdict over the whole snapshot, and the run's record
//! (`runs/<run_id>`) says how many shards were refused. The run's status
//! is `refuse` when any shard was refused without `force` (its customers
//! keep their flags; the other shards' were written).

use crate::handlers::error::HandlerError;
use crate::model_store::ModelStore;
use crate::run_record::{RunCounts, RunRecord, ShardsSummary};
use crate::run_store::RunStore;
use churn_model::check::{check_snapshot, CheckItem, CheckStatus, CheckThresholds};
use churn_model::ModelArtifact;
use serde::{Deserialize, Serialize};

/// What `finish_run` answers (the state machine branches on `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedRun {
    pub run_id: String,
    /// `refuse` when a shard was refused without `force`, else the merged
    /// check's verdict (`ok` or `warn`).
    pub status: CheckStatus,
    pub shards: usize,
    pub refused_shards: usize,
    /// A refusal was overridden in some shard.
    pub forced: bool,
    /// The largest feature PSI over the whole snapshot.
    pub max_psi: Option<f64>,
}

/// Makes and stores run `run_id`'s record from its shards' records,
/// judging the merged counts under `limits`.
///
/// # Errors
/// [`HandlerError::BadRequest`] when the run has no shard record;
/// [`HandlerError::Service`] when the records cannot be read or written.
pub async fn finish_run(
    runs: &dyn RunStore,
    models: &dyn ModelStore,
    run_id: &str,
    limits: &CheckThresholds,
) -> Result<FinishedRun, HandlerError> {
    let shards = runs.shards(run_id).await?;
    let Some(first) = shards.first() else {
        return Err(HandlerError::BadRequest(format!(
            "run {run_id:?} has no shard records: no shard of it ran"
        )));
    };
    let bytes = models.artifact(&first.model_id).await?.ok_or_else(|| {
        HandlerError::Service(crate::Error::Corrupt {
            what: "run record",
            message: format!(
                "run {run_id:?} was scored by model {}, which is not in the model store",
                first.model_id
            ),
        })
    })?;
    let artifact = ModelArtifact::from_json_bytes(&bytes)?;
    let record = merge_shards(run_id, &shards, &artifact, limits);
    runs.put_run(&record).await?;
    let summary = record.shards.clone().unwrap_or_default();
    Ok(FinishedRun {
        run_id: run_id.to_string(),
        status: record.status,
        shards: summary.shards,
        refused_shards: summary.refused,
        forced: record.forced,
        max_psi: record.check.max_psi(),
    })
}

/// The run's record from its (non-empty) shards', judged against
/// `artifact`, the model of the first.
fn merge_shards(
    run_id: &str,
    shards: &[RunRecord],
    artifact: &ModelArtifact,
    limits: &CheckThresholds,
) -> RunRecord {
    let first = &shards[0];
    let mut counts = RunCounts::default();
    let mut merged = first.snapshot_counts.clone();
    let mut models_differ = false;
    let mut summary = ShardsSummary {
        shards: shards.len(),
        ..ShardsSummary::default()
    };
    for (i, s) in shards.iter().enumerate() {
        counts.add(&s.counts);
        if i > 0 && merged.merge(&s.snapshot_counts).is_err() {
            models_differ = true;
        }
        if s.refused {
            summary.refused += 1;
            summary.refused_snapshots.push(s.snapshot.clone());
        }
        summary.failed += usize::from(s.error.is_some());
        summary.forced += usize::from(s.forced);
    }
    let mut check = if models_differ {
        // A promotion during the run: no one reference to judge all rows
        // against; the worst shard's verdict stands for the run.
        let worst = shards.iter().max_by_key(|s| s.status).unwrap_or(first);
        worst.check.clone()
    } else {
        check_snapshot(artifact, &merged, limits)
    };
    if models_differ {
        check.checks.push(CheckItem {
            name: "models".into(),
            status: "warn".into(),
            detail: "shards were scored by different models (a promotion during the run); \
                     the worst shard's check stands for the run"
                .into(),
        });
    }
    let status = if summary.refused > 0 {
        CheckStatus::Refuse
    } else {
        check.status.min(CheckStatus::Warn)
    };
    RunRecord {
        run_id: run_id.to_string(),
        started_at: shards
            .iter()
            .map(|s| s.started_at)
            .min()
            .unwrap_or(first.started_at),
        finished_at: crate::timestamp::now(),
        as_of: first.as_of,
        snapshot: common_prefix(shards.iter().map(|s| s.snapshot.as_str())),
        model_id: first.model_id.clone(),
        status,
        refused: summary.refused > 0,
        forced: summary.forced > 0,
        counts,
        check,
        snapshot_counts: merged,
        error: (summary.failed > 0).then(|| {
            format!(
                "{} of {} shards failed while writing (see their records)",
                summary.failed, summary.shards
            )
        }),
        shards: Some(summary),
    }
}

/// The longest common prefix of `snapshots`, cut after its last `/` (the
/// snapshot prefix the shards were listed from).
fn common_prefix<'a>(mut snapshots: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = snapshots.next() else {
        return String::new();
    };
    let mut len = first.len();
    for s in snapshots {
        len = first
            .bytes()
            .zip(s.bytes())
            .take(len)
            .take_while(|(a, b)| a == b)
            .count();
    }
    // Bytes were compared: back off to a character boundary.
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    let prefix = &first[..len];
    match prefix.rfind('/') {
        Some(i) if len < first.len() => prefix[..=i].to_string(),
        _ => prefix.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_snapshot_is_the_shards_common_folder() {
        let shards = ["s3://b/snap/2026/p-001.csv", "s3://b/snap/2026/p-010.csv"];
        assert_eq!(common_prefix(shards.into_iter()), "s3://b/snap/2026/");
        assert_eq!(common_prefix(["s3://b/a.csv"].into_iter()), "s3://b/a.csv");
        assert_eq!(common_prefix(std::iter::empty()), "");
        // Keys that part inside a multi-byte character.
        assert_eq!(common_prefix(["d/é1.csv", "d/è2.csv"].into_iter()), "d/");
    }
}
