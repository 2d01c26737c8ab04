//! The flag store contract, written once against `&dyn FlagStore`.

use churn_model::{Reason, RiskBand};
use churn_service::flag::Flag;
use churn_service::flag_store::dynamo::WriteStrategy;
use churn_service::flag_store::{DynamoFlagStore, FlagStore, SqliteFlagStore};
use churn_service::test_support::{unique_name, MotoServer};
use churn_service::Error;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use time::macros::datetime;
use time::OffsetDateTime;

use super::account_contract as account;

const SHARDS: u32 = 4;
pub const EPS: f64 = 0.01;

fn t(secs: i64) -> OffsetDateTime {
    datetime!(2025-03-01 09:00 UTC) + time::Duration::seconds(secs)
}

pub fn flag(id: &str, p: f64, band: RiskBand, secs: i64) -> Flag {
    Flag::new(
        id,
        p,
        band,
        vec![Reason {
            feature: "logins_30d".into(),
            value: serde_json::json!(2),
            typical: serde_json::json!(14.5),
            contribution: 0.42,
            with: None,
        }],
        "model-a",
        t(secs),
    )
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

type Case = for<'a> fn(&'a dyn FlagStore) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Every case with its name; each runs on a fresh, empty store.
pub fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("get_missing_is_none", |s| Box::pin(get_missing_is_none(s))),
        ("first_write_round_trips", |s| {
            Box::pin(first_write_round_trips(s))
        }),
        ("stale_write_is_rejected", |s| {
            Box::pin(stale_write_is_rejected(s))
        }),
        ("unchanged_is_skipped", |s| {
            Box::pin(unchanged_is_skipped(s))
        }),
        ("band_change_keeps_history", |s| {
            Box::pin(band_change_keeps_history(s))
        }),
        ("duplicates_and_invalid_input", |s| {
            Box::pin(duplicates_and_invalid_input(s))
        }),
        ("risk_list_orders_and_paginates", |s| {
            Box::pin(risk_list_orders_and_paginates(s))
        }),
        ("risk_list_rejects_bad_requests", |s| {
            Box::pin(risk_list_rejects_bad_requests(s))
        }),
        ("risk_list_pages_ties_once", |s| {
            Box::pin(risk_list_pages_ties_once(s))
        }),
        ("history_appends_trims_and_trends", |s| {
            Box::pin(account::history_appends_trims_and_trends(s))
        }),
        ("attribute_only_change_is_written", |s| {
            Box::pin(account::attribute_only_change_is_written(s))
        }),
        ("acknowledgement_survives_rescores_and_ends", |s| {
            Box::pin(account::acknowledgement_survives_rescores_and_ends(s))
        }),
        ("escalation_to_high_ends_acknowledgement", |s| {
            Box::pin(account::escalation_to_high_ends_acknowledgement(s))
        }),
        ("lists_filter_sort_and_paginate", |s| {
            Box::pin(account::lists_filter_sort_and_paginate(s))
        }),
        ("summary_counts_customers_and_value", |s| {
            Box::pin(account::summary_counts_customers_and_value(s))
        }),
    ]
}

/// Runs every case, each on a store from `make`.
pub async fn run_contract<F, Fut>(adapter: &str, make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn FlagStore>>,
{
    for (name, case) in cases() {
        let store = make().await;
        eprintln!("flag contract [{adapter}] {name}");
        case(store.as_ref()).await;
    }
}

async fn get_missing_is_none(store: &dyn FlagStore) {
    assert_eq!(store.get("nobody").await.unwrap(), None);
}

async fn first_write_round_trips(store: &dyn FlagStore) {
    let f = flag("c1", 0.8125, RiskBand::High, 0);
    let s = store
        .write_batch(
            &[f.clone(), flag("c2", 0.1, RiskBand::Low, 0)],
            EPS,
            deadline(),
        )
        .await
        .unwrap();
    assert_eq!((s.written, s.newly_at_risk, s.total()), (2, 1, 2), "{s:?}");
    let got = store.get("c1").await.unwrap().expect("stored");
    assert_eq!(got.churn_probability, 0.8125);
    assert_eq!(got.risk_band, RiskBand::High);
    assert_eq!(got.reasons, f.reasons);
    assert_eq!(got.model_id, "model-a");
    assert_eq!(got.scored_at, t(0));
    assert_eq!(got.previous_band, None);
    assert_eq!(got.band_changed_at, Some(t(0)));
}

async fn stale_write_is_rejected(store: &dyn FlagStore) {
    store
        .write_batch(&[flag("c1", 0.9, RiskBand::High, 100)], EPS, deadline())
        .await
        .unwrap();
    // Older, and equally old, scores must not overwrite.
    for secs in [50, 100] {
        let s = store
            .write_batch(&[flag("c1", 0.1, RiskBand::Low, secs)], EPS, deadline())
            .await
            .unwrap();
        assert_eq!((s.stale_rejected, s.written), (1, 0), "{s:?}");
    }
    let got = store.get("c1").await.unwrap().unwrap();
    assert_eq!((got.churn_probability, got.scored_at), (0.9, t(100)));
}

async fn unchanged_is_skipped(store: &dyn FlagStore) {
    store
        .write_batch(&[flag("c1", 0.50, RiskBand::Medium, 0)], EPS, deadline())
        .await
        .unwrap();
    let s = store
        .write_batch(&[flag("c1", 0.505, RiskBand::Medium, 10)], EPS, deadline())
        .await
        .unwrap();
    assert_eq!((s.skipped_unchanged, s.written), (1, 0), "{s:?}");
    let got = store.get("c1").await.unwrap().unwrap();
    assert_eq!(
        (got.churn_probability, got.scored_at),
        (0.50, t(0)),
        "skipped means not rewritten"
    );

    // Moving by epsilon or more in the same band is written; history kept.
    let s = store
        .write_batch(&[flag("c1", 0.52, RiskBand::Medium, 20)], EPS, deadline())
        .await
        .unwrap();
    assert_eq!((s.written, s.newly_at_risk), (1, 0), "{s:?}");
    let got = store.get("c1").await.unwrap().unwrap();
    assert_eq!((got.churn_probability, got.scored_at), (0.52, t(20)));
    assert_eq!((got.previous_band, got.band_changed_at), (None, Some(t(0))));
}

async fn band_change_keeps_history(store: &dyn FlagStore) {
    store
        .write_batch(&[flag("c1", 0.10, RiskBand::Low, 0)], EPS, deadline())
        .await
        .unwrap();
    // A small probability move that crosses a band is never skipped.
    let s = store
        .write_batch(&[flag("c1", 0.105, RiskBand::High, 10)], EPS, deadline())
        .await
        .unwrap();
    assert_eq!((s.written, s.newly_at_risk), (1, 1), "{s:?}");
    let got = store.get("c1").await.unwrap().unwrap();
    assert_eq!(
        (got.previous_band, got.band_changed_at),
        (Some(RiskBand::Low), Some(t(10)))
    );
    assert_eq!(
        store
            .risk_list(RiskBand::High, 10, None)
            .await
            .unwrap()
            .flags
            .len(),
        1
    );

    let s = store
        .write_batch(&[flag("c1", 0.5, RiskBand::Medium, 20)], EPS, deadline())
        .await
        .unwrap();
    assert_eq!(
        (s.written, s.newly_at_risk),
        (1, 0),
        "high -> medium is not newly at risk"
    );
    assert!(store
        .risk_list(RiskBand::High, 10, None)
        .await
        .unwrap()
        .flags
        .is_empty());
    assert_eq!(
        store
            .risk_list(RiskBand::Medium, 10, None)
            .await
            .unwrap()
            .flags
            .len(),
        1
    );

    store
        .write_batch(&[flag("c1", 0.05, RiskBand::Low, 30)], EPS, deadline())
        .await
        .unwrap();
    let got = store.get("c1").await.unwrap().unwrap();
    assert_eq!(
        (got.previous_band, got.band_changed_at),
        (Some(RiskBand::Medium), Some(t(30)))
    );
    assert!(
        store
            .risk_list(RiskBand::Medium, 10, None)
            .await
            .unwrap()
            .flags
            .is_empty(),
        "leaves the list"
    );
}

async fn duplicates_and_invalid_input(store: &dyn FlagStore) {
    let batch = [
        flag("c1", 0.2, RiskBand::Low, 1),
        flag("c1", 0.9, RiskBand::High, 3),
        flag("c1", 0.5, RiskBand::Medium, 2),
        flag("", 0.5, RiskBand::Medium, 2),
        flag("c2", 1.5, RiskBand::High, 2),
    ];
    let s = store.write_batch(&batch, EPS, deadline()).await.unwrap();
    assert_eq!(
        (s.written, s.stale_rejected, s.failed.len(), s.total()),
        (1, 2, 2, 5),
        "{s:?}"
    );
    assert!(s
        .failed
        .iter()
        .any(|f| f.customer_id == "c2" && f.reason.contains("churn_probability")));
    assert_eq!(
        store.get("c1").await.unwrap().unwrap().churn_probability,
        0.9
    );
    assert_eq!(store.get("c2").await.unwrap(), None);
    assert!(matches!(
        store.write_batch(&batch, 1.5, deadline()).await,
        Err(Error::InvalidInput {
            field: "epsilon",
            ..
        })
    ));
    let empty = store.write_batch(&[], EPS, deadline()).await.unwrap();
    assert_eq!(empty.total(), 0);
}

async fn risk_list_orders_and_paginates(store: &dyn FlagStore) {
    // Seeded data, distinct probabilities, enough customers to hit every shard.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut seen = HashSet::new();
    let mut flags = Vec::new();
    for i in 0..60 {
        let p = loop {
            let p = (rng.gen_range(0.0..1.0f64) * 1e6).round() / 1e6;
            if seen.insert(p.to_bits()) {
                break p;
            }
        };
        let band = if p >= 0.6 {
            RiskBand::High
        } else if p >= 0.3 {
            RiskBand::Medium
        } else {
            RiskBand::Low
        };
        flags.push(flag(&format!("cust-{i:03}"), p, band, 0));
    }
    let s = store.write_batch(&flags, EPS, deadline()).await.unwrap();
    assert_eq!(s.written, 60, "{s:?}");

    for band in [RiskBand::High, RiskBand::Medium] {
        let mut expected: Vec<(String, f64)> = flags
            .iter()
            .filter(|f| f.risk_band == band)
            .map(|f| (f.customer_id.clone(), f.churn_probability))
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert!(expected.len() > 10, "seed gives a real list");

        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store.risk_list(band, 7, cursor.as_deref()).await.unwrap();
            assert!(page.flags.len() <= 7);
            assert!(page.flags.iter().all(|f| f.risk_band == band));
            got.extend(
                page.flags
                    .iter()
                    .map(|f| (f.customer_id.clone(), f.churn_probability)),
            );
            pages += 1;
            assert!(pages < 50, "pagination does not terminate");
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(
            got, expected,
            "{band}: every at-risk customer once, by probability"
        );
        assert!(pages >= expected.len().div_ceil(7));

        // One big page equals the concatenated small ones.
        let all = store.risk_list(band, 1000, None).await.unwrap();
        assert_eq!(all.flags.len(), expected.len());
        assert_eq!(all.next_cursor, None);
    }
}

async fn risk_list_rejects_bad_requests(store: &dyn FlagStore) {
    let batch: Vec<Flag> = (0..5)
        .map(|i| flag(&format!("c{i}"), 0.9 - i as f64 * 0.01, RiskBand::High, 0))
        .collect();
    store.write_batch(&batch, EPS, deadline()).await.unwrap();
    assert!(matches!(
        store.risk_list(RiskBand::Low, 10, None).await,
        Err(Error::BandNotListed(RiskBand::Low))
    ));
    assert!(matches!(
        store.risk_list(RiskBand::High, 0, None).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        store.risk_list(RiskBand::High, 5000, None).await,
        Err(Error::InvalidInput { .. })
    ));
    for garbage in ["", "not-a-cursor", "7b7d", "zz"] {
        assert!(
            matches!(
                store.risk_list(RiskBand::High, 2, Some(garbage)).await,
                Err(Error::InvalidCursor(_))
            ),
            "{garbage:?}"
        );
    }
    let page = store.risk_list(RiskBand::High, 2, None).await.unwrap();
    let cursor = page.next_cursor.expect("more pages");
    assert!(matches!(
        store.risk_list(RiskBand::Medium, 2, Some(&cursor)).await,
        Err(Error::InvalidCursor(_))
    ));
}

async fn risk_list_pages_ties_once(store: &dyn FlagStore) {
    // Many equal probabilities, within and across shards: every customer
    // must appear exactly once, in non-increasing probability.
    let batch: Vec<Flag> = (0..23)
        .map(|i| {
            flag(
                &format!("tie-{i:02}"),
                [0.9, 0.75, 0.75, 0.75, 0.7][i % 5],
                RiskBand::High,
                0,
            )
        })
        .collect();
    store.write_batch(&batch, EPS, deadline()).await.unwrap();
    for limit in [1, 2, 3, 5, 23] {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let page = store
                .risk_list(RiskBand::High, limit, cursor.as_deref())
                .await
                .unwrap();
            got.extend(page.flags);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert!(
            cursor.is_none(),
            "limit {limit}: pagination does not terminate"
        );
        let ids: HashSet<&str> = got.iter().map(|f| f.customer_id.as_str()).collect();
        assert_eq!(
            (got.len(), ids.len()),
            (23, 23),
            "limit {limit}: each customer once"
        );
        assert!(
            got.windows(2)
                .all(|w| w[0].churn_probability >= w[1].churn_probability),
            "limit {limit}: not sorted"
        );
    }
}

#[tokio::test]
async fn contract_sqlite_in_memory() {
    run_contract("sqlite", || async {
        Box::new(SqliteFlagStore::in_memory(SHARDS).await.unwrap()) as Box<dyn FlagStore>
    })
    .await;
}

#[tokio::test]
async fn contract_sqlite_file_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/flags.db");
    {
        let store = SqliteFlagStore::open(&path, SHARDS).await.unwrap();
        store
            .write_batch(&[flag("c1", 0.9, RiskBand::High, 0)], EPS, deadline())
            .await
            .unwrap();
    }
    let store = SqliteFlagStore::open(&path, SHARDS).await.unwrap();
    assert_eq!(
        store.get("c1").await.unwrap().unwrap().churn_probability,
        0.9
    );
}

/// A file written by a build before attributes, acknowledgements and
/// history existed opens with its flags intact and takes the new fields.
#[tokio::test]
async fn sqlite_file_from_an_older_build_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE flags (
                customer_id TEXT PRIMARY KEY NOT NULL, churn_probability REAL NOT NULL,
                risk_band TEXT NOT NULL, at_risk INTEGER NOT NULL, reasons TEXT NOT NULL,
                model_id TEXT NOT NULL, scored_at TEXT NOT NULL, previous_band TEXT,
                band_changed_at TEXT, risk_list_pk TEXT);
             INSERT INTO flags VALUES ('old-1', 0.9, 'high', 1, '[]', 'm0',
                '2025-01-01T00:00:00.000000Z', 'low', '2025-01-01T00:00:00.000000Z', 'high#0');",
        )
        .unwrap();
    }
    let store = SqliteFlagStore::open(&path, SHARDS).await.unwrap();
    let old = store.get("old-1").await.unwrap().unwrap();
    assert_eq!(
        (old.churn_probability, old.previous_band),
        (0.9, Some(RiskBand::Low))
    );
    assert!(old.attributes.is_empty() && old.acknowledgement.is_none());
    let page = store.risk_list(RiskBand::High, 10, None).await.unwrap();
    assert_eq!(page.flags.len(), 1);
    // New writes over the old row keep its band history and start a score history.
    let mut f = flag("old-1", 0.95, RiskBand::High, 0);
    f.attributes.owner = Some("ana@example.com".into());
    store.write_batch(&[f], EPS, deadline()).await.unwrap();
    let r = store.customer("old-1", t(0)).await.unwrap().unwrap();
    assert_eq!(r.flag.attributes.owner.as_deref(), Some("ana@example.com"));
    assert_eq!(r.flag.previous_band, Some(RiskBand::Low));
    assert_eq!(r.history.len(), 1);
}

async fn dynamo_store(moto: &MotoServer, strategy: WriteStrategy) -> Box<dyn FlagStore> {
    let clients = moto.clients().await;
    let store = DynamoFlagStore::new(clients.dynamodb, unique_name("flags"), SHARDS)
        .with_strategy(strategy);
    store.create_table_if_missing().await.unwrap();
    // Idempotent.
    store.create_table_if_missing().await.unwrap();
    Box::new(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_dynamodb_conditional_puts() {
    let moto = MotoServer::start().await.unwrap();
    run_contract("dynamodb/conditional", || {
        dynamo_store(&moto, WriteStrategy::Conditional)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_dynamodb_batch_writes() {
    let moto = MotoServer::start().await.unwrap();
    run_contract("dynamodb/batch", || {
        dynamo_store(&moto, WriteStrategy::Batch)
    })
    .await;
}
