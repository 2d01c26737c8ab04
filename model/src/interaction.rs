//! Screening of pairwise interactions on the training split: which feature
//! pairs the main-effects model leaves signal in. Reported in the
//! [`TrainingReport`](crate::train::TrainingReport); their product terms
//! (see [`crate::product`]) are the third complexity cross-validation tries.
//!
//! The screen is the residual gain of a pair's 2-D bins: with the chosen
//! main-effects model's probabilities `p` on the cross-validation rows,
//! residuals `r = y - p` and weights `h = p (1 - p)`, one Newton step on a
//! set of bins gains `sum_bins R^2 / (H + lambda)` (R, H: sums over the
//! bin's rows). A pair's gain is that of its grid of bins minus those of
//! each feature's bins alone, so what a feature's own shape could still
//! absorb does not count as interaction. Cheap: one pass over the rows per
//! pair, no fit (as GA2M's FAST heuristic, with quantile bins in place of
//! its cut search).
//!
//! Noise gains too: on a bin of pure noise `R^2` averages `H`, so each bin
//! gains `H / (H + lambda)` by chance. That expectation is subtracted bin by
//! bin, so a pair's gain is what it gains beyond chance, and a high-cardinality
//! categorical (many thin cells) does not outrank a real interaction. A pair
//! is kept only when that excess exceeds `z` standard deviations of the
//! chance gain (`sqrt(2 d)` for `d` extra cells, as a chi-square), with
//! `z = max(3, 1 + sqrt(2 ln m))` for `m` pairs tested: about one more than the
//! largest of `m` chance values, so data without interactions yields none
//! (and training skips the candidate) however many pairs there are.
//!
//! The same test on one feature's bins ([`bent_features`]) asks whether a
//! linear model leaves signal along a numeric feature: shape functions are
//! tried only when one does.

use crate::preprocess::{par_map, FeatureData, FeaturePrep, NumericPrep};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Bins per feature in the screen: numeric quantile bins (plus one for
/// missing values), or the most frequent levels with the rest together.
/// Eight keeps a pair's grid (at most 81 cells) populated on a few
/// thousand rows.
const SCREEN_BINS: usize = 8;

/// Ridge on each bin's weight in the gain, so a near-empty cell gains
/// nothing from its few rows (in units of rows at p = 0.5: 4 rows).
const GAIN_RIDGE: f64 = 1.0;

/// How many standard deviations of the chance gain an excess gain must
/// exceed to count, when `tests` are made at once: at least 3, and more
/// with many tests.
fn significance(tests: usize) -> f64 {
    (1.0 + (2.0 * (tests.max(1) as f64).ln()).sqrt()).max(3.0)
}

/// Probabilities, residuals `y - p` and weights `p (1 - p)` of `logits`.
fn residuals(y: &[bool], logits: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let p: Vec<f64> = logits.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect();
    let r = y
        .iter()
        .zip(&p)
        .map(|(&y, p)| f64::from(u8::from(y)) - p)
        .collect();
    (r, p.iter().map(|p| p * (1.0 - p)).collect())
}

/// The numeric features along which the model with `logits` (one per row
/// `bins` was taken of, labels `y`) leaves signal beyond chance: excess gain
/// of the feature's quantile bins over its `bins - 1` degrees of freedom.
pub(crate) fn bent_features(
    features: &[FeaturePrep],
    bins: &ScreenBins,
    y: &[bool],
    logits: &[f64],
) -> Vec<usize> {
    let (r, h) = residuals(y, logits);
    let numeric: Vec<usize> = (0..features.len())
        .filter(|&f| matches!(features[f], FeaturePrep::Numeric(_)))
        .collect();
    let z = significance(numeric.len());
    let gains = par_map(numeric.len(), |k| {
        let (codes, bins) = &bins.0[numeric[k]];
        let mut sums = vec![(0.0, 0.0); *bins];
        for (i, &c) in codes.iter().enumerate() {
            sums[c as usize].0 += r[i];
            sums[c as usize].1 += h[i];
        }
        let (g, k) = newton_gain(&sums);
        (g, k.saturating_sub(1).max(1) as f64)
    });
    numeric
        .into_iter()
        .zip(gains)
        .filter(|(_, (g, df))| *g > z * (2.0 * df).sqrt())
        .map(|(f, _)| f)
        .collect()
}

/// One feature pair and its screen gain (per row, in log-likelihood units
/// of one Newton step; larger is a stronger interaction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairGain {
    pub features: (String, String),
    pub gain: f64,
}

/// Per feature, the coarse bin of every row the screens look at, and the
/// number of bins: computed once and shared by both screens (a model's
/// shapes and interactions keep its features' transforms, so the bins of
/// the linear model's features are every model's).
pub(crate) struct ScreenBins(Vec<(Vec<u8>, usize)>);

impl ScreenBins {
    /// The bins of `rows` for each of `features` (`data[f]` is feature `f`'s data).
    pub(crate) fn of(features: &[FeaturePrep], data: &[&FeatureData<'_>], rows: &[usize]) -> Self {
        ScreenBins(par_map(features.len(), |f| {
            bin_codes(&features[f], data[f], rows)
        }))
    }
}

/// The coarse bin of every row of `rows` for one feature, and the number
/// of bins.
fn bin_codes(prep: &FeaturePrep, data: &FeatureData<'_>, rows: &[usize]) -> (Vec<u8>, usize) {
    match (prep, data) {
        (FeaturePrep::Numeric(np), FeatureData::Num(v)) => numeric_codes(np, v, rows),
        (FeaturePrep::Categorical(cp), FeatureData::Cat(v)) => {
            let index: HashMap<&str, usize> = cp
                .levels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.as_str(), i.min(SCREEN_BINS - 1)))
                .collect();
            let codes = rows
                .iter()
                .map(|&r| {
                    let level = v[r].as_deref().map(str::trim);
                    // Levels are most frequent first: the rarest share the last bin with `other`.
                    level
                        .and_then(|l| index.get(l).copied())
                        .unwrap_or(SCREEN_BINS - 1) as u8
                })
                .collect();
            (codes, SCREEN_BINS)
        }
        _ => (vec![0; rows.len()], 1),
    }
}

/// Quantile bins of the transformed present values; missing values get a
/// bin of their own (the last).
fn numeric_codes(np: &NumericPrep, v: &[f64], rows: &[usize]) -> (Vec<u8>, usize) {
    let mut t: Vec<f64> = rows
        .iter()
        .map(|&r| v[r])
        .filter(|x| !x.is_nan())
        .map(|x| np.transform(x))
        .collect();
    let ranks: Vec<usize> = (1..SCREEN_BINS - 1)
        .map(|i| i * t.len() / (SCREEN_BINS - 1))
        .filter(|&r| r < t.len())
        .collect();
    let mut cuts = crate::reference::order_statistics(&mut t, &ranks);
    cuts.dedup();
    let missing = (cuts.len() + 1) as u8;
    let codes = rows
        .iter()
        .map(|&r| {
            let x = v[r];
            if x.is_nan() {
                missing
            } else {
                let t = np.transform(x);
                cuts.partition_point(|&c| c <= t) as u8
            }
        })
        .collect();
    (codes, cuts.len() + 2)
}

/// `sum (R^2 - H) / (H + ridge)` over bins from per-bin sums: the Newton
/// gain beyond its expectation on noise, and the number of non-empty bins.
fn newton_gain(sums: &[(f64, f64)]) -> (f64, usize) {
    sums.iter()
        .filter(|&&(_, h)| h > 0.0)
        .fold((0.0, 0), |(g, k), &(r, h)| {
            (g + (r * r - h) / (h + GAIN_RIDGE), k + 1)
        })
}

/// Excess residual gain of the pair's grid over its two margins (total over
/// the rows), and its extra cells (degrees of freedom, at least 1).
fn pair_gain(a: (&[u8], usize), b: (&[u8], usize), r: &[f64], h: &[f64]) -> (f64, f64) {
    let nb = b.1;
    let mut grid = vec![(0.0, 0.0); a.1 * nb];
    let mut ma = vec![(0.0, 0.0); a.1];
    let mut mb = vec![(0.0, 0.0); nb];
    for i in 0..r.len() {
        let (ca, cb) = (a.0[i] as usize, b.0[i] as usize);
        for (slot, k) in [(&mut grid, ca * nb + cb), (&mut ma, ca), (&mut mb, cb)] {
            slot[k].0 += r[i];
            slot[k].1 += h[i];
        }
    }
    let ((g, kg), (ga, ka), (gb, kb)) = (newton_gain(&grid), newton_gain(&ma), newton_gain(&mb));
    let extra = (kg + 1).saturating_sub(ka + kb).max(1);
    (g - ga - gb, extra as f64)
}

/// The `keep` feature pairs with the largest significant excess gain,
/// largest first. `features[f]` is feature `f` and `bins` its rows' bins
/// ([`ScreenBins::of`]); `logits` are the main-effects model's log-odds of
/// those rows, `y` their labels.
pub(crate) fn screen_pairs(
    features: &[FeaturePrep],
    bins: &ScreenBins,
    y: &[bool],
    logits: &[f64],
    keep: usize,
) -> Vec<PairGain> {
    if keep == 0 {
        return Vec::new();
    }
    debug_assert_eq!(bins.0.len(), features.len());
    let codes = &bins.0;
    let (r, h) = residuals(y, logits);
    let pairs: Vec<(usize, usize)> = (0..features.len())
        .flat_map(|a| (a + 1..features.len()).map(move |b| (a, b)))
        .collect();
    let gains = par_map(pairs.len(), |k| {
        let (a, b) = pairs[k];
        let (ca, cb) = (&codes[a], &codes[b]);
        pair_gain((&ca.0, ca.1), (&cb.0, cb.1), &r, &h)
    });
    let n = y.len().max(1) as f64;
    let z = significance(pairs.len());
    let mut ranked: Vec<PairGain> = pairs
        .iter()
        .zip(gains)
        .filter(|(_, (g, extra))| *g > z * (2.0 * extra).sqrt())
        .map(|(&(a, b), (g, _))| PairGain {
            features: (
                features[a].name().to_string(),
                features[b].name().to_string(),
            ),
            gain: g / n,
        })
        .collect();
    // Stable on ties: pair order is the features' order.
    ranked.sort_by(|x, y| y.gain.total_cmp(&x.gain));
    ranked.truncate(keep);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::CategoricalPrep;
    use std::borrow::Cow;

    fn cat(name: &str) -> FeaturePrep {
        FeaturePrep::Categorical(CategoricalPrep {
            name: name.into(),
            required: false,
            levels: vec!["a".into(), "b".into()],
            most_common: "a".into(),
        })
    }

    /// Churn is the XOR of two features, invisible to any main effect: the
    /// screen ranks that pair first, and the pairs with a noise feature
    /// gain (almost) nothing.
    #[test]
    fn an_xor_pair_ranks_first() {
        let n = 4000;
        let level = |i: usize, k: usize| Some(["a", "b"][(i >> k) & 1].to_string());
        let cols: Vec<Vec<Option<String>>> = (0..3)
            .map(|k| (0..n).map(|i| level(i * 2654435761 % 4093, k)).collect())
            .collect();
        let y: Vec<bool> = (0..n)
            .map(|i| {
                let (x0, x1) = (cols[0][i] == cols[0][0], cols[1][i] == cols[1][0]);
                // 80 % churn where the two agree, 20 % where they differ.
                (x0 == x1) == (i % 5 != 0)
            })
            .collect();
        let features = [cat("x0"), cat("x1"), cat("noise")];
        let data: Vec<FeatureData<'_>> = cols
            .iter()
            .map(|c| FeatureData::Cat(Cow::Borrowed(c.as_slice())))
            .collect();
        let data: Vec<&FeatureData<'_>> = data.iter().collect();
        let rows: Vec<usize> = (0..n).collect();
        let ranked = screen_pairs(
            &features,
            &ScreenBins::of(&features, &data, &rows),
            &y,
            &vec![0.0; n],
            3,
        );
        assert_eq!(ranked[0].features, ("x0".into(), "x1".into()), "{ranked:?}");
        assert!(ranked[0].gain > 0.1, "{ranked:?}");
        assert_eq!(
            ranked.len(),
            1,
            "noise pairs are not significant: {ranked:?}"
        );
        assert!(screen_pairs(
            &features,
            &ScreenBins::of(&features, &data, &rows),
            &y,
            &vec![0.0; n],
            0
        )
        .is_empty());
    }

    /// A numeric feature on 0..=99, not log-transformed.
    fn numeric_prep(name: &str) -> NumericPrep {
        NumericPrep {
            name: name.into(),
            required: false,
            median: 50.0,
            skew: 0.0,
            log1p: false,
            min: Some(0.0),
            max: Some(99.0),
        }
    }

    fn numeric(name: &str) -> FeaturePrep {
        FeaturePrep::Numeric(numeric_prep(name))
    }

    /// Against a model that has the linear trend of both features, a step
    /// in one of them is signal beyond chance and a linear one is not.
    #[test]
    fn a_step_bends_a_feature_and_a_straight_line_does_not() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let step: Vec<f64> = (0..n).map(|_| f64::from(rng.gen_range(0..100u8))).collect();
        let line: Vec<f64> = (0..n).map(|_| f64::from(rng.gen_range(0..100u8))).collect();
        // True log-odds: a jump of 2 below 20 on `step`, a slope on `line`.
        let truth =
            |i: usize| -1.0 + 2.0 * f64::from(u8::from(step[i] < 20.0)) + 0.02 * (line[i] - 50.0);
        let y: Vec<bool> = (0..n)
            .map(|i| rng.gen_bool(1.0 / (1.0 + (-truth(i)).exp())))
            .collect();
        // The model's logits: the best straight line in `step` (least
        // squares of the truth), and `line`'s true slope.
        let mean_t = (0..n)
            .map(|i| 2.0 * f64::from(u8::from(step[i] < 20.0)))
            .sum::<f64>()
            / n as f64;
        let logits: Vec<f64> = (0..n)
            .map(|i| -1.0 + mean_t - 0.0192 * (step[i] - 49.5) + 0.02 * (line[i] - 50.0))
            .collect();
        let features = [numeric("step"), numeric("line")];
        let data = [
            FeatureData::Num(Cow::Borrowed(&step[..])),
            FeatureData::Num(Cow::Borrowed(&line[..])),
        ];
        let data: Vec<&FeatureData<'_>> = data.iter().collect();
        let rows: Vec<usize> = (0..n).collect();
        assert_eq!(
            bent_features(
                &features,
                &ScreenBins::of(&features, &data, &rows),
                &y,
                &logits
            ),
            vec![0]
        );
    }

    /// Numeric bins follow quantiles; a missing value has its own bin.
    #[test]
    fn numeric_bins_are_quantiles_with_a_missing_bin() {
        let np = numeric_prep("x");
        let mut v: Vec<f64> = (0..100).map(f64::from).collect();
        v[5] = f64::NAN;
        let rows: Vec<usize> = (0..100).collect();
        let (codes, bins) = numeric_codes(&np, &v, &rows);
        assert_eq!(bins, SCREEN_BINS);
        assert_eq!(codes[5] as usize, bins - 1);
        assert_eq!(codes[0], 0);
        assert_eq!(codes[99] as usize, bins - 2);
        assert!(codes
            .windows(2)
            .filter(|w| w[0] <= 6 && w[1] <= 6)
            .all(|w| w[0] <= w[1]));
    }
}
