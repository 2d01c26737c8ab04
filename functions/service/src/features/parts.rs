//! Resolving a [`FeatureUri`] to the ordered list of parts to read.

use super::error::{FeatureError, FeatureResult};
use super::uri::{FeatureUri, Format};
use std::path::PathBuf;

/// One file or object of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Local(PathBuf, Format),
    S3 {
        bucket: String,
        key: String,
        format: Format,
    },
}

impl Part {
    pub(crate) fn location(&self) -> String {
        match self {
            Part::Local(p, _) => p.display().to_string(),
            Part::S3 { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }

    pub(crate) fn format(&self) -> Format {
        match self {
            Part::Local(_, f) | Part::S3 { format: f, .. } => *f,
        }
    }
}

/// The parts of `uri`, in name order for directories and prefixes.
///
/// # Errors
/// [`FeatureError::NoParts`] for an empty directory or prefix,
/// [`FeatureError::UnsupportedFormat`] for a file of another format,
/// [`FeatureError::Io`] when listing fails or an S3 source has no client.
pub(crate) async fn resolve(
    uri: &FeatureUri,
    s3: Option<&aws_sdk_s3::Client>,
) -> FeatureResult<Vec<Part>> {
    match uri {
        FeatureUri::Local(path) => resolve_local(path),
        FeatureUri::S3 { bucket, key } => {
            let location = uri.to_string();
            let client = s3.ok_or_else(|| {
                FeatureError::io(
                    "read",
                    &location,
                    "an s3:// source needs an S3 client (AWS configuration)",
                )
            })?;
            if !FeatureUri::is_s3_prefix(key) {
                let format = Format::from_name(key).unwrap_or(Format::Csv);
                return Ok(vec![Part::S3 {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    format,
                }]);
            }
            let prefix = if key.is_empty() || key.ends_with('/') {
                key.clone()
            } else {
                format!("{key}/")
            };
            let mut keys = Vec::new();
            let mut pages = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| FeatureError::s3("list", &location, e))?;
                for obj in page.contents() {
                    if let Some(k) = obj.key() {
                        if let Some(f) = Format::from_name(k) {
                            keys.push((k.to_string(), f));
                        }
                    }
                }
            }
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            if keys.is_empty() {
                return Err(FeatureError::NoParts { location });
            }
            Ok(keys
                .into_iter()
                .map(|(key, format)| Part::S3 {
                    bucket: bucket.clone(),
                    key,
                    format,
                })
                .collect())
        }
    }
}

pub(crate) fn resolve_local(path: &std::path::Path) -> FeatureResult<Vec<Part>> {
    let location = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| FeatureError::io("open", &location, e))?;
    if meta.is_dir() {
        let mut parts = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| FeatureError::io("list", &location, e))? {
            let entry = entry.map_err(|e| FeatureError::io("list", &location, e))?;
            let p = entry.path();
            if let Some(f) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Format::from_name)
            {
                if p.is_file() {
                    parts.push(Part::Local(p, f));
                }
            }
        }
        parts.sort_by_key(Part::location);
        if parts.is_empty() {
            return Err(FeatureError::NoParts { location });
        }
        return Ok(parts);
    }
    match Format::from_name(&location) {
        Some(f) => Ok(vec![Part::Local(path.to_path_buf(), f)]),
        None => Err(FeatureError::UnsupportedFormat {
            location,
            message: "the file name must end in .csv or .parquet".to_string(),
        }),
    }
}

/// Total size in bytes of `parts` (local file metadata; S3 HeadObject).
///
/// # Errors
/// [`FeatureError::Io`] when a size cannot be read.
pub(crate) async fn total_bytes(
    parts: &[Part],
    s3: Option<&aws_sdk_s3::Client>,
) -> FeatureResult<u64> {
    let mut total = 0u64;
    for part in parts {
        total += match part {
            Part::Local(path, _) => std::fs::metadata(path)
                .map_err(|e| FeatureError::io("open", part.location(), e))?
                .len(),
            Part::S3 { bucket, key, .. } => {
                let client = s3.ok_or_else(|| {
                    FeatureError::io(
                        "read",
                        part.location(),
                        "an s3:// source needs an S3 client",
                    )
                })?;
                let head = client
                    .head_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| FeatureError::s3("head", part.location(), e))?;
                head.content_length().unwrap_or(0).max(0) as u64
            }
        };
    }
    Ok(total)
}
