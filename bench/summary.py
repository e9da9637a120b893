#!/usr/bin/env python3
"""Prints the benchmark summary table of the top-level README from results files.

    python3 bench/summary.py                      # newest bench/results/*-dataplane*.json and *-ca*.json
    python3 bench/summary.py --dataplane bench/results/2026-11-22-dataplane-quick.json \\
                             --ca bench/results/2026-11-22-ca-quick.json

The table is Markdown, per proxy, weft-proxy against Envoy and nginx, figures as
bench/dataplane.py computes them (HTTP/1.1 at 1,000 rps over 16 connections unless the
row says otherwise); the CA figures follow as one line. Stdlib only.
"""

import argparse
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PLANES = ("weft", "envoy", "nginx")


def newest(pattern):
    paths = glob.glob(os.path.join(HERE, "results", pattern))
    return max(paths, key=os.path.getmtime) if paths else None


def ratio(a, b):
    return None if a is None or b is None or b <= 0 or a < 0 else a / b


def fmt(x, digits=2, unit=""):
    return "–" if x is None else f"{x:,.{digits}f}{unit}"


def fig(summary, scenario, variant, key, sub=None):
    f = summary.get(scenario, {}).get(variant, {})
    v = f.get(key)
    return v.get(sub) if sub and isinstance(v, dict) else v


def ms_per_1k(summary, scenario, variant):
    v = fig(summary, scenario, variant, "cpu_s_per_1k")
    return None if v is None else v * 1000.0


def diff(a, b):
    return None if a is None or b is None else a - b


def rows(data):
    s, mem = data["summary"], data.get("memory", {})
    out = []

    def row(label, values, digits, unit="", ratios=True):
        cells = [fmt(values.get(p), digits, unit) for p in PLANES]
        w, e, n = (values.get(p) for p in PLANES)
        rs = [fmt(ratio(w, e), 2), fmt(ratio(w, n), 2)] if ratios else ["", ""]
        out.append(f"| {label} | " + " | ".join(cells + rs) + " |")

    def by_plane(f):
        return {p: f(p) for p in PLANES}

    row("added p50 over direct", by_plane(lambda p: fig(s, "h1-1000", p, "added_ms", "p50")), 2, " ms")
    row("added p99 over direct", by_plane(lambda p: fig(s, "h1-1000", p, "added_ms", "p99")), 2, " ms")
    row("CPU per 1,000 requests", by_plane(lambda p: ms_per_1k(s, "h1-1000", p)), 0, " ms")

    def idle(p):
        sides = mem.get(p, {})
        return max((m.get("idle_mib") for m in sides.values() if m.get("idle_mib")), default=None)

    def idle_anon(p):
        sides = mem.get(p, {})
        best = max(sides.values(), key=lambda m: m.get("idle_mib") or 0, default={})
        return best.get("idle_anon_mib")

    cells = {p: idle(p) for p in PLANES}
    text = [f"{fmt(cells[p], 1)} MiB ({fmt(idle_anon(p), 1)})" if cells[p] else "–" for p in PLANES]
    w, e, n = (cells[p] for p in PLANES)
    out.append("| RSS idle (heap part) | " + " | ".join(text + [fmt(ratio(w, e)), fmt(ratio(w, n))]) + " |")
    row("RSS peak at 1,000 rps", by_plane(lambda p: fig(s, "h1-1000", p, "rss_peak_mib")), 1, " MiB")
    row("max rps through the pair (closed loop, 64 conns)", by_plane(lambda p: fig(s, "h1-max", p, "rps")), 0)

    # nginx gets no route table (it is configured by hand, not by weftd).
    routes = {p: [m.get("idle_routes_mib") for m in mem.get(p, {}).values() if m.get("idle_routes_mib")]
              if p != "nginx" else [] for p in PLANES}
    if any(routes.values()):
        text = [f"{min(v):.0f}–{max(v):.0f} MiB" if v else "–" for v in routes.values()]
        w, e = (max(routes[p]) if routes[p] else None for p in ("weft", "envoy"))
        out.append("| RSS with a 1,000-service route table | " + " | ".join(text + [fmt(ratio(w, e)), ""]) + " |")
    row("h2c 1,000 rps: CPU per 1,000 requests", by_plane(lambda p: ms_per_1k(s, "h2-1000", p)), 0, " ms")

    if "grpc-1000" in s:
        cpu = by_plane(lambda p: ms_per_1k(s, "grpc-1000", p))
        failed = by_plane(lambda p: fig(s, "grpc-1000", p, "failed_requests"))
        text = [("–" if cpu[p] is None else f"{cpu[p]:.0f} ms ({failed[p]} failed)") for p in PLANES]
        w, e, n = (cpu[p] for p in PLANES)
        checked = ("grpc-status checked" if "grpc_check" in data["meta"]
                   else "oha: grpc-status not read")
        out.append(f"| gRPC unary 1,000 rps: CPU per 1,000 calls (failed calls, {checked}) | "
                   + " | ".join(text + [fmt(ratio(w, e)), fmt(ratio(w, n))]) + " |")

    if any(f"{p}-mtls" in s.get("h1-1000", {}) for p in PLANES):
        row("mTLS: added p99 over direct", by_plane(lambda p: fig(s, "h1-1000", f"{p}-mtls", "added_ms", "p99")),
            2, " ms")
        row("mTLS: CPU per 1,000 requests", by_plane(lambda p: ms_per_1k(s, "h1-1000", f"{p}-mtls")), 0, " ms")
        row("mTLS cost per 1,000 requests (mTLS − plaintext CPU)",
            by_plane(lambda p: diff(ms_per_1k(s, "h1-1000", f"{p}-mtls"), ms_per_1k(s, "h1-1000", p))), 0, " ms")
        row("mTLS: max rps through the pair", by_plane(lambda p: fig(s, "h1-max", f"{p}-mtls", "rps")), 0)
        nc = "h1-200-newconn"
        if nc in s:
            row("mTLS handshake: CPU per 1,000 new connections (mTLS − plaintext, new connection per request)",
                by_plane(lambda p: diff(ms_per_1k(s, nc, f"{p}-mtls"), ms_per_1k(s, nc, p))), 0, " ms")
    return out


def ca_line(ca):
    runs = [r for r in ca["runs"] if r.get("ok")]
    if not runs:
        return None
    best = max(runs, key=lambda r: r["csrs_per_s"])
    per_cpu = [r["csrs_per_weftd_cpu_s"] for r in runs if r.get("csrs_per_weftd_cpu_s")]
    failed = sum(r["requests"] - r["ok"] for r in runs)
    return (f"weftd's CA (`./bench/ca.sh`, {ca['meta']['pinning']}): up to {best['csrs_per_s']:,.0f} "
            f"CreateCertificate calls/s ({best['clients']} clients), "
            f"{max(per_cpu):,.0f} CSRs per weftd CPU-second" if per_cpu else "") + \
        f", {failed} failed."


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataplane", help="a bench/results/*-dataplane*.json [newest]")
    p.add_argument("--ca", help="a bench/results/*-ca*.json [newest, if any]")
    a = p.parse_args(argv)
    dp = a.dataplane or newest("*-dataplane*.json")
    if not dp:
        p.error("no data-plane results: run ./bench/dataplane.sh or name a file with --dataplane")
    with open(dp) as f:
        data = json.load(f)
    meta = data["meta"]
    print(f"<!-- from {os.path.relpath(dp, os.path.dirname(HERE))}: {meta.get('command')}; "
          f"load average {meta.get('load_before')} / {meta.get('load_after')} -->")
    print("| per proxy | weft-proxy | Envoy 1.40 | nginx | weft/Envoy | weft/nginx |")
    print("|---|---|---|---|---|---|")
    for line in rows(data):
        print(line)
    ca = a.ca or newest("*-ca*.json")
    if ca:
        with open(ca) as f:
            line = ca_line(json.load(f))
        if line:
            print()
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
