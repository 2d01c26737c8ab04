//! Interaction terms: for each feature pair the screen chose (see
//! [`crate::interaction`]), the products of a small basis of each feature
//! (a [`Part`] per function), added as design columns ([`Role::Product`])
//! next to the main effects.
//!
//! Why products of coarse bases: a pair's joint effect on the logit is then
//! a smooth surface on a 4 x 4 grid (piecewise bilinear for two numeric
//! features, a piecewise-linear curve per level for a categorical with a
//! numeric one, a table for two categoricals), fitted by the same
//! L2-penalized logistic regression, so reasons stay exact: the pair's
//! columns fold into one term whose contribution is its own reason
//! ("plan=pro with logins_30d 2").
//!
//! A numeric feature's parts are the degree-1 B-splines on its smallest
//! value, [`INTERACTION_KNOTS`] interior quantiles and largest value of the
//! transformed training values: a shoulder [`Part::Below`] the first
//! interior knot, tents between, a shoulder [`Part::Above`] the last. They
//! sum to 1 and stay flat outside the training range, so a product never
//! grows without bound on an unseen value. A missing value is imputed at the
//! median as for the main effect. A categorical feature's parts are its
//! [`INTERACTION_LEVELS`] most frequent kept levels and the rest together.

use crate::preprocess::{DesignColumn, FeatureData, FeaturePrep, Preprocessor, Role};
use crate::shape::{quantile_knots, tent};
use serde::{Deserialize, Serialize};

/// Interior quantile knots of a numeric feature's part of a product (so
/// four parts: two shoulders and two tents).
pub const INTERACTION_KNOTS: usize = 2;

/// Most frequent kept levels of a categorical feature that get a part of
/// their own in a product; the others share one.
pub const INTERACTION_LEVELS: usize = 3;

/// Most parts one feature may have in a product term (checked when an
/// artifact loads; scoring evaluates a side's parts into a fixed array).
pub const MAX_PARTS: usize = 8;

/// One factor of a product term: a function of one feature's value.
/// Numeric parts take the transformed (log1p'd when the feature is),
/// imputed value `t`; categorical parts the kept level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum Part {
    /// 1 at or below `peak`, falling linearly to 0 at `right`.
    Below { peak: f64, right: f64 },
    /// 0 outside `(left, right)`, 1 at `peak`, linear between.
    Tent { left: f64, peak: f64, right: f64 },
    /// 0 at or below `left`, rising linearly to 1 at `peak`, 1 beyond.
    Above { left: f64, peak: f64 },
    /// 1 when the level is `levels[index]`.
    Level { index: usize },
    /// 1 when the level is none of the first `count` kept levels (another
    /// kept level, a rare or unseen one, or missing).
    Rest { count: usize },
}

/// A feature's value as a part takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PartArg {
    /// Transformed, imputed numeric value.
    T(f64),
    /// Kept level (`None`: rare, unseen or missing).
    Level(Option<usize>),
}

impl Part {
    /// The part at `arg`; 0 for an argument of the other kind.
    #[inline]
    pub(crate) fn at(&self, arg: PartArg) -> f64 {
        match (self, arg) {
            (&Part::Below { peak, right }, PartArg::T(t)) => {
                ((right - t) / (right - peak)).clamp(0.0, 1.0)
            }
            (&Part::Tent { left, peak, right }, PartArg::T(t)) => tent(t, left, peak, right),
            (&Part::Above { left, peak }, PartArg::T(t)) => {
                ((t - left) / (peak - left)).clamp(0.0, 1.0)
            }
            (&Part::Level { index }, PartArg::Level(level)) => f64::from(level == Some(index)),
            (&Part::Rest { count }, PartArg::Level(level)) => {
                f64::from(level.is_none_or(|k| k >= count))
            }
            _ => 0.0,
        }
    }

    /// Whether this part fits feature `f`: a numeric part with ordered,
    /// finite knots on a numeric feature, a level part within a categorical
    /// feature's levels.
    pub(crate) fn fits(&self, f: &FeaturePrep) -> bool {
        let ordered =
            |k: &[f64]| k.iter().all(|x| x.is_finite()) && k.windows(2).all(|w| w[0] < w[1]);
        match (self, f) {
            (&Part::Below { peak, right }, FeaturePrep::Numeric(_)) => ordered(&[peak, right]),
            (&Part::Tent { left, peak, right }, FeaturePrep::Numeric(_)) => {
                ordered(&[left, peak, right])
            }
            (&Part::Above { left, peak }, FeaturePrep::Numeric(_)) => ordered(&[left, peak]),
            (&Part::Level { index }, FeaturePrep::Categorical(c)) => index < c.levels.len(),
            (&Part::Rest { count }, FeaturePrep::Categorical(c)) => count <= c.levels.len(),
            _ => false,
        }
    }

    /// How the part reads in a column name, by where it is non-zero (a
    /// shoulder) or peaks (a tent): `logins_30d<7`, `logins_30d@7`,
    /// `logins_30d>12`, `plan=pro`, `plan=rest`.
    fn label(&self, f: &FeaturePrep) -> String {
        let name = f.name();
        let raw = |t: f64| match f {
            FeaturePrep::Numeric(np) => crate::shape::knot_label(t, np.log1p),
            FeaturePrep::Categorical(_) => format!("{t}"),
        };
        match (self, f) {
            (&Part::Below { right, .. }, _) => format!("{name}<{}", raw(right)),
            (&Part::Tent { peak, .. }, _) => format!("{name}@{}", raw(peak)),
            (&Part::Above { left, .. }, _) => format!("{name}>{}", raw(left)),
            (&Part::Level { index }, FeaturePrep::Categorical(c)) => {
                format!("{name}={}", c.levels[index])
            }
            _ => format!("{name}=rest"),
        }
    }
}

/// The parts of feature `f` (data `v`) fitted on `rows`; empty when the
/// feature has a single value there.
fn parts_of(f: &FeaturePrep, data: &FeatureData<'_>, rows: &[usize]) -> Vec<Part> {
    match (f, data) {
        (FeaturePrep::Numeric(np), FeatureData::Num(v)) => {
            let grid = quantile_knots(v, rows, INTERACTION_KNOTS, |x| np.transform(x), true);
            shoulders_and_tents(&grid)
        }
        (FeaturePrep::Categorical(c), FeatureData::Cat(_)) => {
            let count = c.levels.len().min(INTERACTION_LEVELS);
            (0..count)
                .map(|index| Part::Level { index })
                .chain(std::iter::once(Part::Rest { count }))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// The degree-1 B-splines on `grid` (increasing, at least two values):
/// a shoulder at each end and a tent at each interior value.
fn shoulders_and_tents(grid: &[f64]) -> Vec<Part> {
    let m = grid.len();
    if m < 2 {
        return Vec::new();
    }
    let mut parts = vec![Part::Below {
        peak: grid[0],
        right: grid[1],
    }];
    parts.extend(grid.windows(3).map(|w| Part::Tent {
        left: w[0],
        peak: w[1],
        right: w[2],
    }));
    parts.push(Part::Above {
        left: grid[m - 2],
        peak: grid[m - 1],
    });
    parts
}

impl Preprocessor {
    /// This preprocessor with the product columns of each feature pair of
    /// `pairs` (indices into `features`) appended, fitted on `rows` of
    /// `data` (`data[f]` is the data of `features[f]`): every product of a
    /// part of the first feature with a part of the second that varies on
    /// those rows, standardized there.
    pub(crate) fn with_interactions(
        &self,
        data: &[&FeatureData<'_>],
        rows: &[usize],
        pairs: &[(usize, usize)],
    ) -> Preprocessor {
        let mut candidates = Vec::new();
        for &(a, b) in pairs {
            let (pa, pb) = (
                parts_of(&self.features[a], data[a], rows),
                parts_of(&self.features[b], data[b], rows),
            );
            for x in &pa {
                for y in &pb {
                    candidates.push(DesignColumn {
                        name: format!(
                            "{} x {}",
                            x.label(&self.features[a]),
                            y.label(&self.features[b])
                        ),
                        feature: a,
                        role: Role::Product {
                            with: b,
                            part: x.clone(),
                            with_part: y.clone(),
                        },
                        mean: 0.0,
                        std: 1.0,
                    });
                }
            }
        }
        let raw = Preprocessor {
            features: self.features.clone(),
            columns: candidates,
        };
        let mut x = Vec::new();
        raw.design_col_major(data, rows, &mut x);
        let n = rows.len().max(1);
        let mut columns = self.columns.clone();
        for (j, mut c) in raw.columns.into_iter().enumerate() {
            let col = &x[j * rows.len()..(j + 1) * rows.len()];
            let mean = col.iter().sum::<f64>() / n as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
            if var.sqrt() > 1e-9 {
                (c.mean, c.std) = (mean, var.sqrt());
                columns.push(c);
            }
        }
        Preprocessor {
            features: self.features.clone(),
            columns,
        }
    }

    /// Whether any design column is an interaction (product) term.
    pub fn has_interactions(&self) -> bool {
        self.columns
            .iter()
            .any(|c| matches!(c.role, Role::Product { .. }))
    }
}

/// A pair's product terms folded for scoring: its contribution is
/// `offset + sum_ij w[i][j] part_i(a) with_part_j(b)`.
#[derive(Debug, Clone)]
pub(crate) struct FoldedPair {
    /// Feature indices of the pair (model order).
    pub a: usize,
    pub b: usize,
    parts: Vec<Part>,
    with_parts: Vec<Part>,
    /// One row per part of `a`, one weight per part of `b`.
    w: Vec<[f64; MAX_PARTS]>,
    offset: f64,
}

impl FoldedPair {
    /// Adds product column `part` x `with_part` of features `a`, `b` with
    /// weight `w` on the raw product and constant `at0` to the folded pair
    /// among `pairs` (created on first sight). The artifact check bounds
    /// each side to [`MAX_PARTS`] parts; a part beyond that is ignored.
    pub(crate) fn add(
        pairs: &mut Vec<FoldedPair>,
        (a, b): (usize, usize),
        (part, with_part): (&Part, &Part),
        w: f64,
        at0: f64,
    ) {
        let k = match pairs.iter().position(|p| (p.a, p.b) == (a, b)) {
            Some(k) => k,
            None => {
                pairs.push(FoldedPair {
                    a,
                    b,
                    parts: Vec::new(),
                    with_parts: Vec::new(),
                    w: Vec::new(),
                    offset: 0.0,
                });
                pairs.len() - 1
            }
        };
        let p = &mut pairs[k];
        let i = position_or_push(&mut p.parts, part);
        let j = position_or_push(&mut p.with_parts, with_part);
        if p.w.len() < p.parts.len() {
            p.w.push([0.0; MAX_PARTS]);
        }
        if let Some(cell) = p.w.get_mut(i).and_then(|row| row.get_mut(j)) {
            *cell += w;
        }
        p.offset += at0;
    }

    /// The larger number of distinct parts of the two sides.
    pub(crate) fn widest_side(&self) -> usize {
        self.parts.len().max(self.with_parts.len())
    }

    /// The pair's contribution at the two features' values.
    #[inline]
    pub(crate) fn contribution(&self, a: PartArg, b: PartArg) -> f64 {
        let mut vb = [0.0; MAX_PARTS];
        for (v, part) in vb.iter_mut().zip(&self.with_parts) {
            *v = part.at(b);
        }
        let mut c = self.offset;
        for (row, part) in self.w.iter().zip(&self.parts) {
            let va = part.at(a);
            if va != 0.0 {
                c += va * row.iter().zip(&vb).map(|(w, v)| w * v).sum::<f64>();
            }
        }
        c
    }
}

/// Index of `x` in `v`, pushed at the end when absent.
fn position_or_push(v: &mut Vec<Part>, x: &Part) -> usize {
    v.iter().position(|p| p == x).unwrap_or_else(|| {
        v.push(x.clone());
        v.len() - 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numeric parts sum to 1 everywhere, inside the grid and beyond
    /// its ends, and each peaks at its knot.
    #[test]
    fn numeric_parts_are_a_partition_of_unity_flat_outside() {
        let parts = shoulders_and_tents(&[0.0, 2.0, 5.0, 9.0]);
        assert_eq!(parts.len(), 4);
        for i in -30..130 {
            let t = f64::from(i) / 10.0;
            let sum: f64 = parts.iter().map(|p| p.at(PartArg::T(t))).sum();
            assert!((sum - 1.0).abs() < 1e-12, "t {t}: {sum}");
        }
        assert_eq!(parts[0].at(PartArg::T(-5.0)), 1.0);
        assert_eq!(parts[3].at(PartArg::T(50.0)), 1.0);
        assert_eq!(parts[1].at(PartArg::T(2.0)), 1.0);
        assert_eq!(parts[2].at(PartArg::T(5.0)), 1.0);
        // A feature with only two values: two shoulders.
        assert_eq!(shoulders_and_tents(&[0.0, 1.0]).len(), 2);
        assert!(shoulders_and_tents(&[1.0]).is_empty());
    }

    #[test]
    fn level_parts_pick_their_level_and_rest_takes_the_others() {
        let (pro, rest) = (Part::Level { index: 1 }, Part::Rest { count: 2 });
        assert_eq!(pro.at(PartArg::Level(Some(1))), 1.0);
        assert_eq!(pro.at(PartArg::Level(Some(0))), 0.0);
        assert_eq!(rest.at(PartArg::Level(Some(1))), 0.0);
        assert_eq!(rest.at(PartArg::Level(Some(2))), 1.0);
        assert_eq!(rest.at(PartArg::Level(None)), 1.0);
        assert_eq!(pro.at(PartArg::T(1.0)), 0.0, "kinds do not mix");
    }
}
