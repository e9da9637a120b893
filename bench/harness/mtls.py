"""Mutual TLS for the data-plane bench: the mesh's identities and policy, and an nginx pair
with client certificates as the floor.

The `envoy-mtls` and `weft-mtls` pairs live in namespace `secure`, their workloads labelled
`security.istio.io/tlsMode: istio` (so client sidecars use auto mTLS towards them), with
certificates from weftd's CA: weft-proxy makes its key and sends a CSR with a bootstrap
token (`--token-file`), Envoy gets key and certificate from weftd over SDS (the token in its
bootstrap, `weft bootstrap envoy --token-file`). A mesh-wide STRICT PeerAuthentication
(root namespace `istio-system`) makes the server sidecars refuse plaintext; namespace
`default`, where the plaintext pairs live, gets PERMISSIVE, which is what a mesh without
any PeerAuthentication has, so the plaintext pairs keep the configuration they had.

The `nginx-mtls` pair uses certificates made with openssl (a throwaway CA, ECDSA P-256 like
the mesh's): nginx checks names against DNS SANs only and cannot match a SPIFFE URI, so the
mesh's certificates would force it to skip verification. Both sides verify the peer: the
server requires a client certificate from the CA, the client verifies the server's chain
and name. TLS 1.3 on every hop, as Envoy and weft-proxy negotiate.
"""

import os
import subprocess

from . import procs
from .mesh import _nginx_main, _start_nginx

NAMESPACE = "secure"
TLS_LABEL = {"security.istio.io/tlsMode": "istio"}


def policies():
    """Mesh-wide STRICT, and PERMISSIVE (the default) for the plaintext pairs' namespace."""
    def pa(ns, mode):
        return {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                "metadata": {"name": "default", "namespace": ns}, "spec": {"mtls": {"mode": mode}}}
    return [pa("istio-system", "STRICT"), pa("default", "PERMISSIVE")]


def token_file(weftd, work, namespace, service_account):
    """A bootstrap token for the identity, written to a file (`weft token create`)."""
    token = weftd.weft("token", "create", "-n", namespace, "--service-account", service_account).strip()
    if not token:
        raise RuntimeError(f"weft token create gave no token for {namespace}/{service_account}")
    path = os.path.join(work, f"{namespace}-{service_account}.token")
    with open(path, "w") as f:
        f.write(token + "\n")
    return path


def one_conn_per_request(hosts_by_ns):
    """DestinationRules with `maxRequestsPerConnection: 1`: every request through a client
    sidecar opens a new upstream connection (for the mTLS pairs: a new handshake)."""
    docs = []
    for ns, host in hosts_by_ns:
        docs.append({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": host.split(".")[0] + "-newconn", "namespace": ns},
            "spec": {"host": host,
                     "trafficPolicy": {"connectionPool": {"http": {"maxRequestsPerConnection": 1}}}},
        })
    return docs


def _openssl(*args):
    out = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])}: {out.stderr.strip()[:300]}")


def make_certs(work):
    """A CA and a server and a client certificate signed by it (ECDSA P-256, 1 day);
    returns their file paths."""
    d = os.path.join(work, "nginx-pki")
    os.makedirs(d, exist_ok=True)
    p = lambda name: os.path.join(d, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "1",
             "-subj", "/CN=bench nginx CA")
    for name in ("server", "client"):
        _openssl("req", *ec, "-keyout", p(f"{name}.key"), "-out", p(f"{name}.csr"),
                 "-subj", f"/CN=bench-{name}")
        with open(p(f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName=DNS:bench-{name}.secure\n"
                    f"extendedKeyUsage={'serverAuth' if name == 'server' else 'clientAuth'}\n")
        _openssl("x509", "-req", "-in", p(f"{name}.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
                 "-CAcreateserial", "-days", "1", "-extfile", p(f"{name}.ext"), "-out", p(f"{name}.pem"))
    for f in os.listdir(d):
        os.chmod(p(f), 0o644)  # nginx workers run as nobody when started by root
    return {k: p(v) for k, v in {"ca": "ca.pem", "server_cert": "server.pem", "server_key": "server.key",
                                 "client_cert": "client.pem", "client_key": "client.key"}.items()}


def start_nginx_mtls_pair(fleet, work, upstream, cpus, workers):
    """nginx -> (mTLS) -> nginx -> upstream; returns (client proc, server proc, client ports).

    Like the plaintext nginx pair (HTTP/1.1 between the two for HTTP and HTTP/2 load, gRPC
    over h2 with grpc_pass), with TLS between client and server. `http-newconn` is an extra
    HTTP/1.1 port whose upstream keeps no connection: a new handshake per request.
    """
    c = make_certs(work)
    server_tls = (f"ssl_certificate {c['server_cert']}; ssl_certificate_key {c['server_key']}; "
                  f"ssl_client_certificate {c['ca']}; ssl_verify_client on; ssl_protocols TLSv1.3;")
    keep = 'proxy_http_version 1.1; proxy_set_header Connection "";'
    http_port, grpc_port = procs.free_port(), procs.free_port()
    server_conf = _nginx_main(work, "nginx-mtls-server", workers) + f"""
  upstream app {{ server 127.0.0.1:{upstream["http"]}; keepalive 128; keepalive_requests 10000000; }}
  upstream app_grpc {{ server 127.0.0.1:{upstream["grpc"]}; keepalive 128; keepalive_requests 10000000; }}
  server {{ listen 127.0.0.1:{http_port} ssl; {server_tls} location / {{ proxy_pass http://app; {keep} }} }}
  server {{ listen 127.0.0.1:{grpc_port} ssl http2; {server_tls} location / {{ grpc_pass grpc://app_grpc; }} }}
}}
"""

    def client_tls(kind):
        return (f"{kind}_ssl_certificate {c['client_cert']}; {kind}_ssl_certificate_key {c['client_key']}; "
                f"{kind}_ssl_trusted_certificate {c['ca']}; {kind}_ssl_verify on; "
                f"{kind}_ssl_name bench-server.secure; {kind}_ssl_protocols TLSv1.3; "
                f"{kind}_ssl_session_reuse on;")

    ports = {"http": procs.free_port(), "http2": procs.free_port(), "grpc": procs.free_port(),
             "http-newconn": procs.free_port()}
    to_peer = f"location / {{ proxy_pass https://peer; {keep} {client_tls('proxy')} }}"
    client_conf = _nginx_main(work, "nginx-mtls-client", workers) + f"""
  upstream peer {{ server 127.0.0.1:{http_port}; keepalive 128; keepalive_requests 10000000; }}
  upstream peer_newconn {{ server 127.0.0.1:{http_port}; }}
  upstream peer_grpc {{ server 127.0.0.1:{grpc_port}; keepalive 128; keepalive_requests 10000000; }}
  server {{ listen 127.0.0.1:{ports["http"]}; {to_peer} }}
  server {{ listen 127.0.0.1:{ports["http2"]} http2; {to_peer} }}
  server {{ listen 127.0.0.1:{ports["http-newconn"]};
    location / {{ proxy_pass https://peer_newconn; {client_tls('proxy')} }} }}
  server {{ listen 127.0.0.1:{ports["grpc"]} http2;
    location / {{ grpc_pass grpcs://peer_grpc; {client_tls('grpc')} }} }}
}}
"""
    server = _start_nginx(fleet, work, "nginx-mtls-server", server_conf, cpus)
    client = _start_nginx(fleet, work, "nginx-mtls-client", client_conf, cpus)
    for p in (http_port, grpc_port):
        procs.wait_port(p, 10, "nginx mTLS server")
    for p in ports.values():
        procs.wait_port(p, 10, "nginx mTLS client")
    return client, server, ports
