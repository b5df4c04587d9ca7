"""HTTP/2 in the http check, and the grpc check through an LB, against real nginx:
`listen ssl http2` (h2 by ALPN), cleartext `listen http2` (prior knowledge only),
an HTTP/1.1-only TLS port (the silent downgrade), and `grpc_pass` to a real grpcio
health server."""

from __future__ import annotations

import pytest
import trustme

from stackscope.model import ErrorKind, Status
from tests.probe_helpers import probe
from tests.servers.base import free_port
from tests.servers.grpc_health import GrpcHealthServer
from tests.servers.nginx import Nginx

pytest.importorskip("grpc_health.v1.health")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("h2")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(d / "leaf.pem"))
    grpc_server = GrpcHealthServer(d / "grpc").start()
    ports = {name: free_port() for name in ("h2", "h2c", "h1", "grpc")}
    tls = f"ssl_certificate {d}/leaf.pem; ssl_certificate_key {d}/leaf.pem;"
    nginx = Nginx(
        d / "nginx",
        f"""
    server {{ listen 127.0.0.1:{ports["h2"]} ssl http2; {tls}
             location / {{ add_header X-Proto $server_protocol; return 200 "h2 ok\\n"; }} }}
    server {{ listen 127.0.0.1:{ports["h2c"]} http2; location / {{ return 200 "h2c ok\\n"; }} }}
    server {{ listen 127.0.0.1:{ports["h1"]} ssl; {tls} location / {{ return 200 "h1 ok\\n"; }} }}
    server {{ listen 127.0.0.1:{ports["grpc"]} http2; location / {{ grpc_pass grpc://127.0.0.1:{grpc_server.port}; }} }}
""",
        list(ports.values()),
    ).start()
    yield ports, str(d / "ca.pem"), grpc_server
    nginx.stop()
    grpc_server.stop()


async def test_auto_and_true_negotiate_h2_by_alpn(stack):
    ports, ca, _ = stack
    for mode in ("auto", "true"):
        check = {"http": f"https://127.0.0.1:{ports['h2']}/", "ca": ca, "http2": mode, "expect_protocol": "h2"}
        result = await probe({**check, "expect_body": "h2 ok", "expect_header": {"X-Proto": "HTTP/2.0"}})
        assert result.status is Status.OK, result.detail
        assert result.facts["protocol"] == "h2" and {"connect", "tls", "ttfb"} <= set(result.facts["phases"])


async def test_prior_knowledge_speaks_h2c(stack):
    ports, _, _ = stack
    result = await probe(
        {"http": f"http://127.0.0.1:{ports['h2c']}/", "http2": "prior-knowledge", "expect_body": "h2c"}
    )
    assert result.status is Status.OK, result.detail
    assert result.facts["http_version"] == "HTTP/2"


async def test_an_http1_only_server_falls_back_under_auto_and_fails_true_and_expect_protocol(stack):
    ports, ca, _ = stack
    url = f"https://127.0.0.1:{ports['h1']}/"
    fallback = await probe({"http": url, "ca": ca, "http2": "auto", "expect_body": "h1 ok"})
    assert fallback.status is Status.OK and fallback.facts["protocol"] == "http/1.1", fallback.detail
    downgraded = await probe({"http": url, "ca": ca, "http2": "auto", "expect_protocol": "h2"})
    assert downgraded.status is Status.CRIT and "over http/1.1, expected h2" in downgraded.detail
    required = await probe({"http": url, "ca": ca, "http2": "true"})
    assert required.status is Status.CRIT and "not h2" in required.detail, required.detail


async def test_http1_to_a_prior_knowledge_port_says_what_answered(stack):
    ports, _, _ = stack
    result = await probe({"http": f"http://127.0.0.1:{ports['h2c']}/"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL


async def test_grpc_through_nginx_grpc_pass_sees_the_backend_state(stack):
    ports, _, grpc_server = stack
    check = {"grpc": f"127.0.0.1:{ports['grpc']}", "service": "app"}
    assert (await probe(check)).status is Status.OK
    grpc_server.set("app", "NOT_SERVING")
    try:
        down = await probe(check)
    finally:
        grpc_server.set("app", "SERVING")
    assert down.status is Status.CRIT and "NOT_SERVING" in down.detail
