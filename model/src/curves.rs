//! Holdout curves for charts: ROC, precision-recall, a reliability diagram
//! and lift with cumulative gains, computed at training from the holdout's
//! labels and probabilities and stored in the artifact (version 6 on), so a
//! web page or a self-contained report can draw them without the holdout.
//!
//! Small and deterministic, because the artifact is hashed and kept with
//! every model: the ROC and precision-recall curves are thinned by a fixed
//! rule to at most [`MAX_CURVE_POINTS`] points each, the reliability diagram
//! has [`CALIBRATION_BINS`] bins and the lift [`LIFT_DEPTHS`] depths, all in
//! `Vec`s of plain `f64` (no map whose order could vary). Every figure is
//! finite whatever the input: a degenerate holdout (empty, or one class
//! only) gets the curve of a ranking that knows nothing, documented on each
//! field, never NaN.
//!
//! A curve point is a threshold `t` with "flagged = probability >= t", so
//! every row with an equal score enters at once: a churner tied with a
//! non-churner is a diagonal segment of the ROC, and the trapezoid area
//! under the full ROC is the tie-aware AUC of [`crate::metrics::roc_auc`].
//! A NaN probability (which the scorer never gives) is left out and any
//! other is clamped into [0, 1], so the thresholds are probabilities.

use serde::{Deserialize, Serialize};

/// Most points kept of the ROC and of the precision-recall curve.
pub const MAX_CURVE_POINTS: usize = 101;

/// Equal-width probability bins of the reliability diagram (the bins of
/// [`crate::metrics::ece`], so the diagram shows what the ECE sums).
pub const CALIBRATION_BINS: usize = 10;

/// Depths of the lift table: the top 5 %, 10 %, ..., 100 % of rows.
pub const LIFT_DEPTHS: usize = 20;

/// The holdout's curves (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldoutCurves {
    /// ROC curve from (0,0) to (1,1): false and true positive rate per
    /// score threshold, highest threshold first. The first point flags
    /// nobody: its threshold is the smallest `f64` above the highest score
    /// (1.0 for an empty holdout). The last point's threshold is the lowest
    /// score (0.0 for an empty holdout). Without both classes the rates are
    /// undefined and the curve is the diagonal, those two points (area 0.5,
    /// as [`crate::metrics::Metrics`] reports).
    pub roc: Vec<RocPoint>,
    /// Precision-recall curve, recall ascending (thresholds descending),
    /// one point per kept threshold from the highest score to the lowest,
    /// whose precision is the base rate at recall 1. Without churners recall
    /// is undefined and the curve is the flat line at precision 0 (the base
    /// rate) from recall 0 at the highest score to recall 1 at the lowest
    /// (thresholds 1.0 and 0.0 for an empty holdout).
    pub precision_recall: Vec<PrPoint>,
    /// Reliability diagram: 10 equal-width probability bins, empty bins
    /// left out (so none for an empty holdout).
    pub calibration: Vec<CalibrationBin>,
    /// Lift and cumulative gains by depth: the top 5 %, 10 %, ..., 100 % of
    /// customers by score. Without churners, the random ranking's: lift 1
    /// and `captured` = `depth`.
    pub lift: Vec<LiftPoint>,
}

/// One point of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    /// Share of non-churners with probability >= `threshold`.
    pub fpr: f64,
    /// Share of churners with probability >= `threshold`.
    pub tpr: f64,
    pub threshold: f64,
}

/// One point of the precision-recall curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrPoint {
    /// Share of churners with probability >= `threshold`.
    pub recall: f64,
    /// Share of rows with probability >= `threshold` who churned.
    pub precision: f64,
    pub threshold: f64,
}

/// One non-empty bin of the reliability diagram: rows with `lower <= p <
/// upper` (the last bin includes 1.0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    /// Mean probability of the bin's rows.
    pub mean_predicted: f64,
    /// Share of the bin's rows who churned.
    pub observed_rate: f64,
    pub rows: u64,
}

/// Lift and cumulative gains at one depth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LiftPoint {
    /// Share of customers taken, highest scores first (0.05, 0.1, ..., 1):
    /// the top `ceil(depth x n)` rows. A tie across that cut counts its
    /// churners pro rata (what a random order among the tied gives on
    /// average), so equal scores never depend on row order.
    pub depth: f64,
    /// Churn rate of those rows over the base rate (at depth 0.1 with
    /// distinct scores, [`crate::metrics::Metrics::top_decile_lift`]).
    pub lift: f64,
    /// Share of all churners among those rows.
    pub captured: f64,
}

impl HoldoutCurves {
    /// The curves of `labels` (`true` = churned) and predicted churn
    /// probabilities `probs` (the shorter length counts, as in
    /// [`crate::metrics::Metrics::compute`]).
    pub fn compute(labels: &[bool], probs: &[f64]) -> HoldoutCurves {
        let rows = ranked(labels, probs);
        let steps = steps(&rows);
        let n = rows.len() as u64;
        let churned = steps.last().map_or(0, |s| s.churned);
        HoldoutCurves {
            roc: roc(&steps, n, churned),
            precision_recall: precision_recall(&steps, churned),
            calibration: calibration(&rows),
            lift: lift(&steps, n, churned),
        }
    }
}

/// (probability, churned) of every row with a probability, clamped into
/// [0, 1], highest first.
fn ranked(labels: &[bool], probs: &[f64]) -> Vec<(f64, bool)> {
    let mut rows: Vec<(f64, bool)> = labels
        .iter()
        .zip(probs)
        .filter(|(_, p)| !p.is_nan())
        // `+ 0.0` turns -0.0 into 0.0, so no threshold is written "-0.0".
        .map(|(&y, &p)| (p.clamp(0.0, 1.0) + 0.0, y))
        .collect();
    // Rows of an equal score are counted together, so their order among
    // themselves does not matter.
    rows.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    rows
}

/// One distinct score (a threshold) and the rows flagged once it is
/// reached: all rows scoring at least `threshold`.
struct Step {
    threshold: f64,
    flagged: u64,
    churned: u64,
}

/// The thresholds of `rows` (sorted highest first), highest first.
fn steps(rows: &[(f64, bool)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let (mut flagged, mut churned) = (0u64, 0u64);
    for &(p, y) in rows {
        flagged += 1;
        churned += u64::from(y);
        match steps.last_mut() {
            Some(last) if last.threshold == p => {
                last.flagged = flagged;
                last.churned = churned;
            }
            _ => steps.push(Step {
                threshold: p,
                flagged,
                churned,
            }),
        }
    }
    steps
}

/// The highest and lowest thresholds (1.0 and 0.0 without rows).
fn ends(steps: &[Step]) -> (f64, f64) {
    (
        steps.first().map_or(1.0, |s| s.threshold),
        steps.last().map_or(0.0, |s| s.threshold),
    )
}

fn roc(steps: &[Step], n: u64, churned: u64) -> Vec<RocPoint> {
    let (top, bottom) = ends(steps);
    // Above every score (finite: scores are at most 1), so nobody is flagged.
    let above = if steps.is_empty() { top } else { top.next_up() };
    let origin = RocPoint {
        fpr: 0.0,
        tpr: 0.0,
        threshold: above,
    };
    let retained = n - churned;
    if churned == 0 || retained == 0 {
        let end = RocPoint {
            fpr: 1.0,
            tpr: 1.0,
            threshold: bottom,
        };
        return vec![origin, end];
    }
    let points = std::iter::once(origin)
        .chain(steps.iter().map(|s| RocPoint {
            fpr: (s.flagged - s.churned) as f64 / retained as f64,
            tpr: s.churned as f64 / churned as f64,
            threshold: s.threshold,
        }))
        .collect();
    // Along fpr + tpr (0 to 2), so each kept segment spans at most about
    // 0.02 of it whatever the class balance: the area lost to a chord is
    // then tiny.
    thin(points, |p| p.fpr + p.tpr, 2.0)
}

fn precision_recall(steps: &[Step], churned: u64) -> Vec<PrPoint> {
    if churned == 0 {
        let (top, bottom) = ends(steps);
        let flat = |recall, threshold| PrPoint {
            recall,
            precision: 0.0,
            threshold,
        };
        return vec![flat(0.0, top), flat(1.0, bottom)];
    }
    let points = steps
        .iter()
        .map(|s| PrPoint {
            recall: s.churned as f64 / churned as f64,
            // Every step flags at least one row.
            precision: s.churned as f64 / s.flagged as f64,
            threshold: s.threshold,
        })
        .collect();
    // The first point at each recall step is the one where churners
    // entered: the highest precision at that recall.
    thin(points, |p| p.recall, 1.0)
}

/// `points` (a curve along which `position` runs from 0 to `span`, never
/// decreasing) cut to at most [`MAX_CURVE_POINTS`]: the first and the last,
/// and between them the first point at or past each of the evenly spaced
/// positions `span x j / (MAX_CURVE_POINTS - 1)`, j = 1, 2, ...; a point
/// past several of them is kept once. A curve that short already is kept
/// whole.
fn thin<T>(points: Vec<T>, position: impl Fn(&T) -> f64, span: f64) -> Vec<T> {
    if points.len() <= MAX_CURVE_POINTS {
        return points;
    }
    let slots = (MAX_CURVE_POINTS - 1) as f64;
    let last = points.len() - 1;
    let mut next = 1.0;
    let mut kept = Vec::with_capacity(MAX_CURVE_POINTS);
    for (i, p) in points.into_iter().enumerate() {
        let at = position(&p) / span * slots;
        if i == 0 || i == last {
            kept.push(p);
        } else if next < slots && at >= next {
            // Each keep moves `next` up by one at least and it starts at 1,
            // so at most `slots - 1` interior points: the bound holds.
            next = at.floor() + 1.0;
            kept.push(p);
        }
    }
    kept
}

fn calibration(rows: &[(f64, bool)]) -> Vec<CalibrationBin> {
    let bins = CALIBRATION_BINS;
    let mut count = [0u64; CALIBRATION_BINS];
    let mut sum_p = [0.0f64; CALIBRATION_BINS];
    let mut churned = [0u64; CALIBRATION_BINS];
    for &(p, y) in rows {
        // The binning of `metrics::ece`.
        let b = ((p * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        sum_p[b] += p;
        churned[b] += u64::from(y);
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let lower = b as f64 / bins as f64;
            let upper = (b + 1) as f64 / bins as f64;
            let rows = count[b] as f64;
            CalibrationBin {
                lower,
                upper,
                // Rounding in the bin index and in the sum can put the mean
                // an ulp outside its bin.
                mean_predicted: (sum_p[b] / rows).clamp(lower, upper),
                observed_rate: churned[b] as f64 / rows,
                rows: count[b],
            }
        })
        .collect()
}

fn lift(steps: &[Step], n: u64, churned: u64) -> Vec<LiftPoint> {
    let depths = LIFT_DEPTHS as u64;
    (1..=depths)
        .map(|k| {
            let depth = k as f64 / depths as f64;
            let random = LiftPoint {
                depth,
                lift: 1.0,
                captured: depth,
            };
            if churned == 0 {
                return random;
            }
            // At least one row: there are churners, so n >= 1.
            let top = (k * n).div_ceil(depths);
            // The step holding the top-th row, and the rows above it.
            let at = steps.partition_point(|s| s.flagged < top);
            let Some(step) = steps.get(at) else {
                return random;
            };
            let (rows_above, churned_above) = match at.checked_sub(1).and_then(|i| steps.get(i)) {
                Some(s) => (s.flagged, s.churned),
                None => (0, 0),
            };
            let tied = (step.flagged - rows_above) as f64;
            let tied_churned = (step.churned - churned_above) as f64;
            let in_top = churned_above as f64 + tied_churned * (top - rows_above) as f64 / tied;
            let captured = in_top / churned as f64;
            LiftPoint {
                depth,
                lift: captured * n as f64 / top as f64,
                captured,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{top_decile_lift, Metrics};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` rows churning with probability sigmoid(-2 + 3 z) for a
    /// normal-ish z, scored by that probability seen through noise: real
    /// signal, an AUC well inside (0.5, 1), a minority of churners.
    fn sample(n: usize, seed: u64) -> (Vec<bool>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        (0..n)
            .map(|_| {
                let z: f64 = (0..4).map(|_| rng.gen::<f64>()).sum::<f64>() - 2.0;
                let churned = rng.gen::<f64>() < sigmoid(-2.0 + 3.0 * z);
                let noise: f64 = rng.gen::<f64>() - 0.5;
                (churned, sigmoid(-2.0 + 3.0 * z + noise))
            })
            .unzip()
    }

    fn trapezoid(roc: &[RocPoint]) -> f64 {
        roc.windows(2)
            .map(|w| (w[1].fpr - w[0].fpr) * (w[0].tpr + w[1].tpr) / 2.0)
            .sum()
    }

    fn all_finite(c: &HoldoutCurves) -> bool {
        let roc = c.roc.iter().flat_map(|p| [p.fpr, p.tpr, p.threshold]);
        let pr = c
            .precision_recall
            .iter()
            .flat_map(|p| [p.recall, p.precision, p.threshold]);
        let cal = c
            .calibration
            .iter()
            .flat_map(|b| [b.lower, b.upper, b.mean_predicted, b.observed_rate]);
        let lift = c.lift.iter().flat_map(|l| [l.depth, l.lift, l.captured]);
        roc.chain(pr).chain(cal).chain(lift).all(f64::is_finite)
    }

    #[test]
    fn roc_runs_from_the_origin_to_one_one_and_never_decreases() {
        let (y, p) = sample(20_000, 1);
        let roc = HoldoutCurves::compute(&y, &p).roc;
        assert!(
            roc.len() > 50 && roc.len() <= MAX_CURVE_POINTS,
            "{}",
            roc.len()
        );
        let (first, last) = (roc[0], roc[roc.len() - 1]);
        assert_eq!((first.fpr, first.tpr), (0.0, 0.0));
        assert_eq!((last.fpr, last.tpr), (1.0, 1.0));
        // The origin flags nobody; the end flags everyone.
        assert!(p.iter().all(|&s| s < first.threshold));
        assert_eq!(last.threshold, p.iter().copied().fold(1.0, f64::min));
        for w in roc.windows(2) {
            assert!(w[0].fpr <= w[1].fpr && w[0].tpr <= w[1].tpr, "{w:?}");
            assert!(w[0].threshold > w[1].threshold, "{w:?}");
        }
    }

    /// Thinning to 101 points loses almost none of the area: the stored
    /// curve's trapezoid area is the holdout AUC to within 0.005.
    #[test]
    fn area_under_the_stored_roc_is_the_auc() {
        let (y, p) = sample(20_000, 2);
        let auc = Metrics::compute(&y, &p, 0.5).roc_auc;
        assert!(auc > 0.7 && auc < 0.95, "{auc}");
        let area = trapezoid(&HoldoutCurves::compute(&y, &p).roc);
        assert!((area - auc).abs() < 0.005, "area {area}, AUC {auc}");
        // Unthinned (few distinct scores, many ties) it is exact.
        let y: Vec<bool> = (0..200).map(|i| (i * 7) % 5 == 0 || i % 13 == 0).collect();
        let p: Vec<f64> = (0..200).map(|i| ((i * 31) % 17) as f64 / 17.0).collect();
        let roc = HoldoutCurves::compute(&y, &p).roc;
        assert_eq!(roc.len(), 18);
        assert!((trapezoid(&roc) - Metrics::compute(&y, &p, 0.5).roc_auc).abs() < 1e-12);
    }

    /// Tied rows enter together: a churner tied with a non-churner is one
    /// diagonal step, and all-equal scores are the diagonal.
    #[test]
    fn tied_scores_enter_together() {
        let y = [true, true, false, false];
        let c = HoldoutCurves::compute(&y, &[0.8, 0.5, 0.5, 0.2]);
        let rates: Vec<(f64, f64, f64)> =
            c.roc.iter().map(|r| (r.fpr, r.tpr, r.threshold)).collect();
        assert_eq!(
            rates,
            [
                (0.0, 0.0, 0.8f64.next_up()),
                (0.0, 0.5, 0.8),
                (0.5, 1.0, 0.5),
                (1.0, 1.0, 0.2)
            ]
        );
        assert!((trapezoid(&c.roc) - 0.875).abs() < 1e-12);
        let pr: Vec<(f64, f64)> = c
            .precision_recall
            .iter()
            .map(|p| (p.recall, p.precision))
            .collect();
        assert_eq!(pr, [(0.5, 1.0), (1.0, 2.0 / 3.0), (1.0, 0.5)]);

        let flat = HoldoutCurves::compute(&y, &[0.3; 4]);
        assert_eq!(
            flat.roc,
            [
                RocPoint {
                    fpr: 0.0,
                    tpr: 0.0,
                    threshold: 0.3f64.next_up()
                },
                RocPoint {
                    fpr: 1.0,
                    tpr: 1.0,
                    threshold: 0.3
                }
            ]
        );
        assert_eq!(
            flat.precision_recall,
            [PrPoint {
                recall: 1.0,
                precision: 0.5,
                threshold: 0.3
            }]
        );
        // Pro rata at every depth: no row order decides (40 rows, so every
        // depth is a whole number of rows).
        let y: Vec<bool> = (0..40).map(|i| i % 5 == 0).collect();
        for l in &HoldoutCurves::compute(&y, &[0.3; 40]).lift {
            assert!((l.captured - l.depth).abs() < 1e-12, "{l:?}");
            assert!((l.lift - 1.0).abs() < 1e-12, "{l:?}");
        }
    }

    #[test]
    fn precision_recall_climbs_in_recall_with_precision_a_share() {
        let (y, p) = sample(20_000, 3);
        let pr = HoldoutCurves::compute(&y, &p).precision_recall;
        assert!(
            pr.len() > 50 && pr.len() <= MAX_CURVE_POINTS,
            "{}",
            pr.len()
        );
        for w in pr.windows(2) {
            assert!(w[0].recall <= w[1].recall, "{w:?}");
            assert!(w[0].threshold > w[1].threshold, "{w:?}");
        }
        assert!(pr.iter().all(|q| (0.0..=1.0).contains(&q.precision)));
        // Everyone flagged: full recall at the base rate.
        let last = pr[pr.len() - 1];
        let base = y.iter().filter(|&&c| c).count() as f64 / y.len() as f64;
        assert_eq!(last.recall, 1.0);
        assert!((last.precision - base).abs() < 1e-12);
        // Good scores put churners first: precision starts high.
        assert!(pr[0].precision > 2.0 * base, "{:?}", pr[0]);
    }

    #[test]
    fn calibration_bins_hold_every_row_and_their_own_mean() {
        let (y, p) = sample(20_000, 4);
        let cal = HoldoutCurves::compute(&y, &p).calibration;
        assert!(cal.len() > 5 && cal.len() <= CALIBRATION_BINS);
        assert_eq!(cal.iter().map(|b| b.rows).sum::<u64>(), 20_000);
        for b in &cal {
            assert!(b.rows > 0);
            assert!((b.upper - b.lower - 0.1).abs() < 1e-12, "{b:?}");
            assert!(
                b.lower <= b.mean_predicted && b.mean_predicted <= b.upper,
                "{b:?}"
            );
            assert!((0.0..=1.0).contains(&b.observed_rate));
        }
        for w in cal.windows(2) {
            assert!(w[0].upper <= w[1].lower, "{w:?}");
        }
        // By hand: 0.05 and 0.15 (churned) in their own bins, 1.0 in the
        // last; the empty bins are left out.
        let c = HoldoutCurves::compute(&[false, true, true, false], &[0.05, 0.15, 1.0, 0.12]);
        let got: Vec<(f64, f64, f64, u64)> = c
            .calibration
            .iter()
            .map(|b| (b.lower, b.mean_predicted, b.observed_rate, b.rows))
            .collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].0, got[0].1, got[0].2, got[0].3),
            (0.0, 0.05, 0.0, 1)
        );
        assert_eq!((got[1].0, got[1].2, got[1].3), (0.1, 0.5, 2));
        assert!((got[1].1 - 0.135).abs() < 1e-12);
        assert_eq!((got[2].0, got[2].1, got[2].2, got[2].3), (0.9, 1.0, 1.0, 1));
    }

    #[test]
    fn lift_captures_every_churner_at_full_depth() {
        let (y, p) = sample(20_000, 5);
        let lift = HoldoutCurves::compute(&y, &p).lift;
        assert_eq!(lift.len(), LIFT_DEPTHS);
        for (k, l) in lift.iter().enumerate() {
            assert_eq!(l.depth, (k + 1) as f64 / 20.0);
        }
        let all = lift[LIFT_DEPTHS - 1];
        assert_eq!((all.depth, all.lift, all.captured), (1.0, 1.0, 1.0));
        for w in lift.windows(2) {
            assert!(w[0].captured <= w[1].captured, "{w:?}");
            // Good scores: the richer the top, the higher the lift.
            assert!(w[0].lift >= w[1].lift, "{w:?}");
        }
        assert!(lift[0].lift > 2.0, "{:?}", lift[0]);
        // Distinct scores: depth 0.1 is the metrics' top-decile lift.
        assert!((lift[1].lift - top_decile_lift(&y, &p)).abs() < 1e-12);
        // By hand: 20 rows, 4 churners, the top two are churners; 0.6 (a
        // churner) ties with 0.6 (not): the top 15 % (3 rows) takes half of
        // that pair's churner.
        let mut y = vec![false; 20];
        let mut p = vec![0.1; 20];
        y[..4].iter_mut().for_each(|v| *v = true);
        (p[0], p[1], p[2], p[4]) = (0.9, 0.8, 0.6, 0.6);
        let lift = HoldoutCurves::compute(&y, &p).lift;
        assert_eq!((lift[0].captured, lift[0].lift), (0.25, 5.0));
        assert_eq!((lift[1].captured, lift[1].lift), (0.5, 5.0));
        assert_eq!(lift[2].captured, 2.5 / 4.0);
        assert!((lift[2].lift - (2.5 / 3.0) / 0.2).abs() < 1e-12);
        assert_eq!(lift[3].captured, 0.75);
    }

    /// Empty, one-class and NaN inputs give finite, documented curves.
    #[test]
    fn degenerate_holdouts_give_finite_curves() {
        let diagonal = |c: &HoldoutCurves| {
            c.roc.len() == 2
                && (c.roc[0].fpr, c.roc[0].tpr) == (0.0, 0.0)
                && (c.roc[1].fpr, c.roc[1].tpr) == (1.0, 1.0)
        };
        let empty = HoldoutCurves::compute(&[], &[]);
        assert!(diagonal(&empty) && all_finite(&empty));
        assert_eq!((empty.roc[0].threshold, empty.roc[1].threshold), (1.0, 0.0));
        assert!(empty.calibration.is_empty());
        assert_eq!(empty.precision_recall.len(), 2);
        assert!(empty
            .lift
            .iter()
            .all(|l| l.captured == l.depth && l.lift == 1.0));

        let retained = HoldoutCurves::compute(&[false; 3], &[0.2, 0.9, 0.4]);
        assert!(diagonal(&retained) && all_finite(&retained));
        assert_eq!(
            retained.precision_recall,
            [
                PrPoint {
                    recall: 0.0,
                    precision: 0.0,
                    threshold: 0.9
                },
                PrPoint {
                    recall: 1.0,
                    precision: 0.0,
                    threshold: 0.2
                }
            ]
        );
        assert_eq!(retained.lift[19].captured, 1.0);

        let churned = HoldoutCurves::compute(&[true; 3], &[0.2, 1.0, 0.4]);
        assert!(diagonal(&churned) && all_finite(&churned));
        assert!(churned.precision_recall.iter().all(|q| q.precision == 1.0));
        assert_eq!(churned.roc[0].threshold, 1.0f64.next_up());

        // NaN rows are left out; infinities and -0.0 clamp into [0, 1].
        let odd = HoldoutCurves::compute(
            &[true, false, true, false],
            &[f64::NAN, f64::NEG_INFINITY, f64::INFINITY, -0.0],
        );
        assert!(all_finite(&odd));
        assert_eq!(odd.calibration.iter().map(|b| b.rows).sum::<u64>(), 3);
        assert_eq!(
            odd.roc[odd.roc.len() - 1].threshold.to_bits(),
            0.0f64.to_bits()
        );
        // Mismatched lengths: the shorter counts.
        let short = HoldoutCurves::compute(&[true, false, true], &[0.9, 0.1]);
        assert_eq!(short.calibration.iter().map(|b| b.rows).sum::<u64>(), 2);
    }

    /// Same input, same bytes; and the JSON reads back to the same curves
    /// (no NaN that JSON would write as null).
    #[test]
    fn curves_are_deterministic_and_round_trip() {
        let (y, p) = sample(5_000, 6);
        let a = HoldoutCurves::compute(&y, &p);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            serde_json::to_string(&HoldoutCurves::compute(&y, &p)).unwrap()
        );
        assert!(!json.contains("null"));
        let back: HoldoutCurves = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        for c in [
            HoldoutCurves::compute(&[], &[]),
            HoldoutCurves::compute(&[true], &[0.5]),
        ] {
            let json = serde_json::to_string(&c).unwrap();
            assert!(!json.contains("null"), "{json}");
        }
    }

    /// The kept points are the first at or past each hundredth of the way,
    /// plus both ends, whatever the curve's length.
    #[test]
    fn thinning_keeps_the_ends_and_evenly_spaced_points() {
        let points: Vec<f64> = (0..=1000).map(|i| i as f64 / 1000.0).collect();
        let kept = thin(points, |&x| x, 1.0);
        assert_eq!(kept.len(), MAX_CURVE_POINTS);
        for (j, x) in kept.iter().enumerate() {
            // The first of the points 0.001 apart at or past j / 100.
            assert!((x - j as f64 / 100.0).abs() < 0.0015, "{j}: {x}");
        }
        // A jump past many positions keeps one point, and short curves stay whole.
        let jump: Vec<f64> = (0..200).map(|i| if i < 100 { 0.0 } else { 1.0 }).collect();
        assert_eq!(thin(jump, |&x| x, 1.0).len(), 3);
        let short: Vec<f64> = (0..MAX_CURVE_POINTS).map(|i| i as f64).collect();
        assert_eq!(thin(short.clone(), |&x| x, 1.0), short);
    }
}
