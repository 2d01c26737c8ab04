//! A stratified, seeded reservoir sample of a table's rows, for training on
//! a snapshot larger than the row cap in bounded memory.
//!
//! One reservoir per class (Algorithm R, each of capacity `cap`, one seeded
//! generator), so the rows of each class kept so far are a uniform sample of
//! that class's rows seen so far, whatever the order they arrive in. At the
//! end ([`StratifiedReservoir::finish`]) every kept row of the smaller class
//! stays (all of its rows when it has at most `cap`; churners are the scarce
//! signal) and the larger class fills the rest of the cap with a uniform,
//! seeded subsample of its reservoir. Memory: at most `2 cap` rows held.
//!
//! The sample therefore over-represents churners when they are rare.
//! Training shifts the intercept back by the ratio of the churn odds of the
//! source and the sample ([`Population`]; exact for a logistic model when
//! rows are drawn uniformly within each label), so probabilities are of the
//! whole source. Holdout metrics and the band cutoffs (quantiles of holdout
//! scores) are of the sample's holdout, where churners are more common than
//! in the source; the report gives rows read, rows sampled and the shift.

use crate::table::Table;
use crate::train_config::TrainConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Where an offered row goes: into slot `slot` of its class's reservoir
/// (appended when `slot` equals the current length, else replacing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub churned: bool,
    pub slot: usize,
}

/// The reservoir of one class: the source index of the row in each slot.
#[derive(Debug, Clone, Default)]
struct ClassReservoir {
    seen: u64,
    rows: Vec<u64>,
}

/// A stratified reservoir sample (see the module doc).
#[derive(Debug, Clone)]
pub struct StratifiedReservoir {
    cap: usize,
    rng: ChaCha8Rng,
    classes: [ClassReservoir; 2],
    offered: u64,
}

impl StratifiedReservoir {
    /// A reservoir keeping at most `cap` (>= 1) rows in the end.
    pub fn new(cap: usize, seed: u64) -> StratifiedReservoir {
        StratifiedReservoir {
            cap: cap.max(1),
            rng: ChaCha8Rng::seed_from_u64(seed),
            classes: [ClassReservoir::default(), ClassReservoir::default()],
            offered: 0,
        }
    }

    /// Offers the next row (source index = rows offered before it) with
    /// its label; returns where to store it, or `None` to drop it.
    pub fn offer(&mut self, churned: bool) -> Option<Slot> {
        let index = self.offered;
        self.offered += 1;
        let class = &mut self.classes[usize::from(churned)];
        class.seen += 1;
        let slot = if class.rows.len() < self.cap {
            class.rows.push(index);
            class.rows.len() - 1
        } else {
            let j = self.rng.gen_range(0..class.seen);
            if j >= self.cap as u64 {
                return None;
            }
            class.rows[j as usize] = index;
            j as usize
        };
        Some(Slot { churned, slot })
    }

    /// Rows offered so far.
    pub fn offered(&self) -> u64 {
        self.offered
    }

    /// The slots to keep, as `(churned, slot)` in source order, at most
    /// `cap` of them: every kept row of the smaller class, the larger class
    /// subsampled (seeded) to fill the cap.
    pub fn finish(self) -> Vec<Slot> {
        self.kept().into_iter().map(|(_, s)| s).collect()
    }

    /// The source indices of [`StratifiedReservoir::finish`]'s rows, in
    /// order (for a table held in memory).
    pub fn finish_indices(self) -> Vec<usize> {
        self.kept().into_iter().map(|(i, _)| i as usize).collect()
    }

    /// The kept rows as (source index, slot), in source order.
    fn kept(mut self) -> Vec<(u64, Slot)> {
        let minority = usize::from(self.classes[1].seen <= self.classes[0].seen);
        let majority = 1 - minority;
        let room = self.cap - self.classes[minority].rows.len().min(self.cap);
        let mut major: Vec<usize> = (0..self.classes[majority].rows.len()).collect();
        if major.len() > room {
            // Partial Fisher-Yates: a uniform `room`-subset of the slots.
            for i in 0..room {
                let j = self.rng.gen_range(i..major.len());
                major.swap(i, j);
            }
            major.truncate(room);
        }
        let mut keep: Vec<(u64, Slot)> = (0..self.classes[minority].rows.len())
            .map(|slot| (minority, slot))
            .chain(major.into_iter().map(|slot| (majority, slot)))
            .map(|(class, slot)| {
                (
                    self.classes[class].rows[slot],
                    Slot {
                        churned: class == 1,
                        slot,
                    },
                )
            })
            .collect();
        keep.sort_unstable_by_key(|k| k.0);
        keep
    }
}

/// The rows of a table with labels `labels` that a stratified reservoir of
/// `cap` keeps (all rows, in order, when there are at most `cap`).
pub fn stratified_sample(labels: &[bool], cap: usize, seed: u64) -> Vec<usize> {
    if labels.len() <= cap {
        return (0..labels.len()).collect();
    }
    let mut r = StratifiedReservoir::new(cap, seed);
    for &y in labels {
        r.offer(y);
    }
    r.finish_indices()
}

/// Rows and churners of a table training's rows were drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Population {
    pub rows: usize,
    pub churned: usize,
}

impl Population {
    /// The counts of `labels`.
    pub fn of(labels: &[bool]) -> Population {
        Population {
            rows: labels.len(),
            churned: labels.iter().filter(|&&y| y).count(),
        }
    }

    /// Churn odds.
    fn odds(&self) -> f64 {
        self.churned as f64 / (self.rows - self.churned) as f64
    }

    /// What to add to a logit fitted on a sample with counts `sample` so it
    /// is of this population: the log of the ratio of the two churn odds
    /// (0 for the population itself). Exact for a logistic model when the
    /// sample was drawn by label (uniform within each class), as the
    /// reservoir draws it.
    pub(crate) fn intercept_shift(&self, sample: &Population) -> f64 {
        if self == sample {
            0.0
        } else {
            (self.odds() / sample.odds()).ln()
        }
    }
}

/// The rows training uses when the table has more than `config.max_rows`.
pub(crate) struct RowSample {
    /// Positions in the input table, in order.
    pub rows: Vec<usize>,
    pub table: Table,
    pub labels: Vec<bool>,
}

impl RowSample {
    /// The stratified reservoir sample of `table` (labels `labels`), or
    /// `None` when it has at most `config.max_rows` rows.
    pub(crate) fn draw(table: &Table, labels: &[bool], config: &TrainConfig) -> Option<RowSample> {
        if labels.len() <= config.max_rows {
            return None;
        }
        let rows = stratified_sample(labels, config.max_rows, config.seed);
        Some(RowSample {
            table: table.select_rows(&rows),
            labels: rows.iter().map(|&r| labels[r]).collect(),
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 % churners, cap 40 % of the rows: every churner is kept, the
    /// rest are stayers, in source order, the same rows for the same seed.
    #[test]
    fn keeps_every_churner_and_fills_with_stayers() {
        let labels: Vec<bool> = (0..10_000).map(|i| i % 10 == 3).collect();
        let rows = stratified_sample(&labels, 4_000, 7);
        assert_eq!(rows.len(), 4_000);
        assert_eq!(rows.iter().filter(|&&r| labels[r]).count(), 1_000);
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(rows, stratified_sample(&labels, 4_000, 7));
        assert_ne!(rows, stratified_sample(&labels, 4_000, 8));
        // Stayers are spread over the whole source, not its first rows.
        assert!(rows.iter().any(|&r| r > 9_000 && !labels[r]));
        assert!(rows.iter().filter(|&&r| !labels[r]).all(|&r| r < 10_000));
    }

    /// More churners than the cap: a uniform cap-sized sample of them.
    #[test]
    fn a_minority_larger_than_the_cap_is_sampled_uniformly() {
        let labels: Vec<bool> = (0..100_000).map(|i| i % 3 == 0).collect();
        let rows = stratified_sample(&labels, 1_000, 1);
        assert_eq!(rows.len(), 1_000);
        assert!(rows.iter().all(|&r| labels[r]));
        // Uniform over the source: the mean index is near the middle.
        let mean = rows.iter().sum::<usize>() as f64 / rows.len() as f64;
        assert!((mean - 50_000.0).abs() < 4_000.0, "mean {mean}");
    }

    #[test]
    fn small_tables_are_kept_whole() {
        let labels = vec![true, false, false];
        assert_eq!(stratified_sample(&labels, 3, 0), vec![0, 1, 2]);
    }

    /// Streaming use: slots replace earlier rows, and `finish` names the
    /// final slots; replaying offers into per-class stores gives the same
    /// rows as the in-memory path.
    #[test]
    fn streamed_slots_match_the_in_memory_sample() {
        let labels: Vec<bool> = (0..5_000).map(|i| (i * 7919) % 13 == 0).collect();
        let mut r = StratifiedReservoir::new(800, 3);
        let mut stores: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        for (i, &y) in labels.iter().enumerate() {
            if let Some(s) = r.offer(y) {
                let store = &mut stores[usize::from(s.churned)];
                if s.slot == store.len() {
                    store.push(i);
                } else {
                    store[s.slot] = i;
                }
            }
        }
        let streamed: Vec<usize> = r
            .finish()
            .into_iter()
            .map(|s| stores[usize::from(s.churned)][s.slot])
            .collect();
        assert_eq!(streamed, stratified_sample(&labels, 800, 3));
    }
}
