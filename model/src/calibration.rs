//! Calibration of the final model's log-odds: Platt scaling fitted on the
//! cross-validation's out-of-fold log-odds at the chosen L2 strength.
//!
//! Why: the L2 strength is chosen for ranking (ROC AUC), and a penalty
//! strong enough to keep a few hundred shape and interaction terms from
//! overfitting also pulls every log-odds towards the mean, so probabilities
//! come out too cautious; a CS team reads "30 %" as a rate. Scaling the
//! log-odds by `scale` and adding `shift` (fitted by maximum likelihood on
//! rows no fold model saw, as scikit-learn's `CalibratedClassifierCV` with
//! `method="sigmoid"`) restores the rates without touching the ranking.
//!
//! It stays one logistic model: the scale multiplies every coefficient and
//! the intercept, the shift adds to the intercept, so every contribution is
//! scaled alike and the intercept plus the contributions is still the logit
//! exactly. A scale outside [`SCALE_RANGE`] (too little data to say) leaves
//! the model as fitted. Training applies it to shape and interaction
//! models; a linear model keeps its fitted coefficients (see
//! `train::calibration_for`).

use crate::logistic::LogisticFit;
use serde::{Deserialize, Serialize};

/// Scales Platt may apply; outside, the fit is not trusted.
pub const SCALE_RANGE: (f64, f64) = (0.25, 4.0);

/// `logit' = scale * logit + shift`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub scale: f64,
    pub shift: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            scale: 1.0,
            shift: 0.0,
        }
    }
}

impl Calibration {
    /// The maximum-likelihood `(scale, shift)` of `sigmoid(scale z + shift)`
    /// for labels `y` (Newton's method on the two parameters, with step
    /// halving); the identity when the data cannot support it (one class,
    /// or a scale outside [`SCALE_RANGE`]).
    pub fn fit(z: &[f64], y: &[bool]) -> Calibration {
        let pos = y.iter().filter(|&&v| v).count();
        if pos == 0 || pos == y.len() || z.len() != y.len() {
            return Calibration::default();
        }
        let mut c = Calibration::default();
        let mut loss = log_loss(c, z, y);
        for _ in 0..50 {
            // Gradient and Hessian of the mean log loss in (scale, shift).
            let (mut g, mut h) = ([0.0; 2], [[0.0; 2]; 2]);
            for (&zi, &yi) in z.iter().zip(y) {
                let p = sigmoid(c.scale * zi + c.shift);
                let r = p - f64::from(u8::from(yi));
                let w = p * (1.0 - p);
                g[0] += r * zi;
                g[1] += r;
                h[0][0] += w * zi * zi;
                h[0][1] += w * zi;
                h[1][1] += w;
            }
            let det = h[0][0] * h[1][1] - h[0][1] * h[0][1];
            if det.is_nan() || det.abs() <= 1e-12 {
                break;
            }
            let step = [
                (h[1][1] * g[0] - h[0][1] * g[1]) / det,
                (h[0][0] * g[1] - h[0][1] * g[0]) / det,
            ];
            // Step halving until the loss does not rise.
            let mut t = 1.0;
            let (next, next_loss) = loop {
                let next = Calibration {
                    scale: c.scale - t * step[0],
                    shift: c.shift - t * step[1],
                };
                let next_loss = log_loss(next, z, y);
                if next_loss <= loss || t / 2.0 <= 1e-4 {
                    break (next, next_loss);
                }
                t /= 2.0;
            };
            if next_loss > loss {
                break;
            }
            let done = loss - next_loss < 1e-12 * loss.max(1.0);
            (c, loss) = (next, next_loss);
            if done {
                break;
            }
        }
        if c.scale.is_finite()
            && c.shift.is_finite()
            && (SCALE_RANGE.0..=SCALE_RANGE.1).contains(&c.scale)
        {
            c
        } else {
            Calibration::default()
        }
    }

    /// `fit` with its log-odds recalibrated.
    pub(crate) fn apply(&self, fit: &mut LogisticFit) {
        for w in &mut fit.weights {
            *w *= self.scale;
        }
        fit.intercept = self.scale * fit.intercept + self.shift;
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Mean log loss of `sigmoid(scale z + shift)` (numerically stable form).
fn log_loss(c: Calibration, z: &[f64], y: &[bool]) -> f64 {
    let sum: f64 = z
        .iter()
        .zip(y)
        .map(|(&zi, &yi)| {
            let s = c.scale * zi + c.shift;
            // -log sigmoid(s) for a churner, -log(1 - sigmoid(s)) otherwise.
            let m = if yi { -s } else { s };
            m.max(0.0) + (-m.abs()).exp().ln_1p()
        })
        .sum();
    sum / z.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log-odds shrunk by half and shifted: Platt finds scale 2 and the
    /// shift back (labels drawn so their rates follow the true log-odds).
    #[test]
    fn recovers_a_known_shrinkage() {
        let (mut z, mut y) = (Vec::new(), Vec::new());
        // Deterministic labels with the exact true rate per log-odds value.
        for k in -20..=20 {
            let truth = f64::from(k) / 5.0;
            let p = sigmoid(truth);
            let n = 2000;
            let churners = (p * f64::from(n)).round() as i32;
            for i in 0..n {
                z.push((truth - 0.3) / 2.0);
                y.push(i < churners);
            }
        }
        let c = Calibration::fit(&z, &y);
        assert!((c.scale - 2.0).abs() < 0.01, "{c:?}");
        assert!((c.shift - 0.3).abs() < 0.01, "{c:?}");
        let mut fit = LogisticFit {
            weights: vec![1.0, -2.0],
            intercept: 0.5,
        };
        c.apply(&mut fit);
        assert_eq!(fit.weights, vec![c.scale, -2.0 * c.scale]);
        assert_eq!(fit.intercept, 0.5 * c.scale + c.shift);
    }

    #[test]
    fn one_class_or_no_signal_leaves_the_model_alone() {
        assert_eq!(
            Calibration::fit(&[0.1, 0.2], &[true, true]),
            Calibration::default()
        );
        // Log-odds unrelated to the labels: the scale would be ~0.
        let z: Vec<f64> = (0..1000).map(|i| f64::from(i % 7) - 3.0).collect();
        let y: Vec<bool> = (0..1000).map(|i| i % 2 == 0).collect();
        assert_eq!(Calibration::fit(&z, &y), Calibration::default());
    }
}
