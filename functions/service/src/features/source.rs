//! [`FeatureSources`]: the port handlers read feature tables through.
//!
//! A handler names a source by URI (a local path, or an `s3://` object or
//! prefix) and gets a table or a stream; how the bytes are reached is this
//! type's business. The S3 client is built on the first `s3://` URI (from
//! the environment's AWS configuration, shared with the stores when
//! [`Services`](crate::services::Services) built it) or handed in by the
//! caller; a run on local files never loads AWS configuration.

use super::read::{read_table_with_notes, NotedTable};
use super::{FeatureResult, FeatureUri, ReadOptions, TableStream};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Resolves feature URIs (local paths and `s3://`) to tables and streams.
#[derive(Clone, Default)]
pub struct FeatureSources {
    sdk: Arc<OnceCell<aws_config::SdkConfig>>,
    s3: Arc<OnceCell<aws_sdk_s3::Client>>,
}

impl std::fmt::Debug for FeatureSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureSources")
            .field("s3_client_built", &self.s3.initialized())
            .finish()
    }
}

impl FeatureSources {
    /// Sources whose S3 client comes from the environment's AWS
    /// configuration, loaded on the first `s3://` URI.
    pub fn new() -> Self {
        FeatureSources::default()
    }

    /// Sources sharing an SDK configuration cell with other adapters, so
    /// the configuration is loaded at most once per process.
    pub fn sharing_sdk(sdk: Arc<OnceCell<aws_config::SdkConfig>>) -> Self {
        FeatureSources {
            sdk,
            s3: Arc::default(),
        }
    }

    /// Sources that read `s3://` URIs with `client` (tests point it at a
    /// local S3 server; callers with their own client configuration).
    pub fn with_s3_client(client: aws_sdk_s3::Client) -> Self {
        FeatureSources {
            sdk: Arc::default(),
            s3: Arc::new(OnceCell::new_with(Some(client))),
        }
    }

    /// The S3 client when `uri` is on S3 (built on first use), else `None`.
    async fn client_for(&self, uri: &FeatureUri) -> Option<aws_sdk_s3::Client> {
        match uri {
            FeatureUri::Local(_) => None,
            FeatureUri::S3 { .. } => Some(
                self.s3
                    .get_or_init(|| async {
                        let sdk = self.sdk.get_or_init(crate::aws::load_sdk_config).await;
                        crate::aws::s3_client(sdk)
                    })
                    .await
                    .clone(),
            ),
        }
    }

    /// The whole table at `uri` with the reader's notes (see
    /// [`read_table_with_notes`]).
    ///
    /// # Errors
    /// [`FeatureError`](super::FeatureError) naming the part, and the row and
    /// column for bad cells.
    pub async fn read_table(
        &self,
        uri: &FeatureUri,
        options: &ReadOptions,
    ) -> FeatureResult<NotedTable> {
        let s3 = self.client_for(uri).await;
        read_table_with_notes(uri, s3.as_ref(), options).await
    }

    /// The total size in bytes of the parts of `uri`.
    ///
    /// # Errors
    /// As the listing, and [`FeatureError`](super::FeatureError)`::Io` when a
    /// size cannot be read.
    pub async fn total_bytes(&self, uri: &FeatureUri) -> FeatureResult<u64> {
        let s3 = self.client_for(uri).await;
        let parts = super::parts::resolve(uri, s3.as_ref()).await?;
        super::parts::total_bytes(&parts, s3.as_ref()).await
    }

    /// A constant-memory stream of the table at `uri` (see [`TableStream`]).
    ///
    /// # Errors
    /// As [`TableStream::open`].
    pub async fn stream(
        &self,
        uri: &FeatureUri,
        options: ReadOptions,
    ) -> FeatureResult<TableStream> {
        let s3 = self.client_for(uri).await;
        TableStream::open(uri, s3, options).await
    }
}
