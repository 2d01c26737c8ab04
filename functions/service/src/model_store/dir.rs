//! Local model store: a directory (`<dir>/<model_id>/model.json`, `<dir>/current.json`).
//!
//! Writes go to a temporary file in the same directory first: the pointer is
//! then renamed into place (atomic replace, so a reader never sees half a
//! pointer) and an artifact is hard-linked into place, which fails if the
//! name exists, so an artifact is never overwritten even by a racing writer.

use super::ModelObjects;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

const BACKEND: &str = "model dir";

/// Model store in a local directory (created on first write).
#[derive(Debug, Clone)]
pub struct DirModelStore {
    root: PathBuf,
}

impl DirModelStore {
    /// A store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirModelStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        key.split('/')
            .fold(self.root.clone(), |p, part| p.join(part))
    }
}

fn io_error(operation: &'static str, path: &Path, e: std::io::Error) -> Error {
    Error::storage_at(BACKEND, operation, path.display(), e)
}

/// Writes `bytes` to a fresh temporary file beside `path` and returns its path.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error("create_dir", dir, e))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("object");
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| io_error("write", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error("write", &tmp, e)
        })?;
    Ok(tmp)
}

async fn blocking<T: Send + 'static>(
    operation: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    crate::blocking::spawn(f)
        .await
        .map_err(|e| Error::storage(BACKEND, operation, e))?
}

#[async_trait]
impl ModelObjects for DirModelStore {
    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    async fn put_object(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(key);
        blocking("write", move || {
            let tmp = write_temp(&path, &bytes)?;
            std::fs::rename(&tmp, &path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io_error("rename", &path, e)
            })
        })
        .await
    }

    async fn put_object_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        let path = self.path(key);
        blocking("write", move || {
            let tmp = write_temp(&path, &bytes)?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(io_error("link", &path, e)),
            }
        })
        .await
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, Option<OffsetDateTime>)>> {
        let root = self.root.clone();
        let start = self.path(prefix.trim_end_matches('/'));
        blocking("list", move || {
            let mut out = Vec::new();
            let mut dirs = vec![start];
            while let Some(dir) = dirs.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error("list", &dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_error("list", &dir, e))?;
                    let path = entry.path();
                    // Temporary files of writes in flight start with a dot.
                    if entry.file_name().to_string_lossy().starts_with('.') {
                        continue;
                    }
                    let meta = entry.metadata().map_err(|e| io_error("list", &path, e))?;
                    if meta.is_dir() {
                        dirs.push(path);
                        continue;
                    }
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let key: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.push((
                        key.join("/"),
                        meta.modified().ok().map(OffsetDateTime::from),
                    ));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list_artifacts(&self) -> Result<Vec<(String, Option<OffsetDateTime>)>> {
        let root = self.root.clone();
        blocking("list", move || {
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_error("list", &root, e)),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error("list", &root, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if super::validate_model_id(&name).is_err() {
                    continue;
                }
                let model = entry.path().join("model.json");
                if let Ok(meta) = std::fs::metadata(&model) {
                    let stored_at = meta.modified().ok().map(OffsetDateTime::from);
                    out.push((name, stored_at));
                }
            }
            Ok(out)
        })
        .await
    }
}
