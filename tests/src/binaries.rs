//! Finding the Lambda function binaries under test.
//!
//! `env!("CARGO_BIN_EXE_...")` only works inside the package that owns the
//! binary, so the tests build them: [`function_binary`] runs
//! `cargo build --workspace --bins` (same profile as the running test; Cargo
//! holds no lock while tests run) and returns `<target>/<profile>/<name>`.
//! It is the very command `scripts/test.sh` runs before the tests, so here it
//! is a no-op: building one package alone would resolve other dependency
//! features and rebuild the whole AWS SDK a second time. Setting
//! `CHURN_E2E_BIN_DIR` skips the build and takes the binaries from that
//! directory (e.g. release builds for benchmarks).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Serializes builds between tests of one process.
static BUILD: Mutex<()> = Mutex::new(());

/// The directory holding this test executable's profile outputs
/// (`target/debug` when running `target/debug/deps/<test>`).
pub fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let deps = exe.parent().context("test executable has no directory")?;
    // Tests run from `<profile>/deps`, examples from `<profile>/examples`.
    let dir = if deps
        .file_name()
        .is_some_and(|n| n == "deps" || n == "examples")
    {
        deps.parent().context("deps has no parent")?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

/// The workspace root (this crate is `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds (if needed) and locates the binary `name` of package `package`
/// (the package names it in error messages).
///
/// # Errors
/// When the build fails or the binary is not where Cargo puts it.
pub fn function_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("CHURN_E2E_BIN_DIR") {
        let p = PathBuf::from(dir).join(name);
        if !p.is_file() {
            bail!(
                "CHURN_E2E_BIN_DIR is set but {} does not exist",
                p.display()
            );
        }
        return Ok(p);
    }
    let dir = profile_dir()?;
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "--workspace", "--bins"]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    // The target directory of the running test, wherever it is.
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running cargo build --workspace --bins (for {package})"))?;
    if !status.success() {
        bail!("cargo build --workspace --bins (for {package}) failed ({status})");
    }
    let p = dir.join(name);
    if !p.is_file() {
        bail!("built {package} but {} is missing", p.display());
    }
    Ok(p)
}
