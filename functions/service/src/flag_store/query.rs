//! What a risk list asks for (bands, filters, a sort) and the summary of
//! the at-risk customers. The meaning of every filter and sort is defined
//! here once: [`ListQuery::matches`] and [`ListQuery::sort_key`]; the SQLite
//! adapter expresses the same in SQL and the contract suite holds both
//! adapters to it.

use crate::error::{Error, Result};
use crate::flag::Flag;
use churn_model::RiskBand;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};

/// Which at-risk bands a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BandFilter {
    High,
    Medium,
    /// High and medium.
    AtRisk,
}

impl BandFilter {
    /// The bands it holds.
    pub fn bands(self) -> &'static [RiskBand] {
        match self {
            BandFilter::High => &[RiskBand::High],
            BandFilter::Medium => &[RiskBand::Medium],
            BandFilter::AtRisk => &[RiskBand::High, RiskBand::Medium],
        }
    }

    /// The filter of one band.
    ///
    /// # Errors
    /// [`Error::BandNotListed`] for `low`.
    pub fn of(band: RiskBand) -> Result<BandFilter> {
        match band {
            RiskBand::High => Ok(BandFilter::High),
            RiskBand::Medium => Ok(BandFilter::Medium),
            RiskBand::Low => Err(Error::BandNotListed(band)),
        }
    }
}

impl std::str::FromStr for BandFilter {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "high" => Ok(BandFilter::High),
            "medium" => Ok(BandFilter::Medium),
            "at-risk" => Ok(BandFilter::AtRisk),
            "low" => Err("low is not on risk lists; use high, medium or at-risk".into()),
            other => Err(format!("{other:?} is not high, medium or at-risk")),
        }
    }
}

/// The order of a risk list. Ties go by probability, then customer id;
/// customers without the sort's value come last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListSort {
    /// Most likely to churn first.
    #[default]
    Probability,
    /// Largest value at risk (probability x value) first.
    Value,
    /// Soonest renewal first.
    Renewal,
    /// Largest 7-day rise (`trend.d7`) first.
    Rising,
}

impl std::str::FromStr for ListSort {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "probability" => Ok(ListSort::Probability),
            "value" => Ok(ListSort::Value),
            "renewal" => Ok(ListSort::Renewal),
            "rising" => Ok(ListSort::Rising),
            other => Err(format!(
                "{other:?} is not probability, value, renewal or rising"
            )),
        }
    }
}

/// A risk-list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub band: BandFilter,
    /// Only this owner's accounts (exact match).
    pub owner: Option<String>,
    /// Only this segment (exact match).
    pub segment: Option<String>,
    /// Only accounts renewing between today and this many days from now.
    pub renewal_within_days: Option<u32>,
    /// Only flags without an acknowledgement in force.
    pub unacknowledged: bool,
    pub sort: ListSort,
    /// The reader's clock: acknowledgements past `until` are not in force,
    /// renewal windows start today.
    pub now: OffsetDateTime,
}

impl ListQuery {
    /// Everything at risk in `band`, by probability, at the current time.
    pub fn band(band: BandFilter) -> ListQuery {
        ListQuery {
            band,
            owner: None,
            segment: None,
            renewal_within_days: None,
            unacknowledged: false,
            sort: ListSort::Probability,
            now: crate::timestamp::now(),
        }
    }

    /// The last renewal date inside the window, if there is a window.
    pub fn renewal_window(&self) -> Option<(Date, Date)> {
        self.renewal_within_days.map(|days| {
            let today = self.now.date();
            (today, today + time::Duration::days(i64::from(days)))
        })
    }

    /// Whether `flag` belongs on this list.
    pub fn matches(&self, flag: &Flag) -> bool {
        let a = &flag.attributes;
        self.band.bands().contains(&flag.risk_band)
            && self
                .owner
                .as_ref()
                .is_none_or(|o| a.owner.as_ref() == Some(o))
            && self
                .segment
                .as_ref()
                .is_none_or(|s| a.segment.as_ref() == Some(s))
            && self
                .renewal_window()
                .is_none_or(|(from, to)| renewal_date(flag).is_some_and(|d| from <= d && d <= to))
            && !(self.unacknowledged
                && flag
                    .acknowledgement
                    .as_ref()
                    .is_some_and(|ack| ack.in_force(self.now)))
    }

    /// Where `flag` goes in this list's order.
    pub fn sort_key(&self, flag: &Flag) -> SortKey {
        let p = flag.churn_probability;
        let primary = match self.sort {
            ListSort::Probability => Some(p),
            ListSort::Value => flag.attributes.value.map(|v| p * v),
            // Soonest first = largest negated day number first.
            ListSort::Renewal => renewal_date(flag).map(|d| -f64::from(d.to_julian_day())),
            ListSort::Rising => flag.trend.d7,
        };
        SortKey {
            primary,
            p,
            id: flag.customer_id.clone(),
        }
    }

    /// What a cursor must have been issued for (everything but the clock).
    pub(crate) fn fingerprint(&self) -> String {
        format!(
            "{:?}|{:?}|{:?}|{:?}|{}|{:?}",
            self.band,
            self.owner,
            self.segment,
            self.renewal_within_days,
            self.unacknowledged,
            self.sort
        )
    }
}

/// A flag's renewal date, if it has a valid one.
pub fn renewal_date(flag: &Flag) -> Option<Date> {
    let text = flag.attributes.renewal_date.as_deref()?;
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).ok()
}

/// A flag's place in a list: `primary` descending (absent last), then
/// probability descending, then customer id ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SortKey {
    pub primary: Option<f64>,
    pub p: f64,
    pub id: String,
}

impl SortKey {
    /// The list order: `Less` comes first.
    pub fn order(&self, other: &SortKey) -> Ordering {
        let primary = match (self.primary, other.primary) {
            (Some(a), Some(b)) => b.total_cmp(&a),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        primary
            .then(other.p.total_cmp(&self.p))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// Where a sorted list's next page starts: after `after`, for the query
/// with `query` as its fingerprint.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct KeyCursor {
    pub v: u8,
    pub query: String,
    pub after: SortKey,
}

impl KeyCursor {
    /// Decodes a cursor and checks it was issued for `query`.
    pub(crate) fn decode(cursor: &str, query: &ListQuery) -> Result<KeyCursor> {
        let c: KeyCursor = super::decode_cursor(cursor)?;
        if c.v != 2 || c.query != query.fingerprint() {
            return Err(Error::InvalidCursor(
                "cursor was issued for a different list (band, filters or sort)".into(),
            ));
        }
        Ok(c)
    }

    /// The cursor after the last flag of a full page.
    pub(crate) fn encode(query: &ListQuery, last: &Flag) -> String {
        super::encode_cursor(&KeyCursor {
            v: 2,
            query: query.fingerprint(),
            after: query.sort_key(last),
        })
    }
}

/// What a summary is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SummaryBy {
    #[default]
    Band,
    Owner,
    Segment,
}

impl std::str::FromStr for SummaryBy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "band" => Ok(SummaryBy::Band),
            "owner" => Ok(SummaryBy::Owner),
            "segment" => Ok(SummaryBy::Segment),
            other => Err(format!("{other:?} is not band, owner or segment")),
        }
    }
}

/// Customers and value at risk of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub customers: u64,
    /// Sum of probability x value over the customers with a value.
    pub value_at_risk: f64,
    /// Customers without a value (not in `value_at_risk`).
    pub without_value: u64,
}

impl Totals {
    fn add(&mut self, flag: &Flag) {
        self.customers += 1;
        match flag.attributes.value {
            Some(v) => self.value_at_risk += flag.churn_probability * v,
            None => self.without_value += 1,
        }
    }
}

/// One group of a summary: its key (the band, owner or segment; `None` for
/// accounts without an owner or segment) and its totals per at-risk band.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub key: Option<String>,
    pub high: Totals,
    pub medium: Totals,
    /// High and medium together.
    pub at_risk: Totals,
}

/// Customers and value at risk per band, optionally per owner or segment.
/// Only at-risk customers (high and medium) are summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub by: SummaryBy,
    /// Groups by value at risk descending (by band: high, then medium).
    pub rows: Vec<SummaryRow>,
    /// All at-risk customers.
    pub total: SummaryRow,
}

/// Builds a [`Summary`] from the at-risk flags, one at a time: the one
/// aggregation both adapters feed.
#[derive(Debug)]
pub struct SummaryBuilder {
    by: SummaryBy,
    groups: BTreeMap<Option<String>, SummaryRow>,
    total: SummaryRow,
}

impl SummaryBuilder {
    /// An empty summary by `by`.
    pub fn new(by: SummaryBy) -> SummaryBuilder {
        SummaryBuilder {
            by,
            groups: BTreeMap::new(),
            total: SummaryRow::default(),
        }
    }

    /// Counts one flag (low flags are ignored).
    pub fn add(&mut self, flag: &Flag) {
        if !flag.at_risk() {
            return;
        }
        let key = match self.by {
            SummaryBy::Band => Some(flag.risk_band.to_string()),
            SummaryBy::Owner => flag.attributes.owner.clone(),
            SummaryBy::Segment => flag.attributes.segment.clone(),
        };
        for row in [self.groups.entry(key.clone()).or_default(), &mut self.total] {
            row.key.clone_from(&key);
            row.at_risk.add(flag);
            match flag.risk_band {
                RiskBand::High => row.high.add(flag),
                _ => row.medium.add(flag),
            }
        }
        self.total.key = None;
    }

    /// The summary.
    pub fn finish(self) -> Summary {
        let mut rows: Vec<SummaryRow> = self.groups.into_values().collect();
        match self.by {
            SummaryBy::Band => rows.sort_by_key(|r| r.key.as_deref() != Some("high")),
            _ => rows.sort_by(|a, b| {
                b.at_risk
                    .value_at_risk
                    .total_cmp(&a.at_risk.value_at_risk)
                    .then_with(|| a.key.cmp(&b.key))
            }),
        }
        Summary {
            by: self.by,
            rows,
            total: self.total,
        }
    }
}
