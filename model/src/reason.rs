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

/// A reason's value as the text rule reads it: borrowed, so a scores file
/// can write a reason's words straight from the table it scored, without
/// building a [`Reason`] first; [`Reason`]'s `Display` reads its JSON values
/// through the same type, so both give the same characters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueText<'a> {
    /// Null: the customer's value was missing (imputed).
    Missing,
    /// A finite number.
    Number(f64),
    /// A finite number with its text already written by this rule (a
    /// model's typical values, written once per model).
    Written(f64, &'a str),
    /// A categorical level (or `other`).
    Text(&'a str),
    /// Any other JSON value, written as JSON.
    Json(&'a serde_json::Value),
}

impl<'a> ValueText<'a> {
    /// The text of a reason's JSON value.
    pub fn of(v: &'a serde_json::Value) -> ValueText<'a> {
        match v {
            serde_json::Value::Null => ValueText::Missing,
            serde_json::Value::String(s) => ValueText::Text(s),
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(x) => ValueText::Number(x),
                None => ValueText::Json(v),
            },
            other => ValueText::Json(other),
        }
    }

    /// A number as a reason holds it: JSON has no infinities or NaN, so a
    /// non-finite one is null (missing), as `serde_json::Value::from` makes it.
    pub fn number(x: f64) -> ValueText<'a> {
        if x.is_finite() {
            ValueText::Number(x)
        } else {
            ValueText::Missing
        }
    }

    /// The JSON value a [`Reason`] stores for it.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            ValueText::Missing => serde_json::Value::Null,
            ValueText::Number(x) | ValueText::Written(x, _) => serde_json::Value::from(x),
            ValueText::Text(s) => serde_json::Value::String(s.to_string()),
            ValueText::Json(v) => v.clone(),
        }
    }

    /// Its text, as a reason writes it.
    pub fn to_text(self) -> String {
        let mut text = String::new();
        let _ = self.write(&mut text);
        text
    }

    /// Numbers without trailing zeros (three decimals at most), `missing`
    /// for null.
    fn write<W: fmt::Write>(self, w: &mut W) -> fmt::Result {
        match self {
            ValueText::Missing => w.write_str("missing"),
            ValueText::Text(s) | ValueText::Written(_, s) => w.write_str(s),
            ValueText::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => {
                crate::decimal::write_integer(w, x as i64)
            }
            ValueText::Number(x) => {
                let text = crate::decimal::fixed(x, 3);
                w.write_str(text.as_str().trim_end_matches('0').trim_end_matches('.'))
            }
            ValueText::Json(serde_json::Value::Number(n)) => write!(w, "{n}"),
            ValueText::Json(other) => write!(w, "{other}"),
        }
    }

    fn is_text(self) -> bool {
        matches!(
            self,
            ValueText::Text(_) | ValueText::Json(serde_json::Value::String(_))
        )
    }
}

/// A reason as text is made of: the one text rule ([`ReasonText::write`])
/// for a stored [`Reason`] and for one read straight from a scored table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReasonText<'a> {
    pub feature: &'a str,
    pub value: ValueText<'a>,
    pub typical: ValueText<'a>,
    /// An interaction's second feature and the customer's value of it.
    pub with: Option<(&'a str, ValueText<'a>)>,
}

impl<'a> ReasonText<'a> {
    /// The text of a stored reason.
    pub fn of(r: &'a Reason) -> ReasonText<'a> {
        ReasonText {
            feature: &r.feature,
            value: ValueText::of(&r.value),
            typical: ValueText::of(&r.typical),
            with: r
                .with
                .as_ref()
                .map(|w| (w.feature.as_str(), ValueText::of(&w.value))),
        }
    }

    /// `logins_30d is 2 (typical 14)`; `nps is missing (typical 8)`; an
    /// interaction `plan=pro with logins_30d 2`.
    pub fn write<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        if let Some((feature, value)) = self.with {
            show_side(w, self.feature, self.value)?;
            w.write_str(" with ")?;
            return show_side(w, feature, value);
        }
        w.write_str(self.feature)?;
        w.write_str(" is ")?;
        self.value.write(w)?;
        w.write_str(" (typical ")?;
        self.typical.write(w)?;
        w.write_str(")")
    }

    /// The stored reason, with its contribution to the logit.
    pub fn to_reason(&self, contribution: f64) -> Reason {
        Reason {
            feature: self.feature.to_string(),
            value: self.value.to_json(),
            typical: self.typical.to_json(),
            contribution,
            with: self.with.map(|(feature, value)| Partner {
                feature: feature.to_string(),
                value: value.to_json(),
            }),
        }
    }
}

/// One side of an interaction: `plan=pro`, `logins_30d 2`, `nps missing`.
fn show_side<W: fmt::Write>(w: &mut W, feature: &str, v: ValueText<'_>) -> fmt::Result {
    w.write_str(feature)?;
    w.write_str(if v.is_text() { "=" } else { " " })?;
    v.write(w)
}

impl fmt::Display for Reason {
    /// As [`ReasonText::write`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ReasonText::of(self).write(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The number rule as `format!` states it: whole numbers below 1e15 as
    /// integers, others with three decimals, trailing zeros and point cut.
    fn by_format(x: f64) -> String {
        if x.fract() == 0.0 && x.abs() < 1e15 {
            format!("{}", x as i64)
        } else {
            let text = format!("{x:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }

    #[test]
    fn numbers_read_as_format_writes_them() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let edges = [
            0.0,
            -0.0,
            0.0004,
            -0.0004,
            0.0005,
            1.0,
            -1.0,
            2.5,
            1e15,
            -1e15,
            1e15 - 1.0,
        ];
        let random = (0..100_000).map(|_| {
            let x: f64 = rng.gen_range(-1.0..1.0) * 10f64.powi(rng.gen_range(-5..17));
            if rng.gen_bool(0.2) {
                x.round()
            } else {
                x
            }
        });
        for x in edges.into_iter().chain(random) {
            assert_eq!(ValueText::Number(x).to_text(), by_format(x), "{x:e}");
            assert_eq!(ValueText::of(&serde_json::json!(x)).to_text(), by_format(x));
        }
        assert_eq!(ValueText::number(f64::NAN).to_text(), "missing");
    }

    #[test]
    fn a_stored_reason_and_its_text_read_alike() {
        let reason = Reason {
            feature: "plan".into(),
            value: serde_json::json!("pro"),
            typical: serde_json::Value::Null,
            contribution: 0.4,
            with: Some(Partner {
                feature: "logins_30d".into(),
                value: serde_json::json!(2.0),
            }),
        };
        assert_eq!(reason.to_string(), "plan=pro with logins_30d 2");
        assert_eq!(ReasonText::of(&reason).to_reason(0.4), reason);
        let plain = Reason {
            with: None,
            value: serde_json::json!(1.23456),
            typical: serde_json::json!(14.0),
            ..reason
        };
        assert_eq!(plain.to_string(), "plan is 1.235 (typical 14)");
        assert_eq!(ReasonText::of(&plain).to_reason(0.4), plain);
    }
}
