"""The benchmark's topology on loopback: one upstream, weftd, and the forwarding pairs.

Every variant forwards load-generator -> client-side proxy -> server-side proxy -> upstream:

- `envoy` and `weft`: a client sidecar (explicit capture: the load generator talks to its
  outbound HTTP proxy listener) and a server sidecar (its inbound listener forwards to the
  upstream), all four configured over ADS by one weftd from the same Istio config. Each
  variant gets its own service (`bench-envoy`, `bench-weft`), generated from one template, so
  the two pairs never share endpoints.
- `nginx`: two plain nginx reverse proxies with upstream keep-alive, the lean-C floor.
- `direct`: no proxy; the baseline latencies are subtracted from.

The upstream is one nginx serving a 1 KiB file (HTTP/1.1 on one port, h2c on another), the
same for every variant.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from . import procs
from .load import GRPC_PATH

SERVICE_PORTS = {"http": 9080, "http2": 9081, "grpc": 9082}
PROTOCOLS = {"http": "HTTP", "http2": "HTTP2", "grpc": "GRPC"}
BODY_BYTES = 1024
# gRPC unary call: the request and the answer are one length-prefixed message (flag byte 0,
# 4-byte big-endian length); the answer carries a 1,019-byte message, 1,024 bytes in all.


def grpc_frame(payload):
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def _nginx_main(work, name, workers):
    """The part of an nginx config every instance shares: foreground, no access log, files
    in the work dir, keep-alive that lasts the whole run (nginx's default closes a client
    connection after 1,000 requests, which Envoy and weft-proxy do not)."""
    tmp = os.path.join(work, "nginx-tmp", name)
    os.makedirs(tmp, exist_ok=True)
    temp_paths = "\n".join(
        f"  {kind}_temp_path {tmp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
worker_processes {workers};
daemon off;
master_process on;
pid {work}/{name}.pid;
error_log {work}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  default_type application/octet-stream;
{temp_paths}
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server_tokens off;
"""


def start_upstream(fleet, work, cpus, workers):
    """nginx serving /1k (1,024 bytes); returns {"http": port, "http2": port}."""
    www = os.path.join(work, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "1k"), "w") as f:
        f.write("x" * BODY_BYTES)
    reply = os.path.join(www, GRPC_PATH.lstrip("/"))
    os.makedirs(os.path.dirname(reply), exist_ok=True)
    with open(reply, "wb") as f:
        f.write(grpc_frame(b"y" * (BODY_BYTES - 5)))
    ports = {"http": procs.free_port(), "http2": procs.free_port(), "grpc": procs.free_port()}
    # gRPC: nginx's static module refuses POST with 405; error_page turns that into a GET
    # of the same file (the framed reply), sent as application/grpc with grpc-status 0 in
    # the trailers.
    conf = _nginx_main(work, "upstream", workers) + f"""
  server {{ listen 127.0.0.1:{ports["http"]}; root {www}; }}
  server {{ listen 127.0.0.1:{ports["http2"]} http2; root {www}; }}
  server {{
    listen 127.0.0.1:{ports["grpc"]} http2; root {www};
    location = {GRPC_PATH} {{
      default_type application/grpc; error_page 405 =200 $uri;
      add_trailer grpc-status 0 always; add_trailer grpc-message "" always;
    }}
  }}
}}
"""
    _start_nginx(fleet, work, "upstream", conf, cpus)
    for p in ports.values():
        procs.wait_port(p, 10, "upstream nginx")
    return ports


def _start_nginx(fleet, work, name, conf, cpus):
    path = os.path.join(work, f"{name}.conf")
    with open(path, "w") as f:
        f.write(conf)
    nginx = os.environ.get("NGINX", "nginx")
    return fleet.spawn(name, [nginx, "-p", work, "-e", f"{work}/{name}-error.log", "-c", path], cpus=cpus)


def start_nginx_pair(fleet, work, upstream, cpus, workers):
    """Two nginx reverse proxies in a row; returns (client proc, server proc, client ports).

    nginx's proxy module speaks only HTTP/1.1 upstream, so in the HTTP/2 scenario the pair
    takes h2c from the load generator and forwards HTTP/1.1 (Envoy and weft-proxy forward h2);
    gRPC goes through grpc_pass, h2 on every hop. `http-newconn`: HTTP/1.1 with no upstream
    keep-alive between the two (a new connection per request).
    """
    server_port = procs.free_port()
    keep = 'proxy_http_version 1.1; proxy_set_header Connection "";'
    server_conf = _nginx_main(work, "nginx-server", workers) + f"""
  upstream app {{ server 127.0.0.1:{upstream["http"]}; keepalive 128; keepalive_requests 10000000; }}
  server {{ listen 127.0.0.1:{server_port}; location / {{ proxy_pass http://app; {keep} }} }}
}}
"""
    grpc_port = procs.free_port()
    server_conf = server_conf[: server_conf.rindex("}")] + f"""
  upstream app_grpc {{ server 127.0.0.1:{upstream["grpc"]}; keepalive 128; keepalive_requests 10000000; }}
  server {{ listen 127.0.0.1:{grpc_port} http2; location / {{ grpc_pass grpc://app_grpc; }} }}
}}
"""
    client_ports = {"http": procs.free_port(), "http2": procs.free_port(), "grpc": procs.free_port(),
                    "http-newconn": procs.free_port()}
    client_conf = _nginx_main(work, "nginx-client", workers) + f"""
  upstream peer {{ server 127.0.0.1:{server_port}; keepalive 128; keepalive_requests 10000000; }}
  upstream peer_newconn {{ server 127.0.0.1:{server_port}; }}
  server {{ listen 127.0.0.1:{client_ports["http-newconn"]}; location / {{ proxy_pass http://peer_newconn; }} }}
  server {{ listen 127.0.0.1:{client_ports["http"]}; location / {{ proxy_pass http://peer; {keep} }} }}
  server {{ listen 127.0.0.1:{client_ports["http2"]} http2; location / {{ proxy_pass http://peer; {keep} }} }}
  upstream peer_grpc {{ server 127.0.0.1:{grpc_port}; keepalive 128; keepalive_requests 10000000; }}
  server {{ listen 127.0.0.1:{client_ports["grpc"]} http2; location / {{ grpc_pass grpc://peer_grpc; }} }}
}}
"""
    server = _start_nginx(fleet, work, "nginx-server", server_conf, cpus)
    client = _start_nginx(fleet, work, "nginx-client", client_conf, cpus)
    procs.wait_port(server_port, 10, "nginx server")
    procs.wait_port(grpc_port, 10, "nginx server")
    for p in client_ports.values():
        procs.wait_port(p, 10, "nginx client")
    return client, server, client_ports


class Weftd:
    """weftd on free ports with a store in the work dir, and `weft` pointed at it."""

    def __init__(self, fleet, work, bin_dir, cpus):
        self.bin_dir = bin_dir
        self.data_dir = os.path.join(work, "weftd-data")
        self.proc = fleet.spawn(
            "weftd",
            [
                os.path.join(bin_dir, "weftd"),
                "--data-dir", self.data_dir,
                "--api-addr", "127.0.0.1:0",
                "--xds-addr", "127.0.0.1:0",
                "--log-level", "warn",
            ],
            cpus=cpus,
        )
        self.api = self._announced("api listening on ")
        self.xds = self._announced("xds listening on ")

    def _announced(self, prefix):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self.proc.check()
            with open(self.proc.log_path, errors="replace") as f:
                for line in f:
                    if line.startswith(prefix):
                        return line[len(prefix):].strip()
            time.sleep(0.05)
        raise RuntimeError(f"weftd did not print {prefix!r}; see {self.proc.log_path}")

    def weft(self, *args):
        env = dict(os.environ, WEFT_SERVER=f"http://{self.api}", WEFT_DATA_DIR=self.data_dir)
        out = subprocess.run(
            [os.path.join(self.bin_dir, "weft"), *args],
            env=env, capture_output=True, text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"weft {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")
        return out.stdout

    def apply(self, docs, work, name):
        """`weft apply -f DIR` of Istio documents, one JSON file each."""
        path = os.path.join(work, "config", name)
        os.makedirs(path, exist_ok=True)
        for i, d in enumerate(docs):
            with open(os.path.join(path, f"{i:05d}-{d['kind']}-{d['metadata']['name']}.json"), "w") as f:
                json.dump(d, f, indent=1)
        self.weft("apply", "-f", path)
        return path

    def bootstrap(self, work, group, app_ports, outbound, admin, namespace="default", token_file=None):
        """`weft bootstrap envoy`; with `token_file`, the bootstrap token rides on the ADS
        stream so that weftd serves Envoy its workload certificate over SDS."""
        args = [
            "bootstrap", "envoy", "--capture", "explicit", "--workload-group", group,
            "-n", namespace, "--ip", "127.0.0.1", "--outbound-port", str(outbound),
            "--admin-port", str(admin), "--xds", self.xds,
        ]
        if token_file:
            args += ["--token-file", token_file]
        for name, port in app_ports.items():
            args += ["--app-port", f"{name}={port}"]
        path = os.path.join(work, f"{group}.bootstrap.yaml")
        with open(path, "w") as f:
            f.write(self.weft(*args))
        return path


def service_config(variant, inbound, namespace="default", extra_labels=None):
    """The Istio config for one sidecar pair: a ServiceEntry selecting the server sidecar's
    workloads, the WorkloadGroups both sidecars register through, and a VirtualService with
    one route per port. `inbound`: the server sidecar's port per port name; `extra_labels`
    go on both workloads (the mTLS pairs' `security.istio.io/tlsMode`)."""
    svc = f"bench-{variant}"
    host = f"{svc}.{namespace}.svc.cluster.local"
    extra = dict(extra_labels or {})
    meta = lambda name: {"name": name, "namespace": namespace}  # noqa: E731
    return [
        {
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": meta(svc),
            "spec": {
                "hosts": [host], "location": "MESH_INTERNAL", "resolution": "STATIC",
                "ports": [{"number": n, "name": k, "protocol": PROTOCOLS[k]} for k, n in SERVICE_PORTS.items()],
                "workloadSelector": {"labels": {"app": svc}},
            },
        },
        {
            "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup", "metadata": meta(f"{svc}-server"),
            "spec": {
                "metadata": {"labels": {"app": svc, "version": "v1", **extra}},
                "template": {"ports": dict(inbound), "serviceAccount": "bench-server"},
            },
        },
        {
            "apiVersion": "networking.istio.io/v1", "kind": "WorkloadGroup", "metadata": meta(f"{svc}-client"),
            "spec": {
                "metadata": {"labels": {"app": f"client-{variant}", **extra}},
                "template": {"serviceAccount": "bench-client"},
            },
        },
        {
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta(svc),
            "spec": {
                "hosts": [host],
                "http": [
                    {
                        "name": name,
                        "match": [{"port": n}],
                        "route": [{"destination": {"host": host, "port": {"number": n}}}],
                    }
                    for name, n in SERVICE_PORTS.items()
                ],
            },
        },
    ]


def route_table(count, upstream_port):
    """`count` more services, each a ServiceEntry (endpoint: the upstream) and a
    VirtualService with a header match and a default route: what every sidecar's route
    table and cluster list then holds."""
    docs = []
    for i in range(count):
        name = f"svc-{i:04d}"
        host = f"{name}.default.svc.cluster.local"
        meta = {"name": name, "namespace": "default"}
        docs.append({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": meta,
            "spec": {
                "hosts": [host], "location": "MESH_INTERNAL", "resolution": "STATIC",
                "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
                "endpoints": [{"address": "127.0.0.1", "ports": {"http": upstream_port}}],
            },
        })
        docs.append({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": meta,
            "spec": {
                "hosts": [host],
                "http": [
                    {"match": [{"headers": {"x-canary": {"exact": "1"}}}],
                     "route": [{"destination": {"host": host}}], "timeout": "5s"},
                    {"route": [{"destination": {"host": host}}], "timeout": "10s"},
                ],
            },
        })
    return docs


class SidecarPair:
    """Client and server sidecar of one data plane: variant `envoy` or `weft` (plaintext, in
    namespace `default`), or `envoy-mtls` / `weft-mtls` (`mtls` given: namespace, labels and
    a token file per service account; see harness/mtls.py)."""

    def __init__(self, fleet, work, weftd, variant, binary, upstream, concurrency, cpus, mtls=None):
        self.variant = variant
        self.plane = variant.split("-")[0]
        self.fleet, self.work, self.weftd, self.binary = fleet, work, weftd, binary
        self.concurrency, self.cpus = concurrency, cpus
        self.namespace = mtls["namespace"] if mtls else "default"
        self.tokens = mtls["tokens"] if mtls else {}
        inbound = {name: procs.free_port() for name in SERVICE_PORTS}
        weftd.apply(service_config(variant, inbound, self.namespace, mtls and mtls["labels"]),
                    work, f"bench-{variant}")
        self.outbound = procs.free_port()
        self.admin = procs.free_port()
        self.host = f"bench-{variant}"
        self.fqdn = f"{self.host}.{self.namespace}.svc.cluster.local"
        self.server = self._start_server(upstream)
        client_boot = weftd.bootstrap(
            work, f"bench-{variant}-client", {}, self.outbound, self.admin, self.namespace,
            self._envoy_token("bench-client"))
        self.client = self._start(f"{self.variant}-client", client_boot, "bench-client")
        self.inbound = inbound

    def _envoy_token(self, service_account):
        return self.tokens.get(service_account) if self.plane == "envoy" else None

    def _start_server(self, app_ports):
        boot = self.weftd.bootstrap(
            self.work, f"bench-{self.variant}-server", app_ports, procs.free_port(), procs.free_port(),
            self.namespace, self._envoy_token("bench-server"))
        return self._start(f"{self.variant}-server", boot, "bench-server")

    def restart_server(self, app_ports):
        """A new server sidecar whose inbound listeners forward to `app_ports`."""
        self.fleet.stop(self.server)
        self.server = self._start_server(app_ports)

    def _start(self, name, boot, service_account):
        binary, concurrency = self.binary, self.concurrency
        if self.plane == "envoy":
            argv = [binary, "-c", boot, "--disable-hot-restart", "--concurrency", str(concurrency),
                    "-l", "warning"]
            env = None
        else:
            # Envoy gets no access log from weftd (Istio's default mesh config has none), so
            # weft-proxy's own stdout log is off too.
            argv = [binary, "--bootstrap", boot, "--concurrency", str(concurrency),
                    "--access-log", "off", "--stats-port", str(procs.free_port()),
                    "--health-port", str(procs.free_port())]
            if service_account in self.tokens:
                # Its own key and a CSR for this identity to weftd's CA (served on the xDS
                # address), proven with the token.
                argv += ["--token-file", self.tokens[service_account], "--ca-addr", self.weftd.xds,
                         "--namespace", self.namespace, "--service-account", service_account]
            env = {"RUST_LOG": "warn"}
        return self.fleet.spawn(name, argv, cpus=self.cpus, env=env)

    def procs(self):
        return {"client": self.client, "server": self.server}

    def upstream_connections(self, port):
        """Connections the client sidecar has opened to the bench service's `port`
        (`upstream_cx_total` of its outbound cluster, admin /stats), or None."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/stats", timeout=5) as r:
                text = r.read().decode(errors="replace")
        except OSError:
            return None
        total = None
        for line in text.splitlines():
            if (f"|{port}||{self.fqdn}." in line and "upstream_cx_total" in line
                    and ":" in line):
                try:
                    total = (total or 0) + int(line.rsplit(":", 1)[1].strip())
                except ValueError:
                    pass
        return total


def get_through(port, host, path="/1k", timeout=2.0):
    """GET http://host/path sent to the HTTP proxy on 127.0.0.1:port; (status, body length)."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"}))
    try:
        with opener.open(f"http://{host}{path}", timeout=timeout) as r:
            return r.status, len(r.read())
    except urllib.error.HTTPError as e:
        return e.code, 0
    except OSError:
        return None, 0


def serves_plaintext(port):
    """Whether a plaintext GET straight at 127.0.0.1:port gets a 200 (a STRICT mTLS server
    sidecar's inbound port must not)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/1k", timeout=3) as r:
            return r.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def wait_routable(port, host, timeout, procs_to_check):
    """Waits until a request for `host` through the proxy on `port` gets the 1 KiB body."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs_to_check:
            p.check()
        last = get_through(port, host)
        if last == (200, BODY_BYTES):
            return
        time.sleep(0.1)
    raise RuntimeError(f"no 200 with {BODY_BYTES} bytes for http://{host}/1k via 127.0.0.1:{port} "
                       f"after {timeout}s (last: {last})")
