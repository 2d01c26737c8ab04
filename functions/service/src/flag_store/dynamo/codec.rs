//! The DynamoDB item of a flag and back (attributes in docs/CONTRACTS.md,
//! "Flag item").

use crate::error::{Error, Result};
use crate::flag::{Acknowledgement, Flag, HistoryPoint, Trend};
use crate::flag_store::{owner_list_pk, risk_list_pk};
use crate::timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use churn_model::{Attributes, RiskBand};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

/// A stored item decoded: the flag, its history (oldest first) and the
/// item's revision (`None` for an item written before revisions existed).
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub flag: Flag,
    pub history: Vec<HistoryPoint>,
    pub rev: Option<u64>,
    /// The risk-change event the last write recorded on the item and that
    /// may not be in its own event item yet (see `events`).
    pub unprojected: Option<crate::notify::StoredEvent>,
}

/// The history as stored: model ids once, points as
/// `[unix microseconds, probability, band, model index]` (about 40 bytes a
/// point, where the full form takes 130).
#[derive(Debug, Default, Serialize, Deserialize)]
struct CompactHistory {
    m: Vec<String>,
    p: Vec<(i64, f64, RiskBand, usize)>,
}

fn encode_history(history: &[HistoryPoint]) -> String {
    let mut out = CompactHistory::default();
    for h in history {
        let model = match out.m.iter().position(|m| *m == h.model_id) {
            Some(i) => i,
            None => {
                out.m.push(h.model_id.clone());
                out.m.len() - 1
            }
        };
        let micros = (h.scored_at.unix_timestamp_nanos() / 1000) as i64;
        out.p
            .push((micros, h.churn_probability, h.risk_band, model));
    }
    serde_json::to_string(&out).unwrap_or_default()
}

fn decode_history(text: &str) -> std::result::Result<Vec<HistoryPoint>, String> {
    let h: CompactHistory = serde_json::from_str(text).map_err(|e| format!("history: {e}"))?;
    h.p.into_iter()
        .map(|(micros, p, band, model)| {
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                .map_err(|e| format!("history: {e}"))?;
            let model_id =
                h.m.get(model)
                    .cloned()
                    .ok_or_else(|| format!("history: model index {model} out of range"))?;
            Ok(HistoryPoint {
                scored_at: at,
                churn_probability: p,
                risk_band: band,
                model_id,
            })
        })
        .collect()
}

/// A stored item that does not decode.
pub(super) fn corrupt(message: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "flag item",
        message: message.into(),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// The DynamoDB item of a flag with its history, at revision `rev`
/// (fields in docs/CONTRACTS.md).
pub(super) fn to_item(flag: &Flag, history: &[HistoryPoint], shards: u32, rev: u64) -> Item {
    let mut item: Item = HashMap::from([
        ("customer_id".into(), s(&flag.customer_id)),
        // Rust's f64 Display is the shortest string that round-trips.
        (
            "churn_probability".into(),
            AttributeValue::N(flag.churn_probability.to_string()),
        ),
        ("risk_band".into(), s(flag.risk_band.as_str())),
        ("at_risk".into(), AttributeValue::Bool(flag.at_risk())),
        (
            "reasons".into(),
            s(serde_json::to_string(&flag.reasons).unwrap_or_else(|_| "[]".into())),
        ),
        ("model_id".into(), s(&flag.model_id)),
        ("scored_at".into(), s(timestamp::format(flag.scored_at))),
        ("history".into(), s(encode_history(history))),
        ("rev".into(), AttributeValue::N(rev.to_string())),
    ]);
    if let Some(b) = flag.previous_band {
        item.insert("previous_band".into(), s(b.as_str()));
    }
    if let Some(t) = flag.band_changed_at {
        item.insert("band_changed_at".into(), s(timestamp::format(t)));
    }
    if !flag.attributes.is_empty() {
        let json = serde_json::to_string(&flag.attributes).unwrap_or_default();
        item.insert("attributes".into(), s(json));
    }
    if let Some(ack) = &flag.acknowledgement {
        item.insert("ack".into(), s(ack_json(ack)));
    }
    for (name, v) in [("trend_d7", flag.trend.d7), ("trend_d30", flag.trend.d30)] {
        if let Some(v) = v {
            item.insert(name.into(), AttributeValue::N(v.to_string()));
        }
    }
    // Absent (not empty) when not at risk: that is what keeps the GSIs
    // sparse, and PutItem replaces the whole item, so a stale key cannot linger.
    if let Some(pk) = risk_list_pk(flag, shards) {
        item.insert("risk_list_pk".into(), s(pk));
    }
    if let Some(pk) = owner_list_pk(flag) {
        item.insert("owner_list_pk".into(), s(pk));
    }
    item
}

/// The stored form of an acknowledgement.
pub(super) fn ack_json(ack: &Acknowledgement) -> String {
    serde_json::to_string(ack).unwrap_or_default()
}

/// Decodes a stored item's flag.
pub(super) fn from_item(item: &Item) -> Result<Flag> {
    Ok(decode(item)?.flag)
}

/// Decodes a stored item whole.
pub(super) fn decode(item: &Item) -> Result<Stored> {
    let s = |name: &str| -> Result<&String> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v),
            _ => Err(corrupt(format!("missing string attribute {name}"))),
        }
    };
    let opt_s = |name: &str| -> Option<&String> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Some(v),
            _ => None,
        }
    };
    let customer_id = s("customer_id")?.clone();
    let ctx = |m: String| corrupt(format!("customer {customer_id:?}: {m}"));
    let num = |name: &str| -> Result<Option<f64>> {
        match item.get(name) {
            Some(AttributeValue::N(n)) => n
                .parse::<f64>()
                .map(Some)
                .map_err(|e| ctx(format!("{name}: {e}"))),
            None => Ok(None),
            Some(_) => Err(ctx(format!("{name} is not a number"))),
        }
    };
    let churn_probability =
        num("churn_probability")?.ok_or_else(|| ctx("missing churn_probability".into()))?;
    let attributes: Attributes = match opt_s("attributes") {
        Some(a) => serde_json::from_str(a).map_err(|e| ctx(format!("attributes: {e}")))?,
        None => Attributes::default(),
    };
    let acknowledgement = opt_s("ack")
        .map(|a| serde_json::from_str::<Acknowledgement>(a))
        .transpose()
        .map_err(|e| ctx(format!("ack: {e}")))?;
    let history = match opt_s("history") {
        Some(h) => decode_history(h).map_err(&ctx)?,
        None => Vec::new(),
    };
    let rev = match item.get("rev") {
        Some(AttributeValue::N(n)) => Some(n.parse::<u64>().map_err(|e| ctx(format!("rev: {e}")))?),
        _ => None,
    };
    let flag = Flag {
        churn_probability,
        risk_band: s("risk_band")?.parse().map_err(|e| ctx(format!("{e}")))?,
        reasons: match opt_s("reasons") {
            Some(r) => serde_json::from_str(r).map_err(|e| ctx(format!("reasons: {e}")))?,
            None => Vec::new(),
        },
        model_id: opt_s("model_id").cloned().unwrap_or_default(),
        scored_at: timestamp::parse(s("scored_at")?).map_err(&ctx)?,
        previous_band: opt_s("previous_band")
            .map(|b| b.parse())
            .transpose()
            .map_err(|e| ctx(format!("{e}")))?,
        band_changed_at: opt_s("band_changed_at")
            .map(|t| timestamp::parse(t))
            .transpose()
            .map_err(&ctx)?,
        customer_id: customer_id.clone(),
        attributes,
        acknowledgement,
        trend: Trend {
            d7: num("trend_d7")?,
            d30: num("trend_d30")?,
        },
        days_in_band: None,
    };
    let unprojected = opt_s("unprojected")
        .map(|e| serde_json::from_str(e))
        .transpose()
        .map_err(|e| ctx(format!("unprojected: {e}")))?;
    Ok(Stored {
        flag,
        history,
        rev,
        unprojected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_model::{Reason, RiskBand};

    #[test]
    fn items_round_trip_and_keep_the_gsi_sparse() {
        let mut f = Flag::new(
            "c1",
            0.8125,
            RiskBand::High,
            vec![Reason {
                feature: "logins_30d".into(),
                value: serde_json::json!(2),
                typical: serde_json::json!(14),
                contribution: 0.7,
                with: None,
            }],
            "m1",
            timestamp::now(),
        );
        f.previous_band = Some(RiskBand::Low);
        f.band_changed_at = Some(f.scored_at);
        f.attributes.owner = Some("ana@example.com".into());
        f.attributes.value = Some(1200.0);
        f.acknowledgement = Some(Acknowledgement {
            by: "ana".into(),
            note: "call booked".into(),
            at: f.scored_at,
            until: f.scored_at + time::Duration::days(3),
        });
        f.trend.d7 = Some(0.25);
        let history = vec![f.history_point()];
        let item = to_item(&f, &history, 8, 3);
        assert_eq!(
            item["owner_list_pk"].as_s().unwrap(),
            "ana@example.com#high"
        );
        let back = decode(&item).unwrap();
        assert_eq!(back.history, history);
        assert_eq!(back.rev, Some(3));
        assert_eq!(
            item["risk_list_pk"].as_s().unwrap(),
            &format!("high#{}", crate::flag_store::shard_of("c1", 8))
        );
        assert_eq!(from_item(&item).unwrap(), f);
        f.risk_band = RiskBand::Low;
        let low = to_item(&f, &history, 8, 1);
        assert!(!low.contains_key("risk_list_pk"));
        assert!(!low.contains_key("owner_list_pk"));
        let mut broken = item.clone();
        broken.insert("reasons".into(), AttributeValue::S("{".into()));
        assert!(matches!(from_item(&broken), Err(Error::Corrupt { .. })));
    }
}
