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
//!   read-decide-write cycle, typically milliseconds); the same holds for an
//!   acknowledgement given in that window, which the batch's item (carrying
//!   the acknowledgement it read) replaces. Only correct when a single writer
//!   owns each customer at a time, such as a sharded rescore with the score
//!   endpoint not persisting and nobody acknowledging during the run; it is
//!   offered for that case
//!   because it needs 25x fewer requests (`CHURN_FLAG_WRITES=batch`).
//!
//! Throttling (ProvisionedThroughputExceeded, ThrottlingException,
//! RequestLimitExceeded, 5xx, timeouts) and UnprocessedKeys/UnprocessedItems
//! are retried with exponential backoff and full jitter until the deadline;
//! whatever is still unwritten then is reported in `WriteSummary::failed`.
//!
//! # The item
//! One item per customer holds the flag, its attributes, its
//! acknowledgement and its score history (a compact list, trimmed to the
//! window on each write: see `codec`), and a revision `rev` that every write
//! and acknowledgement increments; a put is conditional on the revision it
//! read, so an acknowledgement given between a rescore's read and its write
//! is never overwritten. The item-size and capacity arithmetic is in
//! docs/CONTRACTS.md.
//!
//! # Risk lists
//! The sparse GSI `risk-list` is keyed by `risk_list_pk = "<band>#<shard>"`
//! (set only while at risk) and sorted by `churn_probability`; the sparse GSI
//! `owner-risk-list` by `owner_list_pk = "<owner>#<band>"` (at risk and with
//! an owner). A page queries every partition of the list (descending),
//! merges them, and the cursor records per partition where the next page
//! resumes (see `reads`).

//!
//! # Layout
//! - this file: the store, its settings and the [`FlagStore`] impl (decides
//!   each flag of a batch against what is stored; creates the table);
//! - `codec`: the item of a flag and back;
//! - `retry`: the one retry loop every call goes through (`Outcome`,
//!   `retrying`, error classification);
//! - `writes`: batch reads of stored items and the two write strategies;
//! - `events`: the outbox (a write's event on the flag's own item, then in
//!   its event item; the indexes; delivery marks);
//! - `reads`: a customer's flag and risk-list pages.

mod codec;
mod events;
mod reads;
mod retry;
mod writes;

use super::{decide, prepare_batch};
use super::{Decision, FlagStore, HistoryWindow, ListQuery, Summary, SummaryBy};
use crate::error::{Error, Result};
use crate::flag::{Acknowledgement, CustomerRecord, Flag, Page, WriteFailure, WriteSummary};
use crate::notify::EventOrigin;
use crate::retry::RetryPolicy;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use codec::decode;
pub use events::{EVENTS_BY_TIME_INDEX, EVENTS_PENDING_INDEX};
use std::time::Instant;
use writes::Pending;

const BACKEND: &str = "dynamodb";
/// Name of the sparse risk-list GSI (also in `infra/`).
pub const RISK_LIST_INDEX: &str = "risk-list";
/// Name of the sparse per-owner risk-list GSI (also in `infra/`).
pub const OWNER_LIST_INDEX: &str = "owner-risk-list";
/// BatchGetItem accepts at most 100 keys.
pub const BATCH_GET_MAX: usize = 100;
/// BatchWriteItem accepts at most 25 requests.
pub const BATCH_WRITE_MAX: usize = 25;

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
    history: HistoryWindow,
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
            history: HistoryWindow::default(),
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

    /// Keeps `window` of score history per customer (default 180 days).
    pub fn with_history(mut self, window: HistoryWindow) -> Self {
        self.history = window;
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl FlagStore for DynamoFlagStore {
    async fn write_scores(
        &self,
        flags: &[Flag],
        epsilon: f64,
        deadline: Instant,
        origin: &EventOrigin,
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

        let mut decoded = Vec::new();
        for flag in todo
            .into_iter()
            .filter(|f| !unreadable.contains(&f.customer_id))
        {
            match stored.get(&flag.customer_id).map(decode).transpose() {
                Ok(old) => decoded.push((flag, old)),
                Err(e) => summary.failed.push(WriteFailure {
                    customer_id: flag.customer_id.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        // An event a crash left on its flag's item goes to its own item
        // before anything replaces it there.
        let stuck = self.project_leftovers(&decoded).await;
        let now = crate::timestamp::now();
        let mut pending = Vec::new();
        for (flag, old) in decoded {
            if let Some(reason) = stuck.get(&flag.customer_id) {
                summary.failed.push(WriteFailure {
                    customer_id: flag.customer_id.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            match decide(old.as_ref().map(|s| &s.flag), &flag, epsilon) {
                Decision::Stale => summary.stale_rejected += 1,
                Decision::Unchanged => summary.skipped_unchanged += 1,
                Decision::Write {
                    flag: decided,
                    newly_at_risk,
                } => pending.push(Pending::new(
                    flag,
                    *decided,
                    newly_at_risk,
                    old.as_ref(),
                    self.history,
                    origin,
                    now,
                )),
            }
        }
        self.write_decided(pending, epsilon, deadline, origin, &mut summary)
            .await;
        Ok(summary)
    }

    async fn customer(
        &self,
        customer_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<Option<CustomerRecord>> {
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
        let Some(stored) = out.item().map(decode).transpose()? else {
            return Ok(None);
        };
        let mut history = stored.history;
        history.reverse();
        Ok(Some(CustomerRecord {
            flag: stored.flag.seen_at(now),
            history,
        }))
    }

    async fn acknowledge(&self, customer_id: &str, ack: &Acknowledgement) -> Result<Flag> {
        self.set_ack(customer_id, Some(ack)).await
    }

    async fn unacknowledge(&self, customer_id: &str) -> Result<Flag> {
        self.set_ack(customer_id, None).await
    }

    async fn list(&self, query: &ListQuery, limit: usize, cursor: Option<&str>) -> Result<Page> {
        self.list_page(query, limit, cursor).await
    }

    async fn summaries(&self, by: &[SummaryBy]) -> Result<Vec<Summary>> {
        self.summarise(by).await
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
            Err(e) => return Err(Error::storage(BACKEND, "describe_table", e)),
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
        let gsi = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build)
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("customer_id", ScalarAttributeType::S)?)
            .attribute_definitions(attr("risk_list_pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("owner_list_pk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("churn_probability", ScalarAttributeType::N)?)
            .attribute_definitions(attr("event_day", ScalarAttributeType::S)?)
            .attribute_definitions(attr("event_sk", ScalarAttributeType::S)?)
            .attribute_definitions(attr("event_pending", ScalarAttributeType::S)?)
            .key_schema(key("customer_id", KeyType::Hash)?)
            .global_secondary_indexes(gsi(RISK_LIST_INDEX, "risk_list_pk", "churn_probability")?)
            .global_secondary_indexes(gsi(OWNER_LIST_INDEX, "owner_list_pk", "churn_probability")?)
            // The outbox's (see `events`); the deployed table also has a
            // TTL on `expires_at`, set by infra/.
            .global_secondary_indexes(gsi(EVENTS_BY_TIME_INDEX, "event_day", "event_sk")?)
            .global_secondary_indexes(gsi(EVENTS_PENDING_INDEX, "event_pending", "event_sk")?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Created concurrently by someone else: fine.
            Err(e) if e.code() == Some("ResourceInUseException") => {}
            Err(e) => return Err(Error::storage(BACKEND, "create_table", e)),
        }
        // Real DynamoDB takes a few seconds to make the table ACTIVE.
        for _ in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| Error::storage(BACKEND, "describe_table", e))?;
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
