//! Reasons: why a customer scored the way they did, in terms a CS manager can act on.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One feature, or one interaction of two, pushing a customer towards churn.
///
/// `value` and `typical` are JSON values: a number for numeric features, a
/// string for categorical ones (the level, or `"other"`), `null` when the
/// customer's value was missing and imputed. `contribution` is this feature's
/// additive share of the logit (one-hot columns and missing-indicators folded
/// back into their source feature), so the intercept plus all contributions
/// equals the logit.
///
/// An interaction's reason (a pair the model has product terms for) names
/// the first feature and its value here and the second in `with`;
/// `typical` is `null` (a pair has no one typical value) and `contribution`
/// is the pair's term alone, beside the two features' own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub feature: String,
    pub value: serde_json::Value,
    pub typical: serde_json::Value,
    pub contribution: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with: Option<Partner>,
}

/// The second feature of an interaction reason and the customer's value of
/// it (as [`Reason::value`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partner {
    pub feature: String,
    pub value: serde_json::Value,
}

/// A reason's value as text: numbers without trailing zeros, `missing` for null.
fn show(f: &mut fmt::Formatter<'_>, v: &serde_json::Value) -> fmt::Result {
    match v {
        serde_json::Value::Null => f.write_str("missing"),
        serde_json::Value::String(s) => f.write_str(s),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => write!(f, "{}", x as i64),
            Some(x) => {
                let text = crate::decimal::fixed(x, 3);
                f.write_str(text.as_str().trim_end_matches('0').trim_end_matches('.'))
            }
            None => write!(f, "{n}"),
        },
        other => write!(f, "{other}"),
    }
}

/// One side of an interaction: `plan=pro`, `logins_30d 2`, `nps missing`.
fn show_side(f: &mut fmt::Formatter<'_>, feature: &str, v: &serde_json::Value) -> fmt::Result {
    f.write_str(feature)?;
    f.write_str(if v.is_string() { "=" } else { " " })?;
    show(f, v)
}

impl fmt::Display for Reason {
    /// `logins_30d is 2 (typical 14)`; `nps is missing (typical 8)`; an
    /// interaction `plan=pro with logins_30d 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Straight into the formatter: a scores file formats three reasons
        // per customer, and allocating for each value showed in profiles.
        if let Some(with) = &self.with {
            show_side(f, &self.feature, &self.value)?;
            f.write_str(" with ")?;
            return show_side(f, &with.feature, &with.value);
        }
        write!(f, "{} is ", self.feature)?;
        show(f, &self.value)?;
        f.write_str(" (typical ")?;
        show(f, &self.typical)?;
        f.write_str(")")
    }
}
