//! The stored at-risk flag: one per customer (docs/CONTRACTS.md, "Flag item").

use churn_model::{Attributes, Reason, RiskBand};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Longest customer id accepted; the rule itself is [`churn_model::customer_id`].
pub use churn_model::MAX_CUSTOMER_ID_BYTES;

/// A customer's latest churn score as stored in the flag store.
///
/// `previous_band` and `band_changed_at` are maintained by the store on write:
/// whatever a caller puts there is ignored and replaced from the stored item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub customer_id: String,
    /// Probability of churning within the horizon, in `[0, 1]`.
    pub churn_probability: f64,
    pub risk_band: RiskBand,
    /// Top reasons, most important first.
    pub reasons: Vec<Reason>,
    pub model_id: String,
    /// When the score was computed; a write older than the stored one is rejected.
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub scored_at: OffsetDateTime,
    /// The band before the most recent band change (`None` until the band first changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_band: Option<RiskBand>,
    /// When the band last changed (the first score counts as a change from nothing).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timestamp::serde_rfc3339_option"
    )]
    pub band_changed_at: Option<OffsetDateTime>,
    /// The account's attributes from the scored row (absent roles null).
    #[serde(default)]
    pub attributes: Attributes,
    /// Somebody acting on the flag. Set only by `acknowledge`, kept by every
    /// rescore, ended by an escalation to high; stores return it only while
    /// in force (before `until`).
    #[serde(default)]
    pub acknowledgement: Option<Acknowledgement>,
    /// Probability change over 7 and 30 days, from the history; the store
    /// maintains it on write (whatever a caller puts here is replaced).
    #[serde(default)]
    pub trend: Trend,
    /// Whole days since `band_changed_at`, derived when read (not stored).
    #[serde(default)]
    pub days_in_band: Option<i64>,
}

/// Someone on the account team has seen the flag and is acting on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Who (at most [`MAX_ACK_TEXT_CHARS`] characters).
    pub by: String,
    /// What they are doing about it (at most [`MAX_ACK_TEXT_CHARS`] characters).
    pub note: String,
    /// When it was given.
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub at: OffsetDateTime,
    /// When it ends by itself.
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub until: OffsetDateTime,
}

/// Longest `by` or `note` of an acknowledgement, in characters.
pub const MAX_ACK_TEXT_CHARS: usize = 500;

/// How long an acknowledgement lasts when no `until` is given.
pub const DEFAULT_ACK_DAYS: i64 = 14;

impl Acknowledgement {
    /// The one validation of an acknowledgement (CLI and API): `by` and
    /// `note` non-empty and at most [`MAX_ACK_TEXT_CHARS`] characters,
    /// `until` after `now` (default [`DEFAULT_ACK_DAYS`] from `now`).
    ///
    /// # Errors
    /// [`crate::error::Error::InvalidInput`] naming the field.
    pub fn new(
        by: &str,
        note: &str,
        until: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> crate::error::Result<Acknowledgement> {
        use crate::error::Error;
        for (field, text) in [("by", by), ("note", note)] {
            let chars = text.chars().count();
            if text.trim().is_empty() {
                return Err(Error::InvalidInput {
                    field,
                    message: "must not be empty".into(),
                });
            }
            if chars > MAX_ACK_TEXT_CHARS {
                return Err(Error::InvalidInput {
                    field,
                    message: format!("{chars} characters; at most {MAX_ACK_TEXT_CHARS}"),
                });
            }
        }
        let now = crate::timestamp::truncate(now);
        let until = crate::timestamp::truncate(
            until.unwrap_or(now + time::Duration::days(DEFAULT_ACK_DAYS)),
        );
        if until <= now {
            return Err(Error::InvalidInput {
                field: "until",
                message: format!("{} is not in the future", crate::timestamp::format(until)),
            });
        }
        Ok(Acknowledgement {
            by: by.trim().to_string(),
            note: note.trim().to_string(),
            at: now,
            until,
        })
    }

    /// The one reading of an `until` given as text (CLI `--until`, API
    /// `until`): a date `YYYY-MM-DD` means the start of that day (UTC), the
    /// day the flag shows again; otherwise an RFC 3339 time.
    ///
    /// # Errors
    /// A message naming the expected forms.
    pub fn parse_until(text: &str) -> std::result::Result<OffsetDateTime, String> {
        let t = text.trim();
        if let Ok(date) = churn_model::attributes::parse_date(t) {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if let Ok(d) = time::Date::parse(&date, format) {
                return Ok(d.midnight().assume_utc());
            }
        }
        crate::timestamp::parse(t)
            .map_err(|_| format!("{t:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
    }

    /// Whether it is still in force at `now`.
    pub fn in_force(&self, now: OffsetDateTime) -> bool {
        now < self.until
    }
}

/// Probability now minus the probability in force 7 and 30 days before the
/// latest score; `None` when the history does not reach back that far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    pub d7: Option<f64>,
    pub d30: Option<f64>,
}

/// One point of a customer's score history (written with each flag write).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub scored_at: OffsetDateTime,
    pub churn_probability: f64,
    pub risk_band: RiskBand,
    pub model_id: String,
}

/// A customer's flag with its score history (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRecord {
    #[serde(flatten)]
    pub flag: Flag,
    pub history: Vec<HistoryPoint>,
}

impl Flag {
    /// A fresh flag for a new score; the store fills in the band history.
    /// `scored_at` is truncated to microseconds, the stored precision.
    pub fn new(
        customer_id: impl Into<String>,
        churn_probability: f64,
        risk_band: RiskBand,
        reasons: Vec<Reason>,
        model_id: impl Into<String>,
        scored_at: OffsetDateTime,
    ) -> Self {
        Flag {
            customer_id: customer_id.into(),
            churn_probability,
            risk_band,
            reasons,
            model_id: model_id.into(),
            scored_at: crate::timestamp::truncate(scored_at),
            previous_band: None,
            band_changed_at: None,
            attributes: Attributes::default(),
            acknowledgement: None,
            trend: Trend::default(),
            days_in_band: None,
        }
    }

    /// The account's attributes.
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// The flag as a reader at `now` sees it: an acknowledgement past its
    /// `until` is gone, `days_in_band` counts whole days in the band.
    pub fn seen_at(mut self, now: OffsetDateTime) -> Self {
        if self
            .acknowledgement
            .as_ref()
            .is_some_and(|a| !a.in_force(now))
        {
            self.acknowledgement = None;
        }
        self.days_in_band = self.band_changed_at.map(|t| (now - t).whole_days().max(0));
        self
    }

    /// The history point of this score.
    pub fn history_point(&self) -> HistoryPoint {
        HistoryPoint {
            scored_at: self.scored_at,
            churn_probability: self.churn_probability,
            risk_band: self.risk_band,
            model_id: self.model_id.clone(),
        }
    }

    /// Whether the customer appears on risk lists (`high` or `medium`).
    pub fn at_risk(&self) -> bool {
        self.risk_band.is_at_risk()
    }

    /// Checks what the stores rely on.
    ///
    /// # Errors
    /// A message naming the problem: a customer id that breaks the id rule, or a
    /// probability that is not a number in `[0, 1]`.
    pub fn validate(&self) -> Result<(), String> {
        // The one id rule; a stored id is the rule's trimmed form exactly.
        match churn_model::customer_id(&self.customer_id) {
            Ok(id) if id.len() == self.customer_id.len() => {}
            Ok(_) => return Err("customer_id has leading or trailing whitespace".into()),
            Err(e) => return Err(e.to_string()),
        }
        if !(0.0..=1.0).contains(&self.churn_probability) {
            return Err(format!(
                "churn_probability {} is not in [0, 1]",
                self.churn_probability
            ));
        }
        Ok(())
    }
}

/// Outcome of one `write_batch`: every input flag is counted exactly once in
/// `written`, `skipped_unchanged`, `stale_rejected` or `failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSummary {
    /// Items written (new, band changed, or probability moved by epsilon or more).
    pub written: usize,
    /// Items not rewritten: same band and probability within epsilon.
    pub skipped_unchanged: usize,
    /// Items older than (or as old as) the stored score, left untouched.
    pub stale_rejected: usize,
    /// Written items that are at risk now and were not before (or were absent).
    pub newly_at_risk: usize,
    /// Items that could not be written, with why; never dropped silently.
    pub failed: Vec<WriteFailure>,
    /// Risk-change events the written items recorded in the outbox.
    #[serde(default)]
    pub events: crate::notify::EventCounts,
}

impl WriteSummary {
    /// Adds another summary's counts into this one.
    pub fn merge(&mut self, other: WriteSummary) {
        self.written += other.written;
        self.skipped_unchanged += other.skipped_unchanged;
        self.stale_rejected += other.stale_rejected;
        self.newly_at_risk += other.newly_at_risk;
        self.failed.extend(other.failed);
        self.events.merge(other.events);
    }

    /// Number of input flags this summary accounts for.
    pub fn total(&self) -> usize {
        self.written + self.skipped_unchanged + self.stale_rejected + self.failed.len()
    }
}

/// A flag that could not be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFailure {
    pub customer_id: String,
    pub reason: String,
}

/// One page of a risk list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// Flags in the list's order (by default `churn_probability` descending,
    /// ties by `customer_id`; in DynamoDB equal probabilities within one
    /// index partition come in the index's order).
    pub flags: Vec<Flag>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
