"""The grpc check against a real grpcio server with the standard health service, switched
between SERVING and NOT_SERVING while the test runs, and against hostile HTTP/2 peers."""

from __future__ import annotations

import asyncio
import struct

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
import trustme

from stackscope.model import ErrorKind, GrpcAnswer, Status
from tests.probe_helpers import PYTHON_NAMES, probe
from tests.servers.grpc_health import GrpcHealthServer
from tests.servers.pyservers import responder

pytest.importorskip("grpc_health.v1.health")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpc-certs")
    ca = trustme.CA()
    leaf = ca.issue_cert("grpc.stackscope.test", "127.0.0.1")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    return d


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory, certs):
    server = GrpcHealthServer(tmp_path_factory.mktemp("grpc"), tls=(str(certs / "cert.pem"), str(certs / "key.pem")))
    server.start()
    yield server
    server.stop()


async def test_serving_then_not_serving_then_serving_again(grpc_server):
    check = {"grpc": f"127.0.0.1:{grpc_server.port}", "service": "app"}
    first = await probe(check)
    assert first.status is Status.OK, first.detail
    assert first.facts["serving_status"] == "SERVING"
    assert {"connect", "ttfb", "total"} <= set(first.facts["phases"])
    grpc_server.set("app", "NOT_SERVING")
    try:
        down = await probe(check)
    finally:
        grpc_server.set("app", "SERVING")
    assert down.status is Status.CRIT and down.error_kind is ErrorKind.STATE
    assert "NOT_SERVING" in down.detail and "'app'" in down.detail
    assert first.evidence == GrpcAnswer("OK", "SERVING", 200)
    assert down.evidence == GrpcAnswer("OK", "NOT_SERVING", 200)  # what the diagnosis reads
    assert (await probe(check)).status is Status.OK


async def test_the_whole_server_and_an_unknown_service(grpc_server):
    whole = await probe({"grpc": f"grpc://127.0.0.1:{grpc_server.port}"})
    assert whole.status is Status.OK and "the server is SERVING" in whole.detail
    unknown = await probe({"grpc": f"127.0.0.1:{grpc_server.port}", "service": "billing.v1.Billing"})
    assert unknown.status is Status.CRIT
    assert unknown.facts["grpc_status_name"] == "NOT_FOUND" and "billing.v1.Billing" in unknown.detail


async def test_a_server_without_the_health_service_is_unknown_with_the_fix(grpc_server):
    result = await probe({"grpc": f"127.0.0.1:{grpc_server.bare_port}"})
    assert result.status is Status.UNKNOWN, result.detail
    assert "UNIMPLEMENTED" in result.detail and "grpc.health.v1.Health" in result.detail


async def test_grpcs_with_the_ca_negotiates_h2_and_without_it_rejects_the_certificate(grpc_server, certs):
    target = f"grpcs://127.0.0.1:{grpc_server.tls_port}"
    ok = await probe({"grpc": target, "ca": str(certs / "ca.pem")})
    assert ok.status is Status.OK, ok.detail
    assert ok.facts["alpn"] == "h2" and "tls" in ok.facts["phases"]
    untrusted = await probe({"grpc": target})
    assert untrusted.status is Status.CRIT and untrusted.error_kind is ErrorKind.CERT


# ------------------------------------------------------------------- hostile peers


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


SETTINGS = _frame(4, 0, 0, b"")


def _h2_server(reply):
    """A peer that speaks HTTP/2 with h2 and answers stream 1 with `reply(conn, writer)`."""

    async def handler(reader, writer):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, validate_outbound_headers=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        for _ in range(100):
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    await reply(conn, writer, reader)
                    return
            writer.write(conn.data_to_send())

    return handler


def _grpc_headers(conn, status=200):
    conn.send_headers(1, [(":status", str(status)), ("content-type", "application/grpc")])


async def test_a_peer_that_never_sends_headers_times_out_naming_the_step(pyservers):
    async def silent_after_settings(reader, writer):
        writer.write(SETTINGS)
        await reader.read(65536)
        await asyncio.sleep(30)

    result = await probe({"grpc": f"127.0.0.1:{pyservers.tcp(silent_after_settings)}"}, timeout="0.5s")
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.TIMEOUT
    assert "sent no HTTP/2 response within 500ms" in result.detail


async def test_an_endless_stream_is_cut_at_the_cap(pyservers):
    sent = []

    async def endless(conn, writer, reader):
        _grpc_headers(conn)
        writer.write(conn.data_to_send())
        for _ in range(4096):  # at most 64 MiB
            window = conn.local_flow_control_window(1)
            if window:
                conn.send_data(1, b"\0" * min(window, 16384))
                sent.append(min(window, 16384))
            writer.write(conn.data_to_send())
            await writer.drain()
            if not window:
                data = await reader.read(65536)
                if not data:
                    return
                conn.receive_data(data)

    result = await probe({"grpc": f"127.0.0.1:{pyservers.tcp(_h2_server(endless))}"}, timeout="3s")
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL
    assert "more than 64 KiB" in result.detail
    assert sum(sent) > 64 * 1024


@pytest.mark.parametrize(
    "body, words",
    [
        (b"\x00\x00\x00\x00\x09\x08\x01", "announces 9 bytes but 2 came"),
        (b"\x00\x00\x00\x00\x02\x08\xff", "varint runs past"),
        (b"\x07\x00\x00\x00\x02\x08\x01", "flag byte 7"),
        (b"\x00\x00\x00\x00\x02\x0f\x01", "wire type 7"),
    ],
)
async def test_a_bad_grpc_frame_or_protobuf_is_crit_saying_what_is_wrong(pyservers, body, words):
    async def bad(conn, writer, reader):
        _grpc_headers(conn)
        conn.send_data(1, body)
        conn.send_headers(1, [("grpc-status", "0")], end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()
        await reader.read(65536)

    result = await probe({"grpc": f"127.0.0.1:{pyservers.tcp(_h2_server(bad))}"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL
    assert "not a HealthCheckResponse" in result.detail and words in result.detail, result.detail


@pytest.mark.parametrize("flood", [SETTINGS, _frame(6, 0, 0, b"12345678")], ids=["settings", "ping"])
async def test_a_settings_or_ping_flood_is_crit_within_the_timeout(pyservers, flood):
    async def flooding(reader, writer):
        writer.write(SETTINGS)
        await reader.read(65536)
        for _ in range(200):  # 200 × 1000 frames, far past the probe's limit
            writer.write(flood * 1000)
            await writer.drain()

    result = await probe({"grpc": f"127.0.0.1:{pyservers.tcp(flooding)}"}, timeout="3s")
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL
    assert "flood" == result.key_fact and "without finishing the response" in result.detail, result.detail


async def test_an_hpack_header_bomb_is_refused(pyservers):
    encoder = hpack.Encoder()
    block = encoder.encode([(":status", "200"), ("content-type", "application/grpc")] + [("x-bomb", "a" * 4000)] * 64)
    assert len(block) < 16384  # one small frame that decodes to 256 KB

    async def bomb(reader, writer):
        writer.write(SETTINGS)
        await reader.read(65536)
        writer.write(_frame(1, 0x4, 1, block))  # HEADERS, END_HEADERS, stream 1
        await reader.read(65536)

    result = await probe({"grpc": f"127.0.0.1:{pyservers.tcp(bomb)}"})
    assert result.status is Status.CRIT and result.key_fact == "header bomb", result.detail
    assert not PYTHON_NAMES.search(result.detail)


async def test_an_http1_server_is_named_as_such(pyservers):
    port = pyservers.tcp(responder(200, b"ok\n"))
    result = await probe({"grpc": f"127.0.0.1:{port}"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL
    assert "does not speak HTTP/2" in result.detail and "an HTTP server answered" in result.detail, result.detail


async def test_an_lb_error_page_without_grpc_status_is_judged_by_its_http_status(pyservers):
    async def bad_gateway(conn, writer, reader):
        conn.send_headers(1, [(":status", "502"), ("content-type", "text/html")], end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()
        await reader.read(65536)

    result = await probe({"grpc": f"127.0.0.1:{pyservers.tcp(_h2_server(bad_gateway))}"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.HTTP_STATUS
    assert "HTTP 502" in result.detail and "UNAVAILABLE" in result.detail, result.detail
    assert result.evidence == GrpcAnswer("", "", 502)  # no grpc-status was sent: the mapped one is not evidence
