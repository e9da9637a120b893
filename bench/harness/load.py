"""The load generator: oha, open loop with coordinated-omission correction, JSON out.

Open-loop runs use `-q RATE --latency-correction`: oha schedules requests at a fixed rate
and measures each one from when it was due, not from when a free connection sent it, so a
stall shows up in the percentiles instead of silently lowering the rate (coordinated
omission). Closed-loop runs (max throughput) leave out `-q`: every connection sends its next
request as soon as the previous one is answered.

Requests always name the service (`http://bench-weft:9080/1k`) and `--connect-to` sends them
to the proxy's port, so the client sidecars route by Host / :authority exactly as for an
application in explicit mode, and the same URL shape is used for nginx and direct.
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


def argv(oha, scenario, host, port, target_port, cpus, threads, grpc_body=None):
    """The oha command line for one run against 127.0.0.1:target_port."""
    cmd = []
    if cpus:
        cmd += ["taskset", "-c", cpus]
    cmd += [
        oha, "--no-tui", "--output-format", "json", "--worker-threads", str(threads),
        "-z", f"{scenario.duration}s", "-c", str(scenario.connections),
        "--connect-to", f"{host}:{port}:127.0.0.1:{target_port}",
        # A request still open at the deadline is not a failure of the proxy.
        "-w",
    ]
    path = "/1k"
    if scenario.protocol in ("http2", "grpc"):
        cmd += ["--http2", "-p", str(scenario.streams)]
    if scenario.protocol == "grpc":
        # A unary call as a gRPC client sends it; oha does not read trailers, so
        # grpc-status is checked once per variant by the harness before the runs.
        cmd += ["-m", "POST", "-D", grpc_body, "-H", "content-type: application/grpc",
                "-H", "te: trailers"]
        path = GRPC_PATH
    if scenario.rate:
        cmd += ["-q", str(scenario.rate), "--latency-correction"]
    cmd.append(f"http://{host}:{port}{path}")
    return cmd


def run(cmd, timeout):
    """Runs oha; returns the figures the report uses (latencies in ms)."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"oha failed ({out.returncode}): {out.stderr.strip()[:500]}")
    data = json.loads(out.stdout)
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


def probe(oha, protocol, host, port, target_port, grpc_body, requests=20):
    """`requests` requests of one protocol, closed loop: the status codes seen (errors as
    their text), to check a path works before measuring it."""
    sc = Scenario("probe", protocol, None, 1, 0)
    cmd = argv(oha, sc, host, port, target_port, None, 1, grpc_body)
    i = cmd.index("-z")
    cmd[i:i + 2] = ["-n", str(requests)]
    cmd.remove("-w")
    out = run(cmd, timeout=30)
    return {**out["statuses"], **out["errors"]}
