//! The flag store contract, continued: what a CS team reads beside the
//! score (attributes, score history and trend, acknowledgements, filtered
//! and sorted risk lists, the summary). Run against every adapter by
//! `flag_contract::run_contract`.

use super::flag_contract::{flag, EPS};
use churn_model::{Attributes, RiskBand};
use churn_service::flag::{Acknowledgement, Flag};
use churn_service::flag_store::{BandFilter, FlagStore, ListQuery, ListSort, SummaryBy};
use churn_service::Error;
use std::time::{Duration, Instant};
use time::macros::datetime;
use time::OffsetDateTime;

const DAY: i64 = 86_400;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

fn at(secs: i64) -> OffsetDateTime {
    datetime!(2025-03-01 09:00 UTC) + time::Duration::seconds(secs)
}

async fn write(store: &dyn FlagStore, flags: &[Flag]) -> usize {
    let s = store.write_batch(flags, EPS, deadline()).await.unwrap();
    assert!(s.failed.is_empty(), "{s:?}");
    s.written
}

fn owned(mut f: Flag, owner: &str, value: f64) -> Flag {
    f.attributes = Attributes {
        name: Some(format!("{} Inc", f.customer_id)),
        owner: Some(owner.into()),
        segment: Some("smb".into()),
        value: Some(value),
        renewal_date: Some("2025-06-30".into()),
        crm_id: None,
    };
    f
}

fn ack(until_secs: i64) -> Acknowledgement {
    Acknowledgement {
        by: "ana@example.com".into(),
        note: "QBR booked".into(),
        at: at(0),
        until: at(until_secs),
    }
}

pub async fn history_appends_trims_and_trends(store: &dyn FlagStore) {
    let id = "h1";
    assert_eq!(write(store, &[flag(id, 0.2, RiskBand::Low, 0)]).await, 1);
    // Unchanged: no point.
    assert_eq!(
        write(store, &[flag(id, 0.2005, RiskBand::Low, DAY)]).await,
        0
    );
    write(store, &[flag(id, 0.5, RiskBand::Medium, 10 * DAY)]).await;
    write(store, &[flag(id, 0.7, RiskBand::High, 20 * DAY)]).await;
    let r = store.customer(id, at(20 * DAY)).await.unwrap().unwrap();
    let times: Vec<_> = r.history.iter().map(|h| h.scored_at).collect();
    assert_eq!(
        times,
        vec![at(20 * DAY), at(10 * DAY), at(0)],
        "newest first"
    );
    assert_eq!(r.history[0].risk_band, RiskBand::High);
    assert_eq!(r.history[0].model_id, "model-a");
    // 7 days before day 20 the day-10 score (0.5) was in force; 30 days
    // before, nothing was.
    assert!(
        (r.flag.trend.d7.unwrap() - 0.2).abs() < 1e-9,
        "{:?}",
        r.flag.trend
    );
    assert_eq!(r.flag.trend.d30, None);
    assert_eq!(r.flag.days_in_band, Some(0));

    // 180 days after day 20: the two oldest points leave the window.
    write(store, &[flag(id, 0.75, RiskBand::High, 200 * DAY)]).await;
    let r = store.customer(id, at(205 * DAY)).await.unwrap().unwrap();
    let times: Vec<_> = r.history.iter().map(|h| h.scored_at).collect();
    assert_eq!(times, vec![at(200 * DAY), at(20 * DAY)]);
    assert!((r.flag.trend.d30.unwrap() - 0.05).abs() < 1e-9);
    assert_eq!(r.flag.days_in_band, Some(185), "high since day 20");

    // Long after, the last two points are still kept.
    write(store, &[flag(id, 0.1, RiskBand::Low, 900 * DAY)]).await;
    let r = store.customer(id, at(900 * DAY)).await.unwrap().unwrap();
    assert_eq!(r.history.len(), 2);
    assert_eq!(r.history[1].scored_at, at(200 * DAY));
    assert_eq!(store.customer("nobody", at(0)).await.unwrap(), None);
}

pub async fn attribute_only_change_is_written(store: &dyn FlagStore) {
    let f = owned(
        flag("a1", 0.6, RiskBand::Medium, 0),
        "ana@example.com",
        1000.0,
    );
    write(store, std::slice::from_ref(&f)).await;
    assert_eq!(
        store.get("a1").await.unwrap().unwrap().attributes,
        f.attributes
    );
    // Same score, same attributes: skipped.
    let again = Flag {
        scored_at: at(DAY),
        ..f.clone()
    };
    assert_eq!(write(store, &[again]).await, 0);
    // Same score, new owner and renewal: written, with a history point.
    let mut moved = Flag {
        scored_at: at(2 * DAY),
        ..f.clone()
    };
    moved.attributes.owner = Some("bo@example.com".into());
    moved.attributes.renewal_date = Some("2025-09-30".into());
    assert_eq!(write(store, &[moved.clone()]).await, 1);
    let r = store.customer("a1", at(2 * DAY)).await.unwrap().unwrap();
    assert_eq!(r.flag.attributes, moved.attributes);
    assert_eq!(r.history.len(), 2);
    assert_eq!(
        r.flag.band_changed_at,
        Some(at(0)),
        "the band did not change"
    );
    // A score that carries no attributes at all keeps the stored ones.
    let bare = flag("a1", 0.9, RiskBand::High, 3 * DAY);
    assert_eq!(write(store, &[bare]).await, 1);
    let r = store.customer("a1", at(3 * DAY)).await.unwrap().unwrap();
    assert_eq!(r.flag.attributes, moved.attributes);
    assert_eq!(
        write(store, &[flag("a1", 0.9, RiskBand::High, 4 * DAY)]).await,
        0
    );
}

pub async fn acknowledgement_survives_rescores_and_ends(store: &dyn FlagStore) {
    write(store, &[flag("k1", 0.55, RiskBand::Medium, 0)]).await;
    let got = store.acknowledge("k1", &ack(14 * DAY)).await.unwrap();
    assert_eq!(got.acknowledgement, Some(ack(14 * DAY)));
    // A rescore that changes the score keeps it.
    assert_eq!(
        write(store, &[flag("k1", 0.65, RiskBand::Medium, DAY)]).await,
        1
    );
    let r = store.customer("k1", at(2 * DAY)).await.unwrap().unwrap();
    assert_eq!(r.flag.acknowledgement, Some(ack(14 * DAY)));
    // It ends by itself at `until`.
    let r = store.customer("k1", at(14 * DAY)).await.unwrap().unwrap();
    assert_eq!(r.flag.acknowledgement, None);
    // Removed on request.
    let got = store.unacknowledge("k1").await.unwrap();
    assert_eq!(got.acknowledgement, None);
    let r = store.customer("k1", at(2 * DAY)).await.unwrap().unwrap();
    assert_eq!(r.flag.acknowledgement, None);
    // Unknown customers.
    for result in [
        store.acknowledge("nobody", &ack(DAY)).await,
        store.unacknowledge("nobody").await,
    ] {
        assert!(
            matches!(&result, Err(Error::CustomerNotFound(id)) if id == "nobody"),
            "{result:?}"
        );
    }
}

pub async fn escalation_to_high_ends_acknowledgement(store: &dyn FlagStore) {
    write(
        store,
        &[
            flag("m", 0.5, RiskBand::Medium, 0),
            flag("l", 0.1, RiskBand::Low, 0),
            flag("h", 0.8, RiskBand::High, 0),
        ],
    )
    .await;
    for id in ["m", "l", "h"] {
        store.acknowledge(id, &ack(30 * DAY)).await.unwrap();
    }
    write(
        store,
        &[
            flag("m", 0.8, RiskBand::High, DAY),
            flag("l", 0.9, RiskBand::High, DAY),
            // Worse but already high: no escalation.
            flag("h", 0.95, RiskBand::High, DAY),
        ],
    )
    .await;
    let now = at(2 * DAY);
    let acked = |id: &'static str| async move {
        store
            .customer(id, now)
            .await
            .unwrap()
            .unwrap()
            .flag
            .acknowledgement
    };
    assert_eq!(acked("m").await, None, "medium -> high");
    assert_eq!(acked("l").await, None, "low -> high");
    assert_eq!(acked("h").await, Some(ack(30 * DAY)));
    // Down from high keeps it.
    write(store, &[flag("h", 0.5, RiskBand::Medium, 2 * DAY)]).await;
    assert_eq!(acked("h").await, Some(ack(30 * DAY)));
}

/// One account of the list fixture, with what the lists should make of it.
struct Account {
    id: String,
    band: RiskBand,
    p: f64,
    owner: Option<&'static str>,
    segment: Option<&'static str>,
    value: Option<f64>,
    renewal: Option<&'static str>,
    acked: bool,
    /// Probability 10 days earlier (so `trend.d7` = p - this).
    before: Option<f64>,
}

fn accounts() -> Vec<Account> {
    let owners = [Some("ana@example.com"), Some("bo@example.com"), None];
    let segments = [Some("smb"), Some("enterprise"), None];
    let renewals = [
        Some("2025-03-25"),
        Some("2025-05-20"),
        None,
        Some("2025-02-01"),
    ];
    (0..30)
        .map(|i| {
            let p = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5][i % 10];
            let band = if p >= 0.7 {
                RiskBand::High
            } else {
                RiskBand::Medium
            };
            Account {
                id: format!("acct-{i:02}"),
                band,
                // equal probabilities across the three decades: ties by id
                p: if i % 7 == 0 { 0.75 } else { p },
                owner: owners[i % 3],
                segment: segments[(i / 3) % 3],
                value: (i % 4 != 3).then(|| 1000.0 * (1 + i % 5) as f64),
                renewal: renewals[i % 4],
                acked: i % 5 == 0,
                before: (i % 2 == 0).then(|| [0.3, 0.6, 0.9][i % 3]),
            }
        })
        .map(|mut a| {
            a.band = if a.p >= 0.7 {
                RiskBand::High
            } else {
                RiskBand::Medium
            };
            a
        })
        .collect()
}

fn account_flag(a: &Account, p: f64, secs: i64) -> Flag {
    let band = if p >= 0.7 {
        RiskBand::High
    } else if p >= 0.4 {
        RiskBand::Medium
    } else {
        RiskBand::Low
    };
    let mut f = flag(&a.id, p, band, secs);
    f.attributes = Attributes {
        name: Some(format!("{} Ltd", a.id)),
        owner: a.owner.map(str::to_string),
        segment: a.segment.map(str::to_string),
        value: a.value,
        renewal_date: a.renewal.map(str::to_string),
        crm_id: Some(format!("crm-{}", a.id)),
    };
    f
}

async fn load_accounts(store: &dyn FlagStore) -> Vec<Account> {
    let all = accounts();
    let before: Vec<Flag> = all
        .iter()
        .filter_map(|a| a.before.map(|p| account_flag(a, p, 0)))
        .collect();
    write(store, &before).await;
    let now: Vec<Flag> = all.iter().map(|a| account_flag(a, a.p, 10 * DAY)).collect();
    write(store, &now).await;
    for a in all.iter().filter(|a| a.acked) {
        store.acknowledge(&a.id, &ack(40 * DAY)).await.unwrap();
    }
    // A low customer never appears on a list.
    write(store, &[flag("low-1", 0.1, RiskBand::Low, 10 * DAY)]).await;
    all
}

/// Every page of `query`, `limit` at a time.
async fn all_pages(store: &dyn FlagStore, query: &ListQuery, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = store.list(query, limit, cursor.as_deref()).await.unwrap();
        assert!(page.flags.len() <= limit);
        ids.extend(page.flags.into_iter().map(|f| f.customer_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
    }
    panic!("more than 100 pages");
}

/// The expected list, computed plainly from the fixture.
fn expected(all: &[Account], query: &ListQuery) -> Vec<String> {
    let today = "2025-03-20";
    let mut rows: Vec<(&Account, Option<f64>)> = all
        .iter()
        .filter(|a| query.band.bands().contains(&a.band))
        .filter(|a| query.owner.as_deref().is_none_or(|o| a.owner == Some(o)))
        .filter(|a| {
            query
                .segment
                .as_deref()
                .is_none_or(|s| a.segment == Some(s))
        })
        .filter(|a| match query.renewal_within_days {
            // 60 days from 2025-03-20 is 2025-05-19
            Some(60) => a
                .renewal
                .is_some_and(|r| (today..="2025-05-19").contains(&r)),
            Some(other) => panic!("fixture has no answer for {other} days"),
            None => true,
        })
        .filter(|a| !(query.unacknowledged && a.acked))
        .map(|a| {
            let key = match query.sort {
                ListSort::Probability => Some(a.p),
                ListSort::Value => a.value.map(|v| a.p * v),
                ListSort::Renewal => a.renewal.map(|r| {
                    // days before 2030-01-01, so sooner = larger
                    let d = time::Date::parse(
                        r,
                        time::macros::format_description!("[year]-[month]-[day]"),
                    )
                    .unwrap();
                    f64::from((datetime!(2030-01-01 0:00 UTC).date() - d).whole_days() as i32)
                }),
                ListSort::Rising => a.before.map(|b| a.p - b),
            };
            (a, key)
        })
        .collect();
    rows.sort_by(|(a, ka), (b, kb)| {
        let primary = match (ka, kb) {
            (Some(x), Some(y)) => y.total_cmp(x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        primary
            .then(b.p.total_cmp(&a.p))
            .then_with(|| a.id.cmp(&b.id))
    });
    rows.into_iter().map(|(a, _)| a.id.clone()).collect()
}

pub async fn lists_filter_sort_and_paginate(store: &dyn FlagStore) {
    let all = load_accounts(store).await;
    let now = datetime!(2025-03-20 12:00 UTC);
    let base = ListQuery {
        now,
        ..ListQuery::band(BandFilter::AtRisk)
    };
    let mut queries = Vec::new();
    for band in [BandFilter::AtRisk, BandFilter::High, BandFilter::Medium] {
        for sort in [
            ListSort::Probability,
            ListSort::Value,
            ListSort::Renewal,
            ListSort::Rising,
        ] {
            queries.push(ListQuery {
                band,
                sort,
                ..base.clone()
            });
        }
    }
    for sort in [ListSort::Probability, ListSort::Value] {
        queries.push(ListQuery {
            owner: Some("ana@example.com".into()),
            sort,
            ..base.clone()
        });
        queries.push(ListQuery {
            owner: Some("bo@example.com".into()),
            band: BandFilter::High,
            unacknowledged: true,
            sort,
            ..base.clone()
        });
        queries.push(ListQuery {
            segment: Some("enterprise".into()),
            renewal_within_days: Some(60),
            sort,
            ..base.clone()
        });
        queries.push(ListQuery {
            unacknowledged: true,
            sort,
            ..base.clone()
        });
    }
    for query in &queries {
        let want = expected(&all, query);
        assert!(!want.is_empty(), "fixture gives {query:?} nothing to list");
        for limit in [1, 4, 1000] {
            let got = all_pages(store, query, limit).await;
            if query.sort == ListSort::Probability {
                // A DynamoDB index orders equal probabilities its own way:
                // the same probabilities in the same order, each customer once.
                let p = |ids: &[String]| -> Vec<f64> {
                    ids.iter()
                        .map(|id| all.iter().find(|a| a.id == *id).unwrap().p)
                        .collect()
                };
                assert_eq!(p(&got), p(&want), "{query:?}, limit {limit}");
                let (mut g, mut w) = (got.clone(), want.clone());
                g.sort();
                w.sort();
                assert_eq!(g, w, "{query:?}, limit {limit}");
            } else {
                assert_eq!(got, want, "{query:?}, limit {limit}");
            }
        }
    }
    // What a listed flag carries.
    let page = store.list(&base, 1000, None).await.unwrap();
    let acct0 = page
        .flags
        .iter()
        .find(|f| f.customer_id == "acct-00")
        .unwrap();
    assert_eq!(acct0.attributes.owner.as_deref(), Some("ana@example.com"));
    assert_eq!(acct0.acknowledgement, Some(ack(40 * DAY)));
    assert!((acct0.trend.d7.unwrap() - (0.75 - 0.3)).abs() < 1e-9);
    // The acknowledgement has ended 40 days in: nobody is acknowledged.
    let later = ListQuery {
        unacknowledged: true,
        now: at(40 * DAY),
        ..base.clone()
    };
    assert_eq!(
        all_pages(store, &later, 1000).await.len(),
        all.len(),
        "every ack has ended"
    );
    // A cursor is for its own query only.
    let first = store.list(&base, 2, None).await.unwrap();
    let other = ListQuery {
        sort: ListSort::Value,
        ..base.clone()
    };
    let err = store
        .list(&other, 2, first.next_cursor.as_deref())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCursor(_)), "{err:?}");
}

pub async fn summary_counts_customers_and_value(store: &dyn FlagStore) {
    let all = load_accounts(store).await;
    let by_band = store.summary(SummaryBy::Band).await.unwrap();
    let keys: Vec<_> = by_band.rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        vec![Some("high".to_string()), Some("medium".to_string())]
    );
    let high: Vec<&Account> = all.iter().filter(|a| a.band == RiskBand::High).collect();
    assert_eq!(by_band.rows[0].high.customers, high.len() as u64);
    assert_eq!(
        by_band.total.at_risk.customers,
        all.len() as u64,
        "low-1 is not at risk"
    );
    let value: f64 = all.iter().filter_map(|a| a.value.map(|v| v * a.p)).sum();
    assert!((by_band.total.at_risk.value_at_risk - value).abs() < 1e-6);
    assert_eq!(
        by_band.total.at_risk.without_value,
        all.iter().filter(|a| a.value.is_none()).count() as u64
    );

    let by_owner = store.summary(SummaryBy::Owner).await.unwrap();
    assert_eq!(by_owner.rows.len(), 3, "two owners and the unowned");
    for row in &by_owner.rows {
        let mine: Vec<&Account> = all
            .iter()
            .filter(|a| a.owner.map(str::to_string) == row.key)
            .collect();
        assert_eq!(row.at_risk.customers, mine.len() as u64, "{row:?}");
        let v: f64 = mine.iter().filter_map(|a| a.value.map(|v| v * a.p)).sum();
        assert!((row.at_risk.value_at_risk - v).abs() < 1e-6);
    }
    assert!(
        by_owner
            .rows
            .windows(2)
            .all(|w| w[0].at_risk.value_at_risk >= w[1].at_risk.value_at_risk),
        "largest value at risk first"
    );
    let by_segment = store.summary(SummaryBy::Segment).await.unwrap();
    assert_eq!(
        by_segment
            .rows
            .iter()
            .map(|r| r.at_risk.customers)
            .sum::<u64>(),
        all.len() as u64
    );
}
