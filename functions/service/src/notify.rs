//! Risk-change events and their delivery: who must be told that a customer
//! just became at risk, escalated or recovered.
//!
//! Flag writes derive the events ([`RiskEvent::of_write`]) and store them in
//! the flag store's outbox in the same write; delivery happens afterwards,
//! never inside the writes, so a destination that is slow or down never
//! holds or fails them. What a deadline leaves undelivered stays pending for
//! the next run or `churn notify`.
//!
//! # Layout
//! - `event`: the event, its types, its stable id, counts;
//! - `settings`: destinations and deadline from the environment (checked once);
//! - `outbox`: the [`Outbox`] port (SQLite and DynamoDB adapters live with
//!   their flag stores);
//! - `http`: the one HTTP client (the SDK's hyper + rustls) and its retry
//!   loop (backoff with jitter, `Retry-After`);
//! - `slack`: the digest (Block Kit);
//! - `webhook`: signed JSON batches;
//! - `eventbridge`: PutEvents;
//! - `deliver`: drains the outbox to every configured destination.

pub mod deliver;
pub mod event;
pub mod eventbridge;
pub mod http;
pub mod outbox;
pub mod settings;
pub mod slack;
pub mod webhook;

pub use deliver::{deliver, DeliveryReport, DestinationReport, Notifier};
pub use event::{EventCounts, EventType, RiskEvent};
pub use outbox::{EventFilter, EventOrigin, Outbox, Settled, StoredEvent};
pub use settings::{Destination, NotifySettings, NotifyValues};
