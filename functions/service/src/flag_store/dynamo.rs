//! DynamoDB flag store.
//!
//! # Writes and their cost
//! `write_batch` first reads the stored items (BatchGetItem, 100 keys per
//! call, strongly consistent) to decide per flag whether it is stale,
//! unchanged (skipped: the biggest cost lever, a rerun on unchanged features
//! writes almost nothing) or to be written with its band history.
//!
//! The rows that change are then written according to [`WriteStrategy`]:
//!
//! - [`WriteStrategy::Conditional`] (default): one `PutItem` per changed row
//!   with an optimistic-concurrency condition: `scored_at` still equals what
//!   we read (or the item still does not exist). If another writer got there
//!   first, the item is re-read and decided again, so neither a stale score
//!   nor band history computed from an outdated read can overwrite a newer
//!   item. This is what the contract requires, and it costs the same write
//!   capacity as BatchWriteItem: DynamoDB bills per item written, a batch only
//!   saves HTTP round trips, which concurrency (`concurrency` in flight) hides.
//! - [`WriteStrategy::Batch`]: BatchWriteItem in chunks of 25. BatchWriteItem
//!   takes no conditions, so between our read and the write another writer's
//!   newer score can be overwritten by ours (the race window is one
//!   read-decide-write cycle, typically milliseconds). Only correct when a
//!   single writer owns each customer at a time, such as a sharded rescore
//!   with the score endpoint not persisting; it is offered for that case
//!   because it needs 25x fewer requests.
//!
//! Throttling (ProvisionedThroughputExceeded, ThrottlingException,
//! RequestLimitExceeded, 5xx, timeouts) and UnprocessedKeys/UnprocessedItems
//! are retried with exponential backoff and full jitter until the deadline;
//! whatever is still unwritten then is reported in `WriteSummary::failed`.
//!
//! # Risk lists
//! The sparse GSI `risk-list` is keyed by `risk_list_pk = "<band>#<shard>"`
//! (set only while at risk) and sorted by `churn_probability`. A page queries
//! every shard of the band (descending), merges them, and the cursor records
//! per shard where the next page resumes.

use super::{
    check_list_args, decide, decode_cursor, encode_cursor, past, prepare_batch, risk_list_pk,
};
use super::{Decision, FlagStore};
use crate::error::{Error, Result};
use crate::flag::{Flag, Page, WriteFailure, WriteSummary};
use crate::retry::RetryPolicy;
use crate::timestamp;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, PutRequest, ScalarAttributeType,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use churn_model::RiskBand;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Instant;

const BACKEND: &str = "dynamodb";
/// Name of the sparse risk-list GSI (also in `infra/`).
pub const RISK_LIST_INDEX: &str = "risk-list";
/// BatchGetItem accepts at most 100 keys.
pub const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem accepts at most 25 requests.
pub const BATCH_WRITE_MAX: usize = 25;
/// How long a read serving a request (get, risk list) retries throttling.
const READ_RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);
/// Attributes `decide` reads from a stored item.
const DECISION_ATTRIBUTES: &str =
    "customer_id, churn_probability, risk_band, scored_at, previous_band, band_changed_at";
/// How often one row is re-read and re-decided after losing a conditional write.
const MAX_CONFLICT_ROUNDS: u32 = 5;

type Item = HashMap<String, AttributeValue>;

/// How changed rows are written (see the module docs for the trade-off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteStrategy {
    /// Conditional `PutItem` per changed row: no stale overwrite, ever.
    #[default]
    Conditional,
    /// `BatchWriteItem` in chunks of 25: unconditional, single-writer use only.
    Batch,
}

/// Flag store on a DynamoDB table (layout in docs/CONTRACTS.md).
#[derive(Debug, Clone)]
pub struct DynamoFlagStore {
    client: Client,
    table: String,
    shards: u32,
    retry: RetryPolicy,
    strategy: WriteStrategy,
    concurrency: usize,
}

/// How a failed call should be handled.
enum Failure {
    /// Throttled or transient: back off and try again.
    Retry(String),
    /// A condition failed: someone else wrote the item.
    Conflict,
    /// Will not succeed by retrying.
    Fatal(String),
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> Failure {
    let code = err.code().unwrap_or_default().to_string();
    let message = match err.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        _ => DisplayErrorContext(&err).to_string(),
    };
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Retry(message)
        }
        SdkError::ServiceError(_) => match code.as_str() {
            "ConditionalCheckFailedException" => Failure::Conflict,
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException" => Failure::Retry(message),
            _ => Failure::Fatal(message),
        },
        _ => Failure::Fatal(message),
    }
}

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

/// A decided write still to be carried out.
struct Pending {
    flag: Flag,
    newly_at_risk: bool,
    /// `scored_at` of the item we read (`None`: it did not exist).
    read_scored_at: Option<String>,
}

impl DynamoFlagStore {
    /// A store on `table` with `shards` risk-list shards, conditional writes,
    /// default backoff and 16 writes in flight.
    pub fn new(client: Client, table: impl Into<String>, shards: u32) -> Self {
        DynamoFlagStore {
            client,
            table: table.into(),
            shards: shards.max(1),
            retry: RetryPolicy::default(),
            strategy: WriteStrategy::default(),
            concurrency: 16,
        }
    }

    /// Replaces the backoff parameters.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Chooses how changed rows are written.
    pub fn with_strategy(mut self, strategy: WriteStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How many requests one `write_batch` keeps in flight (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads the stored items of `ids` (consistent reads, chunks of 100,
    /// UnprocessedKeys and throttling retried). Ids that could not be read by
    /// the deadline come back in the error list.
    async fn read_stored(
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

    async fn read_chunk(
        &self,
        ids: Vec<String>,
        deadline: Instant,
    ) -> (HashMap<String, Item>, Vec<WriteFailure>) {
        let fail_all = |ids: Vec<Item>, reason: String| {
            ids.into_iter()
                .map(|k| WriteFailure {
                    customer_id: k
                        .get("customer_id")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                    reason: reason.clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut found = HashMap::new();
        let mut keys: Vec<Item> = ids
            .into_iter()
            .map(|id| HashMap::from([("customer_id".to_string(), AttributeValue::S(id))]))
            .collect();
        let mut attempt = 0u32;
        let mut last_problem = String::from("UnprocessedKeys");
        while !keys.is_empty() {
            if attempt > 0 && !self.retry.wait(attempt - 1, deadline).await {
                let reason = format!("deadline exceeded reading the stored flag ({last_problem})");
                return (found, fail_all(keys, reason));
            }
            attempt += 1;
            let request = match KeysAndAttributes::builder()
                .set_keys(Some(keys.clone()))
                // Strongly consistent: deciding "unchanged" from an outdated
                // copy would skip a write that is needed.
                .consistent_read(true)
                // Only what `decide` needs: reasons are most of an item's
                // bytes. (Read capacity is billed on the whole item either
                // way; this saves transfer and decoding.)
                .projection_expression(DECISION_ATTRIBUTES)
                .build()
            {
                Ok(r) => r,
                Err(e) => return (found, fail_all(keys, e.to_string())),
            };
            match self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
            {
                Ok(out) => {
                    if let Some(items) = out.responses().and_then(|r| r.get(&self.table)) {
                        for item in items {
                            if let Some(Ok(id)) = item.get("customer_id").map(AttributeValue::as_s)
                            {
                                found.insert(id.clone(), item.clone());
                            }
                        }
                    }
                    let before = keys.len();
                    keys = out
                        .unprocessed_keys()
                        .and_then(|u| u.get(&self.table))
                        .map(|k| k.keys().to_vec())
                        .unwrap_or_default();
                    if keys.len() < before {
                        // Progress: restart the backoff ladder.
                        attempt = attempt.min(1);
                    }
                    last_problem = "UnprocessedKeys".into();
                }
                Err(e) => match classify(e) {
                    Failure::Retry(m) => last_problem = m,
                    Failure::Conflict => last_problem = "conflict".into(),
                    Failure::Fatal(m) => return (found, fail_all(keys, m)),
                },
            }
        }
        (found, Vec::new())
    }

    /// Conditional PutItem of one decided row, re-deciding after conflicts.
    async fn put_conditional(
        &self,
        mut pending: Pending,
        epsilon: f64,
        deadline: Instant,
    ) -> std::result::Result<Decision, WriteFailure> {
        let original = pending.flag.clone();
        let mut attempt = 0u32;
        let mut conflicts = 0u32;
        loop {
            let mut request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(&pending.flag, self.shards)));
            request = match &pending.read_scored_at {
                None => request.condition_expression("attribute_not_exists(customer_id)"),
                Some(read) => request
                    .condition_expression("scored_at = :read")
                    .expression_attribute_values(":read", AttributeValue::S(read.clone())),
            };
            let failure = match request.send().await {
                Ok(_) => {
                    return Ok(Decision::Write {
                        flag: pending.flag,
                        newly_at_risk: pending.newly_at_risk,
                    })
                }
                Err(e) => classify(e),
            };
            let fail = |reason: String| WriteFailure {
                customer_id: original.customer_id.clone(),
                reason,
            };
            match failure {
                Failure::Fatal(m) => return Err(fail(m)),
                Failure::Retry(m) => {
                    if !self.retry.wait(attempt, deadline).await {
                        return Err(fail(format!(
                            "deadline exceeded after {} attempts: {m}",
                            attempt + 1
                        )));
                    }
                    attempt += 1;
                }
                Failure::Conflict => {
                    // Someone else wrote this customer since we read it: read
                    // again and apply the same rules to what is there now.
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
                    let stored = match found.get(&original.customer_id).map(from_item).transpose() {
                        Ok(s) => s,
                        Err(e) => return Err(fail(e.to_string())),
                    };
                    match decide(stored.as_ref(), &original, epsilon) {
                        Decision::Write {
                            flag,
                            newly_at_risk,
                        } => {
                            pending = Pending {
                                flag,
                                newly_at_risk,
                                read_scored_at: stored.map(|s| timestamp::format(s.scored_at)),
                            };
                        }
                        other => return Ok(other),
                    }
                }
            }
        }
    }

    /// BatchWriteItem of up to 25 rows, retrying UnprocessedItems and throttling.
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
                .set_item(Some(to_item(&p.flag, self.shards)))
                .build()
            {
                Ok(put) => requests.push(WriteRequest::builder().put_request(put).build()),
                Err(e) => failed.push(WriteFailure {
                    customer_id: p.flag.customer_id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        let id_of = |r: &WriteRequest| {
            r.put_request()
                .and_then(|p| p.item().get("customer_id"))
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        let mut attempt = 0u32;
        let mut last_problem = String::from("UnprocessedItems");
        while !requests.is_empty() {
            if attempt > 0 && !self.retry.wait(attempt - 1, deadline).await {
                let reason = format!("deadline exceeded after {attempt} attempts: {last_problem}");
                for r in &requests {
                    failed.push(WriteFailure {
                        customer_id: id_of(r),
                        reason: reason.clone(),
                    });
                }
                requests.clear();
                break;
            }
            attempt += 1;
            match self
                .client
                .batch_write_item()
                .request_items(&self.table, requests.clone())
                .send()
                .await
            {
                Ok(out) => {
                    let before = requests.len();
                    requests = out
                        .unprocessed_items()
                        .and_then(|u| u.get(&self.table))
                        .cloned()
                        .unwrap_or_default();
                    if requests.len() < before {
                        attempt = attempt.min(1);
                    }
                    last_problem = format!("{} UnprocessedItems", requests.len());
                }
                Err(e) => match classify(e) {
                    Failure::Retry(m) => last_problem = m,
                    Failure::Conflict => last_problem = "conflict".into(),
                    Failure::Fatal(m) => {
                        for r in &requests {
                            failed.push(WriteFailure {
                                customer_id: id_of(r),
                                reason: m.clone(),
                            });
                        }
                        requests.clear();
                    }
                },
            }
        }
        for f in &failed {
            by_id.remove(&f.customer_id);
        }
        (by_id.into_values().collect(), failed)
    }

    /// Runs a read that serves a request, retrying throttling and transient
    /// failures with backoff for at most [`READ_RETRY_BUDGET`].
    async fn read_with_retries<T, E, R, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let deadline = Instant::now() + READ_RETRY_BUDGET;
        let mut attempt = 0u32;
        loop {
            let message = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => match classify(e) {
                    Failure::Retry(m) => m,
                    Failure::Conflict => "conditional check failed".to_string(),
                    Failure::Fatal(m) => return Err(Error::storage(BACKEND, operation, m)),
                },
            };
            if !self.retry.wait(attempt, deadline).await {
                return Err(Error::storage(
                    BACKEND,
                    operation,
                    format!("gave up after {} attempts: {message}", attempt + 1),
                ));
            }
            attempt += 1;
        }
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

fn corrupt(message: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "flag item",
        message: message.into(),
    }
}

/// The DynamoDB item of a flag (fields in docs/CONTRACTS.md).
fn to_item(flag: &Flag, shards: u32) -> Item {
    let mut item: Item = HashMap::from([
        (
            "customer_id".into(),
            AttributeValue::S(flag.customer_id.clone()),
        ),
        // Rust's f64 Display is the shortest string that round-trips.
        (
            "churn_probability".into(),
            AttributeValue::N(flag.churn_probability.to_string()),
        ),
        (
            "risk_band".into(),
            AttributeValue::S(flag.risk_band.as_str().into()),
        ),
        ("at_risk".into(), AttributeValue::Bool(flag.at_risk())),
        (
            "reasons".into(),
            AttributeValue::S(serde_json::to_string(&flag.reasons).unwrap_or_else(|_| "[]".into())),
        ),
        ("model_id".into(), AttributeValue::S(flag.model_id.clone())),
        (
            "scored_at".into(),
            AttributeValue::S(timestamp::format(flag.scored_at)),
        ),
    ]);
    if let Some(b) = flag.previous_band {
        item.insert("previous_band".into(), AttributeValue::S(b.as_str().into()));
    }
    if let Some(t) = flag.band_changed_at {
        item.insert(
            "band_changed_at".into(),
            AttributeValue::S(timestamp::format(t)),
        );
    }
    // Absent (not empty) when not at risk: that is what keeps the GSI sparse,
    // and PutItem replaces the whole item, so a stale key cannot linger.
    if let Some(pk) = risk_list_pk(flag, shards) {
        item.insert("risk_list_pk".into(), AttributeValue::S(pk));
    }
    item
}

/// Decodes a stored item.
fn from_item(item: &Item) -> Result<Flag> {
    let s = |name: &str| -> Result<&String> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v),
            _ => Err(corrupt(format!("missing string attribute {name}"))),
        }
    };
    let opt_s = |name: &str| -> Option<&String> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Some(v),
            _ => None,
        }
    };
    let customer_id = s("customer_id")?.clone();
    let ctx = |m: String| corrupt(format!("customer {customer_id:?}: {m}"));
    let churn_probability = match item.get("churn_probability") {
        Some(AttributeValue::N(n)) => n
            .parse::<f64>()
            .map_err(|e| ctx(format!("churn_probability: {e}")))?,
        _ => return Err(ctx("missing churn_probability".into())),
    };
    Ok(Flag {
        churn_probability,
        risk_band: s("risk_band")?.parse().map_err(|e| ctx(format!("{e}")))?,
        // Absent only in the projected reads of `write_batch`.
        reasons: match opt_s("reasons") {
            Some(r) => serde_json::from_str(r).map_err(|e| ctx(format!("reasons: {e}")))?,
            None => Vec::new(),
        },
        model_id: opt_s("model_id").cloned().unwrap_or_default(),
        scored_at: timestamp::parse(s("scored_at")?).map_err(&ctx)?,
        previous_band: opt_s("previous_band")
            .map(|b| b.parse())
            .transpose()
            .map_err(|e| ctx(format!("{e}")))?,
        band_changed_at: opt_s("band_changed_at")
            .map(|t| timestamp::parse(t))
            .transpose()
            .map_err(&ctx)?,
        customer_id: customer_id.clone(),
    })
}

#[async_trait]
impl FlagStore for DynamoFlagStore {
    async fn write_batch(
        &self,
        flags: &[Flag],
        epsilon: f64,
        deadline: Instant,
    ) -> Result<WriteSummary> {
        let (todo, mut summary) = prepare_batch(flags, epsilon)?;
        if todo.is_empty() {
            return Ok(summary);
        }
        let ids = todo.iter().map(|f| f.customer_id.clone()).collect();
        let (stored, read_failures) = self.read_stored(ids, deadline).await;
        let unreadable: std::collections::HashSet<String> = read_failures
            .iter()
            .map(|f| f.customer_id.clone())
            .collect();
        summary.failed.extend(read_failures);

        let mut pending = Vec::new();
        for flag in todo
            .into_iter()
            .filter(|f| !unreadable.contains(&f.customer_id))
        {
            let old = match stored.get(&flag.customer_id).map(from_item).transpose() {
                Ok(old) => old,
                Err(e) => {
                    summary.failed.push(WriteFailure {
                        customer_id: flag.customer_id.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            match decide(old.as_ref(), &flag, epsilon) {
                Decision::Stale => summary.stale_rejected += 1,
                Decision::Unchanged => summary.skipped_unchanged += 1,
                Decision::Write {
                    flag,
                    newly_at_risk,
                } => pending.push(Pending {
                    flag,
                    newly_at_risk,
                    read_scored_at: old.map(|o| timestamp::format(o.scored_at)),
                }),
            }
        }

        match self.strategy {
            WriteStrategy::Conditional => {
                let outcomes: Vec<_> = stream::iter(pending)
                    .map(|p| self.put_conditional(p, epsilon, deadline))
                    .buffer_unordered(self.concurrency)
                    .collect()
                    .await;
                for outcome in outcomes {
                    match outcome {
                        Ok(Decision::Write { newly_at_risk, .. }) => {
                            summary.written += 1;
                            summary.newly_at_risk += usize::from(newly_at_risk);
                        }
                        Ok(Decision::Stale) => summary.stale_rejected += 1,
                        Ok(Decision::Unchanged) => summary.skipped_unchanged += 1,
                        Err(f) => summary.failed.push(f),
                    }
                }
            }
            WriteStrategy::Batch => {
                let mut chunks: Vec<Vec<Pending>> = Vec::new();
                let mut rest = pending;
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
        }
        Ok(summary)
    }

    async fn get(&self, customer_id: &str) -> Result<Option<Flag>> {
        let out = self
            .read_with_retries("get_item", || {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key("customer_id", AttributeValue::S(customer_id.to_string()))
                    .consistent_read(true)
                    .send()
            })
            .await?;
        out.item().map(from_item).transpose()
    }

    async fn risk_list(&self, band: RiskBand, limit: usize, cursor: Option<&str>) -> Result<Page> {
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

    async fn create_table_if_missing(&self) -> Result<()> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {}
            Err(e) => {
                return Err(Error::storage(
                    BACKEND,
                    "describe_table",
                    DisplayErrorContext(&e),
                ))
            }
        }
        let build =
            |e: aws_sdk_dynamodb::error::BuildError| Error::storage(BACKEND, "create_table", e);
        let attr = |name: &str, t: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(t)
                .build()
                .map_err(build)
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
                .map_err(build)
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(RISK_LIST_INDEX)
            .key_schema(key("risk_list_pk", KeyType::Hash)?)
            .key_schema(key("churn_probability", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(build)?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("customer_id", ScalarAttributeType::S)?)
            .attribute_definitions(attr("risk_list_pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("churn_probability", ScalarAttributeType::N)?)
            .key_schema(key("customer_id", KeyType::Hash)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Created concurrently by someone else: fine.
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => {
                return Err(Error::storage(
                    BACKEND,
                    "create_table",
                    DisplayErrorContext(&e),
                ))
            }
        }
        // Real DynamoDB takes a few seconds to make the table ACTIVE.
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| Error::storage(BACKEND, "describe_table", DisplayErrorContext(&e)))?;
            let status = out.table().and_then(|t| t.table_status());
            if status == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Err(Error::storage(
            BACKEND,
            "create_table",
            "table did not become ACTIVE within 60 s",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::Reason;

    #[test]
    fn items_round_trip_and_keep_the_gsi_sparse() {
        let mut f = Flag::new(
            "c1",
            0.8125,
            RiskBand::High,
            vec![Reason {
                feature: "logins_30d".into(),
                value: serde_json::json!(2),
                typical: serde_json::json!(14),
                contribution: 0.7,
            }],
            "m1",
            timestamp::now(),
        );
        f.previous_band = Some(RiskBand::Low);
        f.band_changed_at = Some(f.scored_at);
        let item = to_item(&f, 8);
        assert_eq!(
            item["risk_list_pk"].as_s().unwrap(),
            &format!("high#{}", super::super::shard_of("c1", 8))
        );
        assert_eq!(from_item(&item).unwrap(), f);
        f.risk_band = RiskBand::Low;
        assert!(!to_item(&f, 8).contains_key("risk_list_pk"));
        let mut broken = item.clone();
        broken.insert("reasons".into(), AttributeValue::S("{".into()));
        assert!(matches!(from_item(&broken), Err(Error::Corrupt { .. })));
    }
}
