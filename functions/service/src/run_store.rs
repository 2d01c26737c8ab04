//! [`RunStore`]: where run records and outcomes reports are kept.
//!
//! Two adapters, one contract (tests/storage/run_contract.rs runs the same
//! suite against both): locally the flag store's SQLite file
//! ([`SqliteFlagStore`](crate::flag_store::sqlite::SqliteFlagStore), tables
//! `runs`, `run_shards`, `outcome_reports`); on AWS objects in the model
//! bucket ([`ObjectRunStore`]: `runs/<run_id>.json`,
//! `runs/<run_id>/shards/<shard>.json`, a listing marker
//! `runs/by-finish/<finished_at>_<run_id>`, `outcomes/models/<model_id>.json`,
//! `outcomes/latest.json`), or in a models directory when flags are on
//! DynamoDB but models local.
//!
//! # Layout
//! - `objects`: [`ObjectRunStore`], over any [`ModelObjects`](crate::model_store::ModelObjects).
//! - `sqlite`: the SQLite adapter, on the flag store's connection.

mod objects;
mod sqlite;

pub use objects::ObjectRunStore;

use crate::error::Result;
use crate::run_record::{OutcomesRecord, RunRecord};
use async_trait::async_trait;

/// Most runs a listing returns.
pub const MAX_LISTED_RUNS: usize = 500;

/// Storage of run records and outcomes reports.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores (replacing) a run's record.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] on backend failure.
    async fn put_run(&self, run: &RunRecord) -> Result<()>;

    /// A run's record, `None` when unknown.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] on backend failure; [`crate::Error::Corrupt`]
    /// for a record that does not parse.
    async fn run(&self, run_id: &str) -> Result<Option<RunRecord>>;

    /// The `limit` (at most [`MAX_LISTED_RUNS`]) most recently finished
    /// runs, newest first (by `finished_at`, then run id; shards are not
    /// runs).
    ///
    /// # Errors
    /// As [`RunStore::run`].
    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>>;

    /// Stores (replacing) the record of shard `shard` of run `run_id`.
    ///
    /// # Errors
    /// As [`RunStore::put_run`].
    async fn put_shard(&self, run_id: &str, shard: &str, record: &RunRecord) -> Result<()>;

    /// Every stored shard record of run `run_id`, by shard name.
    ///
    /// # Errors
    /// As [`RunStore::run`].
    async fn shards(&self, run_id: &str) -> Result<Vec<RunRecord>>;

    /// Stores an outcomes report as the latest, and as the latest of each
    /// model it covers.
    ///
    /// # Errors
    /// As [`RunStore::put_run`].
    async fn put_outcomes(&self, record: &OutcomesRecord) -> Result<()>;

    /// The latest outcomes report (with `model_id`: the latest covering
    /// that model), `None` when there is none.
    ///
    /// # Errors
    /// As [`RunStore::run`].
    async fn outcomes(&self, model_id: Option<&str>) -> Result<Option<OutcomesRecord>>;
}

/// The shard name of a shard's snapshot: 16 hex digits of its SHA-256, a
/// safe key whatever the snapshot's name.
pub fn shard_name(snapshot: &str) -> String {
    crate::model_store::sha256_hex(snapshot.as_bytes())[..16].to_string()
}

/// Parses a stored JSON record.
fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| crate::Error::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// Parsed records, those that do not parse left out with a warning: one
/// broken record must not hide every other run.
fn decode_each<'a>(
    what: &'static str,
    stored: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<RunRecord> {
    stored
        .into_iter()
        .filter_map(|bytes| match decode(what, bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "a stored {what} does not parse; left out");
                None
            }
        })
        .collect()
}

/// A record as stored.
///
/// # Errors
/// [`crate::Error::Corrupt`] if it cannot be serialised (a non-finite
/// figure would be one).
fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| crate::Error::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// The one check of the ids a record is stored under (they name keys and
/// files): [`validate_run_id`](crate::run_record::validate_run_id), and
/// for shards a hex name as [`shard_name`] makes.
///
/// # Errors
/// [`crate::Error::InvalidInput`] naming the id.
fn check_ids(run_id: &str, shard: Option<&str>) -> Result<()> {
    crate::run_record::validate_run_id(run_id).map_err(|message| crate::Error::InvalidInput {
        field: "run_id",
        message,
    })?;
    match shard {
        Some(s) if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(crate::Error::InvalidInput {
                field: "shard",
                message: format!("{s:?} is no shard name (hex digits)"),
            })
        }
        _ => Ok(()),
    }
}

/// The model ids of `record` a per-model report is stored under; an id
/// that is no safe key is left out with a warning (the report keeps it).
fn report_models(record: &OutcomesRecord) -> Vec<&str> {
    record
        .report
        .by_model
        .keys()
        .map(String::as_str)
        .filter(|id| match crate::model_store::validate_model_id(id) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "outcomes of an unsafe model id not stored apart");
                false
            }
        })
        .collect()
}
