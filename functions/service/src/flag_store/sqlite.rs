//! Local flag store: one embedded SQLite file.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool with the
//! connection behind a mutex (one writer at a time is what SQLite allows
//! anyway). A batch is one `BEGIN IMMEDIATE` transaction: the read of the
//! stored rows and the writes happen under SQLite's write lock, so unlike
//! DynamoDB there is no window in which a concurrent writer (another process
//! on the same file included) could slip a newer score in between.

mod events;

use super::query::{KeyCursor, SummaryBuilder};
use super::{check_limit, decide, next_history, prepare_batch, risk_list_pk};
use super::{Decision, FlagStore, HistoryWindow, ListQuery, ListSort, Summary, SummaryBy};
use crate::error::{Error, Result};
use crate::flag::{Acknowledgement, CustomerRecord, Flag, HistoryPoint, Page};
use crate::flag::{Trend, WriteFailure, WriteSummary};
use crate::notify::{EventOrigin, RiskEvent};
use crate::timestamp;
use async_trait::async_trait;
use churn_model::{Attributes, RiskBand};
use rusqlite::{named_params, params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

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
CREATE TABLE IF NOT EXISTS flag_history (
    customer_id       TEXT NOT NULL,
    scored_at         TEXT NOT NULL,
    churn_probability REAL NOT NULL,
    risk_band         TEXT NOT NULL,
    model_id          TEXT NOT NULL,
    PRIMARY KEY (customer_id, scored_at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
  run_id      TEXT PRIMARY KEY,
  finished_at TEXT NOT NULL,
  record      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_finish ON runs (finished_at);
CREATE TABLE IF NOT EXISTS run_shards (
  run_id TEXT NOT NULL,
  shard  TEXT NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY (run_id, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outcome_reports (
  name   TEXT PRIMARY KEY,
  record TEXT NOT NULL
) WITHOUT ROWID;
";

/// Columns added after the first release: a file written by an older build
/// gets them on open (`ALTER TABLE ... ADD COLUMN`), so nothing stored is lost.
const ADDED_COLUMNS: [(&str, &str); 12] = [
    ("attr_name", "TEXT"),
    ("attr_owner", "TEXT"),
    ("attr_segment", "TEXT"),
    ("attr_value", "REAL"),
    ("attr_renewal_date", "TEXT"),
    ("attr_crm_id", "TEXT"),
    ("ack_by", "TEXT"),
    ("ack_note", "TEXT"),
    ("ack_at", "TEXT"),
    ("ack_until", "TEXT"),
    ("trend_d7", "REAL"),
    ("trend_d30", "REAL"),
];

/// Indexes, created after the columns they cover exist.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS flags_risk_list
    ON flags (risk_band, churn_probability DESC, customer_id)
    WHERE at_risk = 1;
CREATE INDEX IF NOT EXISTS flags_owner_list
    ON flags (attr_owner, churn_probability DESC, customer_id)
    WHERE at_risk = 1;
";

const COLUMNS: &str = "customer_id, churn_probability, risk_band, reasons, model_id, \
                       scored_at, previous_band, band_changed_at, \
                       attr_name, attr_owner, attr_segment, attr_value, attr_renewal_date, \
                       attr_crm_id, ack_by, ack_note, ack_at, ack_until, trend_d7, trend_d30";

/// Flag store in a SQLite database file (or in memory).
#[derive(Clone)]
pub struct SqliteFlagStore {
    conn: Arc<Mutex<Connection>>,
    shards: u32,
    history: HistoryWindow,
}

impl std::fmt::Debug for SqliteFlagStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFlagStore")
            .field("shards", &self.shards)
            .finish()
    }
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
            // In WAL mode NORMAL syncs at checkpoints, not at every commit: a
            // crash of the process loses nothing committed, a power cut at
            // most the last batches (which the next rescore writes again),
            // and the file stays consistent either way.
            conn.pragma_update(None, "synchronous", "NORMAL")
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
            history: HistoryWindow::default(),
        };
        store.create_table_if_missing().await?;
        Ok(store)
    }

    /// Keeps `window` of score history per customer (default 180 days).
    pub fn with_history(mut self, window: HistoryWindow) -> Self {
        self.history = window;
        self
    }

    /// Runs `f` with the connection on the blocking pool.
    pub(crate) async fn with_conn<T: Send + 'static>(
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
    let attributes = Attributes {
        name: row.get(8)?,
        owner: row.get(9)?,
        segment: row.get(10)?,
        value: row.get(11)?,
        renewal_date: row.get(12)?,
        crm_id: row.get(13)?,
    };
    let ack: [Option<String>; 4] = [row.get(14)?, row.get(15)?, row.get(16)?, row.get(17)?];
    let trend = Trend {
        d7: row.get(18)?,
        d30: row.get(19)?,
    };
    let corrupt = |m: String| Error::Corrupt {
        what: "flag row",
        message: format!("customer {customer_id:?}: {m}"),
    };
    let parse = || -> Result<Flag> {
        let acknowledgement = match ack {
            [Some(by), Some(note), Some(at), Some(until)] => Some(Acknowledgement {
                by,
                note,
                at: timestamp::parse(&at).map_err(corrupt)?,
                until: timestamp::parse(&until).map_err(corrupt)?,
            }),
            _ => None,
        };
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
            attributes,
            acknowledgement,
            trend,
            days_in_band: None,
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
                band_changed_at, attr_name, attr_owner, attr_segment, attr_value,
                attr_renewal_date, attr_crm_id, ack_by, ack_note, ack_at, ack_until,
                trend_d7, trend_d30
         FROM flags WHERE customer_id = ?1",
        customer_id,
    )
}

/// A customer's history, oldest first.
fn history_of(conn: &Connection, customer_id: &str) -> Result<Vec<HistoryPoint>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT scored_at, churn_probability, risk_band, model_id FROM flag_history
             WHERE customer_id = ?1 ORDER BY scored_at",
        )
        .map_err(|e| Error::storage(BACKEND, "history", e))?;
    let rows = stmt
        .query_map(params![customer_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, f64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .map_err(|e| Error::storage(BACKEND, "history", e))?;
    let corrupt = |m: String| Error::Corrupt {
        what: "history row",
        message: format!("customer {customer_id:?}: {m}"),
    };
    let mut out = Vec::new();
    for row in rows {
        let (t, p, band, model_id) = row.map_err(|e| Error::storage(BACKEND, "history", e))?;
        out.push(HistoryPoint {
            scored_at: timestamp::parse(&t).map_err(corrupt)?,
            churn_probability: p,
            risk_band: band.parse().map_err(|e| corrupt(format!("{e}")))?,
            model_id,
        });
    }
    Ok(out)
}

/// Appends the written flag's point to its history, drops what fell out
/// of the window and stores the trend on the flag.
fn write_history(conn: &Connection, flag: &mut Flag, window: HistoryWindow) -> Result<()> {
    let history = next_history(history_of(conn, &flag.customer_id)?, flag, window);
    let err = |e: rusqlite::Error| Error::storage(BACKEND, "history", e);
    if let Some(first) = history.first() {
        conn.prepare_cached("DELETE FROM flag_history WHERE customer_id = ?1 AND scored_at < ?2")
            .and_then(|mut s| {
                s.execute(params![
                    flag.customer_id,
                    timestamp::format(first.scored_at)
                ])
            })
            .map_err(err)?;
    }
    let point = flag.history_point();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO flag_history
             (customer_id, scored_at, churn_probability, risk_band, model_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            flag.customer_id,
            timestamp::format(point.scored_at),
            point.churn_probability,
            point.risk_band.as_str(),
            point.model_id,
        ])
    })
    .map_err(err)?;
    Ok(())
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
    let a = &flag.attributes;
    let ack = flag.acknowledgement.as_ref();
    // The WHERE repeats the staleness rule in SQL: the row read earlier in
    // this transaction cannot have changed, but the guard costs nothing.
    conn.prepare_cached(
        "INSERT INTO flags (customer_id, churn_probability, risk_band, at_risk, reasons, model_id,
                            scored_at, previous_band, band_changed_at, risk_list_pk,
                            attr_name, attr_owner, attr_segment, attr_value, attr_renewal_date,
                            attr_crm_id, ack_by, ack_note, ack_at, ack_until, trend_d7, trend_d30)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21, ?22)
         ON CONFLICT (customer_id) DO UPDATE SET
             churn_probability = excluded.churn_probability,
             risk_band = excluded.risk_band,
             at_risk = excluded.at_risk,
             reasons = excluded.reasons,
             model_id = excluded.model_id,
             scored_at = excluded.scored_at,
             previous_band = excluded.previous_band,
             band_changed_at = excluded.band_changed_at,
             risk_list_pk = excluded.risk_list_pk,
             attr_name = excluded.attr_name,
             attr_owner = excluded.attr_owner,
             attr_segment = excluded.attr_segment,
             attr_value = excluded.attr_value,
             attr_renewal_date = excluded.attr_renewal_date,
             attr_crm_id = excluded.attr_crm_id,
             ack_by = excluded.ack_by,
             ack_note = excluded.ack_note,
             ack_at = excluded.ack_at,
             ack_until = excluded.ack_until,
             trend_d7 = excluded.trend_d7,
             trend_d30 = excluded.trend_d30
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
        a.name,
        a.owner,
        a.segment,
        a.value,
        a.renewal_date,
        a.crm_id,
        ack.map(|k| &k.by),
        ack.map(|k| &k.note),
        ack.map(|k| timestamp::format(k.at)),
        ack.map(|k| timestamp::format(k.until)),
        flag.trend.d7,
        flag.trend.d30,
    ])
}

/// Adds the columns of [`ADDED_COLUMNS`] a file written by an older build lacks.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut present = std::collections::HashSet::new();
    {
        let mut stmt = conn.prepare("PRAGMA table_info(flags)")?;
        let names = stmt.query_map([], |row| row.get::<_, String>(1))?;
        for name in names {
            present.insert(name?);
        }
    }
    for (name, kind) in ADDED_COLUMNS {
        if !present.contains(name) {
            conn.execute_batch(&format!("ALTER TABLE flags ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

/// The SQL of a list's sort value (as [`ListQuery::sort_key`]'s `primary`).
fn primary_sql(sort: ListSort) -> &'static str {
    match sort {
        ListSort::Probability => "churn_probability",
        ListSort::Value => "(churn_probability * attr_value)",
        // Julian day number of the date (julianday() counts from noon).
        ListSort::Renewal => "(-(julianday(attr_renewal_date) + 0.5))",
        ListSort::Rising => "trend_d7",
    }
}

/// One page of `query` after `after`.
fn list_in(
    conn: &Connection,
    query: &ListQuery,
    limit: usize,
    after: Option<&super::query::SortKey>,
) -> Result<Vec<Flag>> {
    let bands: Vec<String> = query
        .band
        .bands()
        .iter()
        .map(|b| format!("'{}'", b.as_str()))
        .collect();
    let p = primary_sql(query.sort);
    // The same order and keyset as `SortKey::order`: primary descending
    // with absent values last, probability descending, id ascending. By
    // probability (never absent) the order is written as the index
    // `flags_risk_list` has it, so one band is read in index order and
    // stops at the page instead of sorting the whole band.
    let order = if query.sort == ListSort::Probability {
        "churn_probability DESC, customer_id ASC".to_string()
    } else {
        format!("({p} IS NULL), {p} DESC, churn_probability DESC, customer_id ASC")
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM flags
         WHERE at_risk = 1 AND risk_band IN ({bands})
           AND (:owner IS NULL OR attr_owner = :owner)
           AND (:segment IS NULL OR attr_segment = :segment)
           AND (:from IS NULL OR (attr_renewal_date >= :from AND attr_renewal_date <= :to))
           AND (:unack = 0 OR ack_until IS NULL OR ack_until <= :now)
           AND (:has_cursor = 0
                OR (:cv IS NOT NULL AND ({p} IS NULL OR {p} < :cv OR ({p} = :cv
                    AND (churn_probability < :cp OR (churn_probability = :cp AND customer_id > :cid)))))
                OR (:cv IS NULL AND {p} IS NULL
                    AND (churn_probability < :cp OR (churn_probability = :cp AND customer_id > :cid))))
         ORDER BY {order}
         LIMIT :limit",
        bands = bands.join(", ")
    );
    let err = |e: rusqlite::Error| Error::storage(BACKEND, "risk_list", e);
    let mut stmt = conn.prepare_cached(&sql).map_err(err)?;
    let window = query
        .renewal_window()
        .map(|(from, to)| (from.to_string(), to.to_string()));
    let rows = stmt
        .query_map(
            named_params! {
                ":owner": query.owner,
                ":segment": query.segment,
                ":from": window.as_ref().map(|w| &w.0),
                ":to": window.as_ref().map(|w| &w.1),
                ":unack": query.unacknowledged,
                ":now": timestamp::format(query.now),
                ":has_cursor": after.is_some(),
                ":cv": after.and_then(|a| a.primary),
                ":cp": after.map(|a| a.p),
                ":cid": after.map(|a| &a.id),
                ":limit": limit as i64,
            },
            row_to_flag,
        )
        .map_err(err)?;
    let mut flags = Vec::with_capacity(limit);
    for row in rows {
        flags.push(row.map_err(err)??.seen_at(query.now));
    }
    Ok(flags)
}

/// Sets or clears (`None`) a customer's acknowledgement.
fn set_ack(conn: &Connection, customer_id: &str, ack: Option<&Acknowledgement>) -> Result<Flag> {
    let changed = conn
        .prepare_cached(
            "UPDATE flags SET ack_by = ?2, ack_note = ?3, ack_at = ?4, ack_until = ?5
             WHERE customer_id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                customer_id,
                ack.map(|k| &k.by),
                ack.map(|k| &k.note),
                ack.map(|k| timestamp::format(k.at)),
                ack.map(|k| timestamp::format(k.until)),
            ])
        })
        .map_err(|e| Error::storage(BACKEND, "acknowledge", e))?;
    if changed == 0 {
        return Err(Error::CustomerNotFound(customer_id.to_string()));
    }
    get_in(conn, customer_id)?.ok_or_else(|| Error::CustomerNotFound(customer_id.to_string()))
}

#[async_trait]
impl FlagStore for SqliteFlagStore {
    async fn write_scores(
        &self,
        flags: &[Flag],
        epsilon: f64,
        _deadline: Instant,
        origin: &EventOrigin,
    ) -> Result<WriteSummary> {
        let (todo, mut summary) = prepare_batch(flags, epsilon)?;
        if todo.is_empty() {
            return Ok(summary);
        }
        let shards = self.shards;
        let window = self.history;
        let ids: Vec<String> = todo.iter().map(|f| f.customer_id.clone()).collect();
        let origin = origin.clone();
        let now = timestamp::now();
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
                            mut flag,
                            newly_at_risk,
                        } => {
                            // A failing statement fails the batch: the
                            // transaction rolls back whole, so no flag is
                            // left without its history point or the reverse
                            // (SQLite errors here are the file's, not a row's).
                            write_history(&tx, &mut flag, window)?;
                            upsert(&tx, &flag, shards)
                                .map_err(|e| Error::storage(BACKEND, "write_batch", e))?;
                            let run_id = origin.run_id.as_deref();
                            if let Some((event, held)) =
                                RiskEvent::of_write(stored.as_ref(), &flag, run_id)
                            {
                                if events::record(&tx, &event, held, &origin, now)? {
                                    out.events.add(event.kind, held);
                                }
                            }
                            out.written += 1;
                            out.newly_at_risk += usize::from(newly_at_risk);
                        }
                    }
                }
                if out.events.total() > 0 {
                    events::prune(&tx, now)?;
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

    async fn customer(
        &self,
        customer_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CustomerRecord>> {
        let id = customer_id.to_string();
        self.with_conn("get", move |conn| {
            let Some(flag) = get_in(conn, &id)? else {
                return Ok(None);
            };
            let mut history = history_of(conn, &id)?;
            history.reverse();
            Ok(Some(CustomerRecord {
                flag: flag.seen_at(now),
                history,
            }))
        })
        .await
    }

    async fn acknowledge(&self, customer_id: &str, ack: &Acknowledgement) -> Result<Flag> {
        let (id, ack) = (customer_id.to_string(), ack.clone());
        self.with_conn("acknowledge", move |conn| set_ack(conn, &id, Some(&ack)))
            .await
    }

    async fn unacknowledge(&self, customer_id: &str) -> Result<Flag> {
        let id = customer_id.to_string();
        self.with_conn("unacknowledge", move |conn| set_ack(conn, &id, None))
            .await
    }

    async fn list(&self, query: &ListQuery, limit: usize, cursor: Option<&str>) -> Result<Page> {
        check_limit(limit)?;
        let after = cursor
            .map(|c| KeyCursor::decode(c, query))
            .transpose()?
            .map(|c| c.after);
        let query = query.clone();
        self.with_conn("risk_list", move |conn| {
            let mut flags = list_in(conn, &query, limit + 1, after.as_ref())?;
            let next_cursor = if flags.len() > limit {
                flags.truncate(limit);
                flags.last().map(|f| KeyCursor::encode(&query, f))
            } else {
                None
            };
            Ok(Page { flags, next_cursor })
        })
        .await
    }

    async fn summaries(&self, by: &[SummaryBy]) -> Result<Vec<Summary>> {
        let by = by.to_vec();
        self.with_conn("summary", move |conn| {
            let err = |e: rusqlite::Error| Error::storage(BACKEND, "summary", e);
            // Only what a summary reads: reasons are most of a row's decoding.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT customer_id, churn_probability, risk_band, '[]', '', scored_at,
                            NULL, NULL, NULL, attr_owner, attr_segment, attr_value, NULL, NULL,
                            NULL, NULL, NULL, NULL, NULL, NULL
                     FROM flags WHERE at_risk = 1",
                )
                .map_err(err)?;
            let mut summaries: Vec<SummaryBuilder> =
                by.iter().map(|b| SummaryBuilder::new(*b)).collect();
            for row in stmt.query_map([], row_to_flag).map_err(err)? {
                let flag = row.map_err(err)??;
                summaries.iter_mut().for_each(|s| s.add(&flag));
            }
            Ok(summaries.into_iter().map(SummaryBuilder::finish).collect())
        })
        .await
    }

    async fn create_table_if_missing(&self) -> Result<()> {
        self.with_conn("create_table", |conn| {
            conn.execute_batch(SCHEMA)
                .and_then(|()| conn.execute_batch(events::SCHEMA))
                .and_then(|()| migrate(conn))
                .and_then(|()| conn.execute_batch(INDEXES))
                .map_err(|e| Error::storage(BACKEND, "create_table", e))
        })
        .await
    }
}
