//! The DynamoDB item of a flag and back (attributes in docs/CONTRACTS.md,
//! "Flag item").

use crate::error::{Error, Result};
use crate::flag::Flag;
use crate::flag_store::risk_list_pk;
use crate::timestamp;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// One DynamoDB item.
pub(super) type Item = HashMap<String, AttributeValue>;

/// Attributes `decide` reads from a stored item (a projection: reasons are
/// most of an item's bytes).
pub(super) const DECISION_ATTRIBUTES: &str =
    "customer_id, churn_probability, risk_band, scored_at, previous_band, band_changed_at";

/// A stored item that does not decode.
pub(super) fn corrupt(message: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "flag item",
        message: message.into(),
    }
}

/// The DynamoDB item of a flag (fields in docs/CONTRACTS.md).
pub(super) fn to_item(flag: &Flag, shards: u32) -> Item {
    let mut item: Item = HashMap::from([
        (
            "customer_id".into(),
            AttributeValue::S(flag.customer_id.clone()),
        ),
        // Rust's f64 Display is the shortest string that round-trips.
        (
            "churn_probability".into(),
            AttributeValue::N(flag.churn_probability.to_string()),
        ),
        (
            "risk_band".into(),
            AttributeValue::S(flag.risk_band.as_str().into()),
        ),
        ("at_risk".into(), AttributeValue::Bool(flag.at_risk())),
        (
            "reasons".into(),
            AttributeValue::S(serde_json::to_string(&flag.reasons).unwrap_or_else(|_| "[]".into())),
        ),
        ("model_id".into(), AttributeValue::S(flag.model_id.clone())),
        (
            "scored_at".into(),
            AttributeValue::S(timestamp::format(flag.scored_at)),
        ),
    ]);
    if let Some(b) = flag.previous_band {
        item.insert("previous_band".into(), AttributeValue::S(b.as_str().into()));
    }
    if let Some(t) = flag.band_changed_at {
        item.insert(
            "band_changed_at".into(),
            AttributeValue::S(timestamp::format(t)),
        );
    }
    // Absent (not empty) when not at risk: that is what keeps the GSI sparse,
    // and PutItem replaces the whole item, so a stale key cannot linger.
    if let Some(pk) = risk_list_pk(flag, shards) {
        item.insert("risk_list_pk".into(), AttributeValue::S(pk));
    }
    item
}

/// Decodes a stored item.
pub(super) fn from_item(item: &Item) -> Result<Flag> {
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
    let churn_probability = match item.get("churn_probability") {
        Some(AttributeValue::N(n)) => n
            .parse::<f64>()
            .map_err(|e| ctx(format!("churn_probability: {e}")))?,
        _ => return Err(ctx("missing churn_probability".into())),
    };
    Ok(Flag {
        churn_probability,
        risk_band: s("risk_band")?.parse().map_err(|e| ctx(format!("{e}")))?,
        // Absent only in the projected reads of `write_batch`.
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
        attributes: Default::default(),
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
        let item = to_item(&f, 8);
        assert_eq!(
            item["risk_list_pk"].as_s().unwrap(),
            &format!("high#{}", crate::flag_store::shard_of("c1", 8))
        );
        assert_eq!(from_item(&item).unwrap(), f);
        f.risk_band = RiskBand::Low;
        assert!(!to_item(&f, 8).contains_key("risk_list_pk"));
        let mut broken = item.clone();
        broken.insert("reasons".into(), AttributeValue::S("{".into()));
        assert!(matches!(from_item(&broken), Err(Error::Corrupt { .. })));
    }
}
