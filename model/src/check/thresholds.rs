//! [`CheckThresholds`]: when the snapshot check warns and when it refuses,
//! validated once by its builder; the defaults are documented here only.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The limits of the snapshot check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckThresholds {
    /// A feature's PSI from which it is at `warn` level (default 0.1).
    pub psi_warn: f64,
    /// A feature's PSI above which it is at `alert` level (default 0.25).
    pub psi_alert: f64,
    /// PSI above which drift on one of the most important features refuses
    /// the snapshot (default 1.0).
    pub psi_refuse: f64,
    /// How many of the model's most important features the refusal PSI
    /// applies to (default 5).
    pub refuse_top_features: usize,
    /// Largest allowed rise of a feature's missing share over training
    /// (default 0.5).
    pub max_missing_rise: f64,
    /// Largest allowed share of a numeric feature's present values outside
    /// its training range (default 0.5).
    pub max_out_of_range: f64,
    /// Largest allowed share of rows failing validation (default 0.05).
    pub max_invalid_share: f64,
    /// Fewest rows the PSI and score comparisons judge: below it their
    /// figures are reported but noise, so they neither warn nor refuse
    /// (default 100). The share rules (absent feature, missing rise, out of
    /// range, invalid rows) hold at any size.
    pub min_rows: u64,
}

impl Default for CheckThresholds {
    fn default() -> Self {
        CheckThresholds {
            psi_warn: 0.1,
            psi_alert: 0.25,
            psi_refuse: 1.0,
            refuse_top_features: 5,
            max_missing_rise: 0.5,
            max_out_of_range: 0.5,
            max_invalid_share: 0.05,
            min_rows: 100,
        }
    }
}

impl CheckThresholds {
    /// A builder starting from the defaults.
    pub fn builder() -> CheckThresholdsBuilder {
        CheckThresholdsBuilder {
            thresholds: CheckThresholds::default(),
        }
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig { message: m });
        let finite_positive = |x: f64| x.is_finite() && x > 0.0;
        if !(finite_positive(self.psi_warn)
            && self.psi_warn <= self.psi_alert
            && self.psi_alert <= self.psi_refuse
            && self.psi_refuse.is_finite())
        {
            return bad(format!(
                "PSI thresholds must be finite with 0 < psi_warn <= psi_alert <= psi_refuse \
                 (got {}, {}, {})",
                self.psi_warn, self.psi_alert, self.psi_refuse
            ));
        }
        for (name, share) in [
            ("max_missing_rise", self.max_missing_rise),
            ("max_out_of_range", self.max_out_of_range),
            ("max_invalid_share", self.max_invalid_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return bad(format!("{name} must be a share in [0, 1] (got {share})"));
            }
        }
        Ok(())
    }
}

/// Builder for [`CheckThresholds`]; unset fields keep their defaults.
#[derive(Debug, Clone)]
pub struct CheckThresholdsBuilder {
    thresholds: CheckThresholds,
}

macro_rules! setter {
    ($name:ident: $ty:ty) => {
        #[doc = concat!("See [`CheckThresholds::", stringify!($name), "`].")]
        pub fn $name(mut self, value: $ty) -> Self {
            self.thresholds.$name = value;
            self
        }
    };
}

impl CheckThresholdsBuilder {
    setter!(psi_warn: f64);
    setter!(psi_alert: f64);
    setter!(psi_refuse: f64);
    setter!(refuse_top_features: usize);
    setter!(max_missing_rise: f64);
    setter!(max_out_of_range: f64);
    setter!(max_invalid_share: f64);
    setter!(min_rows: u64);

    /// The thresholds.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a value is out of range.
    pub fn build(self) -> Result<CheckThresholds> {
        self.thresholds.validate()?;
        Ok(self.thresholds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(
            CheckThresholds::builder().build().unwrap(),
            CheckThresholds::default()
        );
        let e = CheckThresholds::builder()
            .psi_warn(0.5)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("psi_warn <= psi_alert"), "{e}");
        let e = CheckThresholds::builder()
            .max_invalid_share(1.5)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("max_invalid_share"), "{e}");
        assert!(CheckThresholds::builder()
            .psi_refuse(f64::NAN)
            .build()
            .is_err());
    }
}
