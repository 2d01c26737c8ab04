//! The Slack digest: one message for everything pending at Slack, in the
//! incoming-webhook format (`text` as the notification fallback, Block Kit
//! `blocks` for the message itself).
//!
//! Counts and value at risk per type, then the 10 changes with the most
//! value at risk (probability times the account's value; without a value,
//! by probability after those), then "and N more" linking to the risk list
//! when `CHURN_PUBLIC_URL` is set. The digest is built in one pass over the
//! pending events keeping only the top 10, so its memory does not grow with
//! the number of events.

use super::event::{EventType, RiskEvent};
use serde_json::{json, Value};
use std::cmp::Ordering;

/// Changes listed one by one in a digest.
pub const TOP: usize = 10;

/// Per type: how many, and the value at risk they carry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct TypeTotal {
    count: usize,
    value_at_risk: f64,
}

/// A digest being built.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    totals: [TypeTotal; 3],
    top: Vec<RiskEvent>,
    total: usize,
}

/// The order of the list: value at risk descending (absent last), then
/// probability descending, then customer id.
fn rank(a: &RiskEvent, b: &RiskEvent) -> Ordering {
    let v = |e: &RiskEvent| e.value_at_risk();
    match (v(a), v(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then(b.churn_probability.total_cmp(&a.churn_probability))
    .then_with(|| a.customer_id.cmp(&b.customer_id))
}

fn slot(kind: EventType) -> usize {
    match kind {
        EventType::BecameAtRisk => 0,
        EventType::Escalated => 1,
        EventType::Recovered => 2,
    }
}

impl Digest {
    /// Counts `event` and keeps it if it is among the top ones so far.
    pub fn add(&mut self, event: &RiskEvent) {
        self.total += 1;
        let t = &mut self.totals[slot(event.kind)];
        t.count += 1;
        t.value_at_risk += event.value_at_risk().unwrap_or(0.0);
        if self.top.len() < TOP
            || self
                .top
                .last()
                .is_some_and(|last| rank(event, last) == Ordering::Less)
        {
            let at = self
                .top
                .partition_point(|e| rank(e, event) != Ordering::Greater);
            self.top.insert(at, event.clone());
            self.top.truncate(TOP);
        }
    }

    /// Events counted.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether nothing was counted (then nothing is sent).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The message body: `text` and `blocks`.
    pub fn message(&self, public_url: Option<&str>, run_id: Option<&str>) -> Value {
        let mut parts = Vec::new();
        for kind in EventType::ALL {
            let t = self.totals[slot(kind)];
            if t.count > 0 {
                parts.push(format!("{} {}", t.count, words(kind)));
            }
        }
        let at_stake = self.totals[0].value_at_risk + self.totals[1].value_at_risk;
        let mut text = format!("Churn risk: {}", parts.join(", "));
        if at_stake > 0.0 {
            text.push_str(&format!(" ({} value at risk)", amount(at_stake)));
        }
        let mut blocks = vec![json!({
            "type": "header",
            "text": {"type": "plain_text", "text": "Churn risk changes", "emoji": false},
        })];
        let fields: Vec<Value> = EventType::ALL
            .into_iter()
            .map(|kind| {
                let t = self.totals[slot(kind)];
                let label = if kind == EventType::Recovered { "value no longer at risk" } else { "value at risk" };
                json!({
                    "type": "mrkdwn",
                    "text": format!("*{}*\n{} · {} {label}", capitalised(words(kind)), t.count, amount(t.value_at_risk)),
                })
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
        if let Some(run) = run_id {
            blocks.push(json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": format!("run `{}`", escape(run))}],
            }));
        }
        blocks.push(json!({"type": "divider"}));
        for event in &self.top {
            blocks.push(json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": line(event, public_url)},
            }));
        }
        let more = self.total.saturating_sub(self.top.len());
        if more > 0 {
            let text = match public_url {
                Some(base) => format!("and {more} more: <{base}/|open the risk list>"),
                None => format!("and {more} more (`churn events --pending` lists them)"),
            };
            blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}));
        }
        json!({"text": text, "blocks": blocks})
    }
}

/// One change: name (linked when the page is known), owner, bands,
/// probability, value at risk, first reason.
fn line(e: &RiskEvent, public_url: Option<&str>) -> String {
    let name = escape(e.attributes.name.as_deref().unwrap_or(&e.customer_id));
    let who = match public_url {
        Some(base) => format!("<{base}/customers/{}|{name}>", path_segment(&e.customer_id)),
        None => format!("*{name}*"),
    };
    let old = e.old_band.map_or("new", |b| b.as_str());
    let mut s = format!(
        "{who} · {old} → *{}* · p {:.2}",
        e.new_band.as_str(),
        e.churn_probability
    );
    if let Some(v) = e.value_at_risk() {
        s.push_str(&format!(" · {} at risk", amount(v)));
    }
    if let Some(owner) = &e.attributes.owner {
        s.push_str(&format!(" · owner {}", escape(owner)));
    }
    if let Some(r) = e.reasons.first() {
        s.push_str(&format!("\n_{}_", escape(&r.to_string())));
    }
    s
}

fn words(kind: EventType) -> &'static str {
    match kind {
        EventType::BecameAtRisk => "became at risk",
        EventType::Escalated => "escalated to high",
        EventType::Recovered => "recovered",
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Slack's three control characters in mrkdwn text.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A customer id as one URL path segment.
fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `12,345` (rounded to whole units; the currency is the data's).
fn amount(x: f64) -> String {
    let whole = x.round() as i64;
    let digits = whole.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::{Attributes, RiskBand};
    use time::macros::datetime;

    fn event(id: &str, kind: EventType, p: f64, value: Option<f64>) -> RiskEvent {
        RiskEvent {
            id: format!("evt_{id}"),
            kind,
            customer_id: id.into(),
            old_band: Some(RiskBand::Low),
            new_band: RiskBand::High,
            churn_probability: p,
            previous_probability: Some(0.1),
            reasons: vec![],
            attributes: Attributes {
                value,
                name: Some(format!("<b>{id}</b> & co")),
                ..Attributes::default()
            },
            model_id: "m".into(),
            scored_at: datetime!(2026-01-01 00:00 UTC),
            run_id: None,
        }
    }

    #[test]
    fn keeps_the_ten_with_most_value_at_risk_and_counts_the_rest() {
        let mut d = Digest::default();
        for i in 0..25 {
            d.add(&event(
                &format!("c{i:02}"),
                EventType::BecameAtRisk,
                0.5,
                Some(f64::from(i) * 100.0),
            ));
        }
        d.add(&event("novalue", EventType::Escalated, 0.99, None));
        d.add(&event("gone", EventType::Recovered, 0.05, Some(1000.0)));
        assert_eq!(d.len(), 27);
        let ids: Vec<&str> = d.top.iter().map(|e| e.customer_id.as_str()).collect();
        assert_eq!(
            ids,
            ["c24", "c23", "c22", "c21", "c20", "c19", "c18", "c17", "c16", "c15"]
        );
        let m = d.message(Some("https://churn.example.com"), Some("run-1"));
        let text = m["text"].as_str().unwrap();
        assert!(
            text.starts_with("Churn risk: 25 became at risk, 1 escalated to high, 1 recovered"),
            "{text}"
        );
        let blocks = m["blocks"].as_array().unwrap();
        let last = blocks.last().unwrap().to_string();
        assert!(
            last.contains("and 17 more") && last.contains("https://churn.example.com/"),
            "{last}"
        );
        let all = serde_json::to_string(blocks).unwrap();
        assert!(
            all.contains("&lt;b&gt;c24&lt;/b&gt; &amp; co"),
            "names are escaped"
        );
        assert!(!all.contains("<b>"));
    }

    #[test]
    fn amounts_have_thousands_separators() {
        assert_eq!(amount(0.4), "0");
        assert_eq!(amount(999.6), "1,000");
        assert_eq!(amount(1_234_567.0), "1,234,567");
    }
}
