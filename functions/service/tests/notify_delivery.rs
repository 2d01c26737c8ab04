//! Risk-change events end to end: flag writes record them in the outbox,
//! delivery sends them to real receivers on loopback ports (and to
//! EventBridge on moto through the fault proxy). The outbox contract runs
//! against both adapters: SQLite and DynamoDB on moto.

#[path = "shared/requests.rs"]
mod requests;

use churn_model::{Attributes, RiskBand};
use churn_service::flag::{Acknowledgement, Flag, WriteSummary};
use churn_service::flag_store::{DynamoFlagStore, FlagStore, SqliteFlagStore};
use churn_service::notify::settings::NotifyValues;
use churn_service::notify::webhook;
use churn_service::notify::{deliver, Destination, EventFilter, EventOrigin, Notifier, Outbox};
use churn_service::test_support::{unique_name, Answer, FaultProxy, MotoServer, Receiver};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::macros::datetime;
use time::OffsetDateTime;

const SECRET: &str = "s3cr3t";

/// One store as both ports.
#[derive(Clone)]
struct Stores {
    flags: Arc<dyn FlagStore>,
    outbox: Arc<dyn Outbox>,
}

async fn sqlite() -> Stores {
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    Stores {
        flags: store.clone(),
        outbox: store,
    }
}

async fn dynamo(moto: &MotoServer) -> Stores {
    let clients = moto.clients().await;
    let store = Arc::new(DynamoFlagStore::new(
        clients.dynamodb,
        unique_name("flags"),
        4,
    ));
    store.create_table_if_missing().await.unwrap();
    Stores {
        flags: store.clone(),
        outbox: store,
    }
}

fn at(day: i64) -> OffsetDateTime {
    datetime!(2026-11-01 06:00 UTC) + time::Duration::days(day)
}

fn flag(id: &str, p: f64, band: RiskBand, day: i64) -> Flag {
    Flag::new(id, p, band, vec![], "m1", at(day)).with_attributes(Attributes {
        name: Some(format!("Account {id}")),
        owner: Some("ana".into()),
        value: Some(1000.0),
        crm_id: Some(format!("crm-{id}")),
        ..Attributes::default()
    })
}

async fn write(stores: &Stores, flags: &[Flag], run: &str, due: &[Destination]) -> WriteSummary {
    let origin = EventOrigin {
        run_id: Some(run.into()),
        due: due.to_vec(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    stores
        .flags
        .write_scores(flags, 0.01, deadline, &origin)
        .await
        .unwrap()
}

fn values(webhook_url: Option<String>, slack_url: Option<String>, deadline: &str) -> NotifyValues {
    NotifyValues {
        webhook_secret: webhook_url.as_ref().map(|_| SECRET.to_string()),
        webhook_url,
        slack_url,
        deadline_secs: Some(deadline.into()),
        ..NotifyValues::default()
    }
}

fn notifier(values: NotifyValues) -> Notifier {
    Notifier::new(values.validate().unwrap(), None).unwrap()
}

/// `(type, customer)` of every event the webhook accepted, checking each
/// request's signature, delivery id and size on the way.
fn sent(receiver: &Receiver) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for r in receiver.accepted() {
        let sig = r.header(webhook::SIGNATURE_HEADER).unwrap();
        assert!(
            webhook::verify(SECRET, &r.body, &sig),
            "the signature verifies"
        );
        assert!(r
            .header(webhook::DELIVERY_HEADER)
            .unwrap()
            .starts_with("dlv_"));
        let events = r.json()["events"].as_array().unwrap().clone();
        assert!(!events.is_empty() && events.len() <= webhook::MAX_BATCH);
        for e in events {
            let pair = (
                e["type"].as_str().unwrap().to_string(),
                e["customer_id"].as_str().unwrap().to_string(),
            );
            assert!(out.insert(pair.clone()), "{pair:?} sent twice");
        }
    }
    out
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(t, c)| (t.to_string(), c.to_string()))
        .collect()
}

/// The contract: a scripted sequence of runs sends exactly the band moves.
async fn scripted_runs_send_exactly_the_band_moves(stores: Stores) {
    let hook = Receiver::start().await.unwrap();
    let n = notifier(values(Some(hook.url("/crm")), None, "5"));
    let due = [Destination::Webhook];
    use RiskBand::{High, Low, Medium};

    // Run 1: everyone new; a is low (no event), b and c became at risk.
    let s = write(
        &stores,
        &[
            flag("a", 0.1, Low, 0),
            flag("b", 0.5, Medium, 0),
            flag("c", 0.9, High, 0),
        ],
        "r1",
        &due,
    )
    .await;
    assert_eq!((s.events.became_at_risk, s.events.total()), (2, 2));
    let r = deliver(stores.outbox.as_ref(), &n, Some("r1")).await;
    assert_eq!((r.delivered(), r.pending()), (2, 0), "{r:?}");
    assert_eq!(
        sent(&hook),
        set(&[("became_at_risk", "b"), ("became_at_risk", "c")])
    );
    let first = hook.accepted()[0].json();
    let c = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["customer_id"] == "c")
        .unwrap()
        .clone();
    assert_eq!(c["old_band"], Value::Null);
    assert_eq!(c["new_band"], "high");
    assert_eq!(c["run_id"], "r1");
    assert_eq!(c["attributes"]["crm_id"], "crm-c");
    assert!(c["id"].as_str().unwrap().starts_with("evt_"));

    // Run 2: the same scores a day later: nothing moves, nothing is sent.
    hook.clear();
    let s = write(
        &stores,
        &[
            flag("a", 0.1, Low, 1),
            flag("b", 0.5, Medium, 1),
            flag("c", 0.9, High, 1),
        ],
        "r2",
        &due,
    )
    .await;
    assert_eq!(s.events.total(), 0);
    let r = deliver(stores.outbox.as_ref(), &n, Some("r2")).await;
    assert_eq!(r.delivered(), 0);
    assert!(
        hook.received().is_empty(),
        "an unchanged rerun sends nothing"
    );

    // Run 3: a low -> high, b medium -> high, c high -> low.
    let s = write(
        &stores,
        &[
            flag("a", 0.8, High, 2),
            flag("b", 0.85, High, 2),
            flag("c", 0.05, Low, 2),
        ],
        "r3",
        &due,
    )
    .await;
    assert_eq!(
        (
            s.events.became_at_risk,
            s.events.escalated,
            s.events.recovered
        ),
        (1, 1, 1)
    );
    deliver(stores.outbox.as_ref(), &n, Some("r3")).await;
    assert_eq!(
        sent(&hook),
        set(&[
            ("became_at_risk", "a"),
            ("escalated", "b"),
            ("recovered", "c")
        ])
    );

    // Run 4: a is acknowledged; its recovery is recorded but held back,
    // c becoming at risk again is sent.
    hook.clear();
    let ack = Acknowledgement::new("ana", "renewal call booked", None, at(3)).unwrap();
    stores.flags.acknowledge("a", &ack).await.unwrap();
    let s = write(
        &stores,
        &[flag("a", 0.1, Low, 3), flag("c", 0.6, Medium, 3)],
        "r4",
        &due,
    )
    .await;
    assert_eq!((s.events.total(), s.events.held), (2, 1));
    deliver(stores.outbox.as_ref(), &n, Some("r4")).await;
    assert_eq!(sent(&hook), set(&[("became_at_risk", "c")]));
    let listed = stores
        .outbox
        .events(
            &EventFilter {
                run_id: Some("r4".into()),
                pending: false,
            },
            None,
            10,
        )
        .await
        .unwrap();
    let held: Vec<&str> = listed
        .iter()
        .filter(|e| e.held)
        .map(|e| e.event.customer_id.as_str())
        .collect();
    assert_eq!(held, ["a"]);

    // Run 5: c escalates while acknowledged: sent, and the acknowledgement ends.
    hook.clear();
    stores
        .flags
        .acknowledge(
            "c",
            &Acknowledgement::new("bo", "on it", None, at(4)).unwrap(),
        )
        .await
        .unwrap();
    write(&stores, &[flag("c", 0.95, High, 4)], "r5", &due).await;
    deliver(stores.outbox.as_ref(), &n, Some("r5")).await;
    assert_eq!(sent(&hook), set(&[("escalated", "c")]));
    assert!(stores
        .flags
        .get("c")
        .await
        .unwrap()
        .unwrap()
        .acknowledgement
        .is_none());

    // Everything is delivered; listing by run and pending agree.
    let pending = stores
        .outbox
        .events(
            &EventFilter {
                run_id: None,
                pending: true,
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    let all = stores
        .outbox
        .events(&EventFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 8);
    assert!(
        all.windows(2).all(|w| w[0].sort_key() >= w[1].sort_key()),
        "newest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_runs_on_sqlite() {
    scripted_runs_send_exactly_the_band_moves(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_runs_on_dynamodb() {
    let moto = MotoServer::start().await.unwrap();
    scripted_runs_send_exactly_the_band_moves(dynamo(&moto).await).await;
}

/// Writes `n` flags of `band` on `day` in run `run`, their events due at `due`.
async fn record(
    stores: &Stores,
    n: usize,
    band: RiskBand,
    day: i64,
    run: &str,
    due: Destination,
) -> WriteSummary {
    write(stores, &many(n, band, day), run, &[due]).await
}

fn many(n: usize, band: RiskBand, day: i64) -> Vec<Flag> {
    (0..n)
        .map(|i| flag(&format!("c{i:04}"), 0.9, band, day))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_requests_hold_at_most_100_events() {
    let stores = sqlite().await;
    let hook = Receiver::start().await.unwrap();
    record(&stores, 250, RiskBand::High, 0, "r1", Destination::Webhook).await;
    let r = deliver(
        stores.outbox.as_ref(),
        &notifier(values(Some(hook.url("/h")), None, "10")),
        None,
    )
    .await;
    assert_eq!(r.delivered(), 250);
    let sizes: Vec<usize> = hook
        .accepted()
        .iter()
        .map(|r| r.json()["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(sent(&hook).len(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_then_200_delivers_once() {
    let stores = sqlite().await;
    let hook = Receiver::start().await.unwrap();
    hook.script([Answer::status(500)]);
    record(&stores, 3, RiskBand::High, 0, "r1", Destination::Webhook).await;
    let n = notifier(values(Some(hook.url("/h")), None, "10"));
    let r = deliver(stores.outbox.as_ref(), &n, None).await;
    assert_eq!((r.delivered(), r.pending()), (3, 0), "{r:?}");
    let got = hook.received();
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 200]);
    assert_eq!(got[0].body, got[1].body, "the retry sends the same bytes");
    assert_eq!(
        got[0].header("x-churn-delivery"),
        got[1].header("x-churn-delivery")
    );
    hook.clear();
    deliver(stores.outbox.as_ref(), &n, None).await;
    assert!(hook.received().is_empty(), "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_leave_events_pending_until_the_next_round() {
    let stores = sqlite().await;
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    record(&stores, 4, RiskBand::Medium, 0, "r1", Destination::Webhook).await;
    let down = notifier(values(Some(format!("http://{closed}/h")), None, "1"));
    let r = deliver(stores.outbox.as_ref(), &down, Some("r1")).await;
    assert_eq!((r.delivered(), r.pending()), (0, 4), "{r:?}");
    let error = &r.destinations[0].errors[0];
    assert!(
        error.contains(&closed.to_string()) && error.contains("gave up at the deadline"),
        "{error}"
    );
    let pending = stores
        .outbox
        .events(
            &EventFilter {
                run_id: None,
                pending: true,
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 4);
    let d = &pending[0].deliveries[0];
    assert_eq!((d.destination, d.failures), (Destination::Webhook, 1));
    assert!(d.last_error.as_deref().unwrap().contains("gave up"));

    // The receiver is back (at the URL configured now): delivered once.
    let hook = Receiver::start().await.unwrap();
    let up = notifier(values(Some(hook.url("/h")), None, "5"));
    let r = deliver(stores.outbox.as_ref(), &up, None).await;
    assert_eq!((r.delivered(), r.pending()), (4, 0));
    deliver(stores.outbox.as_ref(), &up, None).await;
    assert_eq!(hook.received().len(), 1);
    assert_eq!(sent(&hook).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let stores = sqlite().await;
    let hook = Receiver::start().await.unwrap();
    hook.script([Answer::too_many(1)]);
    record(&stores, 2, RiskBand::High, 0, "r1", Destination::Webhook).await;
    let r = deliver(
        stores.outbox.as_ref(),
        &notifier(values(Some(hook.url("/h")), None, "10")),
        None,
    )
    .await;
    assert_eq!(r.delivered(), 2);
    let got = hook.received();
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_secs(1),
        "waited as told"
    );

    // A Retry-After past the deadline gives up at once and says so.
    record(&stores, 2, RiskBand::Low, 1, "r2", Destination::Webhook).await;
    hook.script([Answer::too_many(120)]);
    let r = deliver(
        stores.outbox.as_ref(),
        &notifier(values(Some(hook.url("/h")), None, "2")),
        None,
    )
    .await;
    assert_eq!(r.pending(), 2);
    assert!(
        r.destinations[0].errors[0].contains("Retry-After 120 s"),
        "{r:?}"
    );
}

/// Block Kit's rules for what the digest uses.
fn assert_valid_block_kit(message: &Value) {
    assert!(
        message["text"].as_str().is_some_and(|t| !t.is_empty()),
        "text fallback"
    );
    let blocks = message["blocks"].as_array().unwrap();
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
            }
            "section" => {
                if let Some(t) = b.get("text") {
                    assert_eq!(t["type"], "mrkdwn");
                    assert!(t["text"].as_str().unwrap().chars().count() <= 3000);
                }
                if let Some(f) = b.get("fields") {
                    let f = f.as_array().unwrap();
                    assert!(f.len() <= 10);
                    assert!(f
                        .iter()
                        .all(|x| x["text"].as_str().unwrap().chars().count() <= 2000));
                }
                assert!(b.get("text").is_some() || b.get("fields").is_some());
            }
            "context" => {
                let e = b["elements"].as_array().unwrap();
                assert!(!e.is_empty() && e.len() <= 10);
            }
            "divider" => {}
            other => panic!("unexpected block {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slack_digest_per_round_and_none_when_nothing_changed() {
    let stores = sqlite().await;
    let slack = Receiver::start().await.unwrap();
    let mut script = many(14, RiskBand::High, 0);
    script[0].attributes.name = Some("<script>alert(1)</script> & Co".into());
    script[0].attributes.value = Some(1e9);
    write(&stores, &script, "r1", &[Destination::Slack]).await;
    let mut v = values(None, Some(slack.url("/services/T/B/x")), "5");
    v.public_url = Some("https://churn.example.com".into());
    let n = notifier(v);
    let r = deliver(stores.outbox.as_ref(), &n, Some("r1")).await;
    assert_eq!((r.delivered(), r.pending()), (14, 0));
    let got = slack.accepted();
    assert_eq!(got.len(), 1, "one digest");
    let m = got[0].json();
    assert_valid_block_kit(&m);
    assert!(m["text"].as_str().unwrap().contains("14 became at risk"));
    let blocks = serde_json::to_string(&m["blocks"]).unwrap();
    assert!(
        blocks.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"),
        "markup shown as text"
    );
    assert!(
        blocks.contains("https://churn.example.com/customers/c0000|"),
        "linked to the page"
    );
    assert!(blocks.contains("and 4 more"));
    let first_listed = m["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "section" && b.get("text").is_some())
        .unwrap();
    assert!(
        first_listed.to_string().contains("c0000"),
        "most value at risk first"
    );

    slack.clear();
    record(&stores, 14, RiskBand::High, 1, "r2", Destination::Slack).await;
    deliver(stores.outbox.as_ref(), &n, Some("r2")).await;
    assert!(slack.received().is_empty(), "no digest without events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_hold_a_rescore() {
    use churn_service::handlers::rescore::run_event;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteFlagStore::in_memory(4).await.unwrap());
    let (services, _) =
        requests::trained_services(dir.path(), store.clone(), store.clone(), store.clone()).await;
    let hook = Receiver::start().await.unwrap();
    hook.script([Answer::slow(Duration::from_secs(10))]);
    let services = services.with_notifier(notifier(values(Some(hook.url("/h")), None, "1")));
    let table = churn_model::generate(&churn_model::SyntheticConfig {
        customers: 500,
        seed: 8,
    });
    let csv = requests::write_csv(dir.path(), "snap.csv", &table);
    let event = serde_json::json!({"snapshot": csv.display().to_string(), "run_id": "slow-1"});
    let summary = run_event(&services, &event, &|_| {}).await.unwrap();
    // Flags are written and the run is over while the receiver still holds its answer.
    assert_eq!(summary.written, 500);
    assert!(hook.received().is_empty());
    let report = summary.notify.clone().unwrap();
    assert_eq!(report.delivered(), 0);
    assert_eq!(report.pending(), summary.events.total());
    assert!(
        report.destinations[0].errors[0].contains("no answer within"),
        "{report:?}"
    );
    let at_risk = churn_service::flag_store::FlagStore::summary(
        store.as_ref(),
        churn_service::flag_store::SummaryBy::Band,
    )
    .await
    .unwrap();
    let customers = at_risk
        .rows
        .iter()
        .map(|r| r.at_risk.customers as usize)
        .sum::<usize>();
    assert_eq!(
        summary.events.became_at_risk, customers,
        "one event per customer now at risk"
    );

    // The next round, with the receiver answering: every event once.
    let fast = Receiver::start().await.unwrap();
    let services = services.with_notifier(notifier(values(Some(fast.url("/h")), None, "10")));
    let out = churn_service::handlers::notify::notify_run(&services, "slow-1").await;
    assert_eq!((out.delivered["webhook"], out.pending), (customers, 0));
    assert_eq!(sent(&fast).len(), customers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_puts_in_tens_and_retries_failed_entries() {
    let moto = MotoServer::start().await.unwrap();
    let proxy = FaultProxy::start(moto.addr()).await.unwrap();
    let config = churn_service::test_support::sdk_config(&proxy.endpoint_url()).await;
    let events = aws_sdk_eventbridge::Client::new(&config);
    let bus = unique_name("risk");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let stores = dynamo(&moto).await;
    let s = record(
        &stores,
        25,
        RiskBand::High,
        0,
        "r1",
        Destination::EventBridge,
    )
    .await;
    assert_eq!((s.written, s.events.became_at_risk), (25, 25), "{s:?}");
    proxy.fail_event_entries(3);
    let settings = NotifyValues {
        event_bus: Some(bus.clone()),
        deadline_secs: Some("10".into()),
        ..NotifyValues::default()
    }
    .validate()
    .unwrap();
    let n = Notifier::new(settings, Some(events)).unwrap();
    let r = deliver(stores.outbox.as_ref(), &n, Some("r1")).await;
    let stats = proxy.stats();
    assert_eq!((r.delivered(), r.pending()), (25, 0), "{r:?}");
    assert_eq!(stats.event_entries_failed, 3);
    assert_eq!(
        stats.requests.get("PutEvents"),
        Some(&4),
        "3 batches of up to 10, then the 3 failed entries again"
    );
    let mut ids = BTreeSet::new();
    for entry in &stats.events_accepted {
        assert_eq!(entry["Source"], "churn-risk");
        assert_eq!(entry["DetailType"], "Customer Risk Changed");
        assert_eq!(entry["EventBusName"].as_str(), Some(bus.as_str()));
        let detail: Value = serde_json::from_str(entry["Detail"].as_str().unwrap()).unwrap();
        assert_eq!(detail["type"], "became_at_risk");
        assert!(
            ids.insert(detail["id"].as_str().unwrap().to_string()),
            "each event accepted once"
        );
    }
    assert_eq!(ids.len(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_stays_pending_and_the_next_ones_go() {
    let stores = sqlite().await;
    let hook = Receiver::start().await.unwrap();
    hook.script([Answer::status(400)]);
    record(&stores, 250, RiskBand::High, 0, "r1", Destination::Webhook).await;
    let n = notifier(values(Some(hook.url("/h")), None, "10"));
    let r = deliver(stores.outbox.as_ref(), &n, None).await;
    assert_eq!((r.delivered(), r.pending()), (150, 100), "{r:?}");
    assert_eq!(hook.received().len(), 3, "a 400 is not retried");
    assert!(r.destinations[0].errors[0].contains("HTTP 400"), "{r:?}");
    // The receiver fixed, the refused batch goes with the next round.
    let r = deliver(stores.outbox.as_ref(), &n, None).await;
    assert_eq!((r.delivered(), r.pending()), (100, 0));
    assert_eq!(sent(&hook).len(), 250);
}
