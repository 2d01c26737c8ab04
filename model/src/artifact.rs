//! The versioned model artifact (JSON) and its content hash.
//!
//! `model_id` is the SHA-256 of the canonical serialisation of the artifact
//! with `model_id` blanked and `created_at` left out, so retraining with the
//! same seed on the same data gives the same id whenever it was trained, and
//! with the same `created_at` gives byte-identical bytes. Canonical = serde
//! field order (structs, no hash maps) + `serde_json`'s shortest round-trip
//! float formatting, which re-serialises a parsed artifact to the same bytes;
//! that is what lets loading verify the hash.
//!
//! The format is versioned ([`SCHEMA_VERSION`], 6): each version added
//! fields older builds do not know, the newest the holdout's ROC,
//! precision-recall, calibration and lift points (`holdout_curves`, see
//! [`crate::curves`]). Older versions (1 to 5) keep loading, verifying and
//! scoring as they did; a field newer than an artifact's version is
//! refused as corrupt (see [`ModelArtifact::from_json_bytes`]).

use crate::attributes::AttributeColumns;
use crate::band::BandCutoffs;
use crate::curves::HoldoutCurves;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::preprocess::Preprocessor;
use crate::reference::{Bins, HoldoutProfile, ReferenceBins};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The newest artifact format this build reads and writes. Version 2
/// records each numeric feature's training range (`min`, `max`); version 3
/// adds shape and interaction terms ([`crate::preprocess::Role::Tent`] and
/// [`crate::preprocess::Role::Product`] design columns); version 4 adds the
/// account attribute columns (`attributes`, see [`crate::attributes`]). A
/// build older than an artifact's version refuses it by version rather than
/// calling it tampered (a version 3 build would drop the unknown
/// `attributes` field and then find the hash wrong); version 5 adds the
/// drift reference the snapshot check compares with: each numeric
/// feature's training share per decile bin and the holdout's score profile
/// (`holdout_profile`); version 6 adds the holdout's ROC, precision-recall,
/// calibration and lift points (`holdout_curves`, see [`crate::curves`])
/// for charts. Every artifact trained by this build has all of them, so it
/// is version 6; older artifacts keep loading and scoring unchanged, and
/// are checked for what they record (see [`crate::check`]: a version 5
/// artifact has the whole drift reference, so it is checked fully).
pub const SCHEMA_VERSION: u32 = CURVES_SCHEMA_VERSION;

/// The version that added the holdout curves (`holdout_curves`).
pub const CURVES_SCHEMA_VERSION: u32 = 6;

/// The version that added the drift reference (decile shares and
/// `holdout_profile`), the first the snapshot check judges in full.
pub const DRIFT_SCHEMA_VERSION: u32 = 5;

/// The version of artifacts with account attribute columns and no drift
/// reference ([`ModelArtifact::version_for`]).
pub const ATTRIBUTES_SCHEMA_VERSION: u32 = 4;

/// The version of artifacts with shape or interaction terms and no
/// attribute columns.
pub const SHAPES_SCHEMA_VERSION: u32 = 3;

/// The version of artifacts without shape or interaction terms or
/// attribute columns.
pub const LINEAR_SCHEMA_VERSION: u32 = 2;

/// The oldest format this build reads (version 1: no training range; the
/// domain rule then falls back to "log1p features are non-negative").
pub const MIN_SCHEMA_VERSION: u32 = 1;

/// Class balance and size of the data the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Rows in the training split (the final fit).
    pub train_rows: u64,
    /// Rows in the holdout split (the metrics).
    pub holdout_rows: u64,
    /// Churners in the training split.
    pub train_churned: u64,
    /// Non-churners in the training split.
    pub train_retained: u64,
    /// Seed of the split and cross-validation.
    pub seed: u64,
}

/// One named coefficient of the fitted model (on the standardized design column).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coefficient {
    pub name: String,
    pub value: f64,
}

/// Everything needed to score, explain and audit a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub schema_version: u32,
    /// Hex SHA-256 of the canonical content (see module docs).
    pub model_id: String,
    /// Supplied by the caller (RFC 3339); not part of the hash.
    pub created_at: String,
    pub id_column: String,
    pub label_column: String,
    pub training: TrainingSummary,
    /// Feature spec and fitted preprocessing parameters.
    pub preprocessing: Preprocessor,
    /// One per design column of `preprocessing`, same order.
    pub coefficients: Vec<Coefficient>,
    pub intercept: f64,
    /// Chosen L2 strength, per training row (objective = mean log loss + l2/2 |w|^2).
    pub l2: f64,
    pub bands: BandCutoffs,
    pub metrics: Metrics,
    /// Per-feature training distributions for drift checks.
    pub reference: Vec<ReferenceBins>,
    /// The account attribute columns of the training data (role ->
    /// column), which every scoring path reads into the flags. Absent
    /// (empty) in artifacts before version 4 and in those trained without
    /// any, which keeps their bytes what older builds wrote.
    #[serde(default, skip_serializing_if = "AttributeColumns::is_empty")]
    pub attributes: AttributeColumns,
    /// The holdout's mean probability, band shares and feature importance
    /// (version 5 on; `None` in older artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_profile: Option<HoldoutProfile>,
    /// Holdout ROC, precision-recall, calibration and lift points (version
    /// 6 on; `None` in older artifacts, and then omitted from the JSON so
    /// their bytes and hash stay what older builds wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_curves: Option<HoldoutCurves>,
}

/// Just enough of an artifact to check its version before parsing the rest,
/// so a future format gives a version error rather than a parse error.
#[derive(Deserialize)]
struct VersionProbe {
    schema_version: u64,
}

impl ModelArtifact {
    /// The content hash.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Holdout metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// When it was trained, as supplied by the caller.
    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    /// Pretty JSON bytes (deterministic).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings and finite floats cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and verifies an artifact.
    ///
    /// # Errors
    /// [`Error::ArtifactCorrupt`] for invalid or truncated JSON or an
    /// internally inconsistent artifact, [`Error::UnsupportedVersion`] for a
    /// version outside [`MIN_SCHEMA_VERSION`]..=[`SCHEMA_VERSION`], [`Error::ArtifactTampered`]
    /// when the content does not hash to `model_id`.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<ModelArtifact> {
        let probe: VersionProbe =
            serde_json::from_slice(bytes).map_err(|e| Error::ArtifactCorrupt {
                message: e.to_string(),
            })?;
        if !(u64::from(MIN_SCHEMA_VERSION)..=u64::from(SCHEMA_VERSION))
            .contains(&probe.schema_version)
        {
            return Err(Error::UnsupportedVersion {
                found: probe.schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let artifact: ModelArtifact =
            serde_json::from_slice(bytes).map_err(|e| Error::ArtifactCorrupt {
                message: e.to_string(),
            })?;
        let actual = artifact.content_hash();
        if actual != artifact.model_id {
            return Err(Error::ArtifactTampered {
                claimed: artifact.model_id.clone(),
                actual,
            });
        }
        artifact.check_consistency()?;
        Ok(artifact)
    }

    /// SHA-256 (hex) of the canonical content: compact JSON with `model_id`
    /// and `created_at` blanked.
    pub fn content_hash(&self) -> String {
        let mut canon = self.clone();
        canon.model_id = String::new();
        canon.created_at = String::new();
        let bytes = serde_json::to_vec(&canon).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The oldest format version that can hold a model with `prep` and
    /// the attribute columns `attributes` but no drift reference or curves
    /// (a trained artifact always has both, so is [`SCHEMA_VERSION`]):
    /// [`ATTRIBUTES_SCHEMA_VERSION`] with any attribute column, else [`SHAPES_SCHEMA_VERSION`] with shape or
    /// interaction terms, else [`LINEAR_SCHEMA_VERSION`].
    pub fn version_for(prep: &Preprocessor, attributes: &AttributeColumns) -> u32 {
        if !attributes.is_empty() {
            ATTRIBUTES_SCHEMA_VERSION
        } else if prep.has_shapes() || prep.has_interactions() {
            SHAPES_SCHEMA_VERSION
        } else {
            LINEAR_SCHEMA_VERSION
        }
    }

    /// Whether the artifact records a version 5 drift reference (numeric
    /// bin shares or a holdout profile).
    pub fn has_drift_reference(&self) -> bool {
        self.holdout_profile.is_some()
            || self
                .reference
                .iter()
                .any(|r| matches!(&r.bins, Bins::Deciles { shares, .. } if !shares.is_empty()))
    }

    /// Sets `model_id` to the content hash.
    pub(crate) fn seal(&mut self) {
        self.model_id = self.content_hash();
    }

    /// Structural checks a hash cannot give (a hand-built artifact with a
    /// correct hash must still not make the scorer index out of bounds).
    fn check_consistency(&self) -> Result<()> {
        let corrupt = |m: String| Err(Error::ArtifactCorrupt { message: m });
        if self.coefficients.len() != self.preprocessing.columns.len() {
            return corrupt(format!(
                "{} coefficients for {} design columns",
                self.coefficients.len(),
                self.preprocessing.columns.len()
            ));
        }
        self.preprocessing
            .check()
            .map_err(|m| Error::ArtifactCorrupt { message: m })?;
        let extended = self.preprocessing.has_shapes() || self.preprocessing.has_interactions();
        if extended && self.schema_version < SHAPES_SCHEMA_VERSION {
            return corrupt(format!(
                "shape or interaction terms in a schema_version {} artifact",
                self.schema_version
            ));
        }
        if self.has_drift_reference() && self.schema_version < DRIFT_SCHEMA_VERSION {
            return corrupt(format!(
                "a drift reference in a schema_version {} artifact",
                self.schema_version
            ));
        }
        // No build wrote curves under an older version: such an artifact
        // was edited (a version 5 build would also misread it as tampered).
        if self.holdout_curves.is_some() && self.schema_version < CURVES_SCHEMA_VERSION {
            return corrupt(format!(
                "holdout curves in a schema_version {} artifact",
                self.schema_version
            ));
        }
        if !self.attributes.is_empty() && self.schema_version < ATTRIBUTES_SCHEMA_VERSION {
            return corrupt(format!(
                "attribute columns in a schema_version {} artifact",
                self.schema_version
            ));
        }
        if !self.intercept.is_finite() || self.coefficients.iter().any(|c| !c.value.is_finite()) {
            return corrupt("non-finite coefficient".into());
        }
        Ok(())
    }
}
