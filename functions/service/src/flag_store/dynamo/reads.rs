//! Reads that serve a request: a customer's flag, risk-list pages, the
//! summary, and the acknowledgement updates. Throttling is retried through
//! the one retry loop for at most [`READ_RETRY_BUDGET`].
//!
//! A list reads *partitions*: the `"<band>#<shard>"` keys of the `risk-list`
//! index, or with an owner filter the `"<owner>#<band>"` keys of the
//! `owner-risk-list` index (an owner's list reads only that owner's
//! items). The other filters are applied to what is read. By probability,
//! each partition is read from its cursor position in the index order and
//! the partitions are merged; other sorts read every matching item of the
//! partitions and sort them (the cursor is the last item's sort key).

use super::codec::{ack_json, corrupt, decode, from_item};
use super::retry::{classify, retrying, GaveUp, Outcome};
use super::{DynamoFlagStore, BACKEND, OWNER_LIST_INDEX, RISK_LIST_INDEX};
use crate::error::{Error, Result};
use crate::flag::{Acknowledgement, Flag, Page};
use crate::flag_store::query::{KeyCursor, SummaryBuilder};
use crate::flag_store::{check_limit, decode_cursor, encode_cursor};
use crate::flag_store::{BandFilter, ListQuery, ListSort, Summary, SummaryBy};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a read serving a request (get, risk list) retries throttling.
const READ_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// Per-partition resume state of a risk-list cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ShardPos {
    /// Not read yet: start at the top.
    Start,
    /// Resume after this item (its probability as stored, and its id).
    After { p: String, id: String },
    /// Exhausted.
    Done,
}

/// Cursor of a list by probability: where each partition resumes.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    v: u8,
    query: String,
    parts: Vec<ShardPos>,
}

/// One partition of an index: every item with `key_attr = pk`.
#[derive(Debug, Clone)]
struct Partition {
    index: &'static str,
    key_attr: &'static str,
    pk: String,
}

/// The partitions holding every item of `query`.
fn partitions(query: &ListQuery, shards: u32) -> Vec<Partition> {
    let bands = query.band.bands();
    match &query.owner {
        Some(owner) => bands
            .iter()
            .map(|b| Partition {
                index: OWNER_LIST_INDEX,
                key_attr: "owner_list_pk",
                pk: format!("{owner}#{b}"),
            })
            .collect(),
        None => bands
            .iter()
            .flat_map(|b| {
                (0..shards).map(move |shard| Partition {
                    index: RISK_LIST_INDEX,
                    key_attr: "risk_list_pk",
                    pk: format!("{b}#{shard}"),
                })
            })
            .collect(),
    }
}

impl DynamoFlagStore {
    /// Runs a read that serves a request, retrying throttling and transient
    /// failures with backoff for at most [`READ_RETRY_BUDGET`].
    pub(super) async fn read_with_retries<T, E, R, F, Fut>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let deadline = Instant::now() + READ_RETRY_BUDGET;
        let call = &call;
        let (_, result) = retrying(&self.retry, deadline, (), move |()| async move {
            let outcome = match call().await {
                Ok(v) => Outcome::Done(v),
                Err(e) => match classify(e) {
                    // Reads have no conditions; treat it as transient.
                    Outcome::Conflict => Outcome::Retry("conditional check failed".into()),
                    other => other,
                },
            };
            ((), outcome)
        })
        .await;
        result.map_err(|gave_up| {
            let message = match gave_up {
                GaveUp::Deadline { attempts, last } => {
                    format!("gave up after {attempts} attempts: {last}")
                }
                other => other.reason(),
            };
            Error::storage(BACKEND, operation, message)
        })
    }

    /// One page of `query`.
    pub(super) async fn list_page(
        &self,
        query: &ListQuery,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page> {
        check_limit(limit)?;
        if query.sort == ListSort::Probability {
            self.merged_page(query, limit, cursor).await
        } else {
            self.sorted_page(query, limit, cursor).await
        }
    }

    /// A page of a list by another sort: every matching item read, sorted,
    /// and the page after the cursor's key taken.
    async fn sorted_page(
        &self,
        query: &ListQuery,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page> {
        let after = cursor
            .map(|c| KeyCursor::decode(c, query))
            .transpose()?
            .map(|c| c.after);
        let mut keyed: Vec<_> = self
            .read_all(query)
            .await?
            .into_iter()
            .map(|f| (query.sort_key(&f), f))
            .collect();
        keyed.retain(|(k, _)| {
            after
                .as_ref()
                .is_none_or(|a| a.order(k) == std::cmp::Ordering::Less)
        });
        keyed.sort_by(|a, b| a.0.order(&b.0));
        let more = keyed.len() > limit;
        keyed.truncate(limit);
        let flags: Vec<Flag> = keyed
            .into_iter()
            .map(|(_, f)| f.seen_at(query.now))
            .collect();
        let next_cursor = more
            .then(|| flags.last().map(|f| KeyCursor::encode(query, f)))
            .flatten();
        Ok(Page { flags, next_cursor })
    }

    /// A page of a list by probability: every partition read from its
    /// cursor position, merged.
    async fn merged_page(
        &self,
        query: &ListQuery,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page> {
        let parts = partitions(query, self.shards);
        let positions = match cursor {
            None => vec![ShardPos::Start; parts.len()],
            Some(c) => {
                let c: Cursor = decode_cursor(c)?;
                if c.v != 2 || c.query != query.fingerprint() || c.parts.len() != parts.len() {
                    return Err(Error::InvalidCursor(
                        "cursor was issued for a different list (band, filters, sort or shards)"
                            .into(),
                    ));
                }
                c.parts
            }
        };
        let fetched = futures::future::try_join_all(
            parts
                .iter()
                .zip(&positions)
                .map(|(part, pos)| self.query_partition(part, pos, Some(limit), query)),
        )
        .await?;

        // k-way merge by probability descending (ties by customer id); each
        // partition's own order is kept, so resuming a partition after its
        // last taken row is exact.
        let n = parts.len();
        let mut heads = vec![0usize; n];
        let mut flags = Vec::with_capacity(limit);
        while flags.len() < limit {
            let mut best: Option<usize> = None;
            for s in 0..n {
                let Some((f, _)) = fetched[s].0.get(heads[s]) else {
                    continue;
                };
                let better = match best {
                    None => true,
                    Some(b) => {
                        let (g, _) = &fetched[b].0[heads[b]];
                        f.churn_probability > g.churn_probability
                            || (f.churn_probability == g.churn_probability
                                && f.customer_id < g.customer_id)
                    }
                };
                if better {
                    best = Some(s);
                }
            }
            let Some(b) = best else { break };
            flags.push(fetched[b].0[heads[b]].0.clone().seen_at(query.now));
            heads[b] += 1;
        }

        let mut next = Vec::with_capacity(n);
        for (s, pos) in positions.iter().enumerate() {
            let (rows, more) = &fetched[s];
            next.push(if heads[s] == 0 {
                if rows.is_empty() && !more {
                    ShardPos::Done
                } else {
                    pos.clone()
                }
            } else if heads[s] == rows.len() && !more {
                ShardPos::Done
            } else {
                let (f, p) = &rows[heads[s] - 1];
                ShardPos::After {
                    p: p.clone(),
                    id: f.customer_id.clone(),
                }
            });
        }
        let next_cursor = next.iter().any(|p| *p != ShardPos::Done).then(|| {
            encode_cursor(&Cursor {
                v: 2,
                query: query.fingerprint(),
                parts: next,
            })
        });
        Ok(Page { flags, next_cursor })
    }

    /// The items of `part` after `pos` that match `query`, in index order
    /// (probability descending), with each one's probability as stored: at
    /// least `want` of them when there are that many (every one for
    /// `None`), and whether the partition may hold more after them.
    async fn query_partition(
        &self,
        part: &Partition,
        pos: &ShardPos,
        want: Option<usize>,
        query: &ListQuery,
    ) -> Result<(Vec<(Flag, String)>, bool)> {
        let mut start = match pos {
            ShardPos::Done => return Ok((Vec::new(), false)),
            ShardPos::Start => None,
            ShardPos::After { p, id } => Some(HashMap::from([
                ("customer_id".to_string(), AttributeValue::S(id.clone())),
                (
                    part.key_attr.to_string(),
                    AttributeValue::S(part.pk.clone()),
                ),
                (
                    "churn_probability".to_string(),
                    AttributeValue::N(p.clone()),
                ),
            ])),
        };
        // Filters beyond the partition key are applied here, so a page of
        // the index may hold few matches: read in larger pages then.
        let filtered =
            query.segment.is_some() || query.renewal_within_days.is_some() || query.unacknowledged;
        let mut rows = Vec::new();
        // A query page stops at 1 MB; keep reading until `want` rows or the
        // partition's end, otherwise the merge could take lower-probability
        // rows from other partitions ahead of this one's unread ones.
        loop {
            let page_limit = match want {
                Some(w) if !filtered => w.saturating_sub(rows.len()).max(1),
                _ => 1000,
            };
            let out = self
                .read_with_retries("query risk-list", || {
                    self.client
                        .query()
                        .table_name(&self.table)
                        .index_name(part.index)
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", part.key_attr)
                        .expression_attribute_values(":pk", AttributeValue::S(part.pk.clone()))
                        .scan_index_forward(false)
                        .limit(i32::try_from(page_limit).unwrap_or(i32::MAX))
                        .set_exclusive_start_key(start.clone())
                        .send()
                })
                .await?;
            for item in out.items() {
                let p = match item.get("churn_probability") {
                    Some(AttributeValue::N(p)) => p.clone(),
                    _ => return Err(corrupt("risk-list item without churn_probability")),
                };
                let flag = from_item(item)?;
                if query.matches(&flag) {
                    rows.push((flag, p));
                }
            }
            match out.last_evaluated_key() {
                Some(k) if want.is_none_or(|w| rows.len() < w) => start = Some(k.clone()),
                Some(_) => return Ok((rows, true)),
                None => return Ok((rows, false)),
            }
        }
    }

    /// Every at-risk customer (the whole `risk-list` index) summarised.
    pub(super) async fn summarise(&self, by: &[SummaryBy]) -> Result<Vec<Summary>> {
        let mut summaries: Vec<SummaryBuilder> =
            by.iter().map(|b| SummaryBuilder::new(*b)).collect();
        for flag in self.read_all(&ListQuery::band(BandFilter::AtRisk)).await? {
            summaries.iter_mut().for_each(|s| s.add(&flag));
        }
        Ok(summaries.into_iter().map(SummaryBuilder::finish).collect())
    }

    /// Every item of `query`'s partitions that matches it, in no set order.
    async fn read_all(&self, query: &ListQuery) -> Result<Vec<Flag>> {
        let mut flags = Vec::new();
        for part in partitions(query, self.shards) {
            let (rows, _) = self
                .query_partition(&part, &ShardPos::Start, None, query)
                .await?;
            flags.extend(rows.into_iter().map(|(f, _)| f));
        }
        Ok(flags)
    }

    /// Sets (or with `None` removes) a customer's acknowledgement, adding a
    /// revision so a rescore that read the item before cannot overwrite it.
    pub(super) async fn set_ack(
        &self,
        customer_id: &str,
        ack: Option<&Acknowledgement>,
    ) -> Result<Flag> {
        let deadline = Instant::now() + READ_RETRY_BUDGET;
        let (_, result) = retrying(&self.retry, deadline, (), |()| async {
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("customer_id", AttributeValue::S(customer_id.to_string()))
                .condition_expression("attribute_exists(customer_id)")
                .expression_attribute_names("#ack", "ack")
                .expression_attribute_names("#rev", "rev")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .return_values(ReturnValue::AllNew);
            request = match ack {
                Some(a) => request
                    .update_expression("SET #ack = :ack ADD #rev :one")
                    .expression_attribute_values(":ack", AttributeValue::S(ack_json(a))),
                None => request.update_expression("REMOVE #ack ADD #rev :one"),
            };
            let outcome = match request.send().await {
                Ok(out) => Outcome::Done(out.attributes().cloned().unwrap_or_default()),
                Err(e) => classify(e),
            };
            ((), outcome)
        })
        .await;
        match result {
            Ok(item) => Ok(decode(&item)?.flag),
            Err(GaveUp::Conflict) => Err(Error::CustomerNotFound(customer_id.to_string())),
            Err(other) => Err(Error::storage(BACKEND, "update_item", other.reason())),
        }
    }
}
