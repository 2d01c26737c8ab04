//! A risk-change event: what a flag write tells the account team.
//!
//! Derived from the stored flag and the one written over it, so every path
//! that writes flags (a rescore, a persisted API score) makes the same events.
//! The id is a hash of the change (customer, score time, type): a retried
//! write, a replayed batch or a conflict re-decided in DynamoDB names the same
//! change with the same id, which receivers use to drop duplicates.

use crate::flag::Flag;
use churn_model::{Attributes, Reason, RiskBand};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// What happened to a customer's risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// No flag, or low, to medium or high.
    BecameAtRisk,
    /// Medium to high.
    Escalated,
    /// Medium or high to low.
    Recovered,
}

impl EventType {
    /// Every type, in the order digests list them.
    pub const ALL: [EventType; 3] = [
        EventType::BecameAtRisk,
        EventType::Escalated,
        EventType::Recovered,
    ];

    /// The type's name as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BecameAtRisk => "became_at_risk",
            EventType::Escalated => "escalated",
            EventType::Recovered => "recovered",
        }
    }

    /// The type of a move from `old` (`None`: never scored) to `new`, if it is one.
    /// High to medium is not an event: the customer stays on the list.
    pub fn of_move(old: Option<RiskBand>, new: RiskBand) -> Option<EventType> {
        let was_at_risk = old.is_some_and(RiskBand::is_at_risk);
        match (old, new) {
            _ if !was_at_risk && new.is_at_risk() => Some(EventType::BecameAtRisk),
            (Some(RiskBand::Medium), RiskBand::High) => Some(EventType::Escalated),
            _ if was_at_risk && !new.is_at_risk() => Some(EventType::Recovered),
            _ => None,
        }
    }

    /// Whether an acknowledgement in force holds the event back (recorded,
    /// not sent): the team already knows. An escalation is always sent.
    pub fn held_by_acknowledgement(self) -> bool {
        !matches!(self, EventType::Escalated)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not an event type (became_at_risk, escalated, recovered)")
            })
    }
}

/// One risk change, as stored in the outbox and sent to every destination
/// (docs/CONTRACTS.md, "Risk-change event").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskEvent {
    /// `evt_` and 32 hex digits, the same for the same change.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub customer_id: String,
    /// `None` for a customer scored for the first time.
    pub old_band: Option<RiskBand>,
    pub new_band: RiskBand,
    pub churn_probability: f64,
    pub previous_probability: Option<f64>,
    pub reasons: Vec<Reason>,
    pub attributes: Attributes,
    pub model_id: String,
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub scored_at: OffsetDateTime,
    /// The rescore run that wrote the flag; `None` for a score persisted by the API.
    pub run_id: Option<String>,
}

impl RiskEvent {
    /// The event of writing `new` over `old` (as `decide` made it: band
    /// history, attributes and acknowledgement settled), if the band moved
    /// in a way the team is told about. The second value says whether an
    /// acknowledgement still in force holds it back.
    pub fn of_write(
        old: Option<&Flag>,
        new: &Flag,
        run_id: Option<&str>,
    ) -> Option<(RiskEvent, bool)> {
        let kind = EventType::of_move(old.map(|f| f.risk_band), new.risk_band)?;
        let acknowledged = new
            .acknowledgement
            .as_ref()
            .is_some_and(|a| a.in_force(new.scored_at));
        let event = RiskEvent {
            id: event_id(&new.customer_id, new.scored_at, kind),
            kind,
            customer_id: new.customer_id.clone(),
            old_band: old.map(|f| f.risk_band),
            new_band: new.risk_band,
            churn_probability: new.churn_probability,
            previous_probability: old.map(|f| f.churn_probability),
            reasons: new.reasons.clone(),
            attributes: new.attributes.clone(),
            model_id: new.model_id.clone(),
            scored_at: new.scored_at,
            run_id: run_id.map(str::to_string),
        };
        Some((event, acknowledged && kind.held_by_acknowledgement()))
    }

    /// Probability times the account's value: what the change puts at stake
    /// (`None` without a value).
    pub fn value_at_risk(&self) -> Option<f64> {
        self.attributes.value.map(|v| v * self.churn_probability)
    }
}

/// The id of a change: a hash of customer, score time and type.
pub fn event_id(customer_id: &str, scored_at: OffsetDateTime, kind: EventType) -> String {
    let mut h = Sha256::new();
    h.update(customer_id.as_bytes());
    h.update([0]);
    h.update(crate::timestamp::format(scored_at).as_bytes());
    h.update([0]);
    h.update(kind.as_str().as_bytes());
    format!("evt_{}", hex(&h.finalize()[..16]))
}

/// Lowercase hex of `bytes` (event ids, delivery ids, signatures).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Events made by a write, by type; `held` counts those an acknowledgement
/// held back (recorded, not sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    pub became_at_risk: usize,
    pub escalated: usize,
    pub recovered: usize,
    pub held: usize,
}

impl EventCounts {
    /// Counts one event.
    pub fn add(&mut self, kind: EventType, held: bool) {
        match kind {
            EventType::BecameAtRisk => self.became_at_risk += 1,
            EventType::Escalated => self.escalated += 1,
            EventType::Recovered => self.recovered += 1,
        }
        self.held += usize::from(held);
    }

    /// Adds another count into this one.
    pub fn merge(&mut self, other: EventCounts) {
        self.became_at_risk += other.became_at_risk;
        self.escalated += other.escalated;
        self.recovered += other.recovered;
        self.held += other.held;
    }

    /// Events of every type.
    pub fn total(&self) -> usize {
        self.became_at_risk + self.escalated + self.recovered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag::Acknowledgement;
    use time::macros::datetime;
    use RiskBand::{High, Low, Medium};

    #[test]
    fn moves_map_to_the_three_types_and_nothing_else() {
        use EventType::*;
        let cases = [
            (None, Low, None),
            (None, Medium, Some(BecameAtRisk)),
            (None, High, Some(BecameAtRisk)),
            (Some(Low), Low, None),
            (Some(Low), Medium, Some(BecameAtRisk)),
            (Some(Low), High, Some(BecameAtRisk)),
            (Some(Medium), Medium, None),
            (Some(Medium), High, Some(Escalated)),
            (Some(Medium), Low, Some(Recovered)),
            (Some(High), High, None),
            (Some(High), Medium, None),
            (Some(High), Low, Some(Recovered)),
        ];
        for (old, new, want) in cases {
            assert_eq!(EventType::of_move(old, new), want, "{old:?} -> {new:?}");
        }
    }

    #[test]
    fn ids_are_stable_per_change_and_differ_between_changes() {
        let t = datetime!(2026-01-01 00:00 UTC);
        let a = event_id("c1", t, EventType::Escalated);
        assert_eq!(a, event_id("c1", t, EventType::Escalated));
        assert_eq!(a.len(), 36);
        assert_ne!(a, event_id("c2", t, EventType::Escalated));
        assert_ne!(
            a,
            event_id("c1", t + time::Duration::seconds(1), EventType::Escalated)
        );
        assert_ne!(a, event_id("c1", t, EventType::Recovered));
    }

    #[test]
    fn an_acknowledgement_in_force_holds_all_but_escalations() {
        let t = datetime!(2026-01-01 00:00 UTC);
        let ack = Acknowledgement::new("ana", "call", None, t).unwrap();
        let old = Flag::new("c", 0.2, Low, vec![], "m", t);
        let mut new = Flag::new("c", 0.5, Medium, vec![], "m", t + time::Duration::days(1));
        new.acknowledgement = Some(ack.clone());
        let (event, held) = RiskEvent::of_write(Some(&old), &new, Some("r1")).unwrap();
        assert_eq!(event.kind, EventType::BecameAtRisk);
        assert!(held);
        assert_eq!(event.previous_probability, Some(0.2));
        // Past its `until` it holds nothing back.
        new.scored_at = t + time::Duration::days(30);
        assert!(!RiskEvent::of_write(Some(&old), &new, None).unwrap().1);
        let medium = Flag::new("c", 0.5, Medium, vec![], "m", t);
        let mut high = Flag::new("c", 0.9, High, vec![], "m", t + time::Duration::days(1));
        high.acknowledgement = Some(ack);
        assert!(!RiskEvent::of_write(Some(&medium), &high, None).unwrap().1);
    }
}
