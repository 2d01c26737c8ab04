//! The DynamoDB outbox: event items in the flag table.
//!
//! A write that records an event carries it on the flag's own item
//! (`unprojected`, the same conditional put: one item, so atomic); right
//! after, the writer puts the event's own item (unless it is there) and
//! takes it off the flag's item (unless the flag was written since). An
//! event a crash left on a flag's item is put by the next writer of that
//! customer before its own put (every rescore reads every customer), so no
//! event is lost and none is recorded twice, without transactions.
//!
//! An event item's key is `customer_id = "\u{1f}event\u{1f}<event id>"`:
//! customer ids cannot hold control characters, so no customer collides
//! with it, and none of the flag indexes sees it (it has neither
//! `risk_list_pk` nor `owner_list_pk`). Two sparse indexes serve the outbox:
//! `events-by-time` (`event_day = "<YYYY-MM-DD>#<shard>"`, `event_sk`) for
//! listing, `events-pending` (`event_pending = "pending#<shard>"`,
//! `event_sk`) for delivery; `event_pending` is removed once the last due
//! destination has the event. The [`EVENT_SHARDS`] shards (by event id)
//! spread a busy night's index writes over that many partitions instead of
//! one hot key; reads query every shard and merge by `event_sk`. Items expire
//! through the table's TTL on `expires_at`, [`EVENT_RETENTION_DAYS`] after
//! recording. docs/CONTRACTS.md, "Event item", lists every attribute.

use super::codec::Item;
use super::retry::{classify, retrying, GaveUp, Outcome};
use super::writes::Pending;
use super::{DynamoFlagStore, BACKEND};
use crate::error::{Error, Result};
use crate::notify::outbox::EVENT_RETENTION_DAYS;
use crate::notify::outbox::{
    check_event_limit, Delivery, EventFilter, Outbox, Settled, StoredEvent,
};
use crate::notify::{Destination, RiskEvent};
use crate::timestamp;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The listing index.
pub const EVENTS_BY_TIME_INDEX: &str = "events-by-time";
/// The delivery index.
pub const EVENTS_PENDING_INDEX: &str = "events-pending";
/// Partitions of each outbox index key.
pub const EVENT_SHARDS: u32 = 8;
/// How long outbox calls retry throttling.
const OUTBOX_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// The key of an event item.
pub(super) fn event_key(id: &str) -> String {
    format!("\u{1f}event\u{1f}{id}")
}

/// Every shard's `event_pending` value.
fn pending_keys() -> Vec<String> {
    (0..EVENT_SHARDS).map(|n| format!("pending#{n}")).collect()
}

/// Every shard's `event_day` value for `day`.
fn day_keys(day: &str) -> Vec<String> {
    (0..EVENT_SHARDS).map(|n| format!("{day}#{n}")).collect()
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The item of a new event.
#[cfg(test)]
pub(super) fn event_item(
    event: &RiskEvent,
    held: bool,
    origin: &crate::notify::EventOrigin,
    now: time::OffsetDateTime,
) -> Item {
    event_item_of(&StoredEvent::new(event.clone(), held, &origin.due, now))
}

/// The item of a recorded event.
pub(super) fn event_item_of(stored: &StoredEvent) -> Item {
    let event = &stored.event;
    let recorded = timestamp::format(stored.recorded_at);
    let shard = crate::flag_store::shard_of(&event.id, EVENT_SHARDS);
    let mut item: Item = HashMap::from([
        ("customer_id".to_string(), s(event_key(&event.id))),
        ("event_id".to_string(), s(&event.id)),
        (
            "event".to_string(),
            s(serde_json::to_string(event).unwrap_or_default()),
        ),
        ("held".to_string(), AttributeValue::Bool(stored.held)),
        ("recorded_at".to_string(), s(&recorded)),
        (
            "event_day".to_string(),
            s(format!(
                "{}#{shard}",
                recorded.get(..10).unwrap_or_default()
            )),
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
        item.insert("event_pending".into(), s(format!("pending#{shard}")));
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
    /// Puts `event` (recorded on `customer_id`'s item by the write of
    /// revision `rev`) in its own item unless it is there already, then
    /// takes it off the flag's item unless the flag was written since (the
    /// writer that did it found the event there and put it first).
    pub(super) async fn project(
        &self,
        customer_id: &str,
        event: &StoredEvent,
        rev: u64,
    ) -> Result<()> {
        let item = event_item_of(event);
        self.outbox_call("record_event", || {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression("attribute_not_exists(customer_id)")
                .send()
        })
        .await?;
        self.outbox_call("record_event", || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("customer_id", s(customer_id))
                .condition_expression("rev = :rev")
                .update_expression("REMOVE unprojected")
                .expression_attribute_values(":rev", AttributeValue::N(rev.to_string()))
                .send()
        })
        .await?;
        Ok(())
    }

    /// After a successful put: its event into its own item. A failure here
    /// loses nothing: the event stays on the flag's item and the next write
    /// of that customer (every rescore reads every customer) puts it first.
    pub(super) async fn project_written(&self, written: &Pending) {
        if let Some(event) = &written.event {
            if let Err(e) = self
                .project(&written.flag.customer_id, event, written.rev())
                .await
            {
                tracing::warn!(
                    customer_id = %written.flag.customer_id,
                    event_id = %event.event.id,
                    "event left on the flag's item for the next write: {}",
                    crate::error::report(&e)
                );
            }
        }
    }

    /// The events earlier writes left on these items, each into its own
    /// item. Returns the customers whose event could not be moved (their
    /// write must wait: it would replace the event on the item).
    pub(super) async fn project_leftovers(
        &self,
        decoded: &[(crate::flag::Flag, Option<super::codec::Stored>)],
    ) -> HashMap<String, String> {
        let leftovers: Vec<(String, StoredEvent, u64)> = decoded
            .iter()
            .filter_map(|(flag, old)| {
                let old = old.as_ref()?;
                let event = old.unprojected.clone()?;
                Some((flag.customer_id.clone(), event, old.rev.unwrap_or(0)))
            })
            .collect();
        let results: Vec<(String, Result<()>)> = stream::iter(leftovers)
            .map(|(id, event, rev)| async move {
                let r = self.project(&id, &event, rev).await;
                (id, r)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results
            .into_iter()
            .filter_map(|(id, r)| {
                r.err().map(|e| {
                    let why = format!(
                        "an earlier event could not be recorded: {}",
                        crate::error::report(&e)
                    );
                    (id, why)
                })
            })
            .collect()
    }

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

    /// Up to `limit` items of `index` across the partitions `keys` (the
    /// key attribute `key_attr`), merged in `event_sk` order (ascending when
    /// `forward`), each partition read from `sk` on.
    #[allow(clippy::too_many_arguments)]
    async fn query_merged(
        &self,
        index: &'static str,
        key_attr: &str,
        keys: Vec<String>,
        sk: Option<(&str, String)>,
        forward: bool,
        filter: Option<(&str, Vec<(&str, AttributeValue)>)>,
        limit: usize,
    ) -> Result<Vec<Item>> {
        // The partitions in parallel: a listing is as slow as one of them.
        let parts = futures::future::join_all(keys.into_iter().map(|key| {
            let (sk, filter) = (sk.clone(), filter.clone());
            async move {
                let mut items: Vec<Item> = Vec::new();
                let mut start = None;
                loop {
                    let page = self
                        .query(QueryArgs {
                            index,
                            key: (key_attr, key.clone()),
                            sk: sk.clone(),
                            forward,
                            filter: filter.clone(),
                            start,
                            count_only: false,
                        })
                        .await?;
                    items.extend(page.items().iter().cloned());
                    match page.last_evaluated_key() {
                        Some(k) if items.len() < limit => start = Some(k.clone()),
                        _ => return Ok::<_, crate::Error>(items),
                    }
                }
            }
        }))
        .await;
        let mut all: Vec<Item> = Vec::new();
        for part in parts {
            all.extend(part?);
        }
        let sk_of = |i: &Item| i.get("event_sk").and_then(|v| v.as_s().ok()).cloned();
        all.sort_by(|x, y| {
            let o = sk_of(x).cmp(&sk_of(y));
            if forward {
                o
            } else {
                o.reverse()
            }
        });
        all.truncate(limit);
        Ok(all)
    }

    /// One Query call (with the store's retry loop).
    async fn query(
        &self,
        a: QueryArgs<'_>,
    ) -> Result<aws_sdk_dynamodb::operation::query::QueryOutput> {
        self.outbox_call("query_events", || {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(a.index)
                .scan_index_forward(a.forward)
                .expression_attribute_names("#pk", a.key.0)
                .expression_attribute_values(":pk", s(a.key.1.clone()))
                .set_exclusive_start_key(a.start.clone());
            if a.count_only {
                q = q.select(aws_sdk_dynamodb::types::Select::Count);
            }
            q = match &a.sk {
                Some((op, v)) => q
                    .key_condition_expression(format!("#pk = :pk AND event_sk {op} :sk"))
                    .expression_attribute_values(":sk", s(v.clone())),
                None => q.key_condition_expression("#pk = :pk"),
            };
            if let Some((expr, values)) = &a.filter {
                q = q.filter_expression(*expr);
                for (name, v) in values {
                    q = q.expression_attribute_values(*name, v.clone());
                }
            }
            q.send()
        })
        .await?
        .ok_or_else(|| Error::storage(BACKEND, "query_events", "unexpected conditional failure"))
    }

    /// One UpdateItem of an event item: the item as updated, `None` when
    /// its condition failed.
    async fn update_event(
        &self,
        id: &str,
        condition: &str,
        update: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<Option<Item>> {
        let done = self
            .outbox_call("settle_events", || {
                let mut u = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("customer_id", s(event_key(id)))
                    .condition_expression(condition)
                    .update_expression(update)
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
                for (n, v) in names {
                    u = u.expression_attribute_names(*n, *v);
                }
                for (n, v) in values {
                    u = u.expression_attribute_values(*n, v.clone());
                }
                u.send()
            })
            .await?;
        Ok(done.map(|out| out.attributes().cloned().unwrap_or_default()))
    }

    /// Marks one event delivered at (or failed for) `destination`.
    async fn settle_one(
        &self,
        destination: Destination,
        id: &str,
        outcome: &Settled,
    ) -> Result<()> {
        let dest = destination.as_str();
        let names = [("#d", dest)];
        let at_dest = (":dest", s(dest));
        let at = match outcome {
            Settled::Delivered(at) => at,
            Settled::Failed(error) => {
                self.update_event(
                id,
                "contains(due, :dest)",
                "SET failures.#d = if_not_exists(failures.#d, :zero) + :one, last_error.#d = :e",
                &names,
                &[
                    at_dest,
                    (":zero", AttributeValue::N("0".into())),
                    (":one", AttributeValue::N("1".into())),
                    (":e", s(error.clone())),
                ],
            )
            .await?;
                return Ok(());
            }
        };
        let values = [
            at_dest,
            (":set", AttributeValue::Ss(vec![dest.to_string()])),
            (":at", s(timestamp::format(*at))),
        ];
        // The last destination: one call takes the event out of the
        // pending index too.
        let mut last = values.to_vec();
        last.push((":one", AttributeValue::N("1".into())));
        if self
            .update_event(
                id,
                "contains(due, :dest) AND size(due) = :one",
                "DELETE due :set SET delivered.#d = :at REMOVE event_pending",
                &names,
                &last,
            )
            .await?
            .is_some()
        {
            return Ok(());
        }
        let updated = self
            .update_event(
                id,
                "contains(due, :dest)",
                "DELETE due :set SET delivered.#d = :at",
                &names,
                &values,
            )
            .await?;
        // Another destination settled in between and this was the last:
        // the event leaves the pending index.
        if updated.is_none_or(|item| item.contains_key("due")) {
            return Ok(());
        }
        self.update_event(
            id,
            "attribute_exists(event_pending) AND attribute_not_exists(due)",
            "REMOVE event_pending",
            &[],
            &[],
        )
        .await?;
        Ok(())
    }
}

/// The arguments of one outbox Query.
struct QueryArgs<'a> {
    index: &'static str,
    key: (&'a str, String),
    sk: Option<(&'a str, String)>,
    forward: bool,
    filter: Option<(&'a str, Vec<(&'a str, AttributeValue)>)>,
    start: Option<Item>,
    count_only: bool,
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
        let items = self
            .query_merged(
                EVENTS_PENDING_INDEX,
                "event_pending",
                pending_keys(),
                after.map(|a| (">", a.to_string())),
                true,
                Some((
                    "contains(due, :dest)",
                    vec![(":dest", s(destination.as_str()))],
                )),
                limit,
            )
            .await?;
        items.iter().map(decode_event).collect()
    }

    async fn count_pending(&self, destination: Destination) -> Result<usize> {
        let mut n = 0usize;
        for key in pending_keys() {
            let mut start = None;
            loop {
                let out = self
                    .query(QueryArgs {
                        index: EVENTS_PENDING_INDEX,
                        key: ("event_pending", key.clone()),
                        sk: None,
                        forward: true,
                        filter: Some((
                            "contains(due, :dest)",
                            vec![(":dest", s(destination.as_str()))],
                        )),
                        start,
                        count_only: true,
                    })
                    .await?;
                n += usize::try_from(out.count()).unwrap_or(0);
                match out.last_evaluated_key() {
                    Some(k) => start = Some(k.clone()),
                    None => break,
                }
            }
        }
        Ok(n)
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
            conditions.push("attribute_exists(due)");
        }
        let expr = conditions.join(" AND ");
        let today = timestamp::now();
        let mut out = Vec::new();
        // Newest day first, back to the retention horizon.
        for days_back in 0..=EVENT_RETENTION_DAYS {
            let day = timestamp::format(today - time::Duration::days(days_back));
            let items = self
                .query_merged(
                    EVENTS_BY_TIME_INDEX,
                    "event_day",
                    day_keys(day.get(..10).unwrap_or_default()),
                    before.map(|b| ("<", b.to_string())),
                    false,
                    (!conditions.is_empty()).then(|| (expr.as_str(), values.clone())),
                    limit - out.len(),
                )
                .await?;
            for item in &items {
                out.push(decode_event(item)?);
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag::Flag;
    use crate::notify::EventOrigin;
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
        let shard = crate::flag_store::shard_of(&event.id, EVENT_SHARDS);
        assert_eq!(
            item["event_day"].as_s().unwrap(),
            &format!("2026-03-04#{shard}")
        );
        assert_eq!(
            item["event_pending"].as_s().unwrap(),
            &format!("pending#{shard}")
        );
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
