//! Writes: read the stored items of a batch (to decide per flag), then put
//! the changed rows, conditionally one by one or in unconditional batches
//! (see [`WriteStrategy`](super::WriteStrategy)). Every call goes through
//! the one retry loop, [`retrying`].

use super::codec::{decode, to_item, Item, Stored};
use super::retry::{classify, retrying, GaveUp, Outcome};
use super::{DynamoFlagStore, WriteStrategy, BATCH_GET_MAX, BATCH_WRITE_MAX};
use crate::flag::{Flag, HistoryPoint, WriteFailure, WriteSummary};
use crate::flag_store::{decide, next_history, past, Decision, HistoryWindow};
use crate::notify::{EventOrigin, EventType, RiskEvent, StoredEvent};
use crate::timestamp;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
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
    /// The risk-change event this write records: stored on the flag's own
    /// item by the same put (`unprojected`), then in its event item.
    pub event: Option<StoredEvent>,
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
        origin: &EventOrigin,
        now: time::OffsetDateTime,
    ) -> Pending {
        let old = stored.map(|s| s.history.clone()).unwrap_or_default();
        let history = next_history(old, &mut flag, window);
        let event = RiskEvent::of_write(stored.map(|s| &s.flag), &flag, origin.run_id.as_deref())
            .map(|(event, held)| StoredEvent::new(event, held, &origin.due, now));
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

    /// The condition of its put: unchanged since we read it (no newer
    /// score, and no acknowledgement given or removed in between: those add
    /// a revision too).
    pub(super) fn condition(&self) -> (&'static str, Option<(&'static str, AttributeValue)>) {
        match &self.read {
            ReadState::Absent => ("attribute_not_exists(customer_id)", None),
            ReadState::Unrevised(read) => (
                "attribute_not_exists(rev) AND scored_at = :read",
                Some((":read", AttributeValue::S(read.clone()))),
            ),
            ReadState::Rev(rev) => (
                "rev = :rev",
                Some((":rev", AttributeValue::N(rev.to_string()))),
            ),
        }
    }

    /// The revision the put writes.
    pub(super) fn rev(&self) -> u64 {
        match self.read {
            ReadState::Rev(r) => r + 1,
            _ => 1,
        }
    }

    /// The item to put: the flag, and the event it records (atomically
    /// with the flag, a single item's write).
    pub(super) fn item(&self, shards: u32) -> Item {
        let mut item = to_item(&self.flag, &self.history, shards, self.rev());
        if let Some(event) = &self.event {
            let json = serde_json::to_string(event).unwrap_or_default();
            item.insert("unprojected".into(), AttributeValue::S(json));
        }
        item
    }

    /// The kind of the event it records, and whether it is held.
    pub(super) fn event_kind(&self) -> Option<(EventType, bool)> {
        self.event.as_ref().map(|e| (e.event.kind, e.held))
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
        let written: Vec<_> = match self.strategy {
            WriteStrategy::Conditional => {
                stream::iter(pending)
                    .map(|p| self.put_conditional(p, epsilon, deadline, origin))
                    .buffer_unordered(self.concurrency)
                    .collect()
                    .await
            }
            WriteStrategy::Batch => {
                // Batches cut as they are sent, each its own 25-row vector.
                // (Cutting them all up front with `split_off` left every
                // batch holding the capacity of all the rows after it:
                // hundreds of MiB for a 4096-row chunk.)
                let outcomes: Vec<_> = stream::iter(pending)
                    .chunks(BATCH_WRITE_MAX)
                    .map(|c| self.put_batch(c, deadline))
                    .buffer_unordered(self.concurrency)
                    .collect()
                    .await;
                let mut out = Vec::new();
                for (written, failed) in outcomes {
                    out.extend(failed.into_iter().map(Err));
                    out.extend(written.into_iter().map(Ok));
                }
                // Each written event into its own item (as the conditional
                // path does after each put).
                let projected: Vec<_> = stream::iter(out)
                    .map(|w| async move {
                        match w {
                            Ok(p) => {
                                self.project_written(&p).await;
                                Ok((
                                    Decision::Write {
                                        newly_at_risk: p.newly_at_risk,
                                        flag: Box::new(p.flag.clone()),
                                    },
                                    p.event_kind(),
                                ))
                            }
                            Err(f) => Err(f),
                        }
                    })
                    .buffer_unordered(self.concurrency)
                    .collect()
                    .await;
                projected
            }
        };
        for outcome in written {
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
    }

    /// One conditional PutItem of a decided row.
    async fn put_once(&self, pending: &Pending) -> Outcome<()> {
        let (condition, value) = pending.condition();
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(pending.item(self.shards)))
            .condition_expression(condition);
        if let Some((name, v)) = value {
            request = request.expression_attribute_values(name, v);
        }
        match request.send().await {
            Ok(_) => Outcome::Done(()),
            Err(e) => classify(e),
        }
    }

    /// Conditional PutItem of one decided row, re-deciding after conflicts.
    pub(super) async fn put_conditional(
        &self,
        mut pending: Pending,
        epsilon: f64,
        deadline: Instant,
        origin: &EventOrigin,
    ) -> std::result::Result<(Decision, Option<(EventType, bool)>), WriteFailure> {
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
                ((), self.put_once(current).await)
            })
            .await;
            match result {
                Ok(()) => {
                    self.project_written(&pending).await;
                    let event = pending.event_kind();
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
            // The other writer's event, if it is still on the item, before
            // our put replaces the item.
            if let Some(s) = &stored {
                if let Some(event) = &s.unprojected {
                    self.project(&original.customer_id, event, s.rev.unwrap_or(0))
                        .await
                        .map_err(|e| {
                            fail(format!(
                                "an earlier event could not be recorded: {}",
                                crate::error::report(&e)
                            ))
                        })?;
                }
            }
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
                        origin,
                        crate::timestamp::now(),
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
