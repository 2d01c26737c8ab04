//! The DynamoDB outbox: event items in the flag table, written in one
//! transaction with the flag that made them.
//!
//! An event item's key is `customer_id = "\u{1f}event\u{1f}<event id>"`:
//! customer ids cannot hold control characters, so no customer collides
//! with it, and none of the flag indexes sees it (it has neither
//! `risk_list_pk` nor `owner_list_pk`). Two sparse indexes serve the outbox:
//! `events-by-time` (`event_day`, `event_sk`) for listing, `events-pending`
//! (`event_pending = "pending"`, `event_sk`) for delivery; `event_pending`
//! is removed once the last due destination has the event. Items expire
//! through the table's TTL on `expires_at`, [`EVENT_RETENTION_DAYS`] after
//! recording. docs/CONTRACTS.md, "Event item", lists every attribute.

use super::codec::Item;
use super::retry::{classify, retrying, GaveUp, Outcome};
use super::{DynamoFlagStore, BACKEND};
use crate::error::{Error, Result};
use crate::notify::outbox::{
    check_event_limit, Delivery, EventFilter, Outbox, Settled, StoredEvent,
};
use crate::notify::outbox::{EventOrigin, EVENT_RETENTION_DAYS};
use crate::notify::{Destination, RiskEvent};
use crate::timestamp;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The listing index.
pub const EVENTS_BY_TIME_INDEX: &str = "events-by-time";
/// The delivery index.
pub const EVENTS_PENDING_INDEX: &str = "events-pending";
/// The value of `event_pending` while some destination waits.
const PENDING: &str = "pending";
/// How long outbox calls retry throttling.
const OUTBOX_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// The key of an event item.
pub(super) fn event_key(id: &str) -> String {
    format!("\u{1f}event\u{1f}{id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The item of a new event.
pub(super) fn event_item(
    event: &RiskEvent,
    held: bool,
    origin: &EventOrigin,
    now: OffsetDateTime,
) -> Item {
    let stored = StoredEvent::new(event.clone(), held, &origin.due, now);
    let recorded = timestamp::format(stored.recorded_at);
    let mut item: Item = HashMap::from([
        ("customer_id".to_string(), s(event_key(&event.id))),
        ("event_id".to_string(), s(&event.id)),
        (
            "event".to_string(),
            s(serde_json::to_string(event).unwrap_or_default()),
        ),
        ("held".to_string(), AttributeValue::Bool(held)),
        ("recorded_at".to_string(), s(&recorded)),
        (
            "event_day".to_string(),
            s(recorded.get(..10).unwrap_or_default()),
        ),
        ("event_sk".to_string(), s(stored.sort_key())),
        ("delivered".to_string(), AttributeValue::M(HashMap::new())),
        ("failures".to_string(), AttributeValue::M(HashMap::new())),
        ("last_error".to_string(), AttributeValue::M(HashMap::new())),
        (
            "expires_at".to_string(),
            AttributeValue::N(
                (stored.recorded_at + time::Duration::days(EVENT_RETENTION_DAYS))
                    .unix_timestamp()
                    .to_string(),
            ),
        ),
    ]);
    if let Some(run) = &event.run_id {
        item.insert("run_id".into(), s(run));
    }
    let due: Vec<String> = stored
        .deliveries
        .iter()
        .map(|d| d.destination.as_str().to_string())
        .collect();
    if !due.is_empty() {
        item.insert("due".into(), AttributeValue::Ss(due));
        item.insert("event_pending".into(), s(PENDING));
    }
    item
}

fn corrupt(id: &str, m: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what: "event item",
        message: format!("{id}: {m}"),
    }
}

/// An event item back.
fn decode_event(item: &Item) -> Result<StoredEvent> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
    let id = text("event_id").cloned().unwrap_or_default();
    let event: RiskEvent =
        serde_json::from_str(text("event").map_or("", |v| v)).map_err(|e| corrupt(&id, e))?;
    let recorded_at =
        timestamp::parse(text("recorded_at").map_or("", |v| v)).map_err(|e| corrupt(&id, e))?;
    let map = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_m().ok())
            .cloned()
            .unwrap_or_default()
    };
    let (delivered, failures, errors) = (map("delivered"), map("failures"), map("last_error"));
    let due: Vec<String> = item
        .get("due")
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    let mut deliveries = Vec::new();
    for kind in Destination::ALL {
        let k = kind.as_str();
        let at = delivered.get(k).and_then(|v| v.as_s().ok());
        if at.is_none() && !due.iter().any(|d| d == k) {
            continue;
        }
        deliveries.push(Delivery {
            destination: kind,
            delivered_at: at
                .map(|t| timestamp::parse(t))
                .transpose()
                .map_err(|e| corrupt(&id, e))?,
            failures: failures
                .get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            last_error: errors.get(k).and_then(|v| v.as_s().ok()).cloned(),
        });
    }
    Ok(StoredEvent {
        event,
        recorded_at,
        held: item
            .get("held")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        deliveries,
    })
}

impl DynamoFlagStore {
    /// Runs one outbox call with the store's retry loop; a failed condition is `Ok(None)`.
    async fn outbox_call<T, F, Fut, E, R>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<Option<T>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
            Output = std::result::Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
        >,
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let deadline = Instant::now() + OUTBOX_RETRY_BUDGET;
        let call = &call;
        let (_, result) = retrying(&self.retry, deadline, (), move |()| async move {
            let outcome = match call().await {
                Ok(v) => Outcome::Done(Some(v)),
                Err(e) => match classify(e) {
                    Outcome::Conflict => Outcome::Done(None),
                    other => other,
                },
            };
            ((), outcome)
        })
        .await;
        result.map_err(|g: GaveUp| Error::storage(BACKEND, operation, g.reason()))
    }

    /// One page of an index query; returns the items and the last key.
    async fn query_page(
        &self,
        index: &'static str,
        key: (&str, String),
        sk: Option<(&str, String)>,
        forward: bool,
        filter: Option<(&str, Vec<(&str, AttributeValue)>)>,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let out = self
            .outbox_call("query_events", || {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(index)
                    .scan_index_forward(forward)
                    .expression_attribute_names("#pk", key.0)
                    .expression_attribute_values(":pk", s(key.1.clone()))
                    .set_exclusive_start_key(start.clone());
                q = match &sk {
                    Some((op, v)) => q
                        .key_condition_expression(format!("#pk = :pk AND event_sk {op} :sk"))
                        .expression_attribute_values(":sk", s(v.clone())),
                    None => q.key_condition_expression("#pk = :pk"),
                };
                if let Some((expr, values)) = &filter {
                    q = q.filter_expression(*expr);
                    for (name, v) in values {
                        q = q.expression_attribute_values(*name, v.clone());
                    }
                }
                q.send()
            })
            .await?
            .ok_or_else(|| {
                Error::storage(BACKEND, "query_events", "unexpected conditional failure")
            })?;
        Ok((out.items().to_vec(), out.last_evaluated_key().cloned()))
    }

    /// Marks one event delivered at (or failed for) `destination`.
    async fn settle_one(
        &self,
        destination: Destination,
        id: &str,
        outcome: &Settled,
    ) -> Result<()> {
        let key = s(event_key(id));
        let dest = destination.as_str();
        match outcome {
            Settled::Delivered(at) => {
                self.outbox_call("settle_events", || {
                    self.client
                        .update_item()
                        .table_name(&self.table)
                        .key("customer_id", key.clone())
                        .condition_expression("contains(due, :dest)")
                        .update_expression("DELETE due :set SET delivered.#d = :at")
                        .expression_attribute_names("#d", dest)
                        .expression_attribute_values(":dest", s(dest))
                        .expression_attribute_values(
                            ":set",
                            AttributeValue::Ss(vec![dest.to_string()]),
                        )
                        .expression_attribute_values(":at", s(timestamp::format(*at)))
                        .send()
                })
                .await?;
                // Delivered everywhere: out of the pending index.
                self.outbox_call("settle_events", || {
                    self.client
                        .update_item()
                        .table_name(&self.table)
                        .key("customer_id", key.clone())
                        .condition_expression(
                            "attribute_exists(event_pending) AND attribute_not_exists(due)",
                        )
                        .update_expression("REMOVE event_pending")
                        .send()
                })
                .await?;
            }
            Settled::Failed(error) => {
                self.outbox_call("settle_events", || {
                    self.client
                        .update_item()
                        .table_name(&self.table)
                        .key("customer_id", key.clone())
                        .condition_expression("contains(due, :dest)")
                        .update_expression("SET failures.#d = if_not_exists(failures.#d, :zero) + :one, last_error.#d = :e")
                        .expression_attribute_names("#d", dest)
                        .expression_attribute_values(":dest", s(dest))
                        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .expression_attribute_values(":e", s(error.clone()))
                        .send()
                })
                .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Outbox for DynamoFlagStore {
    async fn pending(
        &self,
        destination: Destination,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        check_event_limit(limit)?;
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let (items, last) = self
                .query_page(
                    EVENTS_PENDING_INDEX,
                    ("event_pending", PENDING.to_string()),
                    after.map(|a| (">", a.to_string())),
                    true,
                    Some((
                        "contains(due, :dest)",
                        vec![(":dest", s(destination.as_str()))],
                    )),
                    start,
                )
                .await?;
            for item in &items {
                out.push(decode_event(item)?);
                if out.len() == limit {
                    return Ok(out);
                }
            }
            match last {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }

    async fn settle(
        &self,
        destination: Destination,
        ids: &[String],
        outcome: &Settled,
    ) -> Result<()> {
        let results: Vec<Result<()>> = stream::iter(ids.to_vec())
            .map(|id| async move { self.settle_one(destination, &id, outcome).await })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn events(
        &self,
        filter: &EventFilter,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        check_event_limit(limit)?;
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        if let Some(run) = &filter.run_id {
            conditions.push("run_id = :run");
            values.push((":run", s(run.clone())));
        }
        if filter.pending {
            conditions.push("attribute_exists(event_pending)");
        }
        let expr = conditions.join(" AND ");
        let today = timestamp::now();
        let mut out = Vec::new();
        // Newest day first, back to the retention horizon.
        for days_back in 0..=EVENT_RETENTION_DAYS {
            let day = timestamp::format(today - time::Duration::days(days_back));
            let day = day.get(..10).unwrap_or_default().to_string();
            let mut start = None;
            loop {
                let (items, last) = self
                    .query_page(
                        EVENTS_BY_TIME_INDEX,
                        ("event_day", day.clone()),
                        before.map(|b| ("<", b.to_string())),
                        false,
                        (!conditions.is_empty()).then(|| (expr.as_str(), values.clone())),
                        start,
                    )
                    .await?;
                for item in &items {
                    out.push(decode_event(item)?);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
                match last {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag::Flag;
    use churn_model::RiskBand;
    use time::macros::datetime;

    #[test]
    fn an_event_item_decodes_to_what_was_recorded() {
        let t = datetime!(2026-03-04 05:06:07 UTC);
        let old = Flag::new("c", 0.2, RiskBand::Low, vec![], "m", t);
        let new = Flag::new(
            "c",
            0.7,
            RiskBand::High,
            vec![],
            "m",
            t + time::Duration::days(1),
        );
        let (event, held) = RiskEvent::of_write(Some(&old), &new, Some("r")).unwrap();
        let origin = EventOrigin {
            run_id: Some("r".into()),
            due: vec![Destination::Slack, Destination::Webhook],
        };
        let item = event_item(&event, held, &origin, t);
        assert_eq!(item["event_day"].as_s().unwrap(), "2026-03-04");
        assert!(item["customer_id"].as_s().unwrap().starts_with('\u{1f}'));
        let back = decode_event(&item).unwrap();
        assert_eq!(back.event, event);
        assert!(back.pending_at(Destination::Slack) && back.pending_at(Destination::Webhook));
        assert!(!back.pending_at(Destination::EventBridge));
        let held_item = event_item(&event, true, &origin, t);
        assert!(!held_item.contains_key("event_pending"));
        assert!(decode_event(&held_item).unwrap().deliveries.is_empty());
    }
}
