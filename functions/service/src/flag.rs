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
}

impl WriteSummary {
    /// Adds another summary's counts into this one.
    pub fn merge(&mut self, other: WriteSummary) {
        self.written += other.written;
        self.skipped_unchanged += other.skipped_unchanged;
        self.stale_rejected += other.stale_rejected;
        self.newly_at_risk += other.newly_at_risk;
        self.failed.extend(other.failed);
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
    /// Flags by `churn_probability` descending (ties by `customer_id`).
    pub flags: Vec<Flag>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
