//! Training settings: [`TrainConfig`] and its checked builder. Its own
//! module so that training (`train.rs`) and cross-validation (`cv.rs`) both
//! read it without depending on each other.

use crate::band::BandPolicy;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Training settings. Build with [`TrainConfig::builder`]; every field has
/// the default documented on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Customer id column. Default `customer_id`.
    pub id_column: String,
    /// Label column (1/0, true/false, yes/no). Default `churned`.
    pub label_column: String,
    /// Seed of the split, CV folds and CV subsample. Default 7.
    pub seed: u64,
    /// Share of rows held out for evaluation and bands. Default 0.2.
    pub holdout_fraction: f64,
    /// Cross-validation folds. Default 4: folds run two at a time on the two
    /// cores of a Lambda or CI machine, so 4 folds take two rounds where 5 take three.
    pub cv_folds: usize,
    /// L2 strengths tried, per training row (objective = mean log loss +
    /// l2/2 |w|^2 on standardized columns). Default `[1e-4, 1e-3, 1e-2, 1e-1]`.
    pub l2_grid: Vec<f64>,
    /// Cross-validation runs on a stratified seeded subsample of at most this
    /// many training rows (the final fit always uses the whole training
    /// split). Default 50,000.
    pub cv_max_rows: usize,
    /// Levels seen fewer times in training become `other`. Default 10.
    pub min_level_count: usize,
    /// Non-negative columns with skewness above this get log1p (the book
    /// "Fighting Churn With Data" uses 4). Default 4.0.
    pub skew_threshold: f64,
    /// Minimum rows of the minority class. Default 50.
    pub min_minority_rows: usize,
    /// Risk band policy. Default top 10 % high, next 20 % medium.
    pub bands: BandPolicy,
    /// L-BFGS iteration cap per fit. Default 200.
    pub max_iterations: u64,
    /// Tolerance on the Euclidean norm of the gradient of the *mean* loss
    /// (scaled by the row count internally, because the solver sums the
    /// loss). Default 1e-3. The coefficient error this leaves is about
    /// `tol / (smallest Hessian eigenvalue)`, ~0.002 per standardized
    /// coefficient: below their sampling noise up to about a million rows
    /// (at 800k training rows and 15-25 % churn the standard error is
    /// ~0.0026), and far below it for smaller data. On the 1M-row benchmark
    /// 3e-4 gave the same holdout AUC to five decimals and a ~30 % slower
    /// final fit; lower it for very large, very clean data.
    pub gradient_tolerance: f64,
    /// Knots per numeric feature of the shape candidate (tents at quantile
    /// knots, see [`crate::shape`]); 0 tries no shapes. Default
    /// 6, the knot count of the spline baseline the parity check compares
    /// with: enough to follow a threshold within a sixth of the data.
    #[serde(default = "default_shape_knots")]
    pub shape_knots: usize,
    /// Cross-validation compares the complexities (linear, shapes, shapes
    /// with interactions) and
    /// keeps the simplest whose mean CV ROC AUC is within this of the best,
    /// so extra terms must earn their place. Default 0.002.
    #[serde(default = "default_complexity_tolerance")]
    pub complexity_tolerance: f64,
    /// Most feature pairs the interaction screen keeps, whose product terms
    /// make the third complexity (see [`crate::product`]); 0 skips the
    /// screen and that candidate. Default 10.
    #[serde(default = "default_max_interactions")]
    pub max_interactions: usize,
    /// Row cap: a table with more rows is trained on a stratified, seeded
    /// reservoir sample of this many (every churner kept up to the cap; see
    /// [`crate::sample`]), the intercept shifted back to the whole table's
    /// base rate. Bounds training memory (the design matrices) at any table
    /// size. Default 2,000,000.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Timestamp stored in the artifact (supplied by the caller so training
    /// is reproducible). Default `1970-01-01T00:00:00Z`.
    pub created_at: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            id_column: "customer_id".into(),
            label_column: "churned".into(),
            seed: 7,
            holdout_fraction: 0.2,
            cv_folds: 4,
            l2_grid: vec![1e-4, 1e-3, 1e-2, 1e-1],
            cv_max_rows: 50_000,
            min_level_count: 10,
            skew_threshold: 4.0,
            min_minority_rows: 50,
            bands: BandPolicy::default(),
            max_iterations: 200,
            gradient_tolerance: 1e-3,
            shape_knots: default_shape_knots(),
            complexity_tolerance: default_complexity_tolerance(),
            max_interactions: default_max_interactions(),
            max_rows: default_max_rows(),
            created_at: "1970-01-01T00:00:00Z".into(),
        }
    }
}

/// See [`TrainConfig::shape_knots`] (also the default of configurations
/// serialised before the field existed).
fn default_shape_knots() -> usize {
    6
}

/// See [`TrainConfig::complexity_tolerance`].
fn default_complexity_tolerance() -> f64 {
    0.002
}

/// See [`TrainConfig::max_interactions`].
fn default_max_interactions() -> usize {
    10
}

/// See [`TrainConfig::max_rows`].
fn default_max_rows() -> usize {
    2_000_000
}

/// Smallest row cap: below it a sample could not hold the minimum churners
/// and a holdout worth evaluating.
pub const MIN_MAX_ROWS: usize = 1_000;

/// Most knots per numeric feature: more only adds noise terms to the CV.
const MAX_SHAPE_KNOTS: usize = 32;

impl TrainConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> TrainConfigBuilder {
        TrainConfigBuilder {
            config: TrainConfig::default(),
        }
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| {
            Err(Error::InvalidConfig {
                message: m.to_string(),
            })
        };
        if !(self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0) {
            return bad("holdout_fraction must be in (0, 1)");
        }
        if self.cv_folds < 2 {
            return bad("cv_folds must be at least 2");
        }
        if self.l2_grid.is_empty() || self.l2_grid.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
            return bad("l2_grid must be non-empty, finite and non-negative");
        }
        if self.cv_max_rows < 10 * self.cv_folds {
            return bad("cv_max_rows must be at least 10 x cv_folds");
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance > 0.0)
            || self.max_iterations == 0
        {
            return bad("gradient_tolerance must be > 0 and max_iterations >= 1");
        }
        if self.shape_knots > MAX_SHAPE_KNOTS {
            return bad(&format!("shape_knots must be at most {MAX_SHAPE_KNOTS}"));
        }
        if !(self.complexity_tolerance.is_finite() && self.complexity_tolerance >= 0.0) {
            return bad("complexity_tolerance must be finite and non-negative");
        }
        if self.max_rows < MIN_MAX_ROWS {
            return bad(&format!("max_rows must be at least {MIN_MAX_ROWS}"));
        }
        if self.skew_threshold.is_nan() {
            return bad("skew_threshold must be a number");
        }
        if let Err(e) = self.bands.checked() {
            return bad(&format!("bands: {e}"));
        }
        Ok(())
    }
}

/// Builder for [`TrainConfig`]; unset fields keep their defaults.
#[derive(Debug, Clone)]
pub struct TrainConfigBuilder {
    config: TrainConfig,
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident: $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, value: impl Into<$ty>) -> Self {
            self.config.$name = value.into();
            self
        }
    };
}

impl TrainConfigBuilder {
    setter!(/// See [`TrainConfig::id_column`].
        id_column: String);
    setter!(/// See [`TrainConfig::label_column`].
        label_column: String);
    setter!(/// See [`TrainConfig::seed`].
        seed: u64);
    setter!(/// See [`TrainConfig::holdout_fraction`].
        holdout_fraction: f64);
    setter!(/// See [`TrainConfig::cv_folds`].
        cv_folds: usize);
    setter!(/// See [`TrainConfig::l2_grid`].
        l2_grid: Vec<f64>);
    setter!(/// See [`TrainConfig::cv_max_rows`].
        cv_max_rows: usize);
    setter!(/// See [`TrainConfig::min_level_count`].
        min_level_count: usize);
    setter!(/// See [`TrainConfig::skew_threshold`].
        skew_threshold: f64);
    setter!(/// See [`TrainConfig::min_minority_rows`].
        min_minority_rows: usize);
    setter!(/// See [`TrainConfig::bands`].
        bands: BandPolicy);
    setter!(/// See [`TrainConfig::max_iterations`].
        max_iterations: u64);
    setter!(/// See [`TrainConfig::gradient_tolerance`].
        gradient_tolerance: f64);
    setter!(/// See [`TrainConfig::shape_knots`].
        shape_knots: usize);
    setter!(/// See [`TrainConfig::complexity_tolerance`].
        complexity_tolerance: f64);
    setter!(/// See [`TrainConfig::max_interactions`].
        max_interactions: usize);
    setter!(/// See [`TrainConfig::max_rows`].
        max_rows: usize);
    setter!(/// See [`TrainConfig::created_at`].
        created_at: String);

    /// The configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a value is out of range.
    pub fn build(self) -> Result<TrainConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}
