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
    ports = {name: free_port() for name in ("h2", "h2c", "h1", "grpc", "grpc_lb", "grpc_mis")}
    tls = f"ssl_certificate {d}/leaf.pem; ssl_certificate_key {d}/leaf.pem;"
    nginx = Nginx(
        d / "nginx",
        f"""
    server {{ listen 127.0.0.1:{ports["h2"]} ssl http2; {tls}
             location / {{ add_header X-Proto $server_protocol; return 200 "h2 ok\\n"; }} }}
    server {{ listen 127.0.0.1:{ports["h2c"]} http2; location / {{ return 200 "h2c ok\\n"; }} }}
    server {{ listen 127.0.0.1:{ports["h1"]} ssl; {tls} location / {{ return 200 "h1 ok\\n"; }} }}
    server {{ listen 127.0.0.1:{ports["grpc"]} http2; location / {{ grpc_pass grpc://127.0.0.1:{grpc_server.port}; }} }}
    upstream orders {{ server 127.0.0.1:{grpc_server.port}; }}
    upstream misrouted {{ server 127.0.0.1:{grpc_server.bare_port}; }}
    server {{ listen 127.0.0.1:{ports["grpc_lb"]} http2; location / {{ grpc_pass grpc://orders; }} }}
    server {{ listen 127.0.0.1:{ports["grpc_mis"]} http2; location / {{ grpc_pass grpc://misrouted; }} }}
""",
        list(ports.values()),
    ).start()
    ports["conf"] = str(nginx.conf)
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


def grpc_layout(ports, grpc_server, front: str, upstream: str) -> str:
    """nginx `grpc_pass grpc://UPSTREAM` in front of the real grpcio health server: the
    call through nginx and the upstream block it passes to, then the member directly."""
    return f"""
name: grpc-through-nginx
layers:
  - name: LB
    role: lb
    checks:
      - {{grpc: "127.0.0.1:{ports[front]}", name: front, service: app}}
      - {{nginx: "{ports["conf"]}", name: pool, upstream: {upstream}}}
  - name: Orders
    role: backend
    checks:
      - {{grpc: "127.0.0.1:{grpc_server.port}", name: orders-1, service: app}}
"""


async def run_layout(text: str):
    from stackscope.diagnosis import assess
    from stackscope.engine import Engine
    from stackscope.layout import parse_layout

    engine = Engine(parse_layout(text, "<test>"))
    engine.confirm_retries = 0
    try:
        return assess(await engine.run_round())
    finally:
        await engine.aclose()


async def test_not_serving_through_grpc_pass_is_the_backend_layer(stack):
    """The member turns NOT_SERVING: nginx passes the answer on, and the verdict names the
    backend layer with the LB failing because of it, not the LB."""
    ports, _, grpc_server = stack
    text = grpc_layout(ports, grpc_server, "grpc_lb", "orders")
    healthy = await run_layout(text)
    assert healthy.verdict is None, healthy.verdict.summary
    grpc_server.set("app", "NOT_SERVING")
    try:
        down = await run_layout(text)
    finally:
        grpc_server.set("app", "SERVING")
    verdict = down.verdict
    assert (verdict.layer, verdict.status) == ("Orders", Status.CRIT), verdict.summary
    assert "NOT_SERVING" in verdict.summary and "LB fails because of it" in verdict.summary, verdict.summary


async def test_a_grpc_pass_to_the_wrong_pool_is_the_lb(stack):
    """nginx passes gRPC to an upstream holding a server that is not a declared backend
    (the same grpcio process without the health service): the pool check names the
    drift, and the verdict stays on the LB although the backend serves directly."""
    ports, _, grpc_server = stack
    diagnosis = await run_layout(grpc_layout(ports, grpc_server, "grpc_mis", "misrouted"))
    verdict = diagnosis.verdict
    assert (verdict.layer, verdict.status) == ("LB", Status.CRIT), verdict.summary
    pool = next(c.result for layer in diagnosis.layers for c in layer.checks if c.check.name == "pool")
    assert pool.status is Status.CRIT and pool.error_kind is ErrorKind.POOL, pool.detail
    assert f"127.0.0.1:{grpc_server.bare_port}" in pool.detail, pool.detail
    assert any(item.startswith("Orders: 1/1 SERVING directly") for item in verdict.ruled_out), verdict.ruled_out
