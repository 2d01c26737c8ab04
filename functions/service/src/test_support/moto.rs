//! Starts `moto_server` on a free loopback port and stops it on drop.

use super::HarnessError;
use super::TestClients;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto_server (S3, DynamoDB, ... on one port), killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    addr: SocketAddr,
}

/// The binary: `MOTO_SERVER_BIN`, else `<repo>/.venv/bin/moto_server`, else PATH.
pub fn moto_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MOTO_SERVER_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

impl MotoServer {
    /// Starts a server and waits (up to 30 s) until it accepts connections.
    ///
    /// # Errors
    /// [`HarnessError::Moto`] when the binary is missing or never becomes ready.
    pub async fn start() -> Result<Self, HarnessError> {
        let binary = moto_binary();
        let err = |message: String| HarnessError::Moto {
            binary: binary.display().to_string(),
            message,
        };
        let mut last = String::new();
        // The port is free when probed but could be taken before moto binds
        // it; try a few ports.
        for _ in 0..3 {
            let port = free_port().map_err(|e| err(format!("no free port: {e}")))?;
            let mut child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| err(format!("cannot start: {e}")))?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let started = Instant::now();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("exited with {status} before accepting connections");
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(MotoServer { child, addr });
                }
                if started.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err("not ready within 30 s".into()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Err(err(last))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// S3 and DynamoDB clients pointed at this server.
    pub async fn clients(&self) -> TestClients {
        super::aws_clients(&self.endpoint_url()).await
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
