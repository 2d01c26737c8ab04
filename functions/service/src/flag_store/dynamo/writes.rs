//! Writes: read the stored items of a batch (to decide per flag), then put
//! the changed rows, conditionally one by one or in unconditional batches
//! (see [`WriteStrategy`](super::WriteStrategy)). Every call goes through
//! the one retry loop, [`retrying`].

use super::codec::{decode, to_item, Item, Stored};
use super::events::event_item;
use super::retry::{classify, retrying, GaveUp, Outcome};
use super::{DynamoFlagStore, WriteStrategy, BATCH_GET_MAX, BATCH_WRITE_MAX};
use crate::flag::{Flag, HistoryPoint, WriteFailure, WriteSummary};
use crate::flag_store::{decide, next_history, past, Decision, HistoryWindow};
use crate::notify::{EventOrigin, EventType, RiskEvent};
use crate::timestamp;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::time::Instant;

/// How often one row is re-read and re-decided after losing a conditional write.
const MAX_CONFLICT_ROUNDS: u32 = 5;

/// What the item looked like when read: the condition of its put.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ReadState {
    /// It did not exist.
    Absent,
    /// Written before revisions existed: identified by its `scored_at`.
    Unrevised(String),
    /// At this revision (every write and acknowledgement adds one).
    Rev(u64),
}

/// A decided write still to be carried out.
pub(super) struct Pending {
    /// The flag as the caller gave it: what a conflict is decided again from.
    pub incoming: Flag,
    /// The flag `decide` made of it against what was read.
    pub flag: Flag,
    /// The history after this write (oldest first).
    pub history: Vec<HistoryPoint>,
    pub newly_at_risk: bool,
    pub read: ReadState,
    /// The risk-change event this write records (and whether an
    /// acknowledgement holds it back): put in one transaction with the flag.
    pub event: Option<(RiskEvent, bool)>,
}

impl Pending {
    /// The write `decide` asked for, against what was read: the history
    /// extended (and the trend set) from the stored one.
    pub(super) fn new(
        incoming: Flag,
        mut flag: Flag,
        newly_at_risk: bool,
        stored: Option<&Stored>,
        window: HistoryWindow,
        run_id: Option<&str>,
    ) -> Pending {
        let old = stored.map(|s| s.history.clone()).unwrap_or_default();
        let history = next_history(old, &mut flag, window);
        let event = RiskEvent::of_write(stored.map(|s| &s.flag), &flag, run_id);
        Pending {
            event,
            incoming,
            flag,
            history,
            newly_at_risk,
            read: match stored {
                None => ReadState::Absent,
                Some(Stored { rev: Some(r), .. }) => ReadState::Rev(*r),
                Some(s) => ReadState::Unrevised(timestamp::format(s.flag.scored_at)),
            },
        }
    }

    /// The item to put.
    fn item(&self, shards: u32) -> Item {
        let rev = match self.read {
            ReadState::Rev(r) => r + 1,
            _ => 1,
        };
        to_item(&self.flag, &self.history, shards, rev)
    }
}

/// The failures of `ids`, all for `reason`.
fn fail_all(ids: impl IntoIterator<Item = String>, reason: &str) -> Vec<WriteFailure> {
    ids.into_iter()
        .map(|customer_id| WriteFailure {
            customer_id,
            reason: reason.to_string(),
        })
        .collect()
}

/// The outcome of a batch call that left `left` of `before` keys or items
/// unprocessed (`what` names them in messages).
fn unprocessed(before: usize, left: usize, what: &str) -> Outcome<()> {
    if left == 0 {
        Outcome::Done(())
    } else if left < before {
        Outcome::Progress(format!("{left} {what}"))
    } else {
        Outcome::Retry(format!("{left} {what}"))
    }
}

/// The customer id of a key or item.
fn id_of(item: &Item) -> String {
    item.get("customer_id")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

impl DynamoFlagStore {
    /// Reads the stored items of `ids` (consistent reads, chunks of 100,
    /// UnprocessedKeys and throttling retried). Ids that could not be read by
    /// the deadline come back in the failure list.
    pub(super) async fn read_stored(
        &self,
        ids: Vec<String>,
        deadline: Instant,
    ) -> (HashMap<String, Item>, Vec<WriteFailure>) {
        let chunks: Vec<Vec<String>> = ids.chunks(BATCH_GET_MAX).map(<[String]>::to_vec).collect();
        let results: Vec<(HashMap<String, Item>, Vec<WriteFailure>)> = stream::iter(chunks)
            .map(|chunk| self.read_chunk(chunk, deadline))
            .buffer_unordered(self.concurrency.min(8))
            .collect()
            .await;
        let mut found = HashMap::new();
        let mut failed = Vec::new();
        for (f, e) in results {
            found.extend(f);
            failed.extend(e);
        }
        (found, failed)
    }

    /// One BatchGetItem of at most 100 keys, until every key is processed.
    pub(super) async fn read_chunk(
        &self,
        ids: Vec<String>,
        deadline: Instant,
    ) -> (HashMap<String, Item>, Vec<WriteFailure>) {
        let keys: Vec<Item> = ids
            .into_iter()
            .map(|id| HashMap::from([("customer_id".to_string(), AttributeValue::S(id))]))
            .collect();
        let ((keys, found), result) = retrying(
            &self.retry,
            deadline,
            (keys, HashMap::new()),
            move |(keys, mut found): (Vec<Item>, HashMap<String, Item>)| async move {
                let request = match KeysAndAttributes::builder()
                    .set_keys(Some(keys.clone()))
                    // Strongly consistent: deciding "unchanged" from an
                    // outdated copy would skip a write that is needed.
                    .consistent_read(true)
                    // The whole item: the decision needs the attributes and
                    // acknowledgement, the write the history (and read
                    // capacity is billed on the whole item either way).
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return ((keys, found), Outcome::Fatal(e.to_string())),
                };
                let out = match self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e) => return ((keys, found), classify(e)),
                };
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    found.insert(id_of(item), item.clone());
                }
                let before = keys.len();
                let left: Vec<Item> = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                let outcome = unprocessed(before, left.len(), "UnprocessedKeys");
                ((left, found), outcome)
            },
        )
        .await;
        let reason = match result {
            Ok(()) => return (found, Vec::new()),
            Err(GaveUp::Deadline { last, .. }) => {
                format!("deadline exceeded reading the stored flag ({last})")
            }
            Err(other) => other.reason(),
        };
        let ids: Vec<String> = keys.iter().map(id_of).collect();
        (found, fail_all(ids, &reason))
    }

    /// Carries out the decided writes with the store's strategy, adding the
    /// outcome to `summary`.
    pub(super) async fn write_decided(
        &self,
        pending: Vec<Pending>,
        epsilon: f64,
        deadline: Instant,
        origin: &EventOrigin,
        summary: &mut WriteSummary,
    ) {
        // A write that records an event is always a transaction (flag and
        // event together), so it takes the conditional path whatever the strategy.
        let (conditional, batched): (Vec<Pending>, Vec<Pending>) = pending
            .into_iter()
            .partition(|p| self.strategy == WriteStrategy::Conditional || p.event.is_some());
        let outcomes: Vec<_> = stream::iter(conditional)
            .map(|p| self.put_conditional(p, epsilon, deadline, origin))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome {
                Ok((Decision::Write { newly_at_risk, .. }, event)) => {
                    summary.written += 1;
                    summary.newly_at_risk += usize::from(newly_at_risk);
                    if let Some((kind, held)) = event {
                        summary.events.add(kind, held);
                    }
                }
                Ok((Decision::Stale, _)) => summary.stale_rejected += 1,
                Ok((Decision::Unchanged, _)) => summary.skipped_unchanged += 1,
                Err(f) => summary.failed.push(f),
            }
        }
        let mut chunks: Vec<Vec<Pending>> = Vec::new();
        let mut rest = batched;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(BATCH_WRITE_MAX));
            chunks.push(rest);
            rest = tail;
        }
        let outcomes: Vec<_> = stream::iter(chunks)
            .map(|c| self.put_batch(c, deadline))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (written, failed) in outcomes {
            summary.written += written.len();
            summary.newly_at_risk += written.iter().filter(|p| p.newly_at_risk).count();
            summary.failed.extend(failed);
        }
    }

    /// One conditional PutItem of a decided row, or, when it records an
    /// event, one TransactWriteItems of the row and the event.
    async fn put_once(
        &self,
        pending: &Pending,
        origin: &EventOrigin,
        now: time::OffsetDateTime,
    ) -> Outcome<()> {
        // Unchanged since we read it: no newer score, and no acknowledgement
        // given or removed in between (those add a revision too).
        let (condition, value) = match &pending.read {
            ReadState::Absent => ("attribute_not_exists(customer_id)", None),
            ReadState::Unrevised(read) => (
                "attribute_not_exists(rev) AND scored_at = :read",
                Some((":read", AttributeValue::S(read.clone()))),
            ),
            ReadState::Rev(rev) => (
                "rev = :rev",
                Some((":rev", AttributeValue::N(rev.to_string()))),
            ),
        };
        let Some((event, held)) = &pending.event else {
            let mut request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(pending.item(self.shards)))
                .condition_expression(condition);
            if let Some((name, v)) = value {
                request = request.expression_attribute_values(name, v);
            }
            return match request.send().await {
                Ok(_) => Outcome::Done(()),
                Err(e) => classify(e),
            };
        };
        let flag_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(pending.item(self.shards)))
            .condition_expression(condition)
            .set_expression_attribute_values(value.map(|(n, v)| [(n.to_string(), v)].into()))
            .build();
        let event_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(event_item(event, *held, origin, now)))
            .build();
        let (flag_put, event_put) = match (flag_put, event_put) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Outcome::Fatal(e.to_string()),
        };
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(flag_put).build())
            .transact_items(TransactWriteItem::builder().put(event_put).build())
            .send()
            .await;
        match sent {
            Ok(_) => Outcome::Done(()),
            Err(e) => classify_transaction(e),
        }
    }

    /// Conditional PutItem of one decided row, re-deciding after conflicts.
    async fn put_conditional(
        &self,
        mut pending: Pending,
        epsilon: f64,
        deadline: Instant,
        origin: &EventOrigin,
    ) -> std::result::Result<(Decision, Option<(EventType, bool)>), WriteFailure> {
        let now = crate::timestamp::now();
        // Decided again from what the caller gave, not from what the first
        // decision made of it (which holds the attributes it read).
        let original = pending.incoming.clone();
        let fail = |reason: String| WriteFailure {
            customer_id: original.customer_id.clone(),
            reason,
        };
        let mut conflicts = 0u32;
        loop {
            let current = &pending;
            let (_, result) = retrying(&self.retry, deadline, (), move |()| async move {
                ((), self.put_once(current, origin, now).await)
            })
            .await;
            match result {
                Ok(()) => {
                    let event = pending.event.as_ref().map(|(e, held)| (e.kind, *held));
                    return Ok((
                        Decision::Write {
                            flag: Box::new(pending.flag),
                            newly_at_risk: pending.newly_at_risk,
                        },
                        event,
                    ));
                }
                Err(GaveUp::Conflict) => {}
                Err(other) => return Err(fail(other.reason())),
            }
            // Someone else wrote this customer since we read it: read again
            // and apply the same rules to what is there now.
            conflicts += 1;
            if conflicts > MAX_CONFLICT_ROUNDS || past(deadline) {
                return Err(fail(
                    "kept losing conditional writes to concurrent writers".into(),
                ));
            }
            let (found, mut failed) = self
                .read_chunk(vec![original.customer_id.clone()], deadline)
                .await;
            if let Some(f) = failed.pop() {
                return Err(f);
            }
            let stored = found
                .get(&original.customer_id)
                .map(decode)
                .transpose()
                .map_err(|e| fail(e.to_string()))?;
            match decide(stored.as_ref().map(|s| &s.flag), &original, epsilon) {
                Decision::Write {
                    flag,
                    newly_at_risk,
                } => {
                    pending = Pending::new(
                        original.clone(),
                        *flag,
                        newly_at_risk,
                        stored.as_ref(),
                        self.history,
                        origin.run_id.as_deref(),
                    )
                }
                other => return Ok((other, None)),
            }
        }
    }

    /// BatchWriteItem of up to 25 rows, retrying UnprocessedItems and
    /// throttling. Returns the rows written and the failures.
    async fn put_batch(
        &self,
        rows: Vec<Pending>,
        deadline: Instant,
    ) -> (Vec<Pending>, Vec<WriteFailure>) {
        let mut by_id: HashMap<String, Pending> = rows
            .into_iter()
            .map(|p| (p.flag.customer_id.clone(), p))
            .collect();
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(by_id.len());
        let mut failed = Vec::new();
        for p in by_id.values() {
            match PutRequest::builder()
                .set_item(Some(p.item(self.shards)))
                .build()
            {
                Ok(put) => requests.push(WriteRequest::builder().put_request(put).build()),
                Err(e) => failed.push(WriteFailure {
                    customer_id: p.flag.customer_id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        let (left, result) = retrying(
            &self.retry,
            deadline,
            requests,
            move |requests: Vec<WriteRequest>| async move {
                let out = match self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests.clone())
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e) => return (requests, classify(e)),
                };
                let before = requests.len();
                let left: Vec<WriteRequest> = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                let outcome = unprocessed(before, left.len(), "UnprocessedItems");
                (left, outcome)
            },
        )
        .await;
        if let Err(gave_up) = result {
            let ids = left
                .iter()
                .filter_map(|r| r.put_request().map(|p| id_of(p.item())));
            failed.extend(fail_all(ids, &gave_up.reason()));
        }
        for f in &failed {
            by_id.remove(&f.customer_id);
        }
        (by_id.into_values().collect(), failed)
    }
}

/// The outcome of a failed transaction: a cancelled one whose flag
/// condition failed is a conflict (re-read and decide again), one cancelled
/// by a concurrent transaction or throttling is retried, as are the
/// transient failures [`classify`] retries.
fn classify_transaction(
    err: SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> Outcome<()> {
    if let SdkError::ServiceError(service) = &err {
        // A 5xx without an error code (an internal error) is transient too.
        if service.raw().status().is_server_error() {
            return Outcome::Retry(format!(
                "HTTP {} from DynamoDB",
                service.raw().status().as_u16()
            ));
        }
        if let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err() {
            let codes: Vec<&str> = cancelled
                .cancellation_reasons()
                .iter()
                .filter_map(|r| r.code())
                .filter(|c| *c != "None")
                .collect();
            if codes.contains(&"ConditionalCheckFailed") {
                return Outcome::Conflict;
            }
            let message = format!("transaction cancelled: {}", codes.join(", "));
            // Contention and capacity pass; anything else (a validation
            // error, an item too large) would fail again.
            let transient = codes.iter().all(|c| {
                matches!(
                    *c,
                    "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                )
            });
            return if transient {
                Outcome::Retry(message)
            } else {
                Outcome::Fatal(message)
            };
        }
        if matches!(
            service.err(),
            TransactWriteItemsError::TransactionInProgressException(_)
        ) {
            return Outcome::Retry("transaction in progress".into());
        }
    }
    classify(err)
}
