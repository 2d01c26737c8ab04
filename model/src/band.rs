//! Risk bands: the three buckets CS teams work from.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How urgently a customer needs attention. Ordered `Low < Medium < High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskBand {
    Low,
    Medium,
    High,
}

impl RiskBand {
    /// All bands, most urgent first.
    pub const ALL: [RiskBand; 3] = [RiskBand::High, RiskBand::Medium, RiskBand::Low];

    /// `"high"`, `"medium"` or `"low"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskBand::High => "high",
            RiskBand::Medium => "medium",
            RiskBand::Low => "low",
        }
    }

    /// Customers in `high` and `medium` are at risk and appear on risk lists.
    pub fn is_at_risk(self) -> bool {
        self != RiskBand::Low
    }
}

impl fmt::Display for RiskBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `high`, `medium`, `low`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown risk band {0:?}: expected high, medium or low")]
pub struct UnknownRiskBand(pub String);

impl FromStr for RiskBand {
    type Err = UnknownRiskBand;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "high" => Ok(RiskBand::High),
            "medium" => Ok(RiskBand::Medium),
            "low" => Ok(RiskBand::Low),
            _ => Err(UnknownRiskBand(s.to_string())),
        }
    }
}

/// How band cutoffs are chosen at training time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum BandPolicy {
    /// `high` = the top `high_share` of holdout scores (a CS team's
    /// capacity), `medium` = the next `medium_share`.
    Quantile { high_share: f64, medium_share: f64 },
    /// Fixed probability cutoffs (`high >= medium`).
    Fixed { high: f64, medium: f64 },
}

impl Default for BandPolicy {
    /// Top 10 % high, next 20 % medium.
    fn default() -> Self {
        BandPolicy::Quantile {
            high_share: 0.10,
            medium_share: 0.20,
        }
    }
}

/// Probability cutoffs stored in the artifact: `p >= high` is high,
/// `p >= medium` is medium, anything else low.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandCutoffs {
    pub high: f64,
    pub medium: f64,
    /// The policy that produced these cutoffs.
    pub policy: BandPolicy,
}

impl BandCutoffs {
    /// The band of a probability.
    #[inline]
    pub fn band(&self, p: f64) -> RiskBand {
        if p >= self.high {
            RiskBand::High
        } else if p >= self.medium {
            RiskBand::Medium
        } else {
            RiskBand::Low
        }
    }

    /// Cutoffs for `policy` given holdout probabilities. For quantile
    /// policies the cutoff is the k-th highest score with k = ceil(share x n),
    /// so ties at the boundary all land in the higher band.
    pub fn from_policy(policy: BandPolicy, holdout_probs: &[f64]) -> BandCutoffs {
        match policy {
            BandPolicy::Fixed { high, medium } => BandCutoffs {
                high,
                medium,
                policy,
            },
            BandPolicy::Quantile {
                high_share,
                medium_share,
            } => {
                let mut p: Vec<f64> = holdout_probs.to_vec();
                p.sort_unstable_by(|a, b| b.total_cmp(a));
                let kth = |share: f64| -> f64 {
                    if p.is_empty() {
                        return 1.0;
                    }
                    let k = ((share * p.len() as f64).ceil() as usize).clamp(1, p.len());
                    p[k - 1]
                };
                let high = if high_share <= 0.0 {
                    f64::INFINITY.min(1.0 + f64::EPSILON)
                } else {
                    kth(high_share)
                };
                let medium = if high_share + medium_share <= 0.0 {
                    high
                } else {
                    kth(high_share + medium_share)
                };
                BandCutoffs {
                    high,
                    medium: medium.min(high),
                    policy,
                }
            }
        }
    }
}
