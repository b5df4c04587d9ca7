"""The grpc check's layout rules and its hand-made protobuf: what a wrong layout is told,
and the bytes of the health request and answer (checked against grpcio's own encoder)."""

from __future__ import annotations

import pytest

from stackscope.layout import LayoutError
from stackscope.probes.grpc import BadMessage, decode_response, encode_request, grpc_timeout
from tests.probe_helpers import one_check


@pytest.mark.parametrize(
    "check, words",
    [
        ({"grpc": "127.0.0.1"}, "has no port"),
        ({"grpc": "grpc://127.0.0.1"}, "has no port"),
        ({"grpc": "grpc://127.0.0.1:50051/grpc.health.v1.Health/Check"}, "has a path"),
        ({"grpc": "ftp://127.0.0.1:50051"}, "not supported"),
        ({"grpc": "127.0.0.1:50051", "ca": "/etc/hostname"}, "no effect on a cleartext target"),
        ({"grpc": "127.0.0.1:50051", "service": "a\x1bb"}, "control characters"),
    ],
)
def test_a_wrong_grpc_check_is_refused_with_the_key_and_a_fix(check, words):
    with pytest.raises(LayoutError) as info:
        one_check(check)
    assert words in str(info.value)


def test_targets_keep_tls_in_the_scheme():
    tls = one_check({"grpc": "grpcs://api.test:443"}).layers[0].checks[0].address
    plain = one_check({"grpc": "api.test:50051"}).layers[0].checks[0].address
    assert (tls.scheme, tls.port, plain.scheme, plain.port) == ("https", 443, "http", 50051)


@pytest.mark.parametrize("service", ["", "x", "orders.v1.Orders", "é" * 100])
def test_the_request_is_what_grpcio_encodes(service):
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    payload = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    assert encode_request(service) == b"\x00" + len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize("status", [0, 1, 2, 3])
def test_the_answer_is_read_as_grpcio_encodes_it(status):
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    payload = health_pb2.HealthCheckResponse(status=status).SerializeToString()
    assert decode_response(b"\x00" + len(payload).to_bytes(4, "big") + payload) == status


def test_unknown_fields_are_skipped_and_truncation_is_refused():
    extra = b"\x12\x03abc\x08\x02"  # field 2 (a string), then status NOT_SERVING
    assert decode_response(b"\x00" + len(extra).to_bytes(4, "big") + extra) == 2
    with pytest.raises(BadMessage, match="runs past"):
        decode_response(b"\x00\x00\x00\x00\x02\x12\x05")


def test_grpc_timeout_fits_its_eight_digits():
    assert grpc_timeout(1.5) == "1500m"
    assert grpc_timeout(0) == "1m"
    assert grpc_timeout(10**9) == "99999999m"


@pytest.mark.parametrize(
    "check, words",
    [
        ({"http": "http://127.0.0.1:80/", "expect_protocol": "h2"}, "never offered without http2"),
        ({"http": "http://127.0.0.1:80/", "http2": "true"}, "use an https:// URL, or http2: prior-knowledge"),
        ({"http": "https://127.0.0.1/", "http2": "yes"}, "http2"),
    ],
)
def test_a_wrong_http2_option_is_refused_with_a_fix(check, words):
    with pytest.raises(LayoutError) as info:
        one_check(check)
    assert words in str(info.value)
