//! Where features are: a local path or `s3://bucket/key`, and the format of
//! each part.
//!
//! A local directory, an S3 key ending in `/`, or an S3 key without an
//! extension is a *prefix*: every CSV/Parquet part under it, in key (name)
//! order. Other names must end in `.csv` or `.parquet` (`.pq`).

use super::error::{FeatureError, FeatureResult};
use std::fmt;
use std::path::PathBuf;

/// A feature source location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureUri {
    /// A file or a directory of parts.
    Local(PathBuf),
    /// An object, or a prefix when `key` is empty, ends in `/` or has no extension.
    S3 { bucket: String, key: String },
}

/// File format of one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

impl Format {
    /// The format a name's extension announces (case-insensitive).
    pub fn from_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if lower.ends_with(".parquet") || lower.ends_with(".pq") {
            Some(Format::Parquet)
        } else {
            None
        }
    }
}

impl FeatureUri {
    /// Parses `s3://bucket/key` or a local path.
    ///
    /// # Errors
    /// [`FeatureError::InvalidUri`] for an empty string, an `s3://` URI
    /// without a bucket, or another scheme (`http://`, `gs://`...).
    pub fn parse(text: &str) -> FeatureResult<FeatureUri> {
        let text = text.trim();
        let invalid = |message: &str| FeatureError::InvalidUri {
            uri: text.to_string(),
            message: message.to_string(),
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket name after s3://"));
            }
            return Ok(FeatureUri::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if scheme != "file" {
                return Err(invalid(
                    "only local paths and s3://bucket/key are supported",
                ));
            }
            return Ok(FeatureUri::Local(PathBuf::from(&text["file://".len()..])));
        }
        Ok(FeatureUri::Local(PathBuf::from(text)))
    }

    /// For S3: whether the key names a prefix rather than one object.
    pub(crate) fn is_s3_prefix(key: &str) -> bool {
        key.is_empty() || key.ends_with('/') || Format::from_name(key).is_none()
    }
}

impl fmt::Display for FeatureUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureUri::Local(p) => write!(f, "{}", p.display()),
            FeatureUri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

impl std::str::FromStr for FeatureUri {
    type Err = FeatureError;
    fn from_str(s: &str) -> FeatureResult<FeatureUri> {
        FeatureUri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_and_local() {
        assert_eq!(
            FeatureUri::parse("s3://b/snap/part-0.csv").unwrap(),
            FeatureUri::S3 {
                bucket: "b".into(),
                key: "snap/part-0.csv".into()
            }
        );
        assert_eq!(
            FeatureUri::parse("data/x.parquet").unwrap(),
            FeatureUri::Local("data/x.parquet".into())
        );
        assert!(FeatureUri::parse("s3:///key").is_err());
        assert!(FeatureUri::parse("gs://b/k").is_err());
        assert!(FeatureUri::is_s3_prefix("snap/"));
        assert!(FeatureUri::is_s3_prefix("snap/2024-06-01"));
        assert!(!FeatureUri::is_s3_prefix("snap/a.CSV"));
        assert_eq!(Format::from_name("A.PQ"), Some(Format::Parquet));
    }
}
