//! Risk bands: the three buckets CS teams work from.

use crate::reference::order_statistics;
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
            high_share: BandPolicy::DEFAULT_HIGH_SHARE,
            medium_share: BandPolicy::DEFAULT_MEDIUM_SHARE,
        }
    }
}

/// Why a band policy is refused: the one set of rules, whoever builds the
/// policy (environment, CLI flags, a training event, code).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BandPolicyError {
    #[error("high share {0} must be above 0 and at most 1")]
    HighShare(f64),
    #[error("medium share {0} must be at least 0 and below 1")]
    MediumShare(f64),
    #[error("high share + medium share = {high} + {medium} exceeds 1")]
    SharesAboveOne { high: f64, medium: f64 },
    #[error("high cutoff {0} must be a probability between 0 and 1 (both excluded)")]
    HighCutoff(f64),
    #[error("medium cutoff {0} must be a probability between 0 and 1 (both excluded)")]
    MediumCutoff(f64),
    #[error("medium cutoff {medium} must be below the high cutoff {high}")]
    CutoffOrder { high: f64, medium: f64 },
}

impl BandPolicy {
    /// Default share of holdout scores in the high band.
    pub const DEFAULT_HIGH_SHARE: f64 = 0.10;
    /// Default share in the medium band, below the high ones.
    pub const DEFAULT_MEDIUM_SHARE: f64 = 0.20;

    /// A quantile policy: `0 < high_share <= 1`, `0 <= medium_share < 1`,
    /// `high_share + medium_share <= 1`.
    ///
    /// # Errors
    /// [`BandPolicyError`] naming the rule.
    pub fn quantile(high_share: f64, medium_share: f64) -> Result<BandPolicy, BandPolicyError> {
        if !(high_share > 0.0 && high_share <= 1.0) {
            return Err(BandPolicyError::HighShare(high_share));
        }
        if !(0.0..1.0).contains(&medium_share) {
            return Err(BandPolicyError::MediumShare(medium_share));
        }
        if high_share + medium_share > 1.0 {
            return Err(BandPolicyError::SharesAboveOne {
                high: high_share,
                medium: medium_share,
            });
        }
        Ok(BandPolicy::Quantile {
            high_share,
            medium_share,
        })
    }

    /// Fixed cutoffs: both strictly between 0 and 1, `medium < high`.
    ///
    /// # Errors
    /// [`BandPolicyError`] naming the rule.
    pub fn fixed(high: f64, medium: f64) -> Result<BandPolicy, BandPolicyError> {
        if !(high > 0.0 && high < 1.0) {
            return Err(BandPolicyError::HighCutoff(high));
        }
        if !(medium > 0.0 && medium < 1.0) {
            return Err(BandPolicyError::MediumCutoff(medium));
        }
        if medium >= high {
            return Err(BandPolicyError::CutoffOrder { high, medium });
        }
        Ok(BandPolicy::Fixed { high, medium })
    }

    /// This policy, checked by the rules of [`BandPolicy::quantile`] or
    /// [`BandPolicy::fixed`] (for a policy deserialized from an event or
    /// written as a literal).
    ///
    /// # Errors
    /// [`BandPolicyError`] naming the rule.
    pub fn checked(self) -> Result<BandPolicy, BandPolicyError> {
        match self {
            BandPolicy::Quantile {
                high_share,
                medium_share,
            } => BandPolicy::quantile(high_share, medium_share),
            BandPolicy::Fixed { high, medium } => BandPolicy::fixed(high, medium),
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
                // The k-th highest scores, selected rather than sorted for.
                let n = holdout_probs.len();
                let k = |share: f64| ((share * n as f64).ceil() as usize).clamp(1, n.max(1));
                let (k_high, k_medium) = (k(high_share), k(high_share + medium_share));
                // As ascending ranks n - k: medium's (the larger k) first.
                let [medium_kth, high_kth] = if n == 0 {
                    [1.0, 1.0]
                } else {
                    let ranks = [n - k_medium.max(k_high), n - k_high];
                    let at = order_statistics(&mut holdout_probs.to_vec(), &ranks);
                    [at[0], at[1]]
                };
                let high = if high_share <= 0.0 {
                    f64::INFINITY.min(1.0 + f64::EPSILON)
                } else {
                    high_kth
                };
                let medium = if high_share + medium_share <= 0.0 {
                    high
                } else {
                    medium_kth
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

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn quantile_cutoffs_are_the_kth_highest_scores() {
        // The cutoffs as a sort gives them: the k-th highest, k = ceil(share x n).
        fn by_sorting(probs: &[f64], high_share: f64, medium_share: f64) -> (f64, f64) {
            let mut p = probs.to_vec();
            p.sort_unstable_by(|a, b| b.total_cmp(a));
            let kth =
                |share: f64| p[((share * p.len() as f64).ceil() as usize).clamp(1, p.len()) - 1];
            (
                kth(high_share),
                kth(high_share + medium_share).min(kth(high_share)),
            )
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for n in [1, 2, 3, 10, 11, 997, 5000] {
            // Scores on a coarse grid, so that ties sit at the cutoffs too.
            let probs: Vec<f64> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % 50) as f64 / 50.0
                })
                .collect();
            for (high, medium) in [
                (0.1, 0.2),
                (0.05, 0.0),
                (0.3, 0.7),
                (1.0, 0.0),
                (0.001, 0.5),
            ] {
                let policy = BandPolicy::quantile(high, medium).unwrap();
                let cut = BandCutoffs::from_policy(policy, &probs);
                assert_eq!(
                    (cut.high, cut.medium),
                    by_sorting(&probs, high, medium),
                    "n {n}, shares {high} {medium}"
                );
            }
        }
    }

    #[test]
    fn one_set_of_rules_for_every_policy() {
        assert_eq!(BandPolicy::quantile(0.1, 0.2), Ok(BandPolicy::default()));
        assert!(BandPolicy::quantile(1.0, 0.0).is_ok());
        assert_eq!(
            BandPolicy::quantile(0.0, 0.2),
            Err(BandPolicyError::HighShare(0.0))
        );
        assert_eq!(
            BandPolicy::quantile(0.1, 1.0),
            Err(BandPolicyError::MediumShare(1.0))
        );
        assert!(matches!(
            BandPolicy::quantile(0.6, 0.5),
            Err(BandPolicyError::SharesAboveOne { .. })
        ));
        assert!(BandPolicy::quantile(f64::NAN, 0.1).is_err());
        assert!(BandPolicy::fixed(0.5, 0.2).is_ok());
        // Cutoffs at 0 or 1 would put everyone (or no one) in a band.
        assert_eq!(
            BandPolicy::fixed(1.0, 0.5),
            Err(BandPolicyError::HighCutoff(1.0))
        );
        assert_eq!(
            BandPolicy::fixed(0.5, 0.0),
            Err(BandPolicyError::MediumCutoff(0.0))
        );
        assert!(matches!(
            BandPolicy::fixed(0.3, 0.3),
            Err(BandPolicyError::CutoffOrder { .. })
        ));
        // A policy from elsewhere (an event, a literal) meets the same rules.
        assert!(BandPolicy::Fixed {
            high: 1.0,
            medium: 0.5
        }
        .checked()
        .is_err());
        assert_eq!(BandPolicy::default().checked(), Ok(BandPolicy::default()));
    }
}
