//! DynamoDB paths moto never exercises, through the fault-injecting proxy:
//! the 25-item BatchWriteItem limit, throttling, UnprocessedItems, deadlines.

use super::flag_contract::{flag, run_contract};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use churn_model::RiskBand;
use churn_service::flag::Flag;
use churn_service::flag_store::dynamo::{WriteStrategy, BATCH_WRITE_MAX};
use churn_service::flag_store::{DynamoFlagStore, FlagStore};
use churn_service::retry::RetryPolicy;
use churn_service::test_support::{aws_clients, unique_name, FaultProxy, MotoServer};
use std::time::{Duration, Instant};

const FAST: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(5),
    cap: Duration::from_millis(40),
};

struct Rig {
    _moto: MotoServer,
    proxy: FaultProxy,
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Rig {
    async fn start() -> Rig {
        let moto = MotoServer::start().await.unwrap();
        let proxy = FaultProxy::start(moto.addr()).await.unwrap();
        let client = aws_clients(&proxy.endpoint_url()).await.dynamodb;
        let table = unique_name("faults");
        DynamoFlagStore::new(client.clone(), &table, 4)
            .create_table_if_missing()
            .await
            .unwrap();
        Rig {
            _moto: moto,
            proxy,
            client,
            table,
        }
    }

    fn store(&self, strategy: WriteStrategy) -> DynamoFlagStore {
        DynamoFlagStore::new(self.client.clone(), &self.table, 4)
            .with_strategy(strategy)
            .with_retry(FAST)
    }
}

/// Waits until the proxy has held a request back.
async fn until_throttled(rig: &Rig) {
    for _ in 0..500 {
        if rig.proxy.stats().throttled > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no request was held back");
}

/// `n` new low-risk flags: plain writes (no risk-change event, so no
/// transaction), the paths the write strategies own.
fn flags(n: usize, prefix: &str) -> Vec<Flag> {
    banded(n, prefix, RiskBand::Low)
}

/// `n` new flags of `band`.
fn banded(n: usize, prefix: &str, band: RiskBand) -> Vec<Flag> {
    (0..n)
        .map(|i| {
            flag(
                &format!("{prefix}-{i:03}"),
                0.05 + i as f64 / (40.0 * n as f64),
                band,
                0,
            )
        })
        .collect()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

async fn stored_ids(store: &DynamoFlagStore, batch: &[Flag]) -> Vec<String> {
    let mut out = Vec::new();
    for f in batch {
        if store.get(&f.customer_id).await.unwrap().is_some() {
            out.push(f.customer_id.clone());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_rejects_oversized_batches_like_dynamodb() {
    let rig = Rig::start().await;
    let requests: Vec<WriteRequest> = (0..26)
        .map(|i| {
            let item = [(
                "customer_id".to_string(),
                AttributeValue::S(format!("x{i}")),
            )]
            .into();
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    let err = rig
        .client
        .batch_write_item()
        .request_items(&rig.table, requests)
        .send()
        .await
        .expect_err("26 items must be refused");
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(rig.proxy.stats().oversized_rejected, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_are_chunked_to_25() {
    let rig = Rig::start().await;
    let store = rig.store(WriteStrategy::Batch);
    let batch = flags(60, "chunk");
    let s = store.write_batch(&batch, 0.01, soon()).await.unwrap();
    assert_eq!(
        (s.written, s.newly_at_risk, s.failed.len()),
        (60, 0, 0),
        "{s:?}"
    );
    let stats = rig.proxy.stats();
    assert_eq!(stats.oversized_rejected, 0);
    let mut sizes = stats.batch_write_sizes.clone();
    sizes.sort_unstable();
    assert_eq!(sizes, [10, 25, 25]);
    assert!(sizes.iter().all(|n| *n <= BATCH_WRITE_MAX));
    // 60 keys: one BatchGetItem (100-key limit) decides them all.
    assert_eq!(stats.requests.get("BatchGetItem"), Some(&1));
    assert_eq!(stored_ids(&store, &batch).await.len(), 60);

    // Rerun unchanged: read only, nothing written.
    let again: Vec<Flag> = batch
        .iter()
        .map(|f| Flag {
            scored_at: f.scored_at + time::Duration::hours(1),
            ..f.clone()
        })
        .collect();
    let s = store.write_batch(&again, 0.01, soon()).await.unwrap();
    assert_eq!((s.skipped_unchanged, s.written), (60, 0));
    assert_eq!(
        rig.proxy.stats().batch_write_sizes.len(),
        3,
        "no new BatchWriteItem"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_until_written() {
    let rig = Rig::start().await;
    // Conditional puts: the first 5 requests of any kind are throttled.
    rig.proxy.throttle_next(5, None);
    let store = rig.store(WriteStrategy::Conditional);
    let batch = flags(12, "thr");
    let s = store.write_batch(&batch, 0.01, soon()).await.unwrap();
    assert_eq!((s.written, s.failed.len()), (12, 0), "{s:?}");
    assert_eq!(rig.proxy.stats().throttled, 5);

    // Batch writes: BatchWriteItem throttled 3 times.
    rig.proxy.throttle_next(3, Some("BatchWriteItem"));
    let batch = flags(30, "thr-batch");
    let s = rig
        .store(WriteStrategy::Batch)
        .write_batch(&batch, 0.01, soon())
        .await
        .unwrap();
    assert_eq!((s.written, s.failed.len()), (30, 0), "{s:?}");
    assert_eq!(rig.proxy.stats().throttled, 8);
    assert_eq!(stored_ids(&store, &batch).await.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_items_are_retried() {
    let rig = Rig::start().await;
    rig.proxy.hold_back_items(30, 10);
    let store = rig.store(WriteStrategy::Batch);
    let batch = flags(50, "unp");
    let s = store.write_batch(&batch, 0.01, soon()).await.unwrap();
    assert_eq!((s.written, s.failed.len()), (50, 0), "{s:?}");
    let stats = rig.proxy.stats();
    assert_eq!(stats.unprocessed_returned, 30);
    assert!(
        stats.batch_write_sizes.len() > 2,
        "held items were sent again: {stats:?}"
    );
    assert_eq!(stored_ids(&store, &batch).await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_reports_every_unwritten_item() {
    let rig = Rig::start().await;

    // BatchWriteItem throttled forever: nothing written, everything reported.
    rig.proxy.throttle_next(usize::MAX, Some("BatchWriteItem"));
    let store = rig.store(WriteStrategy::Batch);
    let batch = flags(30, "dl-batch");
    let started = Instant::now();
    let s = store
        .write_batch(&batch, 0.01, Instant::now() + Duration::from_millis(400))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "gives up at the deadline"
    );
    assert_eq!((s.written, s.failed.len()), (0, 30), "{s:?}");
    assert!(
        s.failed
            .iter()
            .all(|f| f.reason.contains("deadline")
                && f.reason.contains("ProvisionedThroughputExceeded")),
        "{:?}",
        s.failed[0]
    );
    assert!(stored_ids(&store, &batch).await.is_empty());

    // PutItem throttled forever (conditional strategy).
    rig.proxy.throttle_next(usize::MAX, Some("PutItem"));
    let s = rig
        .store(WriteStrategy::Conditional)
        .write_batch(
            &flags(5, "dl-put"),
            0.01,
            Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert_eq!((s.written, s.failed.len()), (0, 5), "{s:?}");

    // The read that decides skip/stale throttled forever.
    rig.proxy.throttle_next(usize::MAX, Some("BatchGetItem"));
    let s = store
        .write_batch(
            &flags(5, "dl-get"),
            0.01,
            Instant::now() + Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert_eq!((s.written, s.failed.len()), (0, 5), "{s:?}");
    assert!(
        s.failed[0].reason.contains("reading the stored flag"),
        "{:?}",
        s.failed[0]
    );

    // Items held back forever: what got through is written, the rest reported.
    rig.proxy.throttle_next(0, None);
    rig.proxy.hold_back_items(usize::MAX, 10);
    let batch = flags(40, "dl-unp");
    let s = store
        .write_batch(&batch, 0.01, Instant::now() + Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(s.written + s.failed.len(), 40, "{s:?}");
    assert!(s.written > 0 && !s.failed.is_empty(), "{s:?}");
    let stored = stored_ids(&store, &batch).await;
    assert_eq!(stored.len(), s.written);
    assert!(
        s.failed.iter().all(|f| !stored.contains(&f.customer_id)),
        "failed means not written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_write_loses_to_a_newer_concurrent_score() {
    // Simulate the race: a writer decided from an old read, then a newer
    // score landed. The conditional put must re-read and reject as stale.
    // (Low to low: no event, so a plain conditional PutItem; the same race
    // with an event is `an_event_write_loses_to_a_newer_concurrent_score`.)
    let rig = Rig::start().await;
    let store = rig.store(WriteStrategy::Conditional);
    store
        .write_batch(&[flag("race", 0.2, RiskBand::Low, 0)], 0.01, soon())
        .await
        .unwrap();
    // Hold the slow writer's PutItem back (throttled) after its read...
    rig.proxy.throttle_next(usize::MAX, Some("PutItem"));
    let slow = {
        let store = rig.store(WriteStrategy::Conditional);
        tokio::spawn(async move {
            store
                .write_batch(&[flag("race", 0.3, RiskBand::Low, 10)], 0.01, soon())
                .await
                .unwrap()
        })
    };
    until_throttled(&rig).await;
    // ...while a newer score lands (through BatchWriteItem, not throttled)...
    let fast = rig
        .store(WriteStrategy::Batch)
        .write_batch(&[flag("race", 0.4, RiskBand::Low, 20)], 0.01, soon())
        .await
        .unwrap();
    assert_eq!(fast.written, 1);
    // ...then let the slow writer through: its condition fails, it re-reads
    // and finds its score is now the stale one.
    rig.proxy.throttle_next(0, None);
    let slow = slow.await.unwrap();
    assert_eq!((slow.written, slow.stale_rejected), (0, 1), "{slow:?}");
    let got = store.get("race").await.unwrap().unwrap();
    assert_eq!(got.churn_probability, 0.4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_writes_survive_throttling_in_both_strategies() {
    use churn_service::notify::{EventFilter, Outbox};
    let rig = Rig::start().await;
    for strategy in [WriteStrategy::Conditional, WriteStrategy::Batch] {
        rig.proxy.throttle_next(3, None);
        let store = rig.store(strategy);
        let prefix = format!("ev-{strategy:?}");
        let batch = banded(60, &prefix, RiskBand::High);
        let s = store.write_batch(&batch, 0.01, soon()).await.unwrap();
        assert_eq!(
            (s.written, s.events.became_at_risk, s.failed.len()),
            (60, 60, 0),
            "{s:?}"
        );
        let events = store
            .events(&EventFilter::default(), None, 1000)
            .await
            .unwrap();
        let ours = events
            .iter()
            .filter(|e| e.event.customer_id.starts_with(&prefix))
            .count();
        assert_eq!(ours, 60, "one event item per flag");
        // Each flag's item no longer carries its event once it has its own.
        let raw = rig
            .client
            .get_item()
            .table_name(store.table())
            .key("customer_id", AttributeValue::S(format!("{prefix}-000")))
            .send()
            .await
            .unwrap();
        assert!(!raw.item().unwrap().contains_key("unprojected"));
    }
    assert!(rig.proxy.stats().throttled >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_a_crash_left_on_the_flag_is_recorded_by_the_next_write() {
    use churn_service::notify::{EventFilter, Outbox};
    let rig = Rig::start().await;
    let store = rig.store(WriteStrategy::Conditional);
    store
        .write_batch(&[flag("crash", 0.9, RiskBand::High, 0)], 0.01, soon())
        .await
        .unwrap();
    let recorded = store
        .events(&EventFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    // What a crash between the flag's put and the event's own item leaves:
    // the event on the flag's item only.
    let id = recorded[0].event.id.clone();
    rig.client
        .delete_item()
        .table_name(store.table())
        .key(
            "customer_id",
            AttributeValue::S(format!("\u{1f}event\u{1f}{id}")),
        )
        .send()
        .await
        .unwrap();
    rig.client
        .update_item()
        .table_name(store.table())
        .key("customer_id", AttributeValue::S("crash".into()))
        .update_expression("SET unprojected = :e")
        .expression_attribute_values(
            ":e",
            AttributeValue::S(serde_json::to_string(&recorded[0]).unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert!(store
        .events(&EventFilter::default(), None, 10)
        .await
        .unwrap()
        .is_empty());
    // The next rescore's score is unchanged: nothing is written, but the
    // event it found is recorded, once, and leaves the flag's item.
    let s = store
        .write_batch(&[flag("crash", 0.9, RiskBand::High, 1)], 0.01, soon())
        .await
        .unwrap();
    assert_eq!(s.skipped_unchanged, 1);
    let after = store
        .events(&EventFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(after, recorded);
    let raw = rig
        .client
        .get_item()
        .table_name(store.table())
        .key("customer_id", AttributeValue::S("crash".into()))
        .send()
        .await
        .unwrap();
    assert!(!raw.item().unwrap().contains_key("unprojected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_write_loses_to_a_newer_concurrent_score() {
    use churn_service::notify::{EventFilter, Outbox};
    let rig = Rig::start().await;
    let store = rig.store(WriteStrategy::Conditional);
    store
        .write_batch(&[flag("race", 0.2, RiskBand::Low, 0)], 0.01, soon())
        .await
        .unwrap();
    // The slow writer's move to high (it records an event) is held back...
    rig.proxy.throttle_next(usize::MAX, Some("PutItem"));
    let slow = {
        let store = rig.store(WriteStrategy::Conditional);
        tokio::spawn(async move {
            store
                .write_batch(&[flag("race", 0.9, RiskBand::High, 10)], 0.01, soon())
                .await
                .unwrap()
        })
    };
    until_throttled(&rig).await;
    // ...while a newer low score lands...
    let fast = rig
        .store(WriteStrategy::Batch)
        .write_batch(&[flag("race", 0.3, RiskBand::Low, 20)], 0.01, soon())
        .await
        .unwrap();
    assert_eq!(fast.written, 1);
    // ...then its put fails its condition, it reads again and is stale:
    // neither the flag nor an event is written.
    rig.proxy.throttle_next(0, None);
    let slow = slow.await.unwrap();
    assert_eq!(
        (slow.written, slow.stale_rejected, slow.events.total()),
        (0, 1, 0),
        "{slow:?}"
    );
    assert_eq!(
        store.get("race").await.unwrap().unwrap().risk_band,
        RiskBand::Low
    );
    let events = store
        .events(&EventFilter::default(), None, 10)
        .await
        .unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_holds_under_throttling_and_unprocessed_items() {
    // The whole flag contract again, through the proxy, with faults armed
    // before every case: results must be the same as without faults.
    let rig = Rig::start().await;
    for strategy in [WriteStrategy::Batch, WriteStrategy::Conditional] {
        run_contract(&format!("dynamodb/{strategy:?} under faults"), || async {
            let store = DynamoFlagStore::new(rig.client.clone(), unique_name("faulty"), 4)
                .with_strategy(strategy)
                .with_retry(FAST);
            store.create_table_if_missing().await.unwrap();
            rig.proxy.throttle_next(3, None);
            rig.proxy.hold_back_items(20, 7);
            Box::new(store) as Box<dyn FlagStore>
        })
        .await;
    }
    let stats = rig.proxy.stats();
    assert!(
        stats.throttled > 0 && stats.unprocessed_returned > 0,
        "{stats:?}"
    );
}
