//! S3 model store: `s3://bucket/prefix/<model_id>/model.json` and `.../current.json`.
//!
//! Artifacts are created with `If-None-Match: *`, so S3 itself refuses to
//! overwrite one that appeared between our existence check and the write.
//! The pointer is a single PUT, which S3 makes visible atomically.

use super::ModelObjects;
use crate::error::{Error, Result};
use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use time::OffsetDateTime;

const BACKEND: &str = "s3";

/// Model store under an S3 prefix.
#[derive(Debug, Clone)]
pub struct S3ModelStore {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3ModelStore {
    /// A store under `s3://bucket/prefix` (`prefix` may be empty).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3ModelStore {
            client,
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_string(),
        }
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

#[async_trait]
impl ModelObjects for S3ModelStore {
    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(key);
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.code(), Some("NoSuchKey" | "NotFound")) => return Ok(None),
            Err(e) => {
                return Err(Error::storage_at(
                    BACKEND,
                    "get_object",
                    format!("s3://{}/{key}", self.bucket),
                    e,
                ))
            }
        };
        let body = out.body.collect().await.map_err(|e| {
            Error::storage_at(
                BACKEND,
                "get_object",
                format!("s3://{}/{key}", self.bucket),
                e,
            )
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn put_object(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        // Reports are pages a browser shows straight from the bucket.
        let content_type = if key.ends_with(".html") {
            "text/html; charset=utf-8"
        } else {
            "application/json"
        };
        let key = self.key(key);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::storage_at(
                    BACKEND,
                    "put_object",
                    format!("s3://{}/{key}", self.bucket),
                    e,
                )
            })
    }

    async fn put_object_if_absent(&self, key: &str, bytes: Vec<u8>) -> Result<bool> {
        let key = self.key(key);
        match self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            // 412: it exists. 409: a concurrent conditional write is in
            // flight; the caller re-reads and compares either way.
            Err(e)
                if matches!(
                    e.code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::storage_at(
                BACKEND,
                "put_object",
                format!("s3://{}/{key}", self.bucket),
                e,
            )),
        }
    }

    async fn list_artifacts(&self) -> Result<Vec<(String, Option<OffsetDateTime>)>> {
        let keys = self.list_keys("").await?;
        Ok(keys
            .into_iter()
            .filter_map(|(key, at)| {
                let model_id = key.strip_suffix("/model.json")?;
                super::validate_model_id(model_id).ok()?;
                Some((model_id.to_string(), at))
            })
            .collect())
    }

    async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, Option<OffsetDateTime>)>> {
        let root = self.key("");
        let full = self.key(prefix);
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                Error::storage_at(
                    BACKEND,
                    "list_objects_v2",
                    format!("s3://{}/{full}", self.bucket),
                    e,
                )
            })?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&root)) else {
                    continue;
                };
                let stored_at = object
                    .last_modified()
                    .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
                out.push((key.to_string(), stored_at));
            }
        }
        Ok(out)
    }
}
