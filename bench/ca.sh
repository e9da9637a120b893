#!/usr/bin/env bash
# CA benchmark (issue 7): how many workload certificates weftd's CA signs per second and per
# CPU-second of weftd. N concurrent clients call Istio's CreateCertificate
# (istio.v1.auth.IstioCertificateService, as weft-proxy and istio-agent do) with valid
# bootstrap tokens and a CSR for their identity, back to back, against a release weftd
# pinned to one core; weftd's CPU comes from /proc/<pid>/stat.
#
#   ./bench/ca.sh                 clients 1, 64, 256, 1024; 10 s each
#   ./bench/ca.sh --quick         clients 1, 256 and 1024; 3 s each
#   options: --clients "1 8"      the client counts
#            --duration S         seconds per run
#            --identities K       distinct namespace/service-account identities (tokens) [16]
#            --label TEXT         conditions line in the report (e.g. "under load")
#            --no-build           use the existing target/release binaries
#            --no-pin             do not pin weftd and the load tool with taskset
#
# On a fresh machine with a Rust toolchain and Python 3 it builds weftd, weft and bench-load
# (bench/bench-load) and needs nothing else. Results: bench/results/<date>-ca[-quick].{md,json}.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
quick=0 build=1 pin=1 clients="" duration="" identities=16 label=""
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    --no-pin) pin=0 ;;
    --clients) clients="$2"; shift ;;
    --duration) duration="$2"; shift ;;
    --identities) identities="$2"; shift ;;
    --label) label="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  clients="${clients:-1 256 1024}" duration="${duration:-3}"
else
  clients="${clients:-1 64 256 1024}" duration="${duration:-10}"
fi

target="${CARGO_TARGET_DIR:-$root/target}/release"
if [ "$build" = 1 ]; then
  (cd "$root" && cargo build --release --bins -p weft-control -p weft-cli -p bench-load)
fi
for b in weftd weft bench-load; do
  [ -x "$target/$b" ] || { echo "missing $target/$b; run without --no-build" >&2; exit 1; }
done

# weftd on the last CPU, the load tool on the others: the figure is what one core signs.
weftd_cpu="" tool_cpus=""
ncpu="$(nproc)"
if [ "$pin" = 1 ] && [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
  weftd_cpu="$((ncpu - 1))" tool_cpus="0-$((ncpu - 2))"
fi
pin_weftd=() pin_tool=()
[ -n "$weftd_cpu" ] && pin_weftd=(taskset -c "$weftd_cpu") pin_tool=(taskset -c "$tool_cpus")

work="$(mktemp -d "${TMPDIR:-/tmp}/weft-ca-bench.XXXXXX")"
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
# taskset execs weftd: $! is weftd's pid, whose /proc/<pid>/stat the load tool reads.
${pin_weftd[@]+"${pin_weftd[@]}"} "$target/weftd" --data-dir "$work/data" --api-addr "127.0.0.1:$api_port" \
  --xds-addr "127.0.0.1:$xds_port" --log-level warn >"$work/weftd.out" 2>"$work/weftd.log" &
weftd_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$server/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$server/" >/dev/null 2>&1 || { echo "weftd did not start:" >&2; cat "$work/weftd.log" >&2; exit 1; }

echo "== $identities bootstrap tokens (weft token create)"
for i in $(seq 0 $((identities - 1))); do
  sa="$(printf 'bench-sa-%02d' "$i")"
  token="$(WEFT_SERVER="$server" WEFT_DATA_DIR="$work/data" "$target/weft" token create -n bench --service-account "$sa" 2>/dev/null)"
  echo "bench $sa $token" >>"$work/tokens"
done

runs=()
for n in $clients; do
  echo "== $n clients, ${duration}s"
  out="$work/run-$n.json"
  ${pin_tool[@]+"${pin_tool[@]}"} "$target/bench-load" csr --ca "127.0.0.1:$xds_port" --tokens "$work/tokens" \
    --clients "$n" --duration "$duration" --weftd-pid "$weftd_pid" >"$out"
  cat "$out"; echo
  runs+=("$out")
done
rss_kb="$(awk '/VmHWM/ {print $2}' "/proc/$weftd_pid/status")"

date="$(date -u +%Y-%m-%d)"
suffix=""; [ "$quick" = 1 ] && suffix="-quick"
base="$here/results/$date-ca$suffix"
mkdir -p "$here/results"
cmdline="./bench/ca.sh"
[ "${#args[@]}" -gt 0 ] && cmdline="$cmdline$(printf ' %q' "${args[@]}")"
machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
pinning="weftd on CPU ${weftd_cpu:-any}, bench-load on CPU ${tool_cpus:-any}"
python3 - "$base" "$cmdline" "${label:+$label; }$machine" "$pinning" "$rss_kb" "$identities" "${runs[@]}" <<'EOF'
import json, sys
base, cmd, conditions, pinning, rss_kb, identities, *paths = sys.argv[1:]
runs = [json.load(open(p)) for p in paths]
meta = {"command": cmd, "conditions": conditions, "pinning": pinning,
        "weftd_peak_rss_mib": int(rss_kb) / 1024, "identities": int(identities)}
json.dump({"meta": meta, "runs": runs}, open(base + ".json", "w"), indent=1)

def f(x, d=0):
    return "n/a" if x is None else f"{x:,.{d}f}"

lines = [
    "# CA benchmark: CreateCertificate against weftd",
    "",
    f"Command: `{cmd}`",
    "",
    f"Conditions: {conditions}. Pinning: {pinning}. {identities} identities (bootstrap tokens, "
    "namespace `bench`), ECDSA P-256 CSRs made before the clock starts, 24 h certificates, "
    "one HTTP/2 connection and one call in flight per client, closed loop.",
    "",
    "| clients | CSRs/s | weftd CPU s | CSRs per weftd CPU-second | p50 ms | p99 ms | failed | load tool CPU s |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for r in runs:
    failed = r["requests"] - r["ok"]
    lines.append(
        f"| {r['clients']} | {f(r['csrs_per_s'])} | {f(r['weftd_cpu_s'], 2)} | {f(r['csrs_per_weftd_cpu_s'])} | "
        f"{r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {failed}"
        f"{' ' + json.dumps(r['failures']) if failed else ''} | {f(r['load_tool_cpu_s'], 2)} |")
lines += ["", f"weftd peak RSS (VmHWM) over all runs: {meta['weftd_peak_rss_mib']:.0f} MiB.", ""]
open(base + ".md", "w").write("\n".join(lines))
print("\n".join(lines))
EOF
echo "== results: $base.md"
