//! Reads that serve a request: a customer's flag and risk-list pages
//! (every shard of the band queried from its cursor position, then merged),
//! throttling retried through the one retry loop for at most
//! [`READ_RETRY_BUDGET`].

use super::codec::{corrupt, from_item};
use super::retry::{classify, retrying, GaveUp, Outcome};
use super::{DynamoFlagStore, BACKEND, RISK_LIST_INDEX};
use crate::error::{Error, Result};
use crate::flag::{Flag, Page};
use crate::flag_store::{check_list_args, decode_cursor, encode_cursor};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use churn_model::RiskBand;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a read serving a request (get, risk list) retries throttling.
const READ_RETRY_BUDGET: Duration = Duration::from_secs(10);

/// Per-shard resume state of a risk-list cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ShardPos {
    /// Not read yet: start at the top.
    Start,
    /// Resume after this item (its probability as stored, and its id).
    After { p: String, id: String },
    /// Exhausted.
    Done,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    v: u8,
    band: RiskBand,
    shards: Vec<ShardPos>,
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

    /// One page of the risk list of `band`: every shard queried from its
    /// cursor position, merged by probability.
    pub(super) async fn risk_list_page(
        &self,
        band: RiskBand,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page> {
        check_list_args(band, limit)?;
        let shards = self.shards as usize;
        let positions = match cursor {
            None => vec![ShardPos::Start; shards],
            Some(c) => {
                let c: Cursor = decode_cursor(c)?;
                if c.v != 1 || c.band != band || c.shards.len() != shards {
                    return Err(Error::InvalidCursor(format!(
                        "cursor was issued for the {} list with {} shards",
                        c.band,
                        c.shards.len()
                    )));
                }
                c.shards
            }
        };
        let fetched = futures::future::try_join_all(
            positions
                .iter()
                .enumerate()
                .map(|(shard, pos)| self.query_shard(band, shard as u32, pos, limit)),
        )
        .await?;

        // k-way merge by probability descending (ties by customer id); each
        // shard's own order is kept, so resuming a shard after its last taken
        // row is exact.
        let mut heads = vec![0usize; shards];
        let mut flags = Vec::with_capacity(limit);
        while flags.len() < limit {
            let mut best: Option<usize> = None;
            for s in 0..shards {
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
            flags.push(fetched[b].0[heads[b]].0.clone());
            heads[b] += 1;
        }

        let mut next = Vec::with_capacity(shards);
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
                v: 1,
                band,
                shards: next,
            })
        });
        Ok(Page { flags, next_cursor })
    }

    async fn query_shard(
        &self,
        band: RiskBand,
        shard: u32,
        pos: &ShardPos,
        limit: usize,
    ) -> Result<(Vec<(Flag, String)>, bool)> {
        let mut start = match pos {
            ShardPos::Done => return Ok((Vec::new(), false)),
            ShardPos::Start => None,
            ShardPos::After { p, id } => Some(HashMap::from([
                ("customer_id".to_string(), AttributeValue::S(id.clone())),
                (
                    "risk_list_pk".to_string(),
                    AttributeValue::S(format!("{band}#{shard}")),
                ),
                (
                    "churn_probability".to_string(),
                    AttributeValue::N(p.clone()),
                ),
            ])),
        };
        let mut rows = Vec::new();
        // A query page stops at 1 MB; keep reading until `limit` rows or the
        // shard's end, otherwise the merge could take lower-probability rows
        // from other shards ahead of this shard's unread ones.
        loop {
            let pk = format!("{band}#{shard}");
            let page_limit = i32::try_from(limit - rows.len()).unwrap_or(i32::MAX);
            let out = self
                .read_with_retries("query risk-list", || {
                    self.client
                        .query()
                        .table_name(&self.table)
                        .index_name(RISK_LIST_INDEX)
                        .key_condition_expression("risk_list_pk = :pk")
                        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                        .scan_index_forward(false)
                        .limit(page_limit)
                        .set_exclusive_start_key(start.clone())
                        .send()
                })
                .await?;
            for item in out.items() {
                let p = match item.get("churn_probability") {
                    Some(AttributeValue::N(p)) => p.clone(),
                    _ => return Err(corrupt("risk-list item without churn_probability")),
                };
                rows.push((from_item(item)?, p));
            }
            match out.last_evaluated_key() {
                Some(k) if rows.len() < limit => start = Some(k.clone()),
                Some(_) => return Ok((rows, true)),
                None => return Ok((rows, false)),
            }
        }
    }
}
