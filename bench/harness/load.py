"""The load generators: oha for HTTP, bench-load for gRPC; open loop with
coordinated-omission correction, JSON out.

Open-loop runs use `-q RATE --latency-correction`: oha schedules requests at a fixed rate
and measures each one from when it was due, not from when a free connection sent it, so a
stall shows up in the percentiles instead of silently lowering the rate (coordinated
omission). Closed-loop runs (max throughput) leave out `-q`: every connection sends its next
request as soon as the previous one is answered.

Requests always name the service (`http://bench-weft:9080/1k`) and `--connect-to` sends them
to the proxy's port, so the client sidecars route by Host / :authority exactly as for an
application in explicit mode, and the same URL shape is used for nginx and direct.

gRPC runs use `bench-load grpc` (bench/bench-load): oha sends gRPC requests but never reads
trailers, so a call that ends with a non-zero `grpc-status` would count as a success.
bench-load checks HTTP 200, `grpc-status: 0` and a whole response message on every call,
with the same open-loop schedule and correction.
"""

import json
import subprocess

PERCENTILES = ("p50", "p90", "p99", "p99.9")
GRPC_PATH = "/bench.Echo/Call"


class Scenario:
    """One load shape: protocol (`http` = HTTP/1.1, `http2` = h2c prior knowledge, `grpc` = unary
    gRPC calls over h2c), rate
    (None = closed loop), connections, HTTP/2 streams per connection, seconds."""

    def __init__(self, name, protocol, rate, connections, duration, streams=1, label=None):
        self.name = name
        self.protocol = protocol
        self.rate = rate
        self.connections = connections
        self.streams = streams
        self.duration = duration
        self.label = label or name

    def to_json(self):
        return {
            "name": self.name, "label": self.label, "protocol": self.protocol, "rate": self.rate,
            "connections": self.connections, "streams_per_connection": self.streams,
            "duration_s": self.duration,
        }


class Tools:
    """Paths of the load generators."""

    def __init__(self, oha, grpc):
        self.oha = oha
        self.grpc = grpc


def argv(tools, scenario, host, port, target_port, cpus, threads, grpc_body=None):
    """The load generator's command line for one run against 127.0.0.1:target_port."""
    cmd = []
    if cpus:
        cmd += ["taskset", "-c", cpus]
    if scenario.protocol == "grpc":
        # bench-load runs one thread, as oha with --worker-threads 1 does here.
        return cmd + [
            tools.grpc, "grpc", "--target", f"127.0.0.1:{target_port}", "--authority", f"{host}:{port}",
            "--path", GRPC_PATH, "--rate", str(scenario.rate or 0), "--connections",
            str(scenario.connections), "--streams", str(scenario.streams), "--duration",
            str(scenario.duration), "--message-bytes", "64",
        ]
    oha = tools.oha
    cmd += [
        oha, "--no-tui", "--output-format", "json", "--worker-threads", str(threads),
        "-z", f"{scenario.duration}s", "-c", str(scenario.connections),
        "--connect-to", f"{host}:{port}:127.0.0.1:{target_port}",
        # A request still open at the deadline is not a failure of the proxy.
        "-w",
    ]
    path = "/1k"
    if scenario.protocol == "http2":
        cmd += ["--http2", "-p", str(scenario.streams)]
    if scenario.rate:
        cmd += ["-q", str(scenario.rate), "--latency-correction"]
    cmd.append(f"http://{host}:{port}{path}")
    return cmd


def run(cmd, timeout):
    """Runs oha or bench-load; returns the figures the report uses (latencies in ms)."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({out.returncode}): {out.stderr.strip()[:500]}")
    data = json.loads(out.stdout)
    if "grpc_status" in data:
        return _from_bench_load(data)
    lat = data.get("latencyPercentiles", {})
    statuses = {k: v for k, v in data.get("statusCodeDistribution", {}).items()}
    ok = statuses.get("200", 0)
    errors = dict(data.get("errorDistribution", {}))
    # Requests still scheduled when the run's time is up (oha cancels them on HTTP/2 even
    # with -w): not sent, so neither a failure nor a latency.
    aborted = errors.pop("aborted due to deadline", 0)
    total = sum(statuses.values()) + sum(errors.values())
    return {
        "requests": total,
        "ok": ok,
        "aborted_at_deadline": aborted,
        "errors": errors,
        "statuses": statuses,
        "rps": data["summary"]["requestsPerSec"],
        "success_rate": data["summary"]["successRate"],
        "latency_ms": {p: (lat.get(p) or 0.0) * 1000.0 for p in PERCENTILES},
        "bytes_per_request": data["summary"].get("sizePerRequest"),
    }


def _from_bench_load(data):
    """bench-load's JSON as the same figures as oha's. A call counts as ok only with
    grpc-status 0; `statuses` holds the grpc-status codes seen, `errors` every failure."""
    return {
        "requests": data["requests"],
        "ok": data["ok"],
        "aborted_at_deadline": 0,
        "errors": dict(data["failures"]),
        "statuses": {f"grpc-status {k}": v for k, v in data["grpc_status"].items()},
        "rps": data["rps"],
        "success_rate": data["ok"] / data["requests"] if data["requests"] else 0.0,
        "latency_ms": {p: data["latency_ms"][p] for p in PERCENTILES},
        "bytes_per_request": data["response_bytes"] / data["requests"] if data["requests"] else None,
    }


def probe(tools, protocol, host, port, target_port, grpc_body, requests=20):
    """`requests` requests of one protocol, closed loop: the status codes seen (errors as
    their text), to check a path works before measuring it; `{"200": requests}` when all
    succeeded (for gRPC: HTTP 200 and grpc-status 0)."""
    if protocol == "grpc":
        sc = Scenario("probe", protocol, requests, 1, 1)
        out = run(argv(tools, sc, host, port, target_port, None, 1), timeout=30)
        ok = {"200": out["ok"]} if out["ok"] else {}
        return {**ok, **out["errors"]}
    sc = Scenario("probe", protocol, None, 1, 0)
    cmd = argv(tools, sc, host, port, target_port, None, 1, grpc_body)
    i = cmd.index("-z")
    cmd[i:i + 2] = ["-n", str(requests)]
    cmd.remove("-w")
    out = run(cmd, timeout=30)
    return {**out["statuses"], **out["errors"]}
