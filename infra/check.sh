#!/usr/bin/env bash
# Checks the deployable definition of churn-risk, as CI does:
#   1. a Python venv with the pinned tools of infra/requirements.txt
#      (cfn-lint, checkov, cargo-lambda, ziglang, pytest), created or updated
#      only when missing or when requirements.txt changed;
#   2. cfn-lint on infra/template.yaml (fails on errors and warnings);
#   3. checkov on the template and on its SAM expansion (fails on any failed
#      check; skips live in the template, each with a written justification,
#      which the tests enforce);
#   4. pytest infra/tests: the template against the Rust sources (environment
#      variables read vs set, IAM actions granted vs SDK calls made);
#   5. every function of the template built for arm64 as a deployable zip with
#      cargo-lambda (zig as the cross linker), each zip's size printed, failing
#      over 10 MiB.
#
# Usage: infra/check.sh [--no-build]
# Environment:
#   INFRA_VENV        venv to use (default infra/.venv)
#   CARGO_TARGET_DIR  cargo target dir (default <repo>/target); the zips land in
#                     $CARGO_TARGET_DIR/lambda/<binary>/bootstrap.zip
#   MAX_ZIP_BYTES     size limit per zip (default 10 MiB)
set -euo pipefail

INFRA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$INFRA")"
VENV="${INFRA_VENV:-$INFRA/.venv}"
MAX_ZIP_BYTES="${MAX_ZIP_BYTES:-$((10 * 1024 * 1024))}"
TARGET_TRIPLE=aarch64-unknown-linux-gnu
BUILD=1
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done

START=$SECONDS
step() { printf '\n==> [infra %4ss] %s\n' "$((SECONDS - START))" "$*"; }

# --------------------------------------------------------------------------
step "Python tools in $VENV"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.infra-requirements.sha256"
WANT="$(sha256sum "$INFRA/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$INFRA/requirements.txt"
    echo "$WANT" > "$STAMP"
else
    echo "up to date (requirements.txt unchanged)"
fi
export PATH="$VENV/bin:$PATH"

cd "$INFRA"

# --------------------------------------------------------------------------
step "cfn-lint $(cfn-lint --version 2>&1 | awk '{print $2}') template.yaml"
cfn-lint --non-zero-exit-code warning -- template.yaml
echo "cfn-lint: no errors, no warnings"

# --------------------------------------------------------------------------
step "checkov $(checkov --version 2>/dev/null) template.yaml"
# --skip-download: no calls to the vendor's platform (the network is closed
# in CI, and the result must not depend on it).
# --quiet: the summary line and failed checks only.
checkov --file template.yaml --framework cloudformation --skip-download \
    --compact --quiet --output cli

step "checkov on the template as SAM expands it (generated Lambda functions, URL, invoke configs)"
mkdir -p "$INFRA/.build"
python "$INFRA/tests/sam_translate.py" template.yaml > "$INFRA/.build/template.translated.json"
checkov --file "$INFRA/.build/template.translated.json" --framework cloudformation \
    --skip-download --compact --quiet --output cli

# --------------------------------------------------------------------------
step "pytest infra/tests (template against the Rust sources)"
python -m pytest -q -p no:cacheprovider tests

if [ "$BUILD" = 0 ]; then
    step "done (--no-build: arm64 zips not built) in $((SECONDS - START)) s"
    exit 0
fi

# --------------------------------------------------------------------------
step "Rust target $TARGET_TRIPLE"
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx "$TARGET_TRIPLE"; then
        rustup target add "$TARGET_TRIPLE"
    else
        echo "installed"
    fi
else
    echo "rustup not found: assuming the toolchain already has $TARGET_TRIPLE" >&2
fi

# The functions to build are the ones the template deploys.
mapfile -t BINARIES < <(sed -n 's/^ *Binary: *\([A-Za-z0-9_-]*\).*$/\1/p' template.yaml)
if [ "${#BINARIES[@]}" -eq 0 ]; then
    echo "no 'Binary:' build property found in template.yaml" >&2
    exit 1
fi
BIN_ARGS=()
for b in "${BINARIES[@]}"; do BIN_ARGS+=(--bin "$b"); done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
LAMBDA_DIR="$CARGO_TARGET_DIR/lambda"

step "cargo lambda build --release --arm64 --output-format zip ${BIN_ARGS[*]}"
cd "$REPO"
for b in "${BINARIES[@]}"; do rm -f "$LAMBDA_DIR/$b/bootstrap.zip"; done  # no stale zip passes
BUILD_START=$SECONDS
cargo lambda build --release --arm64 --output-format zip --locked \
    --lambda-dir "$LAMBDA_DIR" "${BIN_ARGS[@]}"
echo "build took $((SECONDS - BUILD_START)) s"

# --------------------------------------------------------------------------
step "Deployable zips (limit $MAX_ZIP_BYTES bytes each)"
fail=0
printf '%-16s %12s %10s  %s\n' function bytes MiB zip
for b in "${BINARIES[@]}"; do
    zip="$LAMBDA_DIR/$b/bootstrap.zip"
    if [ ! -f "$zip" ]; then
        echo "missing: $zip" >&2
        fail=1
        continue
    fi
    size=$(stat -c %s "$zip")
    verdict=""
    if [ "$size" -gt "$MAX_ZIP_BYTES" ]; then verdict="  OVER THE LIMIT"; fail=1; fi
    printf '%-16s %12d %10s  %s%s\n' "$b" "$size" \
        "$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }')" "$zip" "$verdict"
    # A deployable zip holds one executable named bootstrap for arm64.
    if ! python - "$zip" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
if names != ["bootstrap"]:
    sys.exit(f"{sys.argv[1]}: expected exactly one entry 'bootstrap', got {names}")
head = z.read("bootstrap")[:20]
if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != 183:
    sys.exit(f"{sys.argv[1]}: bootstrap is not an aarch64 ELF executable")
mode = (z.getinfo("bootstrap").external_attr >> 16) & 0o777
if not mode & 0o100:
    sys.exit(f"{sys.argv[1]}: bootstrap is not executable (mode {oct(mode)})")
EOF
    then
        fail=1
    fi
done
if [ "$fail" != 0 ]; then
    echo "infra check FAILED: zip missing, malformed or over the limit" >&2
    exit 1
fi

step "infra check passed in $((SECONDS - START)) s"
