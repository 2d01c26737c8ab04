//! The population stability index.

/// Share a bin counts as when it is empty on one side: without a floor one
/// empty bin makes the index infinite; 0.0001 is the usual choice.
pub const PSI_FLOOR: f64 = 1e-4;

/// PSI of `actual` shares against `expected` shares, bin by bin:
/// `sum((a - e) * ln(a / e))`, each share floored at [`PSI_FLOOR`]; bins
/// empty on both sides add nothing. 0 for identical distributions; < 0.1
/// is usually read as stable, > 0.25 as a major shift.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .filter(|(e, a)| **e > 0.0 || **a > 0.0)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(PSI_FLOOR), a.max(PSI_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_by_hand() {
        assert_eq!(psi(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        // (0.7-0.5) ln(0.7/0.5) + (0.3-0.5) ln(0.3/0.5)
        let hand = 0.2 * (1.4f64).ln() + (-0.2) * (0.6f64).ln();
        assert!((psi(&[0.5, 0.5], &[0.7, 0.3]) - hand).abs() < 1e-15);
        // An empty actual bin counts as the floor; empty on both sides, nothing.
        let hand = (PSI_FLOOR - 0.5) * (PSI_FLOOR / 0.5).ln() + 0.5 * (1.0f64 / 0.5).ln();
        assert!((psi(&[0.5, 0.5, 0.0], &[0.0, 1.0, 0.0]) - hand).abs() < 1e-12);
    }
}
