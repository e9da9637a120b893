#!/usr/bin/env bash
# weftd control-plane benchmark (issue 7): builds release binaries, starts weftd on a fresh
# data dir, loads ~1,000 services / 5,000 endpoints, connects N simulated Envoy sidecars
# (N = 1,000 and 5,000) and times VirtualService changes and endpoint churn to the last ACK.
#
#   ./bench/controlplane.sh            full run (1,000 and 5,000 proxies, 4 VS changes, 2 join/leave pairs)
#   ./bench/controlplane.sh --quick    smoke run (200 and 1,000 proxies, fewer changes)
#   options: --unscoped   no Sidecar resources: every proxy sees all 1,000 services
#            --proxies "1000 5000"     override the proxy counts
#            --label TEXT              conditions line in the report (e.g. "under load")
#            --no-build                use the existing target/release binaries
#   env:     WEFT_BENCH_MAX_RSS_MB (default 12000) stops a run whose weftd grows past it
#
# Results: bench/results/<date>-controlplane.md and .json (see bench/controlplane.md).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
quick=0 scoped=1 build=1 proxies="" conditions="" failures=""
max_rss="${WEFT_BENCH_MAX_RSS_MB:-12000}"
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --unscoped) scoped=0 ;;
    --no-build) build=0 ;;
    --proxies) proxies="$2"; shift ;;
    --label) conditions="$2"; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  proxies="${proxies:-200 1000}" vs=3 churn=2
else
  proxies="${proxies:-1000 5000}" vs=4 churn=2
fi

target="${CARGO_TARGET_DIR:-$root/target}/release"
if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release -p weft-control -p weft-cli -p xds-load)
fi
for b in weftd weft xds-load; do
  [ -x "$target/$b" ] || { echo "missing $target/$b; run without --no-build" >&2; exit 1; }
done

# 5,000 streams over ~50 HTTP/2 connections need few descriptors, but weftd and the tool
# also keep API sockets and files open: ask for headroom.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work="$(mktemp -d "${TMPDIR:-/tmp}/weft-cp-bench.XXXXXX")"
weftd_pid=""
cleanup() {
  if [ -n "$weftd_pid" ] && kill -0 "$weftd_pid" 2>/dev/null; then
    kill "$weftd_pid"; wait "$weftd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port="$(free_port)" xds_port="$(free_port)"
server="http://127.0.0.1:$api_port"
data="$work/data"

start_weftd() {
  "$target/weftd" --data-dir "$data" --api-addr "127.0.0.1:$api_port" \
    --xds-addr "127.0.0.1:$xds_port" --log-level warn >"$work/weftd.out" 2>>"$work/weftd.log" &
  weftd_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$server/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "weftd did not start; log:" >&2; cat "$work/weftd.log" >&2; exit 1
}
stop_weftd() {
  kill "$weftd_pid"; wait "$weftd_pid" 2>/dev/null || true; weftd_pid=""
}

scope_flag=""; [ "$scoped" = 1 ] && scope_flag="--scoped"
start_weftd
echo "== loading the registry into a fresh weftd ($data)"
"$target/xds-load" setup --server "$server" --data-dir "$data" $scope_flag
stop_weftd

date="$(date -u +%Y-%m-%d)"
mkdir -p "$here/results"
jsons=()
for n in $proxies; do
  # A fresh weftd process per N (same data dir): its peak RSS belongs to this N alone.
  start_weftd
  echo "== $n proxies (weftd pid $weftd_pid)"
  out="$work/run-$n.json"
  if "$target/xds-load" run --label "$n proxies" --xds "127.0.0.1:$xds_port" --server "$server" \
    --data-dir "$data" --weft "$target/weft" --weftd-pid "$weftd_pid" --proxies "$n" \
    --vs-changes "$vs" --churn "$churn" $scope_flag --max-weftd-rss-mb "$max_rss" \
    --out "$out" 2> >(tee "$work/run-$n.log" >&2); then
    jsons+=("$out")
  else
    failures="${failures}${n} proxies: $(tail -n 1 "$work/run-$n.log"); "
  fi
  stop_weftd
done

suffix=""; [ "$quick" = 1 ] && suffix="-quick"; [ "$scoped" = 0 ] && suffix="$suffix-unscoped"
base="$here/results/$date-controlplane$suffix"
[ "${#jsons[@]}" -gt 0 ] || { echo "no run completed: $failures" >&2; exit 1; }
python3 - "$base.json" "${jsons[@]}" <<'EOF'
import json, sys
json.dump([json.load(open(p)) for p in sys.argv[2:]], open(sys.argv[1], "w"), indent=2)
EOF
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
cmdline="./bench/controlplane.sh"
[ "${#args[@]}" -gt 0 ] && cmdline="$cmdline$(printf ' %q' "${args[@]}")"
"$target/xds-load" report --command "$cmdline" \
  --conditions "${conditions:+$conditions; }$machine${failures:+; FAILED: $failures}" --out "$base.md" "${jsons[@]}"
echo "== results: $base.md"
cat "$base.md"
