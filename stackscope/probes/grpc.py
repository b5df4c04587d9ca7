"""`grpc`: ask a gRPC server's standard health service whether it serves.

One unary call, `grpc.health.v1.Health/Check`, with the check's timeout as its deadline
(`grpc-timeout`), framed by hand over HTTP/2 (h2client.py): the request is a protobuf of
one string field and the answer one enum, so grpcio (≈19 MB installed, ≈100 ms to
import, a C core with threads of its own) would buy nothing a probe needs and hide the
phases. SERVING is OK; NOT_SERVING and SERVICE_UNKNOWN are CRIT; a server without the
health service (grpc-status UNIMPLEMENTED) is UNKNOWN with the fix; any other
grpc-status is CRIT with its name and grpc-message. An answer with no grpc-status at all
(an LB's own error page) is judged by its HTTP status, as gRPC clients map it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from stackscope.kinds import Boolean, CheckSpec, FilePath, GrpcTargetKind, Text, option
from stackscope.model import ErrorKind, GrpcAnswer, Result, Status, Url
from stackscope.probes.common import Deadline, ProbeFailure, printable, reach, result, timeout_scope

HEALTH_PATH = "/grpc.health.v1.Health/Check"
BODY_CAP = 64 * 1024  # a HealthCheckResponse is 2 bytes; anything near this is not one

STATUS_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
SERVING_STATUS = ("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")
# gRPC's own mapping of an HTTP status that came without grpc-status (http-grpc-status-mapping.md)
HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


@dataclass(frozen=True)
class GrpcOptions:
    service: str = option(
        Text(), "", "Health service name to ask about (grpc.health.v1 Check); empty: the server as a whole."
    )
    authority: str | None = option(
        Text(), None, "The :authority to send (default: the target's host:port), as a virtual host or LB route."
    )
    verify_tls: bool = option(Boolean(), True, "Verify the server certificate (grpcs:// targets).")
    ca: str | None = option(FilePath(must_exist=True), None, "Extra CA file (PEM) to trust (grpcs:// targets).")


def _validate(url: Url, options: GrpcOptions) -> list[tuple[str, str, str]]:
    problems = []
    if url.scheme != "https" and (options.ca or not options.verify_tls):
        key = "ca" if options.ca else "verify_tls"
        problems.append((key, f"{key} has no effect on a cleartext target", "use grpcs://HOST:PORT, or remove it"))
    if options.ca and not options.verify_tls:
        problems.append(("ca", "ca has no effect with verify_tls: false", "remove one of the two"))
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in options.service + (options.authority or "")):
        problems.append(("service", "control characters cannot be sent", "write the service name as plain text"))
    return problems


def encode_request(service: str) -> bytes:
    """A length-prefixed gRPC message holding HealthCheckRequest{service}: field 1,
    wire type 2 (tag 0x0a), a varint length, the UTF-8 name; empty for the whole server."""
    name = service.encode()
    payload = b""
    if name:
        size, length = len(name), bytearray()
        while True:
            byte, size = size & 0x7F, size >> 7
            length.append(byte | (0x80 if size else 0))
            if not size:
                break
        payload = b"\x0a" + bytes(length) + name
    return b"\x00" + struct.pack(">I", len(payload)) + payload


class BadMessage(ValueError):
    """The response body is not one gRPC message holding a HealthCheckResponse."""


def decode_response(body: bytes) -> int:
    """The ServingStatus in a length-prefixed HealthCheckResponse (0 when field 1 is absent,
    as proto3 leaves a default value out); other fields are skipped."""
    if len(body) < 5:
        raise BadMessage(f"{len(body)} bytes, not a gRPC message (it needs a 5-byte prefix)")
    if body[0] not in (0, 1):
        raise BadMessage(f"the message starts with flag byte {body[0]}, which gRPC does not define")
    if body[0] == 1:
        raise BadMessage("the message is compressed although the probe accepts no compression")
    (size,) = struct.unpack(">I", body[1:5])
    if size != len(body) - 5:
        raise BadMessage(f"the message prefix announces {size} bytes but {len(body) - 5} came")
    data, i, status = body[5:], 0, 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            if i >= len(data) or shift > 63:
                raise BadMessage("a protobuf varint runs past the message")
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        tag = varint()
        field_no, wire = tag >> 3, tag & 7
        if field_no == 0:
            raise BadMessage("a protobuf field numbered 0")
        if wire == 0:
            value = varint()
            if field_no == 1:
                status = value
        elif wire == 1:
            i += 8
        elif wire == 2:
            size = varint()  # read first: `i += varint()` would add to the old i
            i += size
        elif wire == 5:
            i += 4
        else:
            raise BadMessage(f"protobuf wire type {wire}, not one a HealthCheckResponse uses")
        if i > len(data):
            raise BadMessage("a protobuf field runs past the message")
    return status


def grpc_timeout(seconds: float) -> str:
    """The grpc-timeout header for what is left of the deadline: at most 8 digits of ms."""
    return f"{max(1, min(int(seconds * 1000), 99_999_999))}m"


def status_name(code: int) -> str:
    return STATUS_CODES[code] if 0 <= code < len(STATUS_CODES) else f"status {code}"


def _message(raw: str | None) -> str:
    """grpc-message, percent-decoded (as gRPC sends it) and made safe again."""
    if not raw:
        return ""
    return printable(unquote_to_bytes(raw), 200)


async def probe(check, ctx) -> Result:
    from stackscope.probes import h2client

    options: GrpcOptions = check.options
    deadline = Deadline(check.timeout)
    url: Url = check.address
    endpoint = await reach(ctx, url, deadline, verify=options.verify_tls, ca=options.ca, alpn=("h2",))
    where = f"{url.host}:{url.port}" if endpoint.ip == url.host else f"{url.host}:{url.port} ({endpoint.ip})"
    facts: dict[str, Any] = {"target": url.raw, "ip": endpoint.ip, "service": options.service, **endpoint.facts}
    phases: dict[str, float] = {}
    if endpoint.facts:
        phases["dns"] = endpoint.facts["resolved"]["ms"]
    stage = h2client.Stage()
    writer = None
    try:
        async with timeout_scope(deadline.remaining()):
            started = deadline.started
            reader, writer, alpn = await h2client.connect(
                endpoint.ip,
                url.port,
                ssl_context=endpoint.ssl_context,
                sni=endpoint.sni,
                where=where,
                phases=phases,
                stage=stage,
            )
            if endpoint.ssl_context is not None:
                facts["alpn"] = alpn
                if alpn not in ("h2", None):
                    raise ProbeFailure(
                        ErrorKind.PROTOCOL,
                        f"{where} chose {printable(alpn.encode())} by ALPN, not h2: it does not serve gRPC over TLS",
                        key_fact="no h2",
                        facts=facts,
                    )
            headers = [
                (":method", "POST"),
                (":scheme", url.scheme),
                (":path", HEALTH_PATH),
                (":authority", options.authority or url.host_header),
                ("te", "trailers"),
                ("content-type", "application/grpc"),
                ("grpc-timeout", grpc_timeout(deadline.remaining())),
                ("user-agent", "stackscope"),
            ]
            response = await h2client.exchange(
                reader,
                writer,
                headers=headers,
                body=encode_request(options.service),
                body_cap=BODY_CAP,
                where=where,
                phases=phases,
                started=started,
                stage=stage,
            )
    except TimeoutError:
        raise ProbeFailure(
            ErrorKind.TIMEOUT,
            h2client.timeout_detail(stage, where, f"within {deadline.text}"),
            key_fact=h2client.TIMEOUT_FACT[stage.stage],
            facts={**facts, "phases": phases},
        ) from None
    except ProbeFailure as failure:
        failure.facts = {**facts, "phases": phases, **failure.facts}
        raise
    finally:
        if writer is not None:
            writer.transport.abort()
    latency = max(0.0, ((response.received_at or 0) - deadline.started) * 1000) or deadline.elapsed_ms()
    facts.update({"phases": phases, "http_status": response.status})
    return _judge(check, response, where, facts, latency)


def _judge(check, response, where: str, facts: dict[str, Any], latency: float) -> Result:
    options: GrpcOptions = check.options
    about = f"service '{options.service}'" if options.service else "the server"
    raw_status = response.trailer("grpc-status")
    message = _message(response.trailer("grpc-message"))
    if message:
        facts["grpc_message"] = message

    def fail(kind: ErrorKind, detail: str, key_fact: str, status: Status = Status.CRIT) -> Result:
        return result(
            check, status, detail, latency_ms=latency, key_fact=key_fact, facts=facts, kind=kind, evidence=_answer()
        )

    def _answer() -> GrpcAnswer:
        """The typed evidence: the grpc-status the server sent (not one mapped from HTTP)."""
        sent = facts.get("grpc_status_name", "") if "grpc_status" in facts else ""
        return GrpcAnswer(sent, facts.get("serving_status", ""), response.status or 0)

    if raw_status is None:
        if not response.ended:
            return fail(ErrorKind.PROTOCOL, f"{where} sent more than {BODY_CAP // 1024} KiB, no health answer", "huge")
        ctype = response.header("content-type") or ""
        mapped = HTTP_TO_GRPC.get(response.status, 2)
        what = f"HTTP {response.status}" + (f" ({printable(ctype.encode(), 40)})" if ctype else "")
        facts["grpc_status_name"] = status_name(mapped)
        if response.status == 200 and not ctype.startswith("application/grpc"):
            return fail(ErrorKind.PROTOCOL, f"{where} answered {what}, not gRPC", "not grpc")
        kind = ErrorKind.HTTP_STATUS if response.status != 200 else ErrorKind.PROTOCOL
        return fail(
            kind, f"{where} answered {what} without a grpc-status ({status_name(mapped)})", str(response.status)
        )
    if not raw_status.isdigit():
        return fail(ErrorKind.PROTOCOL, f"{where} sent grpc-status '{printable(raw_status.encode())}'", "bad status")
    code = int(raw_status)
    facts.update({"grpc_status": code, "grpc_status_name": status_name(code)})
    said = f": {message}" if message else ""
    if code == 12:
        return fail(
            ErrorKind.PROTOCOL,
            f"{where} has no health service (UNIMPLEMENTED{said}): register grpc.health.v1.Health on the server "
            "(grpcio-health-checking, grpc-go's health package) or check it with tcp",
            "no health service",
            Status.UNKNOWN,
        )
    if code == 5:
        facts["serving_status"] = "SERVICE_UNKNOWN"
        return fail(ErrorKind.STATE, f"{where} does not know {about} (NOT_FOUND{said})", "SERVICE_UNKNOWN")
    if code == 4:
        return fail(ErrorKind.TIMEOUT, f"{where} let the health check pass its deadline{said}", "DEADLINE_EXCEEDED")
    if code in (7, 16):
        return fail(ErrorKind.AUTH, f"{where} refused the health check: {status_name(code)}{said}", status_name(code))
    if code == 8:
        return fail(ErrorKind.SATURATED, f"{where} is out of resources: RESOURCE_EXHAUSTED{said}", "RESOURCE_EXHAUSTED")
    if code != 0:
        return fail(ErrorKind.STATE, f"{where} failed the health check: {status_name(code)}{said}", status_name(code))
    if not response.ended:
        return fail(ErrorKind.PROTOCOL, f"{where} sent more than {BODY_CAP // 1024} KiB, no health answer", "huge")
    try:
        serving = decode_response(response.body)
    except BadMessage as exc:
        return fail(
            ErrorKind.PROTOCOL, f"{where} sent a health answer that is not a HealthCheckResponse: {exc}", "bad message"
        )
    name = SERVING_STATUS[serving] if serving < len(SERVING_STATUS) else f"status {serving}"
    facts["serving_status"] = name
    if serving == 1:
        detail = f"{about} is SERVING ({latency:.0f} ms)"
        return result(check, Status.OK, detail, latency_ms=latency, key_fact=name, facts=facts, evidence=_answer())
    meaning = {
        2: "is NOT_SERVING",
        3: "is SERVICE_UNKNOWN to the health service",
        0: "reports status UNKNOWN (its health is not set)",
    }.get(serving, f"reports {name}, which the health protocol does not define")
    return fail(ErrorKind.STATE, f"{about} {meaning}", name)


def _warm_up(check, ctx) -> None:
    import stackscope.probes.h2client  # noqa: F401  (h2 and hpack: a slow first import, kept out of the timing)

    if check.address.scheme == "https":
        ctx.ssl_context(verify=check.options.verify_tls, ca_file=check.options.ca, alpn=("h2",))


SPEC = CheckSpec(
    key="grpc",
    doc="Call grpc.health.v1.Health/Check on a gRPC server and check it is SERVING.",
    target=GrpcTargetKind(),
    options=GrpcOptions,
    probe=probe,
    validate=_validate,
    warm_up=_warm_up,
    example="- grpc: 127.0.0.1:50051\n  service: orders.v1.Orders",
)
