"""HTTP/2 in the http check against real Caddy and Apache httpd: h2 by ALPN over TLS
(a trustme certificate), h2c by prior knowledge on cleartext (Caddy `protocols h1 h2c`,
Apache mod_http2 `Protocols h2c`), and the grpc check through Caddy `reverse_proxy`
with `transport http { versions h2c }` and Apache `ProxyPass … h2c://` (mod_proxy_http2)
to the real grpcio health server."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import trustme

from stackscope.model import Status
from tests.probe_helpers import probe
from tests.servers.apache import Apache
from tests.servers.base import LOOPBACK, free_port
from tests.servers.caddy import Caddy
from tests.servers.grpc_health import GrpcHealthServer

pytest.importorskip("grpc_health.v1.health")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("h2-certs")
    ca = trustme.CA()
    leaf = ca.issue_cert(LOOPBACK)
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    return d


def static(body: str) -> dict:
    return {"handle": [{"handler": "static_response", "status_code": 200, "body": body}]}


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory):
    server = GrpcHealthServer(tmp_path_factory.mktemp("grpc")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def caddy(tmp_path_factory, certs, grpc_server):
    ports = {name: free_port() for name in ("h2", "h2c", "grpc")}
    h2c_transport = {"protocol": "http", "versions": ["h2c", "2"]}
    servers = {
        "tls": {
            "listen": [f"{LOOPBACK}:{ports['h2']}"],
            "protocols": ["h1", "h2"],
            "tls_connection_policies": [{}],
            "routes": [static("caddy h2 ok\n")],
        },
        "h2c": {
            "listen": [f"{LOOPBACK}:{ports['h2c']}"],
            "protocols": ["h1", "h2c"],
            "routes": [static("caddy h2c\n")],
        },
        "grpc": {
            "listen": [f"{LOOPBACK}:{ports['grpc']}"],
            "protocols": ["h1", "h2c"],
            "routes": [
                {
                    "handle": [
                        {
                            "handler": "reverse_proxy",
                            "transport": h2c_transport,
                            "upstreams": [{"dial": f"{LOOPBACK}:{grpc_server.port}"}],
                        }
                    ]
                }
            ],
        },
    }
    tls_app = {
        "certificates": {"load_files": [{"certificate": str(certs / "cert.pem"), "key": str(certs / "key.pem")}]}
    }
    server = Caddy(tmp_path_factory.mktemp("caddy-h2"), servers, apps={"tls": tls_app}).start()
    yield ports
    server.stop()


@pytest.fixture(scope="module")
def apache(certs, grpc_server):
    tls_port = free_port()
    docroot = Path(tempfile.mkdtemp(prefix="stackscope-h2-docroot-"))  # readable by nobody, as Apache's workdir
    docroot.chmod(0o755)
    (docroot / "ok.txt").write_text("apache ok\n")
    (docroot / "ok.txt").chmod(0o644)
    body = f"""
LoadModule http2_module /usr/lib/apache2/modules/mod_http2.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule proxy_http2_module /usr/lib/apache2/modules/mod_proxy_http2.so
Protocols h2c http/1.1
ProxyPass "/grpc.health.v1.Health/" "h2c://{LOOPBACK}:{grpc_server.port}/grpc.health.v1.Health/"
DocumentRoot "{docroot}"
<Directory "{docroot}">
    AllowOverride None
</Directory>
Listen {LOOPBACK}:{tls_port}
<VirtualHost {LOOPBACK}:{tls_port}>
    SSLEngine on
    SSLCertificateFile "{certs}/cert.pem"
    SSLCertificateKeyFile "{certs}/key.pem"
    Protocols h2 http/1.1
</VirtualHost>
"""
    server = Apache(body, "apache-h2")
    try:
        server.start()
        yield {"h2c": server.port, "h2": tls_port}
    finally:
        server.stop()
        shutil.rmtree(docroot, ignore_errors=True)


def pick(name, caddy, apache):
    return caddy if name == "caddy" else apache


@pytest.mark.parametrize("front", ["caddy", "apache"])
async def test_auto_and_true_negotiate_h2_by_alpn(front, caddy, apache, certs):
    ports = pick(front, caddy, apache)
    path, body = ("/", "caddy h2 ok") if front == "caddy" else ("/ok.txt", "apache ok")
    for mode in ("auto", "true"):
        check = {"http": f"https://{LOOPBACK}:{ports['h2']}{path}", "ca": str(certs / "ca.pem"), "http2": mode}
        result = await probe({**check, "expect_protocol": "h2", "expect_body": body})
        assert result.status is Status.OK, result.detail
        assert result.facts["protocol"] == "h2", result.facts


@pytest.mark.parametrize("front", ["caddy", "apache"])
async def test_prior_knowledge_speaks_h2c(front, caddy, apache):
    ports = pick(front, caddy, apache)
    path, body = ("/", "caddy h2c") if front == "caddy" else ("/ok.txt", "apache ok")
    check = {"http": f"http://{LOOPBACK}:{ports['h2c']}{path}", "http2": "prior-knowledge"}
    result = await probe({**check, "expect_protocol": "h2", "expect_body": body})
    assert result.status is Status.OK, result.detail
    assert result.facts["protocol"] == "h2", result.facts


@pytest.mark.parametrize("front", ["caddy", "apache"])
async def test_grpc_through_an_h2c_proxy_sees_the_backend_state(front, caddy, apache, grpc_server):
    """Caddy `reverse_proxy` with `transport http { versions h2c }` and Apache
    `ProxyPass … h2c://` pass the health answer (and its trailers) on."""
    port = caddy["grpc"] if front == "caddy" else apache["h2c"]
    check = {"grpc": f"{LOOPBACK}:{port}", "service": "app"}
    healthy = await probe(check)
    assert healthy.status is Status.OK, healthy.detail
    grpc_server.set("app", "NOT_SERVING")
    try:
        down = await probe(check)
    finally:
        grpc_server.set("app", "SERVING")
    assert down.status is Status.CRIT and "NOT_SERVING" in down.detail, down.detail
