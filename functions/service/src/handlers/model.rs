//! The promoted model as the scoring handlers hold it: the artifact and its
//! precomputed [`Scorer`], built once per pointer change by the `ModelCache`.

use crate::error::{Error, Result};
use crate::model_store::ModelPointer;
use churn_model::{ModelArtifact, Scorer};

/// A verified artifact ready to score.
#[derive(Debug)]
pub struct ScoringModel {
    pub artifact: ModelArtifact,
    pub scorer: Scorer,
}

impl ScoringModel {
    /// Parses and verifies artifact bytes (the `ModelCache` loader).
    ///
    /// # Errors
    /// [`Error::InvalidArtifact`] when the bytes are not a valid artifact or
    /// their model id differs from the pointer's.
    pub fn load(pointer: &ModelPointer, bytes: &[u8]) -> Result<ScoringModel> {
        let artifact = ModelArtifact::from_json_bytes(bytes)
            .map_err(|e| Error::InvalidArtifact(e.to_string()))?;
        if artifact.model_id() != pointer.model_id {
            return Err(Error::InvalidArtifact(format!(
                "current.json names {} but the artifact is {}",
                pointer.model_id,
                artifact.model_id()
            )));
        }
        Ok(ScoringModel::new(artifact))
    }

    /// Wraps an artifact already in memory.
    pub fn new(artifact: ModelArtifact) -> ScoringModel {
        let scorer = Scorer::new(&artifact);
        ScoringModel { artifact, scorer }
    }

    /// The model id.
    pub fn model_id(&self) -> &str {
        self.artifact.model_id()
    }
}
