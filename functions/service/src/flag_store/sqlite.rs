//! Local flag store: one embedded SQLite file.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool with the
//! connection behind a mutex (one writer at a time is what SQLite allows
//! anyway). A batch is one `BEGIN IMMEDIATE` transaction: the read of the
//! stored rows and the writes happen under SQLite's write lock, so unlike
//! DynamoDB there is no window in which a concurrent writer (another process
//! on the same file included) could slip a newer score in between.

use super::{check_list_args, decide, decode_cursor, encode_cursor, prepare_batch, risk_list_pk};
use super::{Decision, FlagStore};
use crate::error::{Error, Result};
use crate::flag::{Flag, Page, WriteFailure, WriteSummary};
use crate::timestamp;
use async_trait::async_trait;
use churn_model::RiskBand;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BACKEND: &str = "sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flags (
    customer_id       TEXT PRIMARY KEY NOT NULL,
    churn_probability REAL NOT NULL,
    risk_band         TEXT NOT NULL,
    at_risk           INTEGER NOT NULL,
    reasons           TEXT NOT NULL,
    model_id          TEXT NOT NULL,
    scored_at         TEXT NOT NULL,
    previous_band     TEXT,
    band_changed_at   TEXT,
    risk_list_pk      TEXT
);
CREATE INDEX IF NOT EXISTS flags_risk_list
    ON flags (risk_band, churn_probability DESC, customer_id)
    WHERE at_risk = 1;
";

const COLUMNS: &str = "customer_id, churn_probability, risk_band, reasons, model_id, \
                       scored_at, previous_band, band_changed_at";

/// Flag store in a SQLite database file (or in memory).
#[derive(Clone)]
pub struct SqliteFlagStore {
    conn: Arc<Mutex<Connection>>,
    shards: u32,
}

impl std::fmt::Debug for SqliteFlagStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFlagStore")
            .field("shards", &self.shards)
            .finish()
    }
}

/// Where the next risk-list page starts (after this probability and id).
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    v: u8,
    band: RiskBand,
    p: f64,
    id: String,
}

impl SqliteFlagStore {
    /// Opens (creating if needed, parent directories included) the database
    /// at `path` and its schema. `shards` only fills the `risk_list_pk`
    /// column, kept for parity with DynamoDB.
    ///
    /// # Errors
    /// [`Error::Storage`] when the directory, file or schema cannot be created.
    pub async fn open(path: impl AsRef<Path>, shards: u32) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = crate::blocking::spawn(move || -> Result<Connection> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::storage_at(BACKEND, "open", dir.display(), e))?;
            }
            let conn = Connection::open(&path)
                .map_err(|e| Error::storage_at(BACKEND, "open", path.display(), e))?;
            // WAL lets readers (CLI risk lists) run while a rescore writes.
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| Error::storage(BACKEND, "open", e))?;
            Ok(conn)
        })
        .await
        .map_err(|e| Error::storage(BACKEND, "open", e))??;
        Self::from_connection(conn, shards).await
    }

    /// An in-memory store (tests, dry runs).
    ///
    /// # Errors
    /// [`Error::Storage`] if SQLite cannot allocate the database.
    pub async fn in_memory(shards: u32) -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| Error::storage(BACKEND, "open", e))?;
        Self::from_connection(conn, shards).await
    }

    async fn from_connection(conn: Connection, shards: u32) -> Result<Self> {
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| Error::storage(BACKEND, "open", e))?;
        let store = SqliteFlagStore {
            conn: Arc::new(Mutex::new(conn)),
            shards: shards.max(1),
        };
        store.create_table_if_missing().await?;
        Ok(store)
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with_conn<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = Arc::clone(&self.conn);
        crate::blocking::spawn(move || {
            // A panic while holding the lock cannot leave SQLite inconsistent
            // (transactions roll back on drop), so a poisoned lock is usable.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::storage(BACKEND, operation, e))?
    }
}

fn row_to_flag(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Flag>> {
    let customer_id: String = row.get(0)?;
    let churn_probability: f64 = row.get(1)?;
    let band: String = row.get(2)?;
    let reasons: String = row.get(3)?;
    let model_id: String = row.get(4)?;
    let scored_at: String = row.get(5)?;
    let previous_band: Option<String> = row.get(6)?;
    let band_changed_at: Option<String> = row.get(7)?;
    let corrupt = |m: String| Error::Corrupt {
        what: "flag row",
        message: format!("customer {customer_id:?}: {m}"),
    };
    let parse = || -> Result<Flag> {
        Ok(Flag {
            churn_probability,
            risk_band: band.parse().map_err(|e| corrupt(format!("{e}")))?,
            reasons: serde_json::from_str(&reasons)
                .map_err(|e| corrupt(format!("reasons: {e}")))?,
            model_id: model_id.clone(),
            scored_at: timestamp::parse(&scored_at).map_err(corrupt)?,
            previous_band: previous_band
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| corrupt(format!("{e}")))?,
            band_changed_at: band_changed_at
                .as_deref()
                .map(timestamp::parse)
                .transpose()
                .map_err(corrupt)?,
            customer_id: customer_id.clone(),
            attributes: Default::default(),
        })
    };
    Ok(parse())
}

fn get_in(conn: &Connection, customer_id: &str) -> Result<Option<Flag>> {
    select_one(
        conn,
        &format!("SELECT {COLUMNS} FROM flags WHERE customer_id = ?1"),
        customer_id,
    )
}

/// The stored row with only what `decide` needs (reasons and model id
/// blanked): a rescore reads every customer, and decoding reasons is most of
/// the cost of a read.
fn get_for_decision(conn: &Connection, customer_id: &str) -> Result<Option<Flag>> {
    select_one(
        conn,
        "SELECT customer_id, churn_probability, risk_band, '[]', '', scored_at, previous_band,
                band_changed_at
         FROM flags WHERE customer_id = ?1",
        customer_id,
    )
}

fn select_one(conn: &Connection, sql: &str, customer_id: &str) -> Result<Option<Flag>> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(|e| Error::storage(BACKEND, "get", e))?;
    stmt.query_row(params![customer_id], row_to_flag)
        .optional()
        .map_err(|e| Error::storage(BACKEND, "get", e))?
        .transpose()
}

fn upsert(conn: &Connection, flag: &Flag, shards: u32) -> rusqlite::Result<usize> {
    let reasons = serde_json::to_string(&flag.reasons).unwrap_or_else(|_| "[]".into());
    // The WHERE repeats the staleness rule in SQL: the row read earlier in
    // this transaction cannot have changed, but the guard costs nothing.
    conn.prepare_cached(
        "INSERT INTO flags (customer_id, churn_probability, risk_band, at_risk, reasons, model_id,
                            scored_at, previous_band, band_changed_at, risk_list_pk)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (customer_id) DO UPDATE SET
             churn_probability = excluded.churn_probability,
             risk_band = excluded.risk_band,
             at_risk = excluded.at_risk,
             reasons = excluded.reasons,
             model_id = excluded.model_id,
             scored_at = excluded.scored_at,
             previous_band = excluded.previous_band,
             band_changed_at = excluded.band_changed_at,
             risk_list_pk = excluded.risk_list_pk
         WHERE excluded.scored_at > flags.scored_at",
    )?
    .execute(params![
        flag.customer_id,
        flag.churn_probability,
        flag.risk_band.as_str(),
        flag.at_risk(),
        reasons,
        flag.model_id,
        timestamp::format(flag.scored_at),
        flag.previous_band.map(RiskBand::as_str),
        flag.band_changed_at.map(timestamp::format),
        risk_list_pk(flag, shards),
    ])
}

#[async_trait]
impl FlagStore for SqliteFlagStore {
    async fn write_batch(
        &self,
        flags: &[Flag],
        epsilon: f64,
        _deadline: Instant,
    ) -> Result<WriteSummary> {
        let (todo, mut summary) = prepare_batch(flags, epsilon)?;
        if todo.is_empty() {
            return Ok(summary);
        }
        let shards = self.shards;
        let ids: Vec<String> = todo.iter().map(|f| f.customer_id.clone()).collect();
        let result = self
            .with_conn("write_batch", move |conn| {
                let mut out = WriteSummary::default();
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| Error::storage(BACKEND, "write_batch", e))?;
                for flag in &todo {
                    let stored = match get_for_decision(&tx, &flag.customer_id) {
                        Ok(s) => s,
                        Err(e) => {
                            out.failed.push(WriteFailure {
                                customer_id: flag.customer_id.clone(),
                                reason: e.to_string(),
                            });
                            continue;
                        }
                    };
                    match decide(stored.as_ref(), flag, epsilon) {
                        Decision::Stale => out.stale_rejected += 1,
                        Decision::Unchanged => out.skipped_unchanged += 1,
                        Decision::Write {
                            flag,
                            newly_at_risk,
                        } => match upsert(&tx, &flag, shards) {
                            Ok(_) => {
                                out.written += 1;
                                out.newly_at_risk += usize::from(newly_at_risk);
                            }
                            Err(e) => out.failed.push(WriteFailure {
                                customer_id: flag.customer_id.clone(),
                                reason: format!("sqlite write: {e}"),
                            }),
                        },
                    }
                }
                tx.commit()
                    .map_err(|e| Error::storage(BACKEND, "write_batch", e))?;
                Ok(out)
            })
            .await;
        match result {
            Ok(part) => summary.merge(part),
            // The transaction rolled back: nothing of the batch was written.
            Err(e) => summary
                .failed
                .extend(ids.into_iter().map(|customer_id| WriteFailure {
                    customer_id,
                    reason: e.to_string(),
                })),
        }
        Ok(summary)
    }

    async fn get(&self, customer_id: &str) -> Result<Option<Flag>> {
        let id = customer_id.to_string();
        self.with_conn("get", move |conn| get_in(conn, &id)).await
    }

    async fn risk_list(&self, band: RiskBand, limit: usize, cursor: Option<&str>) -> Result<Page> {
        check_list_args(band, limit)?;
        let after = match cursor {
            None => None,
            Some(c) => {
                let c: Cursor = decode_cursor(c)?;
                if c.v != 1 || c.band != band {
                    return Err(Error::InvalidCursor(format!(
                        "cursor was issued for the {} list",
                        c.band
                    )));
                }
                Some((c.p, c.id))
            }
        };
        self.with_conn("risk_list", move |conn| {
            let (p, id) = match &after {
                Some((p, id)) => (Some(*p), Some(id.as_str())),
                None => (None, None),
            };
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM flags
                     WHERE at_risk = 1 AND risk_band = ?1
                       AND (?2 IS NULL OR churn_probability < ?2
                            OR (churn_probability = ?2 AND customer_id > ?3))
                     ORDER BY churn_probability DESC, customer_id ASC
                     LIMIT ?4"
                ))
                .map_err(|e| Error::storage(BACKEND, "risk_list", e))?;
            let rows = stmt
                .query_map(
                    params![band.as_str(), p, id, (limit + 1) as i64],
                    row_to_flag,
                )
                .map_err(|e| Error::storage(BACKEND, "risk_list", e))?;
            let mut flags = Vec::with_capacity(limit + 1);
            for row in rows {
                flags.push(row.map_err(|e| Error::storage(BACKEND, "risk_list", e))??);
            }
            let next_cursor = if flags.len() > limit {
                flags.truncate(limit);
                flags.last().map(|f| {
                    encode_cursor(&Cursor {
                        v: 1,
                        band,
                        p: f.churn_probability,
                        id: f.customer_id.clone(),
                    })
                })
            } else {
                None
            };
            Ok(Page { flags, next_cursor })
        })
        .await
    }

    async fn create_table_if_missing(&self) -> Result<()> {
        self.with_conn("create_table", |conn| {
            conn.execute_batch(SCHEMA)
                .map_err(|e| Error::storage(BACKEND, "create_table", e))
        })
        .await
    }
}
