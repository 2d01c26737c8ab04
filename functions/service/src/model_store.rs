//! The model store port: immutable artifacts plus a movable `current.json` pointer.
//!
//! Layout (docs/CONTRACTS.md): `<prefix>/<model_id>/model.json` (never
//! overwritten) with its `report.html` beside it, `<prefix>/current.json` = [`ModelPointer`], and
//! `<prefix>/history.json`, the promotions in order, which is what rollback
//! walks back through.
//!
//! The rules live once, in the blanket `impl<T: ModelObjects> ModelStore for T`;
//! adapters ([`s3::S3ModelStore`], [`dir::DirModelStore`]) only provide the
//! four object primitives of [`ModelObjects`], so both behave identically and
//! one contract suite covers both.

pub mod cache;
pub mod dir;
pub mod s3;

use crate::error::{Error, Result};
use crate::timestamp;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use cache::{LoadedModel, ModelCache};
pub use dir::DirModelStore;
pub use s3::S3ModelStore;

/// Key of the pointer to the promoted model.
pub const CURRENT_KEY: &str = "current.json";
/// Key of the promotion history.
pub const HISTORY_KEY: &str = "history.json";
/// Longest accepted model id.
const MAX_MODEL_ID_LEN: usize = 128;

/// `current.json`: which model is promoted, and the sha256 its bytes must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPointer {
    pub model_id: String,
    /// Lowercase hex SHA-256 of the `model.json` bytes.
    pub sha256: String,
    #[serde(with = "crate::timestamp::serde_rfc3339")]
    pub promoted_at: OffsetDateTime,
}

/// What [`ModelStore::put_artifact`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub model_id: String,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// `false` when this id was already stored; `sha256` is then that of
    /// the stored bytes (which may differ from the bytes handed in).
    pub created: bool,
}

/// One stored model, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub model_id: String,
    /// When the artifact was stored (object time), when the backend knows.
    #[serde(with = "crate::timestamp::serde_rfc3339_option")]
    pub stored_at: Option<OffsetDateTime>,
    /// Whether `current.json` points at it.
    pub promoted: bool,
    /// Its latest promotion, if it was ever promoted.
    #[serde(with = "crate::timestamp::serde_rfc3339_option")]
    pub last_promoted_at: Option<OffsetDateTime>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    promotions: Vec<ModelPointer>,
}

/// The few object operations a model store backend provides. Keys are
/// relative to the store's prefix (`current.json`, `<id>/model.json`).
#[async_trait]
pub trait ModelObjects: Send + Sync {
    /// The object's bytes, `None` if absent.
    ///
    /// # Errors
    /// [`Error::Storage`] on backend failure.
    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Writes (replacing atomically) an object.
    ///
    /// # Errors
    /// [`Error::Storage`] on backend failure.
    async fn put_object(&self, key: &str, bytes: Vec<u8>) -> Result<()>;

    /// Writes an object only if absent: `Ok(false)` (nothing written) if it exists.
    ///
    /// # Errors
    /// [`Error::Storage`] on backend failure.
    async fn put_object_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool>;

    /// Ids of stored artifacts with their storage time when known.
    ///
    /// # Errors
    /// [`Error::Storage`] on backend failure.
    async fn list_artifacts(&self) -> Result<Vec<(String, Option<OffsetDateTime>)>>;

    /// Every key under `prefix` (a folder: `runs/`), at any depth, with
    /// its storage time when known; in no particular order.
    ///
    /// # Errors
    /// [`Error::Storage`] on backend failure.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, Option<OffsetDateTime>)>>;
}

/// Storage of model artifacts and of which one is promoted.
#[async_trait]
pub trait ModelStore: Send + Sync {
    /// Stores artifact bytes under the `model_id` they contain. Idempotent:
    /// when that id is already stored (the id is a content hash without
    /// `created_at`, so a retrain of the same data gives the same id with
    /// other bytes) the stored object is kept, never overwritten, and its
    /// sha256 is returned with `created: false`.
    ///
    /// # Errors
    /// [`Error::InvalidArtifact`] when the bytes are not JSON with a valid
    /// `model_id`; [`Error::Corrupt`] when the object stored under that id
    /// is not an artifact declaring that `model_id`; [`Error::Storage`] on
    /// backend failure.
    async fn put_artifact(&self, bytes: &[u8]) -> Result<StoredArtifact>;

    /// The bytes of a stored artifact, `None` if absent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed id; [`Error::Storage`] on backend failure.
    async fn artifact(&self, model_id: &str) -> Result<Option<Vec<u8>>>;

    /// Stores the HTML report of a model beside its artifact
    /// (`<model_id>/report.html`), replacing an earlier one: it is drawn
    /// from the artifact, so a rewrite only brings it up to date.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed id; [`Error::Storage`] on backend failure.
    async fn put_report(&self, model_id: &str, html: &[u8]) -> Result<()>;

    /// The stored report of a model, `None` if absent.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a malformed id; [`Error::Storage`] on backend failure.
    async fn report(&self, model_id: &str) -> Result<Option<Vec<u8>>>;

    /// The pointer to the promoted model, `None` before any promotion.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an undecodable pointer; [`Error::Storage`] on backend failure.
    async fn current_pointer(&self) -> Result<Option<ModelPointer>>;

    /// The bytes `pointer` designates, verified against its sha256.
    ///
    /// # Errors
    /// [`Error::ModelNotFound`], [`Error::ShaMismatch`], [`Error::Storage`].
    async fn load(&self, pointer: &ModelPointer) -> Result<Vec<u8>>;

    /// The promoted model's pointer and verified bytes, `None` before any promotion.
    ///
    /// # Errors
    /// As [`ModelStore::current_pointer`] and [`ModelStore::load`].
    async fn current(&self) -> Result<Option<(ModelPointer, Vec<u8>)>>;

    /// Points `current.json` at `model_id` (a no-op if it already is). When
    /// `expected_sha256` is given the stored bytes must hash to it.
    ///
    /// # Errors
    /// [`Error::ModelNotFound`] for a missing artifact, [`Error::ShaMismatch`]
    /// when the bytes do not hash to `expected_sha256` or do not contain
    /// `model_id`, [`Error::Storage`] on backend failure.
    async fn promote(&self, model_id: &str, expected_sha256: Option<&str>) -> Result<ModelPointer>;

    /// Points `current.json` back at the model promoted before the current one.
    ///
    /// # Errors
    /// [`Error::NoPreviousModel`] when there is none; [`Error::ModelNotFound`]
    /// or [`Error::ShaMismatch`] when its artifact is gone or altered.
    async fn rollback(&self) -> Result<ModelPointer>;

    /// Promotions, oldest first (the last one is current unless rolled back).
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Storage`].
    async fn history(&self) -> Result<Vec<ModelPointer>>;

    /// Stored models, newest first, with their promotion state.
    ///
    /// # Errors
    /// [`Error::Corrupt`], [`Error::Storage`].
    async fn list(&self) -> Result<Vec<ModelEntry>>;
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Checks a model id is a safe single path segment / key component.
///
/// # Errors
/// [`Error::InvalidInput`] naming the problem.
pub fn validate_model_id(model_id: &str) -> Result<()> {
    let ok = !model_id.is_empty()
        && model_id.len() <= MAX_MODEL_ID_LEN
        && !model_id.starts_with('.')
        && model_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            field: "model_id",
            message: format!(
                "{model_id:?} must be 1-{MAX_MODEL_ID_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.' not starting with '.'"
            ),
        })
    }
}

/// The `model_id` a stored artifact declares. Only this field is read so the
/// store does not depend on the artifact's full schema; parsing and hash
/// verification of the whole artifact is `churn_model::ModelArtifact::from_json_bytes`.
fn declared_model_id(bytes: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    struct Head {
        model_id: String,
    }
    let head: Head = serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidArtifact(format!("not a JSON object with a model_id: {e}")))?;
    validate_model_id(&head.model_id).map_err(|e| Error::InvalidArtifact(e.to_string()))?;
    Ok(head.model_id)
}

fn artifact_key(model_id: &str) -> String {
    format!("{model_id}/model.json")
}

/// Where a model's report lives, beside its artifact.
pub fn report_key(model_id: &str) -> String {
    format!("{model_id}/report.html")
}

fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        what,
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

async fn read_history<T: ModelObjects + ?Sized>(store: &T) -> Result<History> {
    match store.get_object(HISTORY_KEY).await? {
        Some(bytes) => decode("history.json", &bytes),
        None => Ok(History::default()),
    }
}

/// Reads and verifies the artifact `model_id` (against `expected_sha256` when given).
async fn verified_artifact<T: ModelObjects + ?Sized>(
    store: &T,
    model_id: &str,
    expected_sha256: Option<&str>,
) -> Result<(Vec<u8>, String)> {
    validate_model_id(model_id)?;
    let bytes = store
        .get_object(&artifact_key(model_id))
        .await?
        .ok_or_else(|| Error::ModelNotFound {
            model_id: model_id.to_string(),
        })?;
    let actual = sha256_hex(&bytes);
    if let Some(expected) = expected_sha256 {
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(Error::ShaMismatch {
                model_id: model_id.to_string(),
                expected: expected.to_ascii_lowercase(),
                actual,
            });
        }
    }
    Ok((bytes, actual))
}

#[async_trait]
impl<T: ModelObjects> ModelStore for T {
    async fn put_artifact(&self, bytes: &[u8]) -> Result<StoredArtifact> {
        let model_id = declared_model_id(bytes)?;
        let key = artifact_key(&model_id);
        // The id is a content hash that leaves out `created_at`: bytes already
        // stored under it are the same model, kept as they are (immutable).
        let existing_or_corrupt = |existing: Vec<u8>| match declared_model_id(&existing) {
            Ok(declared) if declared == model_id => Ok(StoredArtifact {
                model_id: model_id.clone(),
                sha256: sha256_hex(&existing),
                created: false,
            }),
            Ok(declared) => Err(Error::Corrupt {
                what: "model artifact",
                message: format!("{key} declares model_id {declared}, not {model_id}"),
            }),
            Err(e) => Err(Error::Corrupt {
                what: "model artifact",
                message: format!("{key}: {e}"),
            }),
        };
        // Check first (cheap, and works even where conditional writes are
        // not honoured), then create-if-absent to close the race.
        if let Some(existing) = self.get_object(&key).await? {
            return existing_or_corrupt(existing);
        }
        if self.put_object_if_absent(&key, bytes.to_vec()).await? {
            return Ok(StoredArtifact {
                model_id,
                sha256: sha256_hex(bytes),
                created: true,
            });
        }
        match self.get_object(&key).await? {
            Some(existing) => existing_or_corrupt(existing),
            None => Err(Error::storage(
                "model store",
                "put_artifact",
                format!("{key} reported existing but cannot be read"),
            )),
        }
    }

    async fn artifact(&self, model_id: &str) -> Result<Option<Vec<u8>>> {
        validate_model_id(model_id)?;
        self.get_object(&artifact_key(model_id)).await
    }

    async fn put_report(&self, model_id: &str, html: &[u8]) -> Result<()> {
        validate_model_id(model_id)?;
        self.put_object(&report_key(model_id), html.to_vec()).await
    }

    async fn report(&self, model_id: &str) -> Result<Option<Vec<u8>>> {
        validate_model_id(model_id)?;
        self.get_object(&report_key(model_id)).await
    }

    async fn current_pointer(&self) -> Result<Option<ModelPointer>> {
        match self.get_object(CURRENT_KEY).await? {
            Some(bytes) => decode("current.json", &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn load(&self, pointer: &ModelPointer) -> Result<Vec<u8>> {
        verified_artifact(self, &pointer.model_id, Some(&pointer.sha256))
            .await
            .map(|(bytes, _)| bytes)
    }

    async fn current(&self) -> Result<Option<(ModelPointer, Vec<u8>)>> {
        let Some(pointer) = self.current_pointer().await? else {
            return Ok(None);
        };
        let bytes = self.load(&pointer).await?;
        Ok(Some((pointer, bytes)))
    }

    async fn promote(&self, model_id: &str, expected_sha256: Option<&str>) -> Result<ModelPointer> {
        let (bytes, sha256) = verified_artifact(self, model_id, expected_sha256).await?;
        // An artifact filed under another id is refused like a hash mismatch.
        let declared = declared_model_id(&bytes)?;
        if declared != model_id {
            return Err(Error::ShaMismatch {
                model_id: model_id.to_string(),
                expected: format!("model_id {model_id}"),
                actual: format!("model_id {declared}"),
            });
        }
        if let Some(current) = self.current_pointer().await? {
            if current.model_id == model_id && current.sha256 == sha256 {
                return Ok(current);
            }
        }
        let pointer = ModelPointer {
            model_id: model_id.to_string(),
            sha256,
            promoted_at: timestamp::now(),
        };
        // Pointer first: it is what scorers read. Should the history write
        // fail, rollback still works from the pointer (see `rollback`).
        self.put_object(CURRENT_KEY, encode(&pointer)).await?;
        let mut history = read_history(self).await?;
        history.promotions.push(pointer.clone());
        self.put_object(HISTORY_KEY, encode(&history)).await?;
        Ok(pointer)
    }

    async fn rollback(&self) -> Result<ModelPointer> {
        let current = self
            .current_pointer()
            .await?
            .ok_or(Error::NoPreviousModel)?;
        let mut history = read_history(self).await?;
        // Drop the current model's own entries from the top; the target is
        // the newest promotion of a different model. Works whether or not
        // the current promotion made it into the history.
        while history
            .promotions
            .last()
            .is_some_and(|p| p.model_id == current.model_id)
        {
            history.promotions.pop();
        }
        let target = history
            .promotions
            .last()
            .cloned()
            .ok_or(Error::NoPreviousModel)?;
        verified_artifact(self, &target.model_id, Some(&target.sha256)).await?;
        let pointer = ModelPointer {
            promoted_at: timestamp::now(),
            ..target
        };
        self.put_object(CURRENT_KEY, encode(&pointer)).await?;
        // The target stays the top entry, so a further rollback goes further back.
        self.put_object(HISTORY_KEY, encode(&history)).await?;
        Ok(pointer)
    }

    async fn history(&self) -> Result<Vec<ModelPointer>> {
        Ok(read_history(self).await?.promotions)
    }

    async fn list(&self) -> Result<Vec<ModelEntry>> {
        let current = self.current_pointer().await?;
        let history = read_history(self).await?;
        let mut entries: Vec<ModelEntry> = self
            .list_artifacts()
            .await?
            .into_iter()
            .map(|(model_id, stored_at)| ModelEntry {
                promoted: current.as_ref().is_some_and(|c| c.model_id == model_id),
                last_promoted_at: history
                    .promotions
                    .iter()
                    .rev()
                    .find(|p| p.model_id == model_id)
                    .map(|p| p.promoted_at)
                    .or_else(|| {
                        current
                            .as_ref()
                            .filter(|c| c.model_id == model_id)
                            .map(|c| c.promoted_at)
                    }),
                model_id,
                stored_at,
            })
            .collect();
        entries.sort_by(|a, b| {
            b.stored_at
                .cmp(&a.stored_at)
                .then_with(|| a.model_id.cmp(&b.model_id))
        });
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_safe_path_segments() {
        for ok in ["abc123", "a-b_c.d", &"f".repeat(64)] {
            assert!(validate_model_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", &"f".repeat(200)] {
            assert!(validate_model_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn declared_id_is_read_from_the_json() {
        assert_eq!(
            declared_model_id(br#"{"model_id":"m1","x":1}"#).unwrap(),
            "m1"
        );
        assert!(matches!(
            declared_model_id(b"nope"),
            Err(Error::InvalidArtifact(_))
        ));
        assert!(matches!(
            declared_model_id(br#"{"model_id":"../etc"}"#),
            Err(Error::InvalidArtifact(_))
        ));
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
