#!/usr/bin/env bash
# Runs every check and test Weft has, on a fresh machine: installs what the tests need,
# then formatting, lints, the build and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
# End-to-end tests run the real binaries from target/debug, so build them first.
cargo build --workspace --bins --locked

step "test"
if [ ! -d ../shared/istio-testdata ]; then
  echo "error: ../shared/istio-testdata is missing: the corpus tests read Istio's test data from beside the checkout" >&2
  exit 1
fi
cargo test --workspace --locked --no-fail-fast
