//! Test helpers (feature `test-support`): a `moto_server` per test, SDK
//! clients pointed at it, a fault-injecting DynamoDB proxy, and log lines
//! captured as the functions write them.
//!
//! moto accepts BatchWriteItem with any number of items, never throttles and
//! never returns UnprocessedItems, so the retry and chunking paths of the
//! DynamoDB adapter are tested through [`FaultProxy`], which sits between
//! the SDK and moto and behaves like real DynamoDB does under load.

pub mod logs;
pub mod moto;
pub mod proxy;
pub mod receiver;

pub use logs::CapturedLogs;
pub use moto::MotoServer;
pub use proxy::{FaultProxy, ProxyStats};
pub use receiver::{Answer, Receiver};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

/// Errors of the test harness itself.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// moto_server could not be started or did not become ready.
    #[error("moto_server ({binary}): {message}; run scripts/dev-env.sh or set MOTO_SERVER_BIN")]
    Moto { binary: String, message: String },
    /// The proxy could not bind or serve.
    #[error("fault proxy: {0}")]
    Proxy(String),
}

/// SDK configuration for a local endpoint: dummy credentials, `us-east-1`,
/// and SDK retries off, so every injected fault reaches the adapter whose own
/// retry loop is under test.
pub async fn sdk_config(endpoint_url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint_url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "churn-test",
        ))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

/// SDK clients for a local endpoint.
#[derive(Debug, Clone)]
pub struct TestClients {
    /// Path-style S3 client (see [`crate::services::s3_client`]).
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// EventBridge (moto keeps buses and accepts PutEvents).
    pub events: aws_sdk_eventbridge::Client,
    /// Secrets Manager (the notification settings' secret).
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl TestClients {
    /// Creates a bucket with a name unique to this test run and returns the name.
    ///
    /// # Panics
    /// When the local server refuses it: a broken harness, not a test outcome.
    pub async fn new_bucket(&self, prefix: &str) -> String {
        let bucket = unique_name(prefix);
        self.s3
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}"));
        bucket
    }
}

/// S3 and DynamoDB clients for a local endpoint.
pub async fn aws_clients(endpoint_url: &str) -> TestClients {
    let sdk = sdk_config(endpoint_url).await;
    TestClients {
        s3: crate::services::s3_client(&sdk),
        dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
        events: aws_sdk_eventbridge::Client::new(&sdk),
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
    }
}

/// A name unique within this process (tables, buckets, temp keys): lowercase,
/// valid as an S3 bucket and a DynamoDB table name.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
