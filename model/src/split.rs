//! Stratified seeded splits: the holdout, the CV subsample and the CV folds.
//! Stratified = each class is shuffled and cut separately, so every part has
//! the same churn rate (to within one row) as the whole.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Rows of each class, in ascending order.
fn by_class(rows: &[usize], labels: &[bool]) -> [Vec<usize>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for &r in rows {
        out[labels[r] as usize].push(r);
    }
    out
}

/// Splits `0..labels.len()` into (train, holdout) with `fraction` of each
/// class (rounded) in the holdout. Both parts are sorted ascending.
pub fn stratified_split(labels: &[bool], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut in_holdout = vec![false; labels.len()];
    let all: Vec<usize> = (0..labels.len()).collect();
    for mut class in by_class(&all, labels) {
        class.shuffle(&mut rng);
        let k = ((class.len() as f64) * fraction).round() as usize;
        for &r in &class[..k.min(class.len())] {
            in_holdout[r] = true;
        }
    }
    // Marked, then read off in row order: both parts come out sorted
    // without sorting them.
    let (holdout, train) = all.into_iter().partition(|&r| in_holdout[r]);
    (train, holdout)
}

/// A stratified sample of at most `max` of `rows` (all of them if fewer), sorted.
/// Each class draws its share by a partial shuffle: the shuffle's cost is
/// the sample's size, not the rows'.
pub fn stratified_subsample(rows: &[usize], labels: &[bool], max: usize, seed: u64) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    let share = max as f64 / rows.len() as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_cafe);
    let mut out = Vec::with_capacity(max);
    for mut class in by_class(rows, labels) {
        let k = (((class.len() as f64) * share).round() as usize).min(class.len());
        let (drawn, _) = class.partial_shuffle(&mut rng, k);
        out.extend_from_slice(drawn);
    }
    out.sort_unstable();
    out
}

/// Fold number (0..k) of each entry of `rows`, stratified by class.
pub fn stratified_folds(rows: &[usize], labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf01d_5eed);
    let mut pos_of = std::collections::HashMap::new();
    for (i, &r) in rows.iter().enumerate() {
        pos_of.insert(r, i);
    }
    let mut fold = vec![0; rows.len()];
    for mut class in by_class(rows, labels) {
        class.shuffle(&mut rng);
        for (j, r) in class.iter().enumerate() {
            fold[pos_of[r]] = j % k.max(1);
        }
    }
    fold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matches_cutting_the_shuffled_classes_and_sorting() {
        // The split as first written: shuffle each class, cut, sort the parts.
        fn by_sorting(labels: &[bool], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (mut train, mut holdout) = (Vec::new(), Vec::new());
            let all: Vec<usize> = (0..labels.len()).collect();
            for mut class in by_class(&all, labels) {
                class.shuffle(&mut rng);
                let k = ((class.len() as f64) * fraction).round() as usize;
                let (h, t) = class.split_at(k.min(class.len()));
                holdout.extend_from_slice(h);
                train.extend_from_slice(t);
            }
            train.sort_unstable();
            holdout.sort_unstable();
            (train, holdout)
        }
        for (n, fraction, seed) in [(0, 0.2, 1), (1, 0.5, 2), (997, 0.2, 3), (5000, 0.33, 4)] {
            let labels: Vec<bool> = (0..n).map(|i| (i * 7919) % 13 < 4).collect();
            assert_eq!(
                stratified_split(&labels, fraction, seed),
                by_sorting(&labels, fraction, seed),
                "{n} rows, fraction {fraction}, seed {seed}"
            );
        }
    }

    #[test]
    fn split_is_stratified_disjoint_and_seeded() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 5 == 0).collect();
        let (tr, ho) = stratified_split(&labels, 0.2, 1);
        assert_eq!(tr.len() + ho.len(), 1000);
        assert_eq!(ho.iter().filter(|&&r| labels[r]).count(), 40);
        assert!(ho.iter().all(|r| tr.binary_search(r).is_err()));
        assert_eq!(stratified_split(&labels, 0.2, 1), (tr.clone(), ho.clone()));
        assert_ne!(stratified_split(&labels, 0.2, 2).1, ho);
        let folds = stratified_folds(&tr, &labels, 5, 1);
        for f in 0..5 {
            let pos = tr
                .iter()
                .zip(&folds)
                .filter(|(&r, &g)| g == f && labels[r])
                .count();
            assert_eq!(pos, 32);
        }
    }
}
