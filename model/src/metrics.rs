//! Holdout metrics. Every function takes labels (`true` = churned) and
//! predicted churn probabilities of equal length.

use crate::reference::total_order_key;
use serde::{Deserialize, Serialize};

/// Counts at one probability cutoff (`predicted churn` = probability >= cutoff).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
}

impl ConfusionMatrix {
    /// Counts for `probability >= cutoff`.
    pub fn at(labels: &[bool], probs: &[f64], cutoff: f64) -> ConfusionMatrix {
        let mut m = ConfusionMatrix::default();
        for (&y, &p) in labels.iter().zip(probs) {
            match (p >= cutoff, y) {
                (true, true) => m.true_positives += 1,
                (true, false) => m.false_positives += 1,
                (false, false) => m.true_negatives += 1,
                (false, true) => m.false_negatives += 1,
            }
        }
        m
    }

    /// Share of flagged customers who churned (0 when nobody is flagged).
    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    /// Share of churners who were flagged (0 when nobody churned).
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Holdout evaluation of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Rows evaluated.
    pub n: u64,
    /// Share of churners.
    pub base_rate: f64,
    /// Area under the ROC curve; tied scores count one half.
    pub roc_auc: f64,
    /// Area under the precision-recall curve (average precision, step-wise).
    pub pr_auc: f64,
    /// Mean negative log-likelihood (probabilities clipped to [1e-15, 1 - 1e-15]).
    pub log_loss: f64,
    /// Mean squared error of the probability.
    pub brier: f64,
    /// Churn rate among the top 10 % of scores divided by the base rate.
    pub top_decile_lift: f64,
    /// Expected calibration error over 10 equal-width probability bins.
    pub ece: f64,
    /// Confusion matrix at the `high` band cutoff.
    pub confusion_at_high: ConfusionMatrix,
}

impl Metrics {
    /// All metrics for `labels`/`probs`, with the confusion matrix taken at
    /// `high_cutoff`. Degenerate inputs (empty, or one class only) give 0.5
    /// for the AUCs and 0 for lift rather than NaN, so the result always serialises.
    pub fn compute(labels: &[bool], probs: &[f64], high_cutoff: f64) -> Metrics {
        let n = labels.len().min(probs.len());
        let (labels, probs) = (&labels[..n], &probs[..n]);
        let pos = labels.iter().filter(|&&y| y).count();
        // One descending sort serves ROC AUC, PR AUC and lift.
        let idx = order_desc(probs);
        Metrics {
            n: n as u64,
            base_rate: if n == 0 { 0.0 } else { pos as f64 / n as f64 },
            roc_auc: roc_auc_ordered(labels, probs, &idx),
            pr_auc: pr_auc_ordered(labels, probs, &idx),
            log_loss: log_loss(labels, probs),
            brier: brier(labels, probs),
            top_decile_lift: top_decile_lift_ordered(labels, &idx),
            ece: ece(labels, probs, 10),
            confusion_at_high: ConfusionMatrix::at(labels, probs, high_cutoff),
        }
    }
}

/// Indices sorted by descending score; NaN-free input assumed (total order anyway).
fn order_desc(probs: &[f64]) -> Vec<u32> {
    // (descending key, index) pairs sorted in place: no comparison reads a
    // score through an index. `!` reverses the key's order without overflow.
    let mut keyed: Vec<(i64, u32)> = (0..probs.len() as u32)
        .map(|i| (!total_order_key(probs[i as usize]), i))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula with average ranks for
/// ties, so a tie between a churner and a non-churner counts one half.
/// Returns 0.5 when either class is absent.
pub fn roc_auc(labels: &[bool], probs: &[f64]) -> f64 {
    let n = labels.len().min(probs.len());
    roc_auc_ordered(&labels[..n], &probs[..n], &order_desc(&probs[..n]))
}

/// [`roc_auc`] given the descending order of `probs` (equivalent to the
/// rank sum): each churner scores one for every non-churner strictly below
/// it and one half for every non-churner tied with it.
fn roc_auc_ordered(labels: &[bool], probs: &[f64], idx: &[u32]) -> f64 {
    let n = idx.len();
    let pos = idx.iter().filter(|&&i| labels[i as usize]).count();
    let neg = n - pos;
    if pos == 0 || neg == 0 {
        return 0.5;
    }
    let (mut wins, mut neg_above) = (0.0, 0usize);
    let mut i = 0;
    while i < n {
        let mut j = i;
        let (mut p_g, mut n_g) = (0usize, 0usize);
        while j < n && probs[idx[j] as usize] == probs[idx[i] as usize] {
            if labels[idx[j] as usize] {
                p_g += 1;
            } else {
                n_g += 1;
            }
            j += 1;
        }
        let below = neg - neg_above - n_g;
        wins += p_g as f64 * below as f64 + 0.5 * p_g as f64 * n_g as f64;
        neg_above += n_g;
        i = j;
    }
    wins / (pos as f64 * neg as f64)
}

/// Average precision: sum over distinct score thresholds (highest first) of
/// (recall gain) x (precision at that threshold), the step-wise PR AUC that
/// scikit-learn's `average_precision_score` computes. Tied scores enter as
/// one threshold. Returns 0 when there are no churners.
pub fn pr_auc(labels: &[bool], probs: &[f64]) -> f64 {
    let n = labels.len().min(probs.len());
    pr_auc_ordered(&labels[..n], &probs[..n], &order_desc(&probs[..n]))
}

fn pr_auc_ordered(labels: &[bool], probs: &[f64], idx: &[u32]) -> f64 {
    let n = idx.len();
    let pos = idx.iter().filter(|&&i| labels[i as usize]).count();
    if pos == 0 {
        return 0.0;
    }
    let (mut tp, mut seen, mut ap) = (0usize, 0usize, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        let mut tp_gain = 0;
        while j < n && probs[idx[j] as usize] == probs[idx[i] as usize] {
            tp_gain += labels[idx[j] as usize] as usize;
            j += 1;
        }
        seen += j - i;
        tp += tp_gain;
        ap += (tp_gain as f64 / pos as f64) * (tp as f64 / seen as f64);
        i = j;
    }
    ap
}

/// Mean negative log-likelihood with probabilities clipped to [1e-15, 1 - 1e-15].
pub fn log_loss(labels: &[bool], probs: &[f64]) -> f64 {
    let n = labels.len().min(probs.len());
    if n == 0 {
        return 0.0;
    }
    let s: f64 = labels
        .iter()
        .zip(probs)
        .map(|(&y, &p)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    s / n as f64
}

/// Mean squared difference between probability and outcome.
pub fn brier(labels: &[bool], probs: &[f64]) -> f64 {
    let n = labels.len().min(probs.len());
    if n == 0 {
        return 0.0;
    }
    labels
        .iter()
        .zip(probs)
        .map(|(&y, &p)| (p - y as u8 as f64).powi(2))
        .sum::<f64>()
        / n as f64
}

/// Churn rate among the `ceil(n / 10)` highest scores over the base rate.
pub fn top_decile_lift(labels: &[bool], probs: &[f64]) -> f64 {
    let n = labels.len().min(probs.len());
    top_decile_lift_ordered(&labels[..n], &order_desc(&probs[..n]))
}

fn top_decile_lift_ordered(labels: &[bool], idx: &[u32]) -> f64 {
    let n = idx.len();
    let pos = idx.iter().filter(|&&i| labels[i as usize]).count();
    if n == 0 || pos == 0 {
        return 0.0;
    }
    let k = n.div_ceil(10);
    let top_pos = idx[..k].iter().filter(|&&i| labels[i as usize]).count();
    (top_pos as f64 / k as f64) / (pos as f64 / n as f64)
}

/// Expected calibration error: rows binned by probability into `bins`
/// equal-width bins; the row-weighted mean of |mean probability - churn rate|.
pub fn ece(labels: &[bool], probs: &[f64], bins: usize) -> f64 {
    let n = labels.len().min(probs.len());
    if n == 0 || bins == 0 {
        return 0.0;
    }
    let mut count = vec![0usize; bins];
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    for (&y, &p) in labels.iter().zip(probs) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        sum_p[b] += p;
        sum_y[b] += y as u8 as f64;
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (sum_p[b] - sum_y[b]).abs())
        .sum::<f64>()
        / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descending_order_is_total_order_then_index() {
        let probs = [
            0.5,
            -0.0,
            0.0,
            1.0,
            0.5,
            f64::MIN_POSITIVE,
            -1.0,
            0.25,
            1.0,
            0.5,
            0.0,
            -0.0,
        ];
        let mut expected: Vec<u32> = (0..probs.len() as u32).collect();
        expected.sort_by(|&a, &b| {
            probs[b as usize]
                .total_cmp(&probs[a as usize])
                .then(a.cmp(&b))
        });
        assert_eq!(order_desc(&probs), expected);
        assert_eq!(order_desc(&[]), Vec::<u32>::new());
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // Pairs (pos, neg): (0.8,0.5) win, (0.8,0.5) win, (0.5,0.5) tie, (0.5,0.2) win... by hand:
        // pos scores {0.8, 0.5}, neg scores {0.5, 0.2}: pairs 0.8>0.5, 0.8>0.2, 0.5=0.5 (1/2), 0.5>0.2 -> 3.5/4.
        let y = [true, true, false, false];
        let p = [0.8, 0.5, 0.5, 0.2];
        assert!((roc_auc(&y, &p) - 0.875).abs() < 1e-12);
        // All tied -> 0.5.
        assert!((roc_auc(&y, &[0.3; 4]) - 0.5).abs() < 1e-12);
        // Perfectly reversed -> 0.
        assert!(roc_auc(&y, &[0.1, 0.2, 0.8, 0.9]).abs() < 1e-12);
    }

    #[test]
    fn auc_matches_brute_force_pair_count() {
        // Scores on a coarse grid so there are many ties.
        let y: Vec<bool> = (0..200).map(|i| (i * 7) % 5 == 0 || i % 13 == 0).collect();
        let p: Vec<f64> = (0..200).map(|i| ((i * 31) % 17) as f64 / 17.0).collect();
        let (mut num, mut den) = (0.0, 0.0);
        for a in 0..200 {
            for b in 0..200 {
                if y[a] && !y[b] {
                    den += 1.0;
                    num += if p[a] > p[b] {
                        1.0
                    } else if p[a] == p[b] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&y, &p) - num / den).abs() < 1e-12);
    }

    #[test]
    fn average_precision_by_hand() {
        // Sorted desc: 0.9(+) 0.8(-) 0.7(+) 0.1(-): AP = 1/2*1 + 1/2*(2/3) = 0.8333...
        let y = [true, false, true, false];
        let p = [0.9, 0.8, 0.7, 0.1];
        assert!((pr_auc(&y, &p) - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        // A tie between the top two enters as one threshold: precision 1/2 at recall 1/2.
        let p2 = [0.9, 0.9, 0.7, 0.1];
        assert!((pr_auc(&y, &p2) - (0.25 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn log_loss_and_brier_by_hand() {
        let y = [true, false];
        let p = [0.8, 0.4];
        let expected = -(0.8f64.ln() + 0.6f64.ln()) / 2.0;
        assert!((log_loss(&y, &p) - expected).abs() < 1e-12);
        assert!((brier(&y, &p) - (0.04 + 0.16) / 2.0).abs() < 1e-12);
        // Clipping keeps a confident wrong answer finite.
        assert!(log_loss(&[true], &[0.0]).is_finite());
    }

    #[test]
    fn lift_ece_and_confusion() {
        // 20 rows, 4 churners; the top 2 scores are both churners -> lift (2/2)/(4/20) = 5.
        let mut y = vec![false; 20];
        let mut p = vec![0.1; 20];
        y[..4].iter_mut().for_each(|v| *v = true);
        p[0] = 0.9;
        p[1] = 0.8;
        assert!((top_decile_lift(&y, &p) - 5.0).abs() < 1e-12);
        // ECE by hand: bin 9 {0.9 (y=1)}: |0.9-1| = 0.1; bin 8 {0.8 (1)}: 0.2;
        // bin 1 {18 x 0.1, 2 churners}: |1.8-2| = 0.2 -> (0.1+0.2+0.2)/20.
        assert!((ece(&y, &p, 10) - 0.5 / 20.0).abs() < 1e-12);
        let c = ConfusionMatrix::at(&y, &p, 0.5);
        assert_eq!(
            (
                c.true_positives,
                c.false_positives,
                c.true_negatives,
                c.false_negatives
            ),
            (2, 0, 16, 2)
        );
    }
}
