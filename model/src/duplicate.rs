//! Numeric columns that repeat another: a column that is an exact linear
//! function of an earlier one on the training rows (a charge that is minutes
//! times a tariff, a total in another unit) carries nothing new. Kept, it
//! splits its coefficient with its twin under L2, doubles the work, and
//! lets every interaction the screen finds with one feature reappear with
//! the other, taking the places of real ones. Training drops the later
//! column with a warning naming both.
//!
//! The test is on an evenly strided sample of at most [`SAMPLE_ROWS`]
//! training rows: the two columns are missing on the same rows and their
//! present values have |Pearson r| >= [`MIN_CORRELATION`] (rounding a
//! derived value to cents keeps it above that; two distinct measurements
//! of customers do not reach it).

use crate::preprocess::{par_map, FeatureData};

/// Rows the comparison looks at, at most.
const SAMPLE_ROWS: usize = 100_000;

/// |Pearson r| from which a column repeats another.
pub const MIN_CORRELATION: f64 = 0.9999;

/// For each column of `data`, the earlier column it repeats on `rows` and
/// their correlation; `None` for the first of its kind, categorical
/// columns, and columns without variation.
pub(crate) fn repeated_columns(
    data: &[FeatureData<'_>],
    rows: &[usize],
) -> Vec<Option<(usize, f64)>> {
    let step = rows.len().div_ceil(SAMPLE_ROWS).max(1);
    let sample: Vec<usize> = rows.iter().step_by(step).copied().collect();
    // Standardized present values (NaN where missing) of each numeric column.
    let z: Vec<Option<Vec<f64>>> = par_map(data.len(), |c| match &data[c] {
        FeatureData::Num(v) => standardized(v, &sample),
        FeatureData::Cat(_) => None,
    });
    // Every earlier-later pair's correlation, side by side on the pool
    // (each is a pass over the sample); which twin is kept is decided after.
    let pairs: Vec<(usize, usize)> = (0..data.len())
        .flat_map(|c| (0..c).map(move |e| (e, c)))
        .collect();
    let r = par_map(pairs.len(), |k| {
        let (e, c) = pairs[k];
        correlation(z[e].as_deref()?, z[c].as_deref()?)
    });
    let r_of = |e: usize, c: usize| r[c * (c - 1) / 2 + e];
    let mut out: Vec<Option<(usize, f64)>> = vec![None; data.len()];
    for c in 0..data.len() {
        // Compared with columns that are themselves kept.
        out[c] = (0..c).filter(|&e| out[e].is_none()).find_map(|e| {
            let r = r_of(e, c)?;
            (r.abs() >= MIN_CORRELATION).then_some((e, r))
        });
    }
    out
}

/// `(x - mean) / std` of `v` at `rows` (NaN kept where missing); `None`
/// without at least two distinct present values.
fn standardized(v: &[f64], rows: &[usize]) -> Option<Vec<f64>> {
    let x: Vec<f64> = rows.iter().map(|&r| v[r]).collect();
    let present = x.iter().filter(|v| !v.is_nan());
    let n = present.clone().count() as f64;
    let mean = present.clone().sum::<f64>() / n;
    let var = present.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (n >= 2.0 && var > 0.0 && var.is_finite()).then(|| {
        let sd = var.sqrt();
        x.iter().map(|v| (v - mean) / sd).collect()
    })
}

/// Pearson r of two standardized columns, `None` when they are missing on
/// different rows.
fn correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for (x, y) in a.iter().zip(b) {
        match (x.is_nan(), y.is_nan()) {
            (true, true) => {}
            (false, false) => {
                sum += x * y;
                n += 1;
            }
            _ => return None,
        }
    }
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn num(v: Vec<f64>) -> FeatureData<'static> {
        FeatureData::Num(Cow::Owned(v))
    }

    /// A rounded tariff of a column repeats it; an independent column, a
    /// column missing elsewhere and a categorical one do not.
    #[test]
    fn a_rounded_linear_function_repeats_its_column() {
        let minutes: Vec<f64> = (0..500)
            .map(|i| f64::from((i * 7919) % 3001) / 10.0)
            .collect();
        let charge: Vec<f64> = minutes
            .iter()
            .map(|m| (m * 0.17 * 100.0).round() / 100.0)
            .collect();
        let other: Vec<f64> = (0..500).map(|i| f64::from((i * 104_729) % 997)).collect();
        let mut gappy = charge.clone();
        gappy[3] = f64::NAN;
        let data = vec![
            num(minutes),
            num(other),
            num(charge),
            num(gappy),
            FeatureData::Cat(Cow::Owned(vec![Some("a".into()); 500])),
        ];
        let rows: Vec<usize> = (0..500).collect();
        let found = repeated_columns(&data, &rows);
        assert_eq!(found[0], None);
        assert_eq!(found[1], None);
        let (twin, r) = found[2].expect("charge repeats minutes");
        assert_eq!(twin, 0);
        assert!(r > MIN_CORRELATION, "{r}");
        assert_eq!(found[3], None, "missing on other rows");
        assert_eq!(found[4], None);
    }
}
