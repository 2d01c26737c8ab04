//! Running a function binary as the Lambda service would, and the events
//! it receives.

use crate::runtime_api::RuntimeApi;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A function process; killed on drop. Its stdout (log lines and the
/// metrics' EMF documents) is collected line by line.
pub struct FunctionProcess {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl FunctionProcess {
    /// The process, no longer killed on drop (the caller manages it).
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("the child is only taken here")
    }

    /// The lines the function wrote to stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The CloudWatch EMF documents (stdout lines that are JSON objects with
    /// an `_aws` member) once there are at least `n`, waiting up to `timeout`:
    /// a line written just before the invocation's answer may still be in the pipe.
    ///
    /// # Errors
    /// When fewer than `n` arrived in time.
    pub async fn emf_documents(&self, n: usize, timeout: Duration) -> anyhow::Result<Vec<Value>> {
        let until = Instant::now() + timeout;
        loop {
            let docs: Vec<Value> = self
                .stdout_lines()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v.get("_aws").is_some())
                .collect();
            if docs.len() >= n || Instant::now() >= until {
                anyhow::ensure!(
                    docs.len() >= n,
                    "{} EMF documents on stdout, expected {n}: {:?}",
                    docs.len(),
                    self.stdout_lines()
                );
                return Ok(docs);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `binary` with the Lambda environment pointing at `api`, plus
/// `env`, collecting its stdout (also echoed to stderr, prefixed with
/// `name`, when `CHURN_E2E_SHOW_LOGS` is set).
///
/// # Errors
/// When the process cannot be spawned.
pub fn spawn_function(
    binary: &Path,
    name: &str,
    api: &RuntimeApi,
    env: &[(&str, String)],
) -> anyhow::Result<FunctionProcess> {
    let mut cmd = lambda_command(binary, name, api, env);
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = Arc::new(Mutex::new(Vec::new()));
    if let Some(pipe) = child.stdout.take() {
        let lines = Arc::clone(&stdout);
        let echo = std::env::var_os("CHURN_E2E_SHOW_LOGS").is_some();
        let name = name.to_string();
        // Ends at EOF, when the process exits.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("[{name}] {line}");
                }
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    Ok(FunctionProcess {
        child: Some(child),
        stdout,
    })
}

/// The command running `program` (the function binary, or a wrapper such
/// as `/usr/bin/time` whose arguments the caller adds) with a clean Lambda
/// environment pointing at `api`, plus `env`.
pub fn lambda_command(
    program: &Path,
    name: &str,
    api: &RuntimeApi,
    env: &[(&str, String)],
) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "e2e")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if std::env::var_os("CHURN_E2E_SHOW_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Environment of a function process using the local server at `endpoint`:
/// dummy credentials, a region, and no shared config files or IMDS lookups.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_CONFIG_FILE", "/dev/null".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
    ]
}

/// A Function URL invocation (API Gateway HTTP API payload 2.0).
pub fn function_url_event(method: &str, path: &str, query: &str, body: Option<&str>) -> Value {
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "content-type": "application/json",
            "host": "abcdefgh.lambda-url.us-east-1.on.aws",
            "user-agent": "churn-e2e"
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abcdefgh",
            "domainName": "abcdefgh.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefgh",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "churn-e2e"
            },
            "requestId": "e2e-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jun/2024:03:00:00 +0000",
            "timeEpoch": 1717210800000u64
        },
        "isBase64Encoded": false
    });
    if let Some(b) = body {
        event["body"] = Value::String(b.to_string());
    }
    event
}

/// An EventBridge scheduled event.
pub fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2024-06-01T03:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/churn-rescore"],
        "detail": {}
    })
}

/// Status and JSON body of a Function URL response document.
///
/// # Errors
/// When the document has no status code or its body is not JSON.
pub fn http_response(doc: &Value) -> anyhow::Result<(u16, Value)> {
    let status = doc["statusCode"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no statusCode in {doc}"))? as u16;
    let body = doc["body"].as_str().unwrap_or("");
    let body = if doc["isBase64Encoded"].as_bool() == Some(true) {
        anyhow::bail!("unexpected base64 body")
    } else {
        serde_json::from_str(body)?
    };
    Ok((status, body))
}
