"""A minimal HTTP/2 client for probes: one stream on one connection, every phase timed.

Built on `h2`, httpx's own HTTP/2 state machine, for the reasons httpclient.py gives for
h11: the phases, the first byte and the caps on what is read stay ours. A hostile peer
gets no more than the caps allow: the bytes read in all (body cap plus a fixed headroom
for frames that are not the body), the frames processed (a SETTINGS or PING flood), the
header list (h2 refuses more than MAX_HEADER_LIST bytes of decoded headers, an HPACK bomb
included, and more than 64 CONTINUATION frames), and the deadline over all of it.

Used by the `grpc` check (a unary call) and by the `http` check with `http2:`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from stackscope.model import ErrorKind
from stackscope.probes import httpclient
from stackscope.probes.common import Deadline, ProbeFailure, describe_os_error, guess_protocol, printable, timeout_scope
from stackscope.probes.httpclient import HttpResponse, _shown, _stamp_arrivals, start_tls

READ_SIZE = 65536
MAX_HEADER_LIST = 64 * 1024
HEADROOM = 1024 * 1024  # bytes besides the body a peer may send (frames, padding) before it is a flood
MAX_EVENTS = 5000  # h2 events in one exchange: SETTINGS, PING, WINDOW_UPDATE, unknown frames…

# RST_STREAM and GOAWAY codes, as the operator should read them
ERROR_CODES = {
    0: "NO_ERROR",
    1: "PROTOCOL_ERROR",
    2: "INTERNAL_ERROR",
    3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT",
    5: "STREAM_CLOSED",
    6: "FRAME_SIZE_ERROR",
    7: "REFUSED_STREAM",
    8: "CANCEL",
    9: "COMPRESSION_ERROR",
    10: "CONNECT_ERROR",
    11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY",
    13: "HTTP_1_1_REQUIRED",
}


def code_name(code: int | None) -> str:
    return ERROR_CODES.get(int(code or 0), f"error code {int(code or 0)}")


@dataclass
class H2Response:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, pseudo-headers left out, as shown anywhere
    body: bytes
    truncated: bool
    trailers: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = True  # the stream ended (END_STREAM) rather than being cut at the cap
    received_at: float | None = None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def trailer(self, name: str) -> str | None:
        """A trailer, or for a Trailers-Only answer (one HEADERS frame) the same header."""
        for key, value in self.trailers:
            if key == name:
                return value
        return self.header(name)


class Stage:
    """Where the exchange got to, so a timeout names the step the peer stalled in."""

    def __init__(self) -> None:
        self.stage = "connect"
        self.status: int | None = None


def new_connection() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=True)
    )
    conn.local_settings = h2.settings.Settings(
        client=True,
        initial_values={
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1,
        },
    )
    return conn


async def connect(
    ip: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    sni: str | None,
    where: str,
    phases: dict[str, float],
    stage: Stage,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str | None]:
    """TCP, then TLS (the caller bounds the time): (reader, writer, the ALPN protocol the
    server chose, None for cleartext or a server that chose none)."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(ip, port, limit=READ_SIZE)
    except OSError as exc:
        kind, detail, key_fact = describe_os_error(exc, where)
        raise ProbeFailure(kind, detail, key_fact=key_fact) from None
    now = time.perf_counter()
    phases["connect"] = round((now - started) * 1000, 2)
    if ssl_context is None:
        return reader, writer, None
    stage.stage = "tls"
    try:
        reader, writer = await start_tls(reader, writer, ssl_context, sni, where)
    except BaseException:
        writer.transport.abort()
        raise
    phases["tls"] = round((time.perf_counter() - now) * 1000, 2)
    ssl_object = writer.get_extra_info("ssl_object")
    return reader, writer, ssl_object.selected_alpn_protocol() if ssl_object is not None else None


TIMEOUT_FACT = {
    "connect": "timeout",
    "tls": "tls timeout",
    "send": "no response",
    "response": "no response",
    "body": "slow body",
}


def timeout_detail(stage: Stage, where: str, within: str) -> str:
    return {
        "connect": f"no connection to {where} {within}",
        "tls": f"{where} accepted TCP but the TLS handshake did not finish {within}",
        "send": f"{where} accepted the connection but did not take the request {within}",
        "response": f"{where} accepted the connection but sent no HTTP/2 response {within}",
        "body": f"{where} sent {stage.status} but the response did not end {within}",
    }[stage.stage]


def _protocol_failure(where: str, what: str, key_fact: str = "bad http/2") -> ProbeFailure:
    return ProbeFailure(ErrorKind.PROTOCOL, f"{where} {what}", key_fact=key_fact)


async def exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    headers: list[tuple[str, str]],
    body: bytes | None,
    body_cap: int,
    where: str,
    phases: dict[str, float],
    started: float,
    stage: Stage,
) -> H2Response:
    """Send one request on a fresh connection and read its response (the caller bounds
    the time and closes the connection). Raises ProbeFailure for every way it fails."""
    conn = new_connection()
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, headers, end_stream=body is None)
    if body is not None:
        conn.send_data(sid, body, end_stream=True)
    stage.stage = "send"
    try:
        writer.write(conn.data_to_send())
        await writer.drain()
    except OSError as exc:
        raise _protocol_failure(where, f"did not take the request: {exc.strerror or exc}", "send failed") from None
    sent_at = time.perf_counter()
    stage.stage = "response"
    arrival = _stamp_arrivals(writer)

    first_bytes = b""
    received = 0
    events = 0
    status: int | None = None
    response_headers: list[tuple[str, str]] = []
    trailers: list[tuple[str, str]] = []
    data = bytearray()
    truncated = False
    while True:
        try:
            chunk = await reader.read(READ_SIZE)
        except OSError as exc:
            kind, detail, key_fact = describe_os_error(exc, where)
            raise ProbeFailure(kind, detail, key_fact=key_fact) from None
        if not chunk:
            if status is None and first_bytes and first_bytes[3:4] != b"\x04":
                raise _not_h2(where, first_bytes, None, status)
            if status is None:
                after = f" after sending '{printable(first_bytes)}'" if first_bytes else ""
                raise _protocol_failure(where, f"closed the connection without a response{after}", "closed")
            raise _protocol_failure(where, f"closed the connection before the {status} response ended", "cut short")
        if not first_bytes:
            first_bytes = chunk[:64]
        received += len(chunk)
        if received > body_cap + HEADROOM:
            raise _protocol_failure(
                where, f"sent {received // 1024} KiB without finishing a {body_cap // 1024} KiB response", "flood"
            )
        try:
            batch = conn.receive_data(chunk)
        except h2.exceptions.ProtocolError as exc:
            raise _not_h2(where, first_bytes, exc, status) from None
        for event in batch:
            events += 1
            if events > MAX_EVENTS:
                raise _protocol_failure(
                    where, f"sent more than {MAX_EVENTS} HTTP/2 frames without finishing the response", "flood"
                )
            if getattr(event, "stream_id", sid) not in (sid, 0) and not isinstance(event, h2.events.WindowUpdated):
                continue  # a frame on a stream we did not open (h2 refuses most of those itself)
            if isinstance(event, h2.events.ResponseReceived):
                status, response_headers = _split(event.headers)
                stage.stage, stage.status = "body", status
                phases["ttfb"] = round((time.perf_counter() - sent_at) * 1000, 2)
            elif isinstance(event, h2.events.TrailersReceived):
                trailers = _split(event.headers)[1]
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                data.extend(event.data)
                if len(data) >= body_cap:
                    truncated = True
                    del data[body_cap:]
            elif isinstance(event, h2.events.StreamEnded):
                return _done(status, response_headers, data, truncated, trailers, arrival, phases, started, True)
            elif isinstance(event, h2.events.StreamReset):
                raise _protocol_failure(
                    where, f"reset the stream ({code_name(event.error_code)})", code_name(event.error_code).lower()
                )
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise _protocol_failure(
                    where,
                    f"ended the connection (GOAWAY {code_name(event.error_code)})"
                    + (f": {printable(event.additional_data, 100)}" if event.additional_data else ""),
                    "goaway",
                )
        if truncated:
            return _done(status, response_headers, data, truncated, trailers, arrival, phases, started, False)
        pending = conn.data_to_send()
        if pending:
            writer.write(pending)  # SETTINGS and PING acknowledgements, WINDOW_UPDATEs


def _done(status, headers, data, truncated, trailers, arrival, phases, started, ended) -> H2Response:
    if status is None:  # h2 refuses a stream that ends before its headers; kept for mypy's sake
        status = 0
    received_at = arrival[0] or time.perf_counter()
    phases["total"] = round((received_at - started) * 1000, 2)
    return H2Response(status, headers, bytes(data), truncated, trailers, ended, received_at)


def _split(raw: list) -> tuple[int | None, list[tuple[str, str]]]:
    """(:status, the other headers as safe text) from h2's header list."""
    status: int | None = None
    out: list[tuple[str, str]] = []
    for name, value in raw:
        if name == b":status":
            status = int(value) if value.isdigit() else None
        elif not name.startswith(b":"):
            out.append((name.decode("latin-1").lower(), _shown(value)))
    return status, out


def _not_h2(where: str, first_bytes: bytes, exc: Exception | None, status: int | None) -> ProbeFailure:
    """A peer h2 could not follow: not HTTP/2 at all (an HTTP/1.1 server answering the
    preface, a TLS port), or HTTP/2 with a broken frame, header block or flow control."""
    if status is None and first_bytes[3:4] != b"\x04":  # an HTTP/2 server speaks first with SETTINGS (type 4)
        what = guess_protocol(first_bytes)
        return ProbeFailure(
            ErrorKind.PROTOCOL,
            f"{where} does not speak HTTP/2: it sent '{printable(first_bytes)}' ({what} answered)",
            key_fact="not http/2",
        )
    reason = printable(str(exc).encode("utf-8", "replace"), 120)
    if isinstance(exc, h2.exceptions.DenialOfServiceError):
        return _protocol_failure(where, f"sent more headers than a probe reads ({reason})", "header bomb")
    return _protocol_failure(where, f"broke the HTTP/2 protocol: {reason}")


# Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); Host becomes :authority.
_NOT_IN_H2 = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}


async def fetch(
    ip: str,
    port: int,
    *,
    deadline: Deadline,
    mode: str,
    method: str,
    scheme: str,
    target: str,
    host_header: str,
    headers: list[tuple[str, str]],
    ssl_context: ssl.SSLContext | None,
    sni: str | None,
    body_cap: int,
    where: str,
) -> HttpResponse:
    """One request for the http check with `http2:` set: over TLS h2 is offered by ALPN
    (`auto` falls back to HTTP/1.1 on the same connection when the server picks it,
    `true` fails); on cleartext `prior-knowledge` sends the HTTP/2 preface at once and
    `auto` speaks HTTP/1.1 (the h2c Upgrade is deprecated by RFC 9113)."""
    if ssl_context is None and mode != "prior-knowledge":
        return await httpclient.fetch(
            ip,
            port,
            deadline=deadline,
            method=method,
            target=target,
            host_header=host_header,
            headers=headers,
            ssl_context=None,
            sni=sni,
            body_cap=body_cap,
            where=where,
        )
    stage = Stage()
    phases: dict[str, float] = {}
    writer = None
    try:
        async with timeout_scope(deadline.remaining()):
            started = time.perf_counter()
            reader, writer, alpn = await connect(
                ip, port, ssl_context=ssl_context, sni=sni, where=where, phases=phases, stage=stage
            )
            if ssl_context is not None and alpn != "h2":
                if mode != "auto":
                    chose = f"chose {printable((alpn or '').encode())}" if alpn else "chose no protocol"
                    raise ProbeFailure(
                        ErrorKind.PROTOCOL, f"{where} {chose} by ALPN, not h2 (http2: {mode})", key_fact="no h2"
                    )
                progress = httpclient._Progress()
                response = await httpclient._exchange(
                    reader, writer, method, target, host_header, headers, body_cap, where, phases, started, progress
                )
                return response
            request = [(":method", method), (":scheme", scheme), (":path", target), (":authority", host_header)]
            request += [(name.lower(), value) for name, value in headers if name.lower() not in _NOT_IN_H2]
            answer = await exchange(
                reader,
                writer,
                headers=request,
                body=None,
                body_cap=body_cap,
                where=where,
                phases=phases,
                started=started,
                stage=stage,
            )
    except TimeoutError:
        raise ProbeFailure(
            ErrorKind.TIMEOUT,
            timeout_detail(stage, where, f"within {deadline.text}"),
            key_fact=TIMEOUT_FACT[stage.stage],
        ) from None
    finally:
        if writer is not None:
            writer.transport.abort()
    length = answer.header("content-length")
    return HttpResponse(
        status=answer.status,
        reason="",
        http_version="HTTP/2",
        headers=answer.headers,
        body=answer.body,
        truncated=answer.truncated,
        phases=phases,
        declared_length=int(length) if length is not None and length.isdigit() else None,
        received_at=answer.received_at,
    )
