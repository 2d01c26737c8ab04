//! The flag store port and the write rules every adapter shares.
//!
//! Adapters: [`dynamo::DynamoFlagStore`] (AWS) and [`sqlite::SqliteFlagStore`]
//! (local). Both apply [`decide`] so "stale", "unchanged" and the band
//! history mean exactly the same thing everywhere; one contract test suite
//! runs against both.

pub mod dynamo;
pub mod history;
pub mod query;
pub mod sqlite;

use crate::error::{Error, Result};
use crate::flag::{Acknowledgement, CustomerRecord, Flag, HistoryPoint, Page};
use crate::flag::{WriteFailure, WriteSummary};
use crate::notify::EventOrigin;
use async_trait::async_trait;
use churn_model::RiskBand;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::time::Instant;

pub use dynamo::DynamoFlagStore;
pub use history::HistoryWindow;
pub use query::{
    BandFilter, ListQuery, ListSort, Summary, SummaryBuilder, SummaryBy, SummaryRow, Totals,
};
pub use sqlite::SqliteFlagStore;
use time::OffsetDateTime;

/// Largest risk-list page.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Storage of one flag per customer, with risk lists by band.
#[async_trait]
pub trait FlagStore: Send + Sync {
    /// Writes a batch of fresh scores.
    ///
    /// Per flag: a score not newer than the stored one is rejected as stale;
    /// one with the same band and `|Δp| < epsilon` is skipped; otherwise it is
    /// written with `previous_band`/`band_changed_at` maintained. Retries
    /// throttling until `deadline`; whatever is still unwritten then (or
    /// failed for another reason) is listed in [`WriteSummary::failed`].
    ///
    /// Each write that moves a customer into, up within or out of the
    /// at-risk bands records a [`RiskEvent`](crate::notify::RiskEvent) in
    /// the store's outbox together with the flag (atomically), due at
    /// `origin.due`; [`WriteSummary::events`] counts them.
    ///
    /// # Errors
    /// Only for invalid arguments ([`Error::InvalidInput`] for `epsilon`
    /// outside `[0, 1]`); storage failures are reported per flag.
    async fn write_scores(
        &self,
        flags: &[Flag],
        epsilon: f64,
        deadline: Instant,
        origin: &EventOrigin,
    ) -> Result<WriteSummary>;

    /// [`FlagStore::write_scores`] outside any run, with no destination due
    /// (the events are recorded, for the record and `churn events`).
    ///
    /// # Errors
    /// As [`FlagStore::write_scores`].
    async fn write_batch(
        &self,
        flags: &[Flag],
        epsilon: f64,
        deadline: Instant,
    ) -> Result<WriteSummary> {
        self.write_scores(flags, epsilon, deadline, &EventOrigin::default())
            .await
    }

    /// The stored flag of one customer as seen now (see [`Flag::seen_at`]),
    /// `None` if never written.
    ///
    /// # Errors
    /// [`Error::Storage`] when the backend fails, [`Error::Corrupt`] for an undecodable item.
    async fn get(&self, customer_id: &str) -> Result<Option<Flag>> {
        let now = crate::timestamp::now();
        Ok(self.customer(customer_id, now).await?.map(|r| r.flag))
    }

    /// A customer's flag as seen at `now` with its score history (newest
    /// first), `None` if never written.
    ///
    /// # Errors
    /// As [`FlagStore::get`].
    async fn customer(
        &self,
        customer_id: &str,
        now: OffsetDateTime,
    ) -> Result<Option<CustomerRecord>>;

    /// Stores `ack` beside the customer's flag (replacing an earlier one) and
    /// returns the flag as stored. Rescores keep it; it ends at `until`, or earlier when
    /// the customer escalates to high.
    ///
    /// # Errors
    /// [`Error::CustomerNotFound`] for a customer without a flag;
    /// [`Error::Storage`] on backend failure.
    async fn acknowledge(&self, customer_id: &str, ack: &Acknowledgement) -> Result<Flag>;

    /// Removes the customer's acknowledgement (if any) and returns the flag as stored.
    ///
    /// # Errors
    /// As [`FlagStore::acknowledge`].
    async fn unacknowledge(&self, customer_id: &str) -> Result<Flag>;

    /// One page of the list `query` asks for, `limit` per page.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a limit outside `1..=MAX_PAGE_LIMIT`;
    /// [`Error::InvalidCursor`] for a cursor not issued by this store for
    /// this query; [`Error::Storage`] on backend failure.
    async fn list(&self, query: &ListQuery, limit: usize, cursor: Option<&str>) -> Result<Page>;

    /// At-risk customers of `band` by probability descending, `limit` per page.
    ///
    /// # Errors
    /// [`Error::BandNotListed`] for `low`; otherwise as [`FlagStore::list`].
    async fn risk_list(&self, band: RiskBand, limit: usize, cursor: Option<&str>) -> Result<Page> {
        let query = ListQuery::band(BandFilter::of(band)?);
        self.list(&query, limit, cursor).await
    }

    /// Customers and value at risk per at-risk band, by `by`.
    ///
    /// # Errors
    /// As [`FlagStore::summaries`].
    async fn summary(&self, by: SummaryBy) -> Result<Summary> {
        let mut one = self.summaries(&[by]).await?;
        Ok(one
            .pop()
            .unwrap_or_else(|| SummaryBuilder::new(by).finish()))
    }

    /// One summary per entry of `by` (in that order) from one read of the
    /// at-risk flags: the web page's header and filter lists need three,
    /// and the read is the cost.
    ///
    /// # Errors
    /// [`Error::Storage`] on backend failure, [`Error::Corrupt`] for an undecodable item.
    async fn summaries(&self, by: &[SummaryBy]) -> Result<Vec<Summary>>;

    /// Creates the table (and risk-list index) when absent. For local use and
    /// tests; deployed tables come from `infra/`.
    ///
    /// # Errors
    /// [`Error::Storage`] when the backend refuses.
    async fn create_table_if_missing(&self) -> Result<()>;
}

/// What to do with one incoming flag given the stored one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// Not newer than what is stored.
    Stale,
    /// Same band, probability within epsilon.
    Unchanged,
    /// Write this (band history filled in).
    Write {
        flag: Box<Flag>,
        newly_at_risk: bool,
    },
}

/// The write rule shared by all adapters.
///
/// Stale: not newer than what is stored. Unchanged: same band, probability
/// within `epsilon` and the same attributes. Otherwise written, keeping the
/// band history and the acknowledgement (which an escalation to high ends).
///
/// A score without any attribute (a model without an attribute mapping, or
/// a score request that sent none) keeps the stored attributes: a service
/// scoring features alone must not erase what the snapshot said about the
/// account.
pub(crate) fn decide(stored: Option<&Flag>, incoming: &Flag, epsilon: f64) -> Decision {
    let mut flag = incoming.clone();
    flag.days_in_band = None;
    if let Some(old) = stored.filter(|_| incoming.attributes.is_empty()) {
        flag.attributes = old.attributes.clone();
    }
    match stored {
        None => {
            flag.previous_band = None;
            flag.band_changed_at = Some(flag.scored_at);
            flag.acknowledgement = None;
            Decision::Write {
                newly_at_risk: flag.at_risk(),
                flag: Box::new(flag),
            }
        }
        Some(old) => {
            // Equal timestamps count as stale: replaying the same batch must
            // not rewrite anything.
            if incoming.scored_at <= old.scored_at {
                return Decision::Stale;
            }
            if old.risk_band == incoming.risk_band
                && (incoming.churn_probability - old.churn_probability).abs() < epsilon
                && old.attributes == flag.attributes
            {
                return Decision::Unchanged;
            }
            if old.risk_band == incoming.risk_band {
                flag.previous_band = old.previous_band;
                flag.band_changed_at = old.band_changed_at;
            } else {
                flag.previous_band = Some(old.risk_band);
                flag.band_changed_at = Some(flag.scored_at);
            }
            let escalated = old.risk_band != RiskBand::High && flag.risk_band == RiskBand::High;
            flag.acknowledgement = if escalated {
                None
            } else {
                old.acknowledgement.clone()
            };
            Decision::Write {
                newly_at_risk: flag.at_risk() && !old.at_risk(),
                flag: Box::new(flag),
            }
        }
    }
}

/// The history after writing `flag` over `stored` (oldest first), with the
/// flag's trend set from it.
pub(crate) fn next_history(
    mut stored: Vec<HistoryPoint>,
    flag: &mut Flag,
    window: HistoryWindow,
) -> Vec<HistoryPoint> {
    window.record(&mut stored, flag.history_point(), &mut flag.trend);
    stored
}

/// Validates arguments and splits a batch into flags to consider (one per
/// customer: the newest) and the summary of those already settled (invalid
/// flags fail, older duplicates are stale).
pub(crate) fn prepare_batch(flags: &[Flag], epsilon: f64) -> Result<(Vec<Flag>, WriteSummary)> {
    if !(0.0..=1.0).contains(&epsilon) {
        return Err(Error::InvalidInput {
            field: "epsilon",
            message: format!("{epsilon} is not in [0, 1]"),
        });
    }
    let mut summary = WriteSummary::default();
    // customer id -> position in `keep` of its newest flag so far.
    let mut slot_of: HashMap<&str, usize> = HashMap::new();
    let mut keep: Vec<&Flag> = Vec::new();
    for flag in flags {
        if let Err(reason) = flag.validate() {
            summary.failed.push(WriteFailure {
                customer_id: flag.customer_id.clone(),
                reason,
            });
            continue;
        }
        match slot_of.get(flag.customer_id.as_str()).copied() {
            None => {
                slot_of.insert(&flag.customer_id, keep.len());
                keep.push(flag);
            }
            Some(slot) => {
                // DynamoDB refuses duplicate keys in one batch; the older
                // duplicate would be rejected as stale anyway.
                summary.stale_rejected += 1;
                if flag.scored_at > keep[slot].scored_at {
                    keep[slot] = flag;
                }
            }
        }
    }
    let keep = keep
        .into_iter()
        .map(|f| Flag {
            // Stored precision: compare and store the same instant.
            scored_at: crate::timestamp::truncate(f.scored_at),
            ..f.clone()
        })
        .collect();
    Ok((keep, summary))
}

/// Checks a risk-list page size.
pub(crate) fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE_LIMIT {
        return Err(Error::InvalidInput {
            field: "limit",
            message: format!("{limit} is not in 1..={MAX_PAGE_LIMIT}"),
        });
    }
    Ok(())
}

/// The risk-list shard of a customer: FNV-1a (stable across Rust versions and
/// processes, unlike `DefaultHasher`) modulo `shards`.
pub fn shard_of(customer_id: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in customer_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u32
}

/// The sparse risk-list key `"<band>#<shard>"`, `None` when not at risk.
pub fn risk_list_pk(flag: &Flag, shards: u32) -> Option<String> {
    flag.at_risk()
        .then(|| format!("{}#{}", flag.risk_band, shard_of(&flag.customer_id, shards)))
}

/// The sparse owner-list key `"<owner>#<band>"`, `None` when not at risk
/// or without an owner.
pub fn owner_list_pk(flag: &Flag) -> Option<String> {
    let owner = flag.attributes.owner.as_deref()?;
    flag.at_risk()
        .then(|| format!("{owner}#{}", flag.risk_band))
}

/// Encodes a cursor as hex of its JSON: opaque, URL-safe, no extra dependency.
pub(crate) fn encode_cursor<T: Serialize>(state: &T) -> String {
    let json = serde_json::to_vec(state).unwrap_or_default();
    let mut out = String::with_capacity(json.len() * 2);
    for b in json {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Decodes a cursor made by [`encode_cursor`].
pub(crate) fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T> {
    let bad = |m: &str| Error::InvalidCursor(m.to_string());
    if !cursor.len().is_multiple_of(2) || cursor.len() > 64 * 1024 {
        return Err(bad("not a cursor issued by this store"));
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| bad("not a cursor issued by this store"))?;
    serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor issued by this store"))
}

/// Deadline check shared by retry loops.
pub(crate) fn past(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn flag(id: &str, p: f64, band: RiskBand, secs: i64) -> Flag {
        Flag::new(
            id,
            p,
            band,
            vec![],
            "m1",
            datetime!(2024-01-01 00:00 UTC) + time::Duration::seconds(secs),
        )
    }

    #[test]
    fn decide_covers_every_rule() {
        let old = {
            let mut f = flag("c", 0.5, RiskBand::Medium, 10);
            f.band_changed_at = Some(f.scored_at);
            f
        };
        assert_eq!(
            decide(Some(&old), &flag("c", 0.9, RiskBand::High, 10), 0.01),
            Decision::Stale
        );
        assert_eq!(
            decide(Some(&old), &flag("c", 0.9, RiskBand::High, 5), 0.01),
            Decision::Stale
        );
        assert_eq!(
            decide(Some(&old), &flag("c", 0.505, RiskBand::Medium, 20), 0.01),
            Decision::Unchanged
        );
        match decide(Some(&old), &flag("c", 0.9, RiskBand::High, 20), 0.01) {
            Decision::Write {
                flag,
                newly_at_risk,
            } => {
                assert!(!newly_at_risk, "medium was already at risk");
                assert_eq!(flag.previous_band, Some(RiskBand::Medium));
                assert_eq!(flag.band_changed_at, Some(flag.scored_at));
            }
            other => panic!("{other:?}"),
        }
        match decide(Some(&old), &flag("c", 0.6, RiskBand::Medium, 20), 0.01) {
            Decision::Write { flag, .. } => {
                assert_eq!(flag.previous_band, None);
                assert_eq!(flag.band_changed_at, old.band_changed_at);
            }
            other => panic!("{other:?}"),
        }
        match decide(None, &flag("c", 0.9, RiskBand::High, 1), 0.01) {
            Decision::Write { newly_at_risk, .. } => assert!(newly_at_risk),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prepare_keeps_newest_duplicate_and_fails_invalid() {
        let flags = vec![
            flag("a", 0.1, RiskBand::Low, 1),
            flag("a", 0.2, RiskBand::Low, 3),
            flag("a", 0.3, RiskBand::Low, 2),
            flag("", 0.3, RiskBand::Low, 2),
            flag("b", f64::NAN, RiskBand::Low, 2),
        ];
        let (keep, summary) = prepare_batch(&flags, 0.01).unwrap();
        assert_eq!(keep.len(), 1);
        assert_eq!(keep[0].churn_probability, 0.2);
        assert_eq!(summary.stale_rejected, 2);
        assert_eq!(summary.failed.len(), 2);
        assert!(prepare_batch(&flags, 2.0).is_err());
    }

    #[test]
    fn shards_are_stable_and_spread() {
        assert_eq!(shard_of("customer-42", 8), shard_of("customer-42", 8));
        let mut seen = [0usize; 8];
        for i in 0..800 {
            seen[shard_of(&format!("c{i}"), 8) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 50), "{seen:?}");
        assert_eq!(shard_of("x", 1), 0);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = encode_cursor(&vec![1, 2, 3]);
        assert_eq!(decode_cursor::<Vec<i32>>(&c).unwrap(), vec![1, 2, 3]);
        for bad in ["", "zz", "abc", "7b"] {
            assert!(matches!(
                decode_cursor::<Vec<i32>>(bad),
                Err(Error::InvalidCursor(_))
            ));
        }
    }
}
