//! The outbox port: events stored with the flag writes that made them,
//! marked delivered per destination kind.
//!
//! Both flag stores implement it (SQLite: tables `events` and
//! `event_deliveries` in the flag file, written in the flag batch's
//! transaction; DynamoDB: the event on the flag's own item in the same put,
//! then an event item of its own in the flag table). An event is due at the destination kinds
//! configured when it was recorded; one held back by an acknowledgement is
//! due nowhere. Delivery is at least once: an event is marked delivered
//! after its destination accepted it, so a crash in between sends it again
//! with the same id.

use super::event::RiskEvent;
use super::settings::Destination;
use crate::error::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Most events one outbox call returns.
pub const MAX_EVENT_PAGE: usize = 1000;

/// How long events are kept after they were recorded.
pub const EVENT_RETENTION_DAYS: i64 = 90;

/// Who recorded a batch's events and where they are due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventOrigin {
    /// The rescore run (`None`: a score persisted by the API).
    pub run_id: Option<String>,
    /// The destination kinds configured now.
    pub due: Vec<Destination>,
}

/// The delivery of one event to one destination kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub destination: Destination,
    /// When it was accepted; `None` while pending.
    #[serde(with = "crate::timestamp::serde_rfc3339_option")]
    pub delivered_at: Option<OffsetDateTime>,
    /// Failed attempts so far (each after its retries ran out).
    pub failures: u32,
    pub last_error: Option<String>,
}

/// An event as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    #[serde(flatten)]
    pub event: RiskEvent,
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// Held back by an acknowledgement in force: recorded, due nowhere.
    pub held: bool,
    pub deliveries: Vec<Delivery>,
}

impl StoredEvent {
    /// The position of the event in the outbox's order (recording time, then id).
    pub fn sort_key(&self) -> String {
        sort_key(self.recorded_at, &self.event.id)
    }

    /// A fresh record of `event`, due at `due` unless `held`.
    pub fn new(
        event: RiskEvent,
        held: bool,
        due: &[Destination],
        recorded_at: OffsetDateTime,
    ) -> StoredEvent {
        StoredEvent {
            event,
            recorded_at: crate::timestamp::truncate(recorded_at),
            held,
            deliveries: if held {
                Vec::new()
            } else {
                due.iter()
                    .map(|d| Delivery {
                        destination: *d,
                        delivered_at: None,
                        failures: 0,
                        last_error: None,
                    })
                    .collect()
            },
        }
    }

    /// Whether the event still has to reach `destination`.
    pub fn pending_at(&self, destination: Destination) -> bool {
        self.deliveries
            .iter()
            .any(|d| d.destination == destination && d.delivered_at.is_none())
    }
}

/// The outbox order: `<recorded_at>#<id>` (fixed-width timestamps sort as text).
pub fn sort_key(recorded_at: OffsetDateTime, id: &str) -> String {
    format!("{}#{id}", crate::timestamp::format(recorded_at))
}

/// Which events [`Outbox::events`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this run's.
    pub run_id: Option<String>,
    /// Only those still pending at some destination.
    pub pending: bool,
}

/// How a delivery attempt ended for some events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The destination accepted them.
    Delivered(OffsetDateTime),
    /// Retries ran out: they stay pending with this error.
    Failed(String),
}

/// Storage of events until every destination has them.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Events pending at `destination`, oldest first, after the sort key
    /// `after` (exclusive), at most `limit`.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] on backend failure.
    async fn pending(
        &self,
        destination: Destination,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;

    /// How many events are pending at `destination`.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] on backend failure.
    async fn count_pending(&self, destination: Destination) -> Result<usize>;

    /// Records the outcome of delivering `ids` to `destination`.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] on backend failure.
    async fn settle(
        &self,
        destination: Destination,
        ids: &[String],
        outcome: &Settled,
    ) -> Result<()>;

    /// Events newest first (at most `limit`, before the sort key `before`).
    ///
    /// # Errors
    /// [`crate::Error::InvalidInput`] for a limit outside `1..=MAX_EVENT_PAGE`;
    /// [`crate::Error::Storage`] on backend failure.
    async fn events(
        &self,
        filter: &EventFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>>;
}

/// Checks an outbox page size.
pub(crate) fn check_event_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_EVENT_PAGE {
        return Err(crate::Error::InvalidInput {
            field: "limit",
            message: format!("{limit} is not in 1..={MAX_EVENT_PAGE}"),
        });
    }
    Ok(())
}
