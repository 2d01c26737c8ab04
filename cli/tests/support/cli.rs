//! The built `churn` binary as the CLI tests drive it: the command with no
//! store configuration from the environment, the shared `churn demo`
//! directory (and private copies for tests that write), `churn serve` on a
//! free loopback port, and one-shot HTTP/1.1 requests to it.
//!
//! Included by several test crates (`commands`, `web_browser`, `aws`),
//! each using a part of it.
#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

/// Customers of the shared demo.
pub const CUSTOMERS: usize = 3000;

/// `churn` run in `dir`, with no store configuration from the environment.
pub fn churn(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("churn").unwrap();
    cmd.current_dir(dir)
        .env_remove("CHURN_MODELS")
        .env_remove("CHURN_FLAGS")
        .env_remove("CHURN_SNAPSHOT")
        .env_remove("CHURN_BAND_HIGH_SHARE")
        .env_remove("CHURN_BAND_MEDIUM_SHARE")
        .env_remove("CHURN_BAND_HIGH_CUTOFF")
        .env_remove("CHURN_BAND_MEDIUM_CUTOFF")
        .env_remove("CHURN_TRAIN_MAX_ROWS")
        .env_remove("CHURN_SERVE_TOKEN")
        .env_remove("CHURN_SERVE_ALLOWED_HOSTS");
    cmd
}

/// Runs and returns (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// A directory where `churn demo --customers 3000` ran with the default
/// `--dir`, so every other command works there with no options. Shared by
/// the read-only tests; tests that write use a copy ([`demo_copy`]).
pub fn demo() -> &'static Path {
    static DEMO: OnceLock<tempfile::TempDir> = OnceLock::new();
    DEMO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (code, stdout, stderr) =
            run(churn(dir.path()).args(["demo", "--customers", &CUSTOMERS.to_string()]));
        assert_eq!(code, 0, "demo failed: {stderr}");
        assert!(stdout.contains("Top 20 of the high-risk list"), "{stdout}");
        dir
    })
    .path()
}

/// A private copy of the demo directory for tests that write.
pub fn demo_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&demo().join("churn-data"), &copy.path().join("churn-data"));
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The demo's snapshot.
pub fn data_csv() -> PathBuf {
    demo().join("churn-data/customers.csv")
}

/// A running `churn serve`, killed on drop.
pub struct Server {
    child: std::process::Child,
    pub addr: String,
}

impl Server {
    /// `churn serve --addr 127.0.0.1:0` in `dir` on the local stores.
    pub fn start(dir: &Path) -> Server {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("churn"));
        cmd.current_dir(dir)
            .env_remove("CHURN_MODELS")
            .env_remove("CHURN_FLAGS")
            .env_remove("CHURN_SERVE_TOKEN")
            .env_remove("CHURN_SERVE_ALLOWED_HOSTS")
            .args(["serve", "--addr", "127.0.0.1:0"]);
        Server::spawn(cmd)
    }

    /// Spawns `cmd` (a `churn serve` command line) and waits for its first
    /// line, `listening on http://ADDR`.
    pub fn spawn(mut cmd: std::process::Command) -> Server {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Server { child, addr }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The path and query of a URL of this server.
    pub fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(&format!("http://{}", self.addr))
            .unwrap_or_else(|| panic!("{url} is not on {}", self.addr))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; returns the status, the header block and the body.
pub fn http_raw(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status: u16 = response.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_string(), body.to_string())
}

/// One HTTP/1.1 request; returns the status and the JSON body.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = http_raw(addr, method, path, body);
    (status, json(&body))
}
