//! The SQLite outbox: tables `events` and `event_deliveries` in the flag
//! file. Events are inserted in the flag batch's transaction, so a flag and
//! the event it made are committed together or not at all.

use super::{SqliteFlagStore, BACKEND};
use crate::error::{Error, Result};
use crate::notify::outbox::{check_event_limit, Delivery, EventFilter, EventOrigin};
use crate::notify::outbox::{Outbox, Settled, StoredEvent, EVENT_RETENTION_DAYS};
use crate::notify::{Destination, RiskEvent};
use crate::timestamp;
use async_trait::async_trait;
use rusqlite::{named_params, params, Connection};
use time::OffsetDateTime;

/// The outbox tables (created with the flag tables).
///
/// `events` is a rowid table with no index on the id: ids are hashes, and a
/// B-tree keyed by them takes every insert at a random place, which on a
/// first run (hundreds of thousands of events) costs more than the flag
/// writes themselves; the time and run indexes grow at their ends. An id is
/// recorded once because its flag write and its insert share a transaction
/// and a replayed score is stale. Deliveries are looked up by event id, and
/// an event from its delivery through the sort key both carry (indexed).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
  id          TEXT NOT NULL,
  sort_key    TEXT NOT NULL,
  run_id      TEXT,
  held        INTEGER NOT NULL,
  recorded_at TEXT NOT NULL,
  body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (sort_key);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, sort_key);
CREATE TABLE IF NOT EXISTS event_deliveries (
  event_id     TEXT NOT NULL,
  destination  TEXT NOT NULL,
  sort_key     TEXT NOT NULL,
  delivered_at TEXT,
  failures     INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT,
  PRIMARY KEY (event_id, destination)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_deliveries_pending
  ON event_deliveries (destination, sort_key) WHERE delivered_at IS NULL;
";

fn err(operation: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::storage(BACKEND, operation, e)
}

/// Inserts `event` and its deliveries (in the transaction of the flag write
/// that made it). Returns whether a row was inserted.
pub(super) fn record(
    conn: &Connection,
    event: &RiskEvent,
    held: bool,
    origin: &EventOrigin,
    now: OffsetDateTime,
) -> Result<bool> {
    let stored = StoredEvent::new(event.clone(), held, &origin.due, now);
    let key = stored.sort_key();
    let body = serde_json::to_string(event).map_err(err_json)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (id, sort_key, run_id, held, recorded_at, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                event.id,
                key,
                event.run_id,
                held,
                timestamp::format(stored.recorded_at),
                body
            ])
        })
        .map_err(err("record_event"))?;
    if inserted == 0 {
        return Ok(false);
    }
    for d in &stored.deliveries {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO event_deliveries (event_id, destination, sort_key)
             VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![event.id, d.destination.as_str(), key]))
        .map_err(err("record_event"))?;
    }
    Ok(true)
}

/// Drops events recorded more than [`EVENT_RETENTION_DAYS`] before `now`.
pub(super) fn prune(conn: &Connection, now: OffsetDateTime) -> Result<()> {
    let cutoff = timestamp::format(now - time::Duration::days(EVENT_RETENTION_DAYS));
    // Through the events' time index, not a scan of the deliveries.
    conn.prepare_cached(
        "DELETE FROM event_deliveries WHERE event_id IN
           (SELECT id FROM events WHERE sort_key < ?1)",
    )
    .and_then(|mut s| s.execute(params![cutoff]))
    .and_then(|_| conn.prepare_cached("DELETE FROM events WHERE sort_key < ?1"))
    .and_then(|mut s| s.execute(params![cutoff]))
    .map_err(err("prune_events"))?;
    Ok(())
}

fn err_json(e: serde_json::Error) -> Error {
    Error::storage(BACKEND, "record_event", e)
}

/// The deliveries of one event.
fn deliveries_of(conn: &Connection, id: &str) -> Result<Vec<Delivery>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT destination, delivered_at, failures, last_error FROM event_deliveries
             WHERE event_id = ?1 ORDER BY destination",
        )
        .map_err(err("events"))?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })
        .map_err(err("events"))?;
    let corrupt = |m: String| Error::Corrupt {
        what: "event delivery row",
        message: format!("event {id}: {m}"),
    };
    let mut out = Vec::new();
    for row in rows {
        let (destination, delivered_at, failures, last_error) = row.map_err(err("events"))?;
        out.push(Delivery {
            destination: destination.parse().map_err(corrupt)?,
            delivered_at: delivered_at
                .as_deref()
                .map(timestamp::parse)
                .transpose()
                .map_err(corrupt)?,
            failures,
            last_error,
        });
    }
    Ok(out)
}

/// Runs `sql` (selecting `body, recorded_at, held, id`) and loads each event.
fn load(
    conn: &Connection,
    sql: &str,
    args: &[(&str, &dyn rusqlite::ToSql)],
) -> Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(sql).map_err(err("events"))?;
    let rows = stmt
        .query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(err("events"))?;
    let mut out = Vec::new();
    for row in rows {
        let (body, recorded_at, held, id) = row.map_err(err("events"))?;
        let corrupt = |m: String| Error::Corrupt {
            what: "event row",
            message: format!("event {id}: {m}"),
        };
        out.push(StoredEvent {
            event: serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?,
            recorded_at: timestamp::parse(&recorded_at).map_err(corrupt)?,
            held,
            deliveries: deliveries_of(conn, &id)?,
        });
    }
    Ok(out)
}

#[async_trait]
impl Outbox for SqliteFlagStore {
    async fn pending(
        &self,
        destination: Destination,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        check_event_limit(limit)?;
        let after = after.unwrap_or("").to_string();
        self.with_conn("events", move |conn| {
            load(
                conn,
                "SELECT e.body, e.recorded_at, e.held, e.id
                 FROM event_deliveries d
                 JOIN events e ON e.sort_key = d.sort_key AND e.id = d.event_id
                 WHERE d.destination = :dest AND d.delivered_at IS NULL AND d.sort_key > :after
                 ORDER BY d.sort_key LIMIT :limit",
                named_params! {
                    ":dest": destination.as_str(),
                    ":after": after,
                    ":limit": limit as i64,
                },
            )
        })
        .await
    }

    async fn count_pending(&self, destination: Destination) -> Result<usize> {
        self.with_conn("events", move |conn| {
            conn.prepare_cached(
                "SELECT COUNT(*) FROM event_deliveries
                 WHERE destination = ?1 AND delivered_at IS NULL",
            )
            .and_then(|mut s| s.query_row(params![destination.as_str()], |r| r.get::<_, i64>(0)))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(err("events"))
        })
        .await
    }

    async fn settle(
        &self,
        destination: Destination,
        ids: &[String],
        outcome: &Settled,
    ) -> Result<()> {
        let ids = ids.to_vec();
        let outcome = outcome.clone();
        self.with_conn("settle_events", move |conn| {
            let tx = conn.transaction().map_err(err("settle_events"))?;
            for id in &ids {
                let changed = match &outcome {
                    Settled::Delivered(at) => tx
                        .prepare_cached(
                            "UPDATE event_deliveries SET delivered_at = ?3
                             WHERE event_id = ?1 AND destination = ?2 AND delivered_at IS NULL",
                        )
                        .and_then(|mut s| {
                            s.execute(params![id, destination.as_str(), timestamp::format(*at)])
                        }),
                    Settled::Failed(error) => tx
                        .prepare_cached(
                            "UPDATE event_deliveries SET failures = failures + 1, last_error = ?3
                             WHERE event_id = ?1 AND destination = ?2 AND delivered_at IS NULL",
                        )
                        .and_then(|mut s| s.execute(params![id, destination.as_str(), error])),
                };
                changed.map_err(err("settle_events"))?;
            }
            tx.commit().map_err(err("settle_events"))
        })
        .await
    }

    async fn events(
        &self,
        filter: &EventFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        check_event_limit(limit)?;
        let filter = filter.clone();
        let before = before.map(str::to_string);
        self.with_conn("events", move |conn| {
            load(
                conn,
                "SELECT body, recorded_at, held, id FROM events e
                 WHERE (:run IS NULL OR run_id = :run)
                   AND (:before IS NULL OR sort_key < :before)
                   AND (:pending = 0 OR EXISTS (SELECT 1 FROM event_deliveries d
                        WHERE d.event_id = e.id AND d.delivered_at IS NULL))
                 ORDER BY sort_key DESC LIMIT :limit",
                named_params! {
                    ":run": filter.run_id,
                    ":before": before,
                    ":pending": filter.pending,
                    ":limit": limit as i64,
                },
            )
        })
        .await
    }
}
