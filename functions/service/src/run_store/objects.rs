//! [`ObjectRunStore`]: run records and outcomes reports as JSON objects
//! (S3 on AWS, files in a directory otherwise).

use super::{check_ids, decode, decode_each, encode, report_models, RunStore, MAX_LISTED_RUNS};
use crate::error::Result;
use crate::model_store::ModelObjects;
use crate::run_record::{validate_run_id, OutcomesRecord, RunRecord};
use async_trait::async_trait;
use std::sync::Arc;

/// Records under `runs/` and `outcomes/` of an object store.
#[derive(Clone)]
pub struct ObjectRunStore {
    objects: Arc<dyn ModelObjects>,
}

impl std::fmt::Debug for ObjectRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRunStore").finish_non_exhaustive()
    }
}

impl ObjectRunStore {
    /// Records in `objects` (for S3: a store at the bucket's root, so
    /// `runs/` sits beside the models' prefix).
    pub fn new(objects: Arc<dyn ModelObjects>) -> Self {
        ObjectRunStore { objects }
    }
}

/// Where the finish-time markers are (`runs/by-finish/<finished_at>_<run_id>`).
const FINISH_INDEX: &str = "runs/by-finish/";

fn run_key(run_id: &str) -> String {
    format!("runs/{run_id}.json")
}

/// `outcomes/latest.json`, or a model's `outcomes/models/<model_id>.json`.
fn outcomes_key(model_id: Option<&str>) -> String {
    match model_id {
        Some(id) => format!("outcomes/models/{id}.json"),
        None => "outcomes/latest.json".to_string(),
    }
}

#[async_trait]
impl RunStore for ObjectRunStore {
    async fn put_run(&self, run: &RunRecord) -> Result<()> {
        check_ids(&run.run_id, None)?;
        self.objects
            .put_object(&run_key(&run.run_id), encode("run record", run)?)
            .await?;
        // The listing's order: a marker per record named by its finish
        // time, so the newest are found by listing keys, not reading records.
        let marker = format!(
            "{FINISH_INDEX}{}_{}",
            crate::timestamp::format(run.finished_at),
            run.run_id
        );
        self.objects
            .put_object(&marker, run.run_id.clone().into_bytes())
            .await
    }

    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        // Keys are built from ids: an unsafe one names no record.
        if validate_run_id(run_id).is_err() {
            return Ok(None);
        }
        match self.objects.get_object(&run_key(run_id)).await? {
            Some(bytes) => Ok(Some(decode("run record", &bytes)?)),
            None => Ok(None),
        }
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let mut markers: Vec<(String, String)> = self
            .objects
            .list_keys(FINISH_INDEX)
            .await?
            .into_iter()
            .filter_map(|(key, _)| {
                let name = key.strip_prefix(FINISH_INDEX)?;
                let (finished, run_id) = name.split_once('_')?;
                Some((finished.to_string(), run_id.to_string()))
            })
            .collect();
        // The fixed-width stored time sorts as it orders.
        markers.sort_by(|a, b| b.cmp(a));
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (_, run_id) in markers {
            if out.len() >= limit.min(MAX_LISTED_RUNS) {
                break;
            }
            // A record stored again with another finish time left an older marker.
            if !seen.insert(run_id.clone()) {
                continue;
            }
            if validate_run_id(&run_id).is_err() {
                continue;
            }
            if let Some(bytes) = self.objects.get_object(&run_key(&run_id)).await? {
                out.extend(decode_each("run record", [bytes.as_slice()]));
            }
        }
        Ok(out)
    }

    async fn put_shard(&self, run_id: &str, shard: &str, record: &RunRecord) -> Result<()> {
        check_ids(run_id, Some(shard))?;
        let key = format!("runs/{run_id}/shards/{shard}.json");
        self.objects
            .put_object(&key, encode("shard record", record)?)
            .await
    }

    async fn shards(&self, run_id: &str) -> Result<Vec<RunRecord>> {
        if validate_run_id(run_id).is_err() {
            return Ok(Vec::new());
        }
        let mut keys: Vec<String> = self
            .objects
            .list_keys(&format!("runs/{run_id}/shards/"))
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.ends_with(".json"))
            .collect();
        keys.sort();
        let mut stored = Vec::new();
        for key in keys {
            if let Some(bytes) = self.objects.get_object(&key).await? {
                stored.push(bytes);
            }
        }
        Ok(decode_each(
            "shard record",
            stored.iter().map(Vec::as_slice),
        ))
    }

    async fn put_outcomes(&self, record: &OutcomesRecord) -> Result<()> {
        let bytes = encode("outcomes report", record)?;
        for model_id in report_models(record) {
            self.objects
                .put_object(&outcomes_key(Some(model_id)), bytes.clone())
                .await?;
        }
        self.objects.put_object(&outcomes_key(None), bytes).await
    }

    async fn outcomes(&self, model_id: Option<&str>) -> Result<Option<OutcomesRecord>> {
        if model_id.is_some_and(|m| crate::model_store::validate_model_id(m).is_err()) {
            return Ok(None);
        }
        let key = outcomes_key(model_id);
        match self.objects.get_object(&key).await? {
            Some(bytes) => Ok(Some(decode("outcomes report", &bytes)?)),
            None => Ok(None),
        }
    }
}
