#!/usr/bin/env python3
"""Data-plane benchmark of issue 7: weft-proxy, Envoy and nginx side by side, one run.

Run it through ./bench/dataplane.sh, which builds and installs what this needs. Stdlib only.

One round runs every scenario on every variant (direct, envoy, weft, nginx, and with mTLS
between the two proxies envoy-mtls, weft-mtls, nginx-mtls), interleaved (the variant order
rotates per scenario and round, so none always runs first after a pause); rounds repeat
the whole set. Then two phases change the config for all variants: a new connection per
request between the proxies (handshake cost), and 1,000 more services in every route
table. Results go to bench/results/<date>-dataplane.{md,json}.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import load, mesh, mtls, procs, report  # noqa: E402

PLAIN = ("direct", "envoy", "weft", "nginx")
MTLS = ("envoy-mtls", "weft-mtls", "nginx-mtls")
MAIN = "h1-1000"
MAX = "h1-max"
NEWCONN = "h1-200-newconn"


def scenarios(quick, duration):
    d = duration or (3 if quick else 8)
    return [
        load.Scenario("h1-100", "http", 100, 16, d, label="HTTP/1.1, 100 rps, 16 connections"),
        load.Scenario(MAIN, "http", 1000, 16, d, label="HTTP/1.1, 1,000 rps, 16 connections (Istio's setup)"),
        load.Scenario("h1-5000", "http", 5000, 16, d, label="HTTP/1.1, 5,000 rps, 16 connections"),
        load.Scenario("h2-1000", "http2", 1000, 4, d, streams=4,
                      label="HTTP/2 (h2c), 1,000 rps, 4 connections x 4 streams"),
        load.Scenario("grpc-1000", "grpc", 1000, 4, d, streams=4,
                      label="gRPC unary (h2c), 1,000 rps, 4 connections x 4 streams"),
        load.Scenario(MAX, "http", None, 64, d,
                      label="HTTP/1.1, max throughput (closed loop), 64 connections"),
    ]


def cpu_sets(args):
    """(load generator CPUs, everything else) for taskset, or (None, None)."""
    if args.no_pin or not shutil.which("taskset"):
        return None, None
    n = os.cpu_count() or 1
    if n < 2:
        return None, None
    return args.loadgen_cpus or "0", args.proxy_cpus or f"1-{n - 1}"


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=isinstance(cmd, str),
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def machine_facts(args):
    model = "n/a"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "n/a"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) // 1024} MiB"
    except (OSError, ValueError):
        pass
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rev = sh(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"])
    nginx_v = subprocess.run([os.environ.get("NGINX", "nginx"), "-v"], capture_output=True, text=True).stderr.strip()
    return {
        "machine": model,
        "cpus": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "weft": f"{sh([os.path.join(args.bin_dir, 'weft-proxy'), '--version'])} (git {rev}{' + local changes' if dirty else ''}, release build, weft-proxy from bin dir {args.bin_dir})",
        "envoy": sh([args.envoy, "--version"]).replace("\n", " ").strip(),
        "nginx": nginx_v,
        "oha": sh([args.oha, "--version"]),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="weft-bench-")
        os.chmod(self.work, 0o755)  # nginx workers run as nobody when started by root
        self.fleet = procs.Fleet(self.work)
        self.loadgen_cpus, self.proxy_cpus = cpu_sets(args)
        self.runs = []
        self.memory = {}
        self.route_table = None
        self.variants = PLAIN if args.no_mtls else PLAIN + MTLS
        self.proxies = [v for v in self.variants if v != "direct"]
        self.tools = load.Tools(args.oha, args.grpc_load)

    def log(self, msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def start(self):
        a = self.args
        self.log(f"work dir {self.work}; load generator on CPUs {self.loadgen_cpus}, "
                 f"proxies and upstream on {self.proxy_cpus}")
        self.upstream = mesh.start_upstream(self.fleet, self.work, self.proxy_cpus, a.concurrency)
        self.weftd = mesh.Weftd(self.fleet, self.work, a.bin_dir, self.proxy_cpus)
        binaries = {"envoy": a.envoy, "weft": os.path.join(a.bin_dir, "weft-proxy")}
        identities = None
        if not a.no_mtls:
            # Mesh-wide STRICT before any sidecar starts; the plaintext pairs' namespace stays
            # PERMISSIVE (harness/mtls.py).
            self.weftd.apply(mtls.policies(), self.work, "peer-authentication")
            identities = {"namespace": mtls.NAMESPACE, "labels": mtls.TLS_LABEL, "tokens": {
                sa: mtls.token_file(self.weftd, self.work, mtls.NAMESPACE, sa)
                for sa in ("bench-server", "bench-client")}}
        self.pairs = {}
        for v in self.proxies:
            plane = v.split("-")[0]
            if plane == "nginx":
                continue
            self.pairs[v] = mesh.SidecarPair(self.fleet, self.work, self.weftd, v, binaries[plane],
                                             self.upstream, a.concurrency, self.proxy_cpus,
                                             identities if v.endswith("-mtls") else None)
        nc, ns, nports = mesh.start_nginx_pair(self.fleet, self.work, self.upstream,
                                               self.proxy_cpus, a.concurrency)
        # Where each variant's load goes: (host in the URL, port per protocol, processes).
        self.targets = {
            "direct": ("bench-direct", dict(self.upstream), {}),
            "nginx": ("bench-nginx", nports, {"client": nc, "server": ns}),
        }
        if "nginx-mtls" in self.variants:
            mc, ms, mports = mtls.start_nginx_mtls_pair(self.fleet, self.work, self.upstream,
                                                        self.proxy_cpus, a.concurrency)
            self.targets["nginx-mtls"] = ("bench-nginx-mtls", mports, {"client": mc, "server": ms})
        for v, pair in self.pairs.items():
            self.targets[v] = (pair.host, {k: pair.outbound for k in mesh.SERVICE_PORTS},
                               pair.procs())
        self.grpc_body = os.path.join(self.work, "grpc-request.bin")
        with open(self.grpc_body, "wb") as f:
            f.write(mesh.grpc_frame(b"z" * 64))

        for v, pair in self.pairs.items():
            t0 = time.monotonic()
            mesh.wait_routable(pair.outbound, f"{pair.host}:{mesh.SERVICE_PORTS['http']}", 60,
                               [pair.client, pair.server, self.weftd.proc])
            self.log(f"{v}: pair routes the bench service ({time.monotonic() - t0:.1f}s)")
            # The mTLS pairs must really be mTLS: their server sidecar refuses plaintext
            # (STRICT) while the client sidecar gets through, and the plaintext pairs' do not.
            plain = mesh.serves_plaintext(pair.inbound["http"])
            if plain == v.endswith("-mtls"):
                raise RuntimeError(f"{v}: the server sidecar {'serves' if plain else 'refuses'} "
                                   f"plaintext on its inbound port {pair.inbound['http']}")
        self.check_h2()

    def probe(self, variant, protocol):
        host, ports, _ = self.targets[variant]
        seen = load.probe(self.tools, protocol, host, mesh.SERVICE_PORTS[protocol],
                          ports[protocol], self.grpc_body)
        return set(seen) == {"200"}, seen

    def check_h2(self):
        """HTTP/2 and gRPC through the sidecar pairs. Istio gives the inbound cluster of an
        HTTP2/GRPC port HTTP/2 towards the app; when weftd does not (the sidecars then send
        HTTP/1.1 to the upstream's h2c port and fail, Envoy included), the server sidecars
        are restarted with the HTTP/2 port pointing at the upstream's HTTP/1.1 port, the
        report says so, and gRPC through the sidecars is not measured."""
        self.skip = set()
        self.inbound_h2 = True
        results = {v: self.probe(v, "http2") for v in self.pairs}
        if not any(ok for ok, _ in results.values()):
            self.inbound_h2 = False
            self.log(f"h2c through both sidecar pairs fails ({results}); weftd's inbound "
                     "cluster speaks HTTP/1.1 to the app: last hop falls back to HTTP/1.1, "
                     "gRPC through the sidecars is not measured")
            fallback = {k: self.upstream["http"] for k in mesh.SERVICE_PORTS}
            for v, pair in self.pairs.items():
                pair.restart_server(fallback)
                self.targets[v] = (self.targets[v][0], self.targets[v][1], pair.procs())
                self.skip.add(("grpc", v))
            time.sleep(1)
            for v, pair in self.pairs.items():
                mesh.wait_routable(pair.outbound, f"{pair.host}:{mesh.SERVICE_PORTS['http']}", 60,
                                   [pair.client, pair.server])
            results = {v: self.probe(v, "http2") for v in self.pairs}
        for proto in ("http2", "grpc"):
            for v in self.pairs:
                if (proto, v) in self.skip:
                    continue
                ok, seen = results[v] if proto == "http2" else self.probe(v, proto)
                if not ok:
                    self.log(f"{v}: {proto} through the pair fails ({seen}); not measured")
                    self.skip.add((proto, v))

    def measure_idle(self, key):
        for v in self.proxies:
            for side, p in self.targets[v][2].items():
                m = procs.memory_kib(p.pid)
                mem = self.memory.setdefault(v, {}).setdefault(side, {})
                mem[key] = m["rss"] / 1024.0
                mem[key.replace("_mib", "_anon_mib")] = m["anon"] / 1024.0

    def one(self, sc, variant, rnd, tag=None):
        host, ports, ps = self.targets[variant]
        # nginx pairs have a port without upstream keep-alive for the new-connection runs.
        key = "http-newconn" if (tag or sc.name) == NEWCONN and "http-newconn" in ports else sc.protocol
        cmd = load.argv(self.tools, sc, host, mesh.SERVICE_PORTS[sc.protocol], ports[key],
                        self.loadgen_cpus, self.args.loadgen_threads, self.grpc_body)
        for p in ps.values():
            p.check()
            procs.reset_peak(p.pid)
        pair = self.pairs.get(variant)
        service_port = mesh.SERVICE_PORTS[sc.protocol]
        cx_before = pair.upstream_connections(service_port) if pair else None
        before = {side: procs.cpu_seconds(p.pid) for side, p in ps.items()}
        result = load.run(cmd, timeout=sc.duration + 60)
        stats = {}
        for side, p in ps.items():
            m = procs.memory_kib(p.pid)
            stats[side] = {"cpu_s": procs.cpu_seconds(p.pid) - before[side],
                           "rss_kib": m["rss"], "hwm_kib": m["hwm"], "anon_kib": m["anon"],
                           "file_kib": m["file"], "threads": procs.threads(p.pid)}
        run = {"scenario": tag or sc.name, "variant": variant, "round": rnd, "load": result,
               "procs": stats, "command": " ".join(shlex.quote(c) for c in cmd)}
        cx_after = pair.upstream_connections(service_port) if pair else None
        if cx_before is not None and cx_after is not None:
            # How many connections the client sidecar opened to the server sidecar.
            run["upstream_connections"] = cx_after - cx_before
        self.runs.append(run)
        lat = result["latency_ms"]
        cpu = sum(s["cpu_s"] for s in stats.values())
        self.log(f"  {tag or sc.name:<14} {variant:<6} rps {result['rps']:8.0f}  p50 {lat['p50']:.3f}  "
                 f"p99 {lat['p99']:.3f}  p99.9 {lat['p99.9']:.3f} ms  pair CPU {cpu:.2f}s  "
                 f"failed {result['requests'] - result['ok']}")
        if result["ok"] == 0:
            raise RuntimeError(f"{variant}: no request succeeded in {sc.name}: {result['errors']} "
                               f"{result['statuses']}")
        time.sleep(self.args.pause)
        return run

    def warm_up(self):
        self.log("warm-up (not recorded)")
        for proto in mesh.SERVICE_PORTS:
            sc = load.Scenario("warm-up", proto, 500, 4, 1, streams=2)
            for v in self.variants:
                if (proto, v) in self.skip:
                    continue
                host, ports, _ = self.targets[v]
                cmd = load.argv(self.tools, sc, host, mesh.SERVICE_PORTS[proto], ports[proto],
                                self.loadgen_cpus, self.args.loadgen_threads, self.grpc_body)
                r = load.run(cmd, timeout=60)
                if r["ok"] == 0:
                    raise RuntimeError(f"{v} answers nothing over {proto}: {r['errors']} {r['statuses']}")

    def rounds(self, scs):
        for rnd in range(self.args.rounds):
            self.log(f"round {rnd + 1}/{self.args.rounds}")
            for i, sc in enumerate(scs):
                for v in self.rotation(rnd + i):
                    if (sc.protocol, v) not in self.skip:
                        self.one(sc, v, rnd)

    def rotation(self, k):
        k %= len(self.variants)
        return self.variants[k:] + self.variants[:k]

    def new_connections(self, scs):
        """HTTP/1.1 at 200 rps with a new connection between the two proxies for every
        request (DestinationRule `maxRequestsPerConnection: 1` for the sidecar pairs, an
        upstream without keep-alive for nginx): with mTLS, one handshake per request. The
        load generator keeps its connections. The rules are deleted afterwards."""
        sc = next(s for s in scs if s.name == MAIN)
        tagged = load.Scenario(NEWCONN, "http", 200, sc.connections, sc.duration,
                               label="HTTP/1.1, 200 rps, 16 connections, a new connection between "
                                     "the two proxies for every request (with mTLS: a handshake each)")
        rules = mtls.one_conn_per_request([(p.namespace, p.fqdn) for p in self.pairs.values()])
        self.log(f"new connection per request: applying {len(rules)} DestinationRules")
        path = self.weftd.apply(rules, self.work, "newconn")
        for v, pair in self.pairs.items():
            deadline = time.monotonic() + 60
            while True:
                port = mesh.SERVICE_PORTS["http"]
                before = pair.upstream_connections(port)
                for _ in range(5):
                    mesh.get_through(pair.outbound, f"{pair.host}:{port}")
                after = pair.upstream_connections(port)
                if before is not None and after is not None and after - before >= 5:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{v}: still reusing upstream connections 60 s after "
                                       f"maxRequestsPerConnection: 1 ({before} -> {after})")
                time.sleep(0.5)
        for rnd in range(self.args.rounds):
            for v in self.rotation(rnd):
                self.one(tagged, v, rnd)
        self.weftd.weft("delete", "-f", path)
        time.sleep(2)
        return tagged

    def big_route_table(self, scs):
        n = self.args.route_table
        self.log(f"applying {n} services (ServiceEntry + VirtualService each)")
        t0 = time.monotonic()
        self.weftd.apply(mesh.route_table(n, self.upstream["http"]), self.work, "route-table")
        applied = time.monotonic() - t0
        # The full name: the mTLS pairs' client sidecars are in another namespace, where
        # the short name does not resolve.
        last = f"svc-{n - 1:04d}.default.svc.cluster.local:9080"
        # Both client sidecars are polled in turn, so each one's time is when it first
        # routed the last service (to within one poll of the other).
        converge = {}
        while len(converge) < len(self.pairs):
            if time.monotonic() - t0 > 300:
                raise RuntimeError(f"{last} not routed after 300 s by {set(self.pairs) - set(converge)}")
            for v, pair in self.pairs.items():
                pair.client.check()
                if v not in converge and mesh.get_through(pair.outbound, last) == (200, mesh.BODY_BYTES):
                    converge[v] = time.monotonic() - t0
            time.sleep(0.1)
        time.sleep(3)  # server sidecars get the same push; let every proxy settle
        self.measure_idle("idle_routes_mib")
        self.route_table = {"services": n, "apply_s": applied, "converge_s": max(converge.values()),
                            "converge_s_by_variant": converge}
        sc = next(s for s in scs if s.name == MAIN)
        tagged = load.Scenario(f"{MAIN}-routes{n}", sc.protocol, sc.rate, sc.connections, sc.duration,
                               label=f"{sc.label}, with {n} more services in every route table")
        for rnd in range(self.args.rounds):
            for v in self.rotation(rnd):
                self.one(tagged, v, rnd)
        return tagged


def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one round of 3 s runs (~3 min)")
    p.add_argument("--rounds", type=int, help="rounds of every scenario [3; --quick 1]")
    p.add_argument("--duration", type=int, help="seconds per run [8; --quick 3]")
    p.add_argument("--concurrency", type=int, default=1,
                   help="worker threads/processes of every proxy and the upstream [1]")
    p.add_argument("--route-table", type=int, default=1000, help="services in the route-table phase; 0 skips it")
    p.add_argument("--bin-dir", default=os.path.join(os.path.dirname(here), "target", "release"))
    p.add_argument("--envoy", help="the Envoy binary (required unless --report-from)")
    p.add_argument("--oha", help="the oha binary (required unless --report-from)")
    p.add_argument("--grpc-load", help="the bench-load binary, for gRPC (required unless --report-from)")
    p.add_argument("--no-mtls", action="store_true", help="skip the mTLS pairs (envoy-mtls, weft-mtls, nginx-mtls)")
    p.add_argument("--no-newconn", action="store_true",
                   help="skip the new-connection-per-request runs (handshake cost)")
    p.add_argument("--report-from", metavar="JSON",
                   help="only write the Markdown report again from a results JSON file")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes with taskset")
    p.add_argument("--loadgen-cpus", help="taskset CPU list of the load generator [0]")
    p.add_argument("--proxy-cpus", help="taskset CPU list of proxies, upstream and weftd [1-(n-1)]")
    p.add_argument("--loadgen-threads", type=int, default=1, help="oha's worker threads [1]")
    p.add_argument("--pause", type=float, default=0.5, help="seconds between runs")
    p.add_argument("--note", help="a line printed at the top of the report (e.g. 'taken under load')")
    p.add_argument("--out-dir", default=os.path.join(here, "results"))
    p.add_argument("--command", help="the command line to quote in the report")
    args = p.parse_args(argv)
    if not args.report_from and not (args.envoy and args.oha and args.grpc_load):
        p.error("--envoy, --oha and --grpc-load are required")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    return args


def noise_text(summary, rounds, load_before, load_after):
    if rounds < 2:
        return (f"One round only: no spread to report. Load average before/after: {load_before} / "
                f"{load_after}.")
    worst = []
    for sc, vs in summary.items():
        for v, f in vs.items():
            sp = (f.get("added_ms_spread") or {}).get("p99")
            med = (f.get("added_ms") or {}).get("p99")
            if sp and med and med > 0:
                worst.append(((sp[1] - sp[0]) / med, sc, v))
    worst.sort(reverse=True)
    parts = [f"{w * 100:.0f}% ({sc}, {v})" for w, sc, v in worst[:3]]
    return (f"Load average before/after: {load_before} / {load_after}. Largest spread of added p99 "
            f"over {rounds} rounds, (max-min)/median: {', '.join(parts) or 'n/a'}. Per-run figures "
            "are in the JSON file.")


def rerender(path):
    """Writes <path without .json>.md again from a results JSON file."""
    with open(path) as f:
        data = json.load(f)
    scs = [load.Scenario(s["name"], s["protocol"], s["rate"], s["connections"], s["duration_s"],
                         streams=s["streams_per_connection"], label=s["label"]) for s in data["scenarios"]]
    # Figures are computed again from the runs, so a fix in report.py applies to old data.
    summary = report.summarize(data["runs"], scs)
    ratio = report.ratios(summary, MAX, MAIN)
    target_rows = report.targets(summary, ratio, MAIN)
    out = path[:-len(".json")] + ".md" if path.endswith(".json") else path + ".md"
    with open(out, "w") as f:
        f.write(report.markdown(data["meta"], scs, summary, ratio, target_rows, data["memory"],
                                data["route_table"]))
    print(f"wrote {out}")
    return 0


def main(argv):
    args = parse_args(argv)
    if args.report_from:
        return rerender(args.report_from)
    # SIGTERM (and SIGINT, even when a non-interactive shell started us in the background
    # with it ignored) must still stop every process the run started.
    def interrupted(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    started = time.time()
    load_before = loadavg()
    bench = Bench(args)
    try:
        bench.start()
        time.sleep(2)
        bench.measure_idle("idle_mib")
        bench.warm_up()
        scs = scenarios(args.quick, args.duration)
        bench.rounds(scs)
        peak = {}
        for v in bench.proxies:
            for side, p in bench.targets[v][2].items():
                peak[(v, side)] = procs.memory_kib(p.pid)
        all_scs = list(scs)
        if not args.no_newconn:
            all_scs.append(bench.new_connections(scs))
        if args.route_table > 0:
            all_scs.append(bench.big_route_table(scs))
    except (Exception, KeyboardInterrupt, SystemExit) as e:  # noqa: BLE001 - report, keep the logs
        bench.log(f"FAILED: {e!r}")
        bench.log(f"logs kept in {bench.work}")
        return 1
    finally:
        bench.fleet.close()
    shutil.rmtree(bench.work, ignore_errors=True)
    for (v, side), m in peak.items():
        # VmHWM was reset before each run: this is the peak of the last run, so take the
        # largest per-run peak instead.
        per_run = [r["procs"][side]["hwm_kib"] for r in bench.runs
                   if r["variant"] == v and side in r["procs"] and "-routes" not in r["scenario"]]
        with_routes = [r["procs"][side]["hwm_kib"] for r in bench.runs
                       if r["variant"] == v and side in r["procs"] and "-routes" in r["scenario"]]
        bench.memory[v][side]["peak_mib"] = max(per_run + [m["hwm"]]) / 1024.0
        if with_routes:
            bench.memory[v][side]["peak_routes_mib"] = max(with_routes) / 1024.0
    summary = report.summarize(bench.runs, all_scs)
    ratio = report.ratios(summary, MAX, MAIN)
    target_rows = report.targets(summary, ratio, MAIN)
    load_after = loadavg()
    date = datetime.date.today().isoformat()
    meta = {
        "date": date,
        "command": args.command or " ".join(shlex.quote(a) for a in ["python3", *sys.argv]),
        "note": args.note,
        **machine_facts(args),
        "load_before": load_before,
        "load_after": load_after,
        "concurrency": f"{args.concurrency} worker(s) per proxy (Envoy --concurrency, weft-proxy "
                       f"--concurrency, nginx worker_processes) and for the upstream nginx",
        "pinning": (f"load generator (oha, {args.loadgen_threads} thread) on CPU {bench.loadgen_cpus}; "
                    f"proxies, upstream and weftd on CPU {bench.proxy_cpus}") if bench.loadgen_cpus else "none",
        "rounds": args.rounds,
        "last_hop": ("as configured: HTTP/2 to the upstream for the HTTP2/GRPC ports"
                     if getattr(bench, "inbound_h2", True) else
                     "HTTP/1.1 from the server sidecar to the upstream in the HTTP/2 scenario "
                     "(weftd gives inbound clusters no HTTP/2); gRPC through the sidecars not measured"),
        "skipped": ", ".join(f"{p}/{v}" for p, v in sorted(getattr(bench, "skip", set()))) or "none",
        "grpc_check": "every gRPC call checked by bench-load (HTTP 200, grpc-status 0, one whole message); "
                      "the rest are counted as failed",
        "mtls": ("none (--no-mtls)" if args.no_mtls else
                 f"envoy-mtls and weft-mtls in namespace {mtls.NAMESPACE} with certificates from weftd's CA "
                 "(weft-proxy: CSR with a bootstrap token; Envoy: SDS from weftd), mesh-wide STRICT "
                 "PeerAuthentication, workloads labelled security.istio.io/tlsMode: istio (auto mTLS); "
                 "nginx-mtls: openssl CA, ssl_verify_client on, proxy_ssl_verify on; TLS 1.3"),
        "wall_time_s": round(time.time() - started),
    }
    meta["noise"] = noise_text(summary, args.rounds, load_before, load_after)
    os.makedirs(args.out_dir, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    base = os.path.join(args.out_dir, f"{date}-dataplane{suffix}")
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "scenarios": [s.to_json() for s in all_scs], "summary": summary,
                   "ratios": ratio, "targets": target_rows, "memory": bench.memory,
                   "route_table": bench.route_table, "runs": bench.runs}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(report.markdown(meta, all_scs, summary, ratio, target_rows, bench.memory,
                                bench.route_table))
    bench.log(f"wrote {base}.md and {base}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
