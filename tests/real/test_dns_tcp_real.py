"""dns and tcp probes against a real dnsmasq, silent ports and hostile servers."""

from __future__ import annotations

import socket

import pytest

from stackscope.model import ErrorKind, Status
from tests.probe_helpers import probe
from tests.servers.base import LOOPBACK, free_port
from tests.servers.dnsmasq import Dnsmasq
from tests.servers.pyservers import (
    dns_garbage,
    dns_servfail,
    dns_tcp_close_at_once,
    dns_tcp_cut,
    dns_truncated,
    garbage,
)


@pytest.fixture(scope="module")
def silent_udp():
    """A UDP port that receives queries and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory, silent_udp):
    server = Dnsmasq(
        tmp_path_factory.mktemp("dnsmasq"),
        {"api.stackscope.test": "127.0.0.10", "multi.stackscope.test": "127.0.0.11"},
        silent_port=silent_udp,
        txt={"spf.stackscope.test": ["v=spf1 -all"], "dkim.stackscope.test": ["v=DKIM1; k=rsa; ", "p=MIGfMA0GCSq"]},
    ).start()
    yield server
    server.stop()


async def test_dns_answer_matches_expectation(dnsmasq):
    result = await probe({"dns": "api.stackscope.test", "server": dnsmasq.address, "expect": ["127.0.0.10"]})
    assert result.status is Status.OK, result.detail
    assert result.facts["answers"] == ["127.0.0.10"]
    assert result.facts["ttl"] == 30
    assert result.facts["rcode"] == "NOERROR"
    assert result.key_fact == "127.0.0.10"


async def test_dns_wrong_answer_is_crit_naming_both(dnsmasq):
    result = await probe({"dns": "api.stackscope.test", "server": dnsmasq.address, "expect": "127.0.0.1"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.DNS_ANSWER
    assert "127.0.0.10" in result.detail and "expected 127.0.0.1" in result.detail


async def test_dns_nxdomain(dnsmasq):
    result = await probe({"dns": "nope.stackscope.test", "server": dnsmasq.address})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.DNS_RCODE
    assert result.key_fact == "NXDOMAIN"
    assert "does not exist" in result.detail


async def test_dns_refused_outside_the_zone(dnsmasq):
    result = await probe({"dns": "example.org", "server": dnsmasq.address})
    assert result.status is Status.CRIT
    assert result.facts["rcode"] == "REFUSED"


async def test_dns_empty_answer_for_missing_record_type(dnsmasq):
    result = await probe({"dns": "api.stackscope.test", "record": "aaaa", "server": dnsmasq.address})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.DNS_ANSWER
    assert "no AAAA record" in result.detail


async def test_dns_over_tcp(dnsmasq):
    result = await probe({"dns": "api.stackscope.test", "server": dnsmasq.address, "transport": "tcp"})
    assert result.status is Status.OK, result.detail
    assert result.facts["transport"] == "tcp"


async def test_dns_uses_layout_resolver_by_default(dnsmasq):
    result = await probe({"dns": "api.stackscope.test"}, resolver=dnsmasq.address)
    assert result.status is Status.OK
    assert result.facts["server"] == dnsmasq.address


async def test_dns_silence_is_a_timeout_naming_server_and_budget(silent_udp):
    result = await probe({"dns": "api.stackscope.test", "server": f"127.0.0.1:{silent_udp}", "timeout": "500ms"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.TIMEOUT
    assert result.detail == f"no answer from 127.0.0.1:{silent_udp} in 500ms"


async def test_dns_upstream_silence_through_dnsmasq(dnsmasq):
    result = await probe({"dns": "x.broken.stackscope.test", "server": dnsmasq.address, "timeout": "500ms"})
    assert result.status is Status.CRIT
    assert result.error_kind in (ErrorKind.TIMEOUT, ErrorKind.DNS_RCODE)


async def test_dns_servfail(pyservers):
    port = pyservers.udp(dns_servfail)
    result = await probe({"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}"})
    assert result.status is Status.CRIT
    assert result.key_fact == "SERVFAIL"
    assert "failed to resolve" in result.detail


async def test_dns_garbage_reply(pyservers):
    port = pyservers.udp(dns_garbage)
    result = await probe({"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}", "timeout": "1s"})
    assert result.status is Status.CRIT
    assert result.error_kind in (ErrorKind.PROTOCOL, ErrorKind.TIMEOUT)


CUT_TCP = {
    "close at once": dns_tcp_close_at_once,
    "length only": dns_tcp_cut(b"\x00\x01"),
    "3 of 80 bytes": dns_tcp_cut(b"\x00\x50abc"),
    "after reading": dns_tcp_cut(b""),
}


def _no_controls(text: str) -> bool:
    return not any(ord(ch) < 0x20 and ch not in "\n\t" for ch in text)


@pytest.mark.parametrize("how", CUT_TCP)
async def test_dns_over_tcp_closed_early_is_a_protocol_failure(pyservers, how):
    """dnspython raises EOFError when the stream ends early: a CRIT naming the server, not
    an internal error."""
    port = pyservers.tcp(CUT_TCP[how])
    result = await probe(
        {"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}", "transport": "tcp", "timeout": "2s"}
    )
    assert result.status is Status.CRIT, result.detail
    assert result.error_kind is ErrorKind.PROTOCOL
    assert f"the DNS server 127.0.0.1:{port} closed the TCP connection before answering" in result.detail
    assert "EOF" not in result.detail and _no_controls(result.detail)
    assert result.key_fact == "closed early"


async def test_dns_truncated_over_udp_then_tcp_closed_early(pyservers):
    port = pyservers.tcp(dns_tcp_cut(b"\x00\x50abc"))
    pyservers.udp(dns_truncated, port=port)
    result = await probe({"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}", "timeout": "2s"})
    assert result.status is Status.CRIT, result.detail
    assert result.error_kind is ErrorKind.PROTOCOL
    assert "closed the TCP connection before answering" in result.detail
    assert result.facts["transport"] == "tcp (truncated over udp)"


@pytest.mark.parametrize("check", [{"tcp": "api.stackscope.test:1"}, {"http": "http://api.stackscope.test:1/"}])
async def test_layout_resolver_truncated_then_tcp_closed_early(pyservers, check):
    """A name resolved through the layout's resolver: the same failure, as a resolve error."""
    port = pyservers.tcp(dns_tcp_close_at_once)
    pyservers.udp(dns_truncated, port=port)
    result = await probe({**check, "timeout": "2s"}, resolver=f"127.0.0.1:{port}")
    assert result.status is Status.CRIT, result.detail
    assert result.error_kind is ErrorKind.RESOLVE
    assert result.detail.startswith(
        "cannot resolve api.stackscope.test: the DNS server "
        f"127.0.0.1:{port} closed the TCP connection before answering"
    ), result.detail


async def test_dns_tcp_garbage_message_is_not_valid_dns(pyservers):
    port = pyservers.tcp(dns_tcp_cut(b"\x00\x05\x1b[2J\x07"))  # a whole 5-byte "message" of control bytes
    result = await probe(
        {"dns": "api.stackscope.test", "server": f"127.0.0.1:{port}", "transport": "tcp", "timeout": "2s"}
    )
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL, result.detail
    assert f"the DNS server 127.0.0.1:{port} sent" in result.detail and _no_controls(result.detail)


# ----------------------------------------------------------------------------- tcp


async def test_tcp_open(dnsmasq):
    result = await probe({"tcp": dnsmasq.address})
    assert result.status is Status.OK
    assert result.key_fact == "open"
    assert result.latency_ms is not None and result.latency_ms >= 0


async def test_tcp_refused():
    port = free_port()
    result = await probe({"tcp": f"127.0.0.1:{port}"})
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.REFUSED
    assert result.key_fact == "refused"


async def test_tcp_timeout_when_the_backlog_is_full():
    """A listener that never accepts, with its backlog full: SYNs are dropped, so the
    connect hangs, as behind a firewall that drops packets."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue (its real size is backlog + 1)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((LOOPBACK, port))
            fillers.append(s)
        result = await probe({"tcp": f"127.0.0.1:{port}", "timeout": "500ms"})
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.TIMEOUT
    assert "within 500ms" in result.detail


async def test_tcp_to_a_garbage_speaker_is_still_open(pyservers):
    # tcp only promises a connection; protocol checks are the job of the typed probes
    result = await probe({"tcp": f"127.0.0.1:{pyservers.tcp(garbage)}"})
    assert result.status is Status.OK


async def test_tcp_hostname_via_resolver(dnsmasq):
    result = await probe({"tcp": f"api.stackscope.test:{dnsmasq.port}"}, resolver=dnsmasq.address)
    # api.stackscope.test is 127.0.0.10: nothing listens there on the dnsmasq port
    assert result.status is Status.CRIT
    assert result.error_kind is ErrorKind.REFUSED
    assert result.facts["resolved"]["address"] == "127.0.0.10"
    assert "(127.0.0.10)" in result.detail


async def test_dns_txt_answers_are_the_text_not_zone_file_quotes(dnsmasq):
    result = await probe(
        {"dns": "spf.stackscope.test", "record": "TXT", "server": dnsmasq.address, "expect": "v=spf1 -all"}
    )
    assert result.status is Status.OK, result.detail
    assert result.facts["answers"] == ["v=spf1 -all"]


@pytest.mark.parametrize(
    "expect,ok",
    [
        ("v=DKIM1; k=rsa; p=MIGfMA0GCSq", True),  # the strings joined
        ('"v=DKIM1; k=rsa; " "p=MIGfMA0GCSq"', True),  # zone-file form
        ("v=dkim1; k=rsa; p=migfma0gcsq", False),  # TXT is case-sensitive
    ],
)
async def test_dns_txt_split_strings_join(dnsmasq, expect, ok):
    result = await probe(
        {"dns": "dkim.stackscope.test", "record": "TXT", "server": dnsmasq.address, "expect": [expect]}
    )
    assert (result.status is Status.OK) is ok, result.detail
    assert result.facts["answers"] == ["v=DKIM1; k=rsa; p=MIGfMA0GCSq"]
