"""http and tls probes against a real nginx (plain and TLS) and hostile Python servers."""

from __future__ import annotations

import datetime as dt

import pytest
import trustme

from stackscope.model import ErrorKind, Status
from tests.probe_helpers import probe
from tests.servers.base import free_port
from tests.servers.dnsmasq import Dnsmasq
from tests.servers.nginx import Nginx
from tests.servers.pyservers import endless_body, garbage, recorder, responder, silent


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, and leaf certificates: valid, expired, for another name, ending in 5 days."""
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    now = dt.datetime.now(dt.timezone.utc)
    leaves = {
        "valid": ca.issue_cert("stackscope.test", "api.stackscope.test", "127.0.0.1"),
        "expired": ca.issue_cert(
            "stackscope.test", "127.0.0.1", not_before=now - dt.timedelta(days=60), not_after=now - dt.timedelta(days=3)
        ),
        "mismatch": ca.issue_cert("other.test"),
        "soon": ca.issue_cert("stackscope.test", "127.0.0.1", not_after=now + dt.timedelta(days=5, hours=1)),
    }
    paths = {"ca": d / "ca.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    for name, leaf in leaves.items():
        leaf.private_key_and_cert_chain_pem.write_to_path(str(d / f"{name}.pem"))
        paths[name] = d / f"{name}.pem"
    return paths


@pytest.fixture(scope="module")
def web(tmp_path_factory, certs):
    """nginx: plain HTTP with ok/fail/redirect/named-host locations, and four TLS ports."""
    ports = {name: free_port() for name in ("http", "valid", "expired", "mismatch", "soon")}
    tls_servers = "\n".join(
        f"""
    server {{
        listen 127.0.0.1:{ports[name]} ssl;
        ssl_certificate {certs[name]};
        ssl_certificate_key {certs[name]};
        location / {{ return 200 "tls ok\\n"; }}
    }}"""
        for name in ("valid", "expired", "mismatch", "soon")
    )
    block = f"""
    server {{
        listen 127.0.0.1:{ports["http"]} default_server;
        location = /ok {{ add_header X-Served-By web-1 always; return 200 "ok\\n"; }}
        location = /fail {{ return 500 "database unavailable\\n"; }}
        location = /redirect {{ return 302 /ok; }}
        location / {{ return 404 "default server\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{ports["http"]};
        server_name api.stackscope.test;
        location / {{ return 200 "named host\\n"; }}
    }}
    {tls_servers}
    """
    server = Nginx(tmp_path_factory.mktemp("nginx"), block, list(ports.values())).start()
    yield ports
    server.stop()


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory):
    server = Dnsmasq(
        tmp_path_factory.mktemp("dns"), {"api.stackscope.test": "127.0.0.1", "wrong.stackscope.test": "127.0.0.9"}
    ).start()
    yield server
    server.stop()


# ----------------------------------------------------------------------------- http


async def test_http_ok_with_body_and_phases(web):
    result = await probe(
        {
            "http": f"http://127.0.0.1:{web['http']}/ok",
            "expect_status": 200,
            "expect_body": "ok",
            "identity_header": "X-Served-By",
        }
    )
    assert result.status is Status.OK, result.detail
    assert result.facts["status_code"] == 200
    assert result.facts["identity"] == "web-1"
    assert {"connect", "ttfb", "total"} <= set(result.facts["phases"])
    assert "from web-1" in result.detail


async def test_http_500_is_crit_with_the_body_line(web):
    result = await probe({"http": f"http://127.0.0.1:{web['http']}/fail"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.HTTP_STATUS
    assert result.facts["status_code"] == 500
    assert "database unavailable" in result.detail


async def test_http_refused():
    port = free_port()
    result = await probe({"http": f"http://127.0.0.1:{port}/"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.REFUSED
    assert f"127.0.0.1:{port} refused" in result.detail


async def test_http_redirect_not_followed_unless_asked(web):
    url = f"http://127.0.0.1:{web['http']}/redirect"
    plain = await probe({"http": url, "expect_status": 200})
    assert plain.status is Status.CRIT and plain.facts["status_code"] == 302
    followed = await probe({"http": url, "expect_status": 200, "follow_redirects": True})
    assert followed.status is Status.OK, followed.detail
    assert len(followed.facts["redirects"]) == 1
    assert followed.facts["redirects"][0].startswith("302 → ") and followed.facts["redirects"][0].endswith("/ok")


async def test_http_body_mismatch_is_content_failure(web):
    result = await probe({"http": f"http://127.0.0.1:{web['http']}/ok", "expect_body": "healthy"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.CONTENT
    assert "lacks 'healthy'" in result.detail


async def test_http_expect_header(web):
    url = f"http://127.0.0.1:{web['http']}/ok"
    good = await probe({"http": url, "expect_header": {"X-Served-By": "web"}})
    assert good.status is Status.OK
    bad = await probe({"http": url, "expect_header": {"X-Served-By": "auth"}})
    assert bad.status is Status.CRIT and "expected 'auth'" in bad.detail


async def test_http_hostname_resolved_through_layout_resolver_keeps_host_header(web, dns_server):
    result = await probe(
        {"http": f"http://api.stackscope.test:{web['http']}/", "expect_body": "named host"}, resolver=dns_server.address
    )
    assert result.status is Status.OK, result.detail
    assert result.facts["resolved"]["via"] == dns_server.address
    assert result.facts["ip"] == "127.0.0.1"
    assert "dns" in result.facts["phases"]


async def test_http_unresolvable_name_is_a_resolve_failure(dns_server):
    result = await probe({"http": "http://missing.stackscope.test:80/"}, resolver=dns_server.address)
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.RESOLVE
    assert "NXDOMAIN" in result.detail


async def test_http_wrong_dns_answer_sends_the_probe_to_the_wrong_address(web, dns_server):
    # wrong.stackscope.test points at 127.0.0.9, where nothing listens on this port
    result = await probe({"http": f"http://wrong.stackscope.test:{web['http']}/ok"}, resolver=dns_server.address)
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.REFUSED
    assert f"wrong.stackscope.test:{web['http']} (127.0.0.9) refused" in result.detail
    assert result.facts["resolved"]["address"] == "127.0.0.9"


async def test_http_slow_server_times_out_within_budget(pyservers):
    port = pyservers.tcp(responder(delay=5))
    result = await probe({"http": f"http://127.0.0.1:{port}/", "timeout": "500ms"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.TIMEOUT
    assert "500ms" in result.detail


async def test_http_warn_ms_turns_slow_success_into_warn(pyservers):
    port = pyservers.tcp(responder(delay=0.2))
    result = await probe({"http": f"http://127.0.0.1:{port}/", "warn_ms": 50})
    assert result.status is Status.WARN
    assert result.error_kind is ErrorKind.SLOW
    assert "above warn_ms 50" in result.detail


async def test_http_garbage_server_is_protocol_failure(pyservers):
    port = pyservers.tcp(garbage)
    result = await probe({"http": f"http://127.0.0.1:{port}/", "timeout": "1s"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.PROTOCOL
    assert "HTTP" in result.detail or "broke" in result.detail


async def test_http_silent_server_times_out(pyservers):
    port = pyservers.tcp(silent)
    result = await probe({"http": f"http://127.0.0.1:{port}/", "timeout": "500ms"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.TIMEOUT


async def test_http_endless_body_is_capped(pyservers):
    port = pyservers.tcp(endless_body)
    result = await probe({"http": f"http://127.0.0.1:{port}/", "timeout": "2s"})
    assert result.status is Status.WARN, result.detail
    assert "body did not end within 64 KiB (endless or very large response); read stopped" in result.detail
    assert result.error_kind is ErrorKind.CONTENT
    assert result.facts["body_truncated"] is True
    assert result.facts["body_bytes"] == 64 * 1024
    missing = await probe({"http": f"http://127.0.0.1:{port}/", "expect_body": "end", "timeout": "2s"})
    assert missing.status is Status.CRIT
    assert "first 64 KiB" in missing.detail


async def test_http_large_declared_body_is_capped_without_failing(pyservers):
    port = pyservers.tcp(responder(body=b"y" * (1024 * 1024)))  # a 1 MiB file: large, not hostile
    result = await probe({"http": f"http://127.0.0.1:{port}/", "timeout": "2s"})
    assert result.status is Status.OK, result.detail
    assert result.facts["body_truncated"] is True and result.facts["body_bytes"] == 64 * 1024


async def test_http_layout_host_header_is_the_one_nginx_routes_on(web):
    result = await probe(
        {
            "http": f"http://127.0.0.1:{web['http']}/",
            "headers": {"host": "api.stackscope.test"},
            "expect_body": "named host",
        }
    )
    assert result.status is Status.OK, result.detail


async def test_http_layout_headers_replace_the_defaults_case_insensitively(pyservers):
    heads: list[bytes] = []
    port = pyservers.tcp(recorder(heads))
    result = await probe(
        {
            "http": f"http://127.0.0.1:{port}/",
            "headers": {
                "Host": "auth.example.com",
                "user-agent": "monitor/2",
                "Accept-Encoding": "gzip",
                "X-Probe": "1",
            },
        }
    )
    assert result.status is Status.OK, result.detail
    lines = [line.decode().lower() for line in heads[0].split(b"\r\n")[1:] if line]
    names = [line.split(":", 1)[0] for line in lines]
    assert sorted(names) == sorted(set(names)), lines  # no header sent twice
    assert "host: auth.example.com" in lines
    assert "user-agent: monitor/2" in lines and "accept-encoding: gzip" in lines and "x-probe: 1" in lines


async def test_https_valid_cert_with_sni_through_resolver(web, certs, dns_server):
    result = await probe(
        {"http": f"https://api.stackscope.test:{web['valid']}/", "ca": str(certs["ca"])}, resolver=dns_server.address
    )
    assert result.status is Status.OK, result.detail
    assert "tls" in result.facts["phases"]


async def test_https_expired_cert_is_rejected_unless_verify_off(web, certs):
    url = f"https://127.0.0.1:{web['expired']}/"
    rejected = await probe({"http": url, "ca": str(certs["ca"])})
    assert rejected.status is Status.CRIT
    assert rejected.error_kind is ErrorKind.CERT
    assert "expired" in rejected.detail
    accepted = await probe({"http": url, "verify_tls": False})
    assert accepted.status is Status.OK, accepted.detail


# ----------------------------------------------------------------------------- tls


async def test_tls_valid_certificate(web, certs):
    result = await probe({"tls": f"127.0.0.1:{web['valid']}", "sni": "stackscope.test", "ca": str(certs["ca"])})
    assert result.status is Status.OK, result.detail
    assert result.facts["subject"] and result.facts["issuer"]
    assert result.facts["days_left"] > 300
    assert result.facts["verified"] is True
    assert "stackscope.test" in result.facts["san"]


async def test_tls_expired_certificate_names_the_date(web, certs):
    result = await probe({"tls": f"127.0.0.1:{web['expired']}", "ca": str(certs["ca"])})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.CERT
    assert "expired 3 days ago" in result.detail or "expired 4 days ago" in result.detail


async def test_tls_hostname_mismatch(web, certs):
    result = await probe({"tls": f"127.0.0.1:{web['mismatch']}", "sni": "stackscope.test", "ca": str(certs["ca"])})
    assert result.status is Status.CRIT
    assert "mismatch" in result.detail.lower() or "not valid for" in result.detail
    assert result.facts["san"] == ["other.test"]


async def test_tls_untrusted_unless_verify_off(web):
    untrusted = await probe({"tls": f"127.0.0.1:{web['valid']}", "sni": "stackscope.test"})
    assert untrusted.status is Status.CRIT
    assert "rejected" in untrusted.detail
    unverified = await probe({"tls": f"127.0.0.1:{web['valid']}", "sni": "stackscope.test", "verify": False})
    assert unverified.status is Status.OK, unverified.detail
    assert unverified.facts["verified"] is False


async def test_tls_ending_soon_warns(web, certs):
    result = await probe({"tls": f"127.0.0.1:{web['soon']}", "sni": "stackscope.test", "ca": str(certs["ca"])})
    assert result.status is Status.WARN
    assert result.facts["days_left"] == 5
    assert "ends in 5 days" in result.detail


async def test_tls_against_plain_http_port(web):
    result = await probe({"tls": f"127.0.0.1:{web['http']}", "timeout": "1s"})
    assert result.status is Status.CRIT
    assert result.error_kind in (ErrorKind.TLS, ErrorKind.PROTOCOL)


async def test_tls_against_garbage_and_silence(pyservers):
    noisy = await probe({"tls": f"127.0.0.1:{pyservers.tcp(garbage)}", "timeout": "1s"})
    assert noisy.status is Status.CRIT
    quiet = await probe({"tls": f"127.0.0.1:{pyservers.tcp(silent)}", "timeout": "500ms"})
    assert quiet.status is Status.CRIT
    assert quiet.error_kind is ErrorKind.TIMEOUT


async def test_tls_silent_port_is_a_handshake_timeout_not_a_connect_failure(pyservers):
    port = pyservers.tcp(silent)
    result = await probe({"tls": f"127.0.0.1:{port}", "timeout": "500ms"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.TIMEOUT
    assert result.detail == f"127.0.0.1:{port} accepted TCP but the TLS handshake did not finish within 500ms"
    assert result.key_fact == "tls timeout"


async def test_tls_hostname_match_is_recorded_with_and_without_verify(web, certs):
    valid = await probe({"tls": f"127.0.0.1:{web['valid']}", "ca": str(certs["ca"])})
    assert valid.status is Status.OK and valid.facts["hostname_match"] is True
    other = await probe({"tls": f"127.0.0.1:{web['mismatch']}", "verify": False})
    assert other.facts["hostname_match"] is False and other.facts["verified"] is False
