"""A minimal HTTP/1.1 client for probes: one request per connection, every phase timed.

Why not httpx: measured on a 2-core CI-class machine, an httpx request costs about 1.3 ms
of CPU, so a 1000-check round took 1.3 s, and importing httpx+httpcore costs ~230 ms of
every cold `stackscope check`. The same exchange on asyncio streams with h11 (the HTTP
parser httpx itself uses) costs 0.34 ms. A probe also wants what a general client hides:
the exact connect, TLS and first-byte times, a hard cap on what is read, the IP to
connect to kept apart from the Host header and SNI, and the first bytes a non-HTTP server
sent, so the error can say what answered instead of "protocol error".
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import h11

from stackscope.model import ErrorKind, Status, Url
from stackscope.probes.common import (
    Deadline,
    Endpoint,
    ProbeFailure,
    describe_os_error,
    guess_protocol,
    printable,
    timeout_scope,
    upgrade_stream,
)
from stackscope.safetext import terminal_safe

READ_SIZE = 16384
MAX_HEADER_BYTES = 64 * 1024  # bigger response heads are refused by h11, so reads stay bounded


@dataclass
class HttpResponse:
    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]]  # names lower-cased, in order received
    body: bytes
    truncated: bool
    phases: dict[str, float] = field(default_factory=dict)  # ms: connect, tls, ttfb, total
    # Content-Length as the server declared it (None: chunked or until close). A body cut
    # at the cap with a declared length is merely large; one with no declared end that is
    # still coming may be endless.
    declared_length: int | None = None
    # perf_counter() when the last bytes of the response arrived: taken in the protocol's
    # data_received, before the reading task is woken, so a busy event loop adds less to it
    received_at: float | None = None

    @property
    def endless(self) -> bool:
        """The read stopped at the cap and the server had declared no end to the body."""
        return self.truncated and self.declared_length is None

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def status_text(self) -> str:
        return f"{self.status} {self.reason}".strip()


class _Progress:
    """Where an exchange got to, so one timeout for the whole of it can still say which
    step the server stalled in."""

    def __init__(self) -> None:
        self.stage = "connect"
        self.status: int | None = None


async def fetch(
    ip: str,
    port: int,
    *,
    deadline: Deadline,
    method: str = "GET",
    target: str = "/",
    host_header: str,
    headers: list[tuple[str, str]] | tuple[()] = (),
    ssl_context: ssl.SSLContext | None = None,
    sni: str | None = None,
    body_cap: int = 64 * 1024,
    where: str | None = None,
) -> HttpResponse:
    """One request to ip:port; raise ProbeFailure saying precisely what went wrong."""
    where = where or f"{ip}:{port}"
    progress = _Progress()
    wire = _Wire()
    try:
        async with timeout_scope(deadline.remaining()):
            started = time.perf_counter()
            phases: dict[str, float] = {}
            loop = asyncio.get_running_loop()
            try:
                await loop.create_connection(lambda: wire, ip, port)
            except OSError as exc:
                kind, detail, key_fact = describe_os_error(exc, where)
                raise ProbeFailure(kind, detail, key_fact=key_fact) from None
            now = time.perf_counter()
            phases["connect"] = round((now - started) * 1000, 2)
            if ssl_context is not None:
                progress.stage = "tls"
                assert wire.transport is not None  # connected
                with _tls_failures(where):
                    upgraded = await loop.start_tls(wire.transport, wire, ssl_context, server_hostname=sni)
                wire.upgraded(upgraded)
                phases["tls"] = round((time.perf_counter() - now) * 1000, 2)
            return await _exchange(
                wire, wire, method, target, host_header, list(headers), body_cap, where, phases, started, progress
            )
    except TimeoutError:
        raise ProbeFailure(
            ErrorKind.TIMEOUT, _timeout_detail(progress, where, deadline), key_fact=_TIMEOUT_FACT[progress.stage]
        ) from None
    finally:
        if wire.transport is not None:
            wire.transport.abort()  # never wait on a peer to agree to close


class _Wire(asyncio.Protocol):
    """One connection of one exchange, read and written by `_exchange` as it would a
    StreamReader and StreamWriter. A StreamReader, a StreamWriter and their protocol per
    probe cost measurably more (bench/versus_blackbox.py); this keeps only what an exchange
    uses: a buffer, the end of the stream or its error, one waiter, and the moment the
    latest bytes arrived (stamped here, before the reading task runs: with a thousand
    probes in flight, that pass of the loop is what a probe would otherwise count as the
    server's time)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.arrival: list[float | None] = [None]
        self._buffer = bytearray()
        self._ended = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused: asyncio.Future[None] | None = None  # writing paused by the transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream connection's

    def upgraded(self, transport: asyncio.Transport | None) -> None:
        """The TLS transport start_tls returned (None only on a closing loop)."""
        if transport is None:
            raise ConnectionResetError("the event loop closed during the TLS handshake")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.arrival[0] = time.perf_counter()
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return False  # close our side too: nothing more is sent after the request

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._error = exc
        self._wake()
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    def pause_writing(self) -> None:
        self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        self._paused = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" once the peer has closed; the connection's error."""
        while not self._buffer:
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def write(self, data: bytes) -> None:
        assert self.transport is not None  # connected
        self.transport.write(data)

    async def drain(self) -> None:
        if self._error is not None:
            raise self._error
        if self._paused is not None:
            await self._paused


_TIMEOUT_FACT = {
    "connect": "timeout",
    "tls": "tls timeout",
    "send": "no response",
    "response": "no response",
    "body": "slow body",
}


def _timeout_detail(progress: _Progress, where: str, deadline: Deadline) -> str:
    within = f"within {deadline.text}"
    return {
        "connect": f"no connection to {where} {within}",
        "tls": f"{where} accepted TCP but the TLS handshake did not finish {within}",
        "send": f"{where} accepted the connection but did not take the request {within}",
        "response": f"{where} accepted the connection but sent no response {within}",
        "body": f"{where} sent {progress.status} but the body did not finish {within}",
    }[progress.stage]


async def start_tls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext, sni: str | None, where: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Upgrade a connected stream to TLS (the caller bounds the time). Connecting first and
    then shaking hands lets a timeout say which of the two the server never finished; a
    rejected certificate is a CERT failure whose cause is the SSLCertVerificationError."""
    with _tls_failures(where):
        return reader, await upgrade_stream(reader, writer, context, sni)


@contextlib.contextmanager
def _tls_failures(where: str) -> Iterator[None]:
    """A failed TLS handshake as a ProbeFailure: a rejected certificate is a CERT failure
    whose cause is the SSLCertVerificationError, anything else a TLS one."""
    try:
        yield
    except ssl.SSLCertVerificationError as exc:
        raise ProbeFailure(
            ErrorKind.CERT, f"certificate of {where} rejected: {exc.verify_message}", key_fact="bad cert"
        ) from exc
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        raise ProbeFailure(
            ErrorKind.TLS, f"TLS handshake with {where} failed: {reason}", key_fact="tls error"
        ) from None


async def _exchange(
    reader: asyncio.StreamReader | _Wire,
    writer: asyncio.StreamWriter | _Wire,
    method: str,
    target: str,
    host_header: str,
    headers: list[tuple[str, str]],
    body_cap: int,
    where: str,
    phases: dict[str, float],
    started: float,
    progress: _Progress,
) -> HttpResponse:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    progress.stage = "send"
    try:
        writer.write(conn.send(_request_event(method, target, host_header, tuple(headers))))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
    except OSError as exc:
        raise ProbeFailure(
            ErrorKind.PROTOCOL, f"{where} did not take the request: {exc}", key_fact="send failed"
        ) from None
    except h11.LocalProtocolError as exc:
        # the layout validator refuses headers HTTP cannot carry, so this is our bug, not the target's
        raise ProbeFailure(
            ErrorKind.INTERNAL, f"cannot build the request: {exc}", key_fact="bad request", status=Status.UNKNOWN
        ) from None
    sent_at = time.perf_counter()
    progress.stage = "response"
    arrival = _stamp_arrivals(writer)

    first_bytes = b""
    closed = False  # the peer closed its side (h11 then says whether the message was whole)
    response: h11.Response | None = None
    body = bytearray()
    truncated = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            what = guess_protocol(first_bytes)
            sent = f": it sent '{printable(first_bytes)}'" if first_bytes else ""
            if closed and response is not None:  # the body HTTP announced did not all come: not a whole page
                raise ProbeFailure(
                    ErrorKind.PROTOCOL, _cut_detail(where, response, len(body)), key_fact="cut short"
                ) from None
            if what == "an HTTP server" or response is not None:
                detail = f"{where} sent a malformed HTTP response ({h11_problem(exc)})"
            else:
                detail = f"{where} does not speak HTTP{sent} ({what} answered)"
            raise ProbeFailure(ErrorKind.PROTOCOL, detail, key_fact="not http") from None
        if event is h11.NEED_DATA:
            try:
                data = await reader.read(READ_SIZE)
            except OSError as exc:
                kind, detail, key_fact = describe_os_error(exc, where)
                if kind is ErrorKind.PROTOCOL:
                    detail = f"{where} broke the connection while sending the " + (
                        "response" if response is None else "body"
                    )
                raise ProbeFailure(kind, detail, key_fact=key_fact) from None
            if not first_bytes:
                first_bytes = data[:64]
            if not data and response is None:
                after = f" after sending '{printable(first_bytes)}'" if first_bytes else ""
                raise ProbeFailure(
                    ErrorKind.PROTOCOL, f"{where} closed the connection without a response{after}", key_fact="closed"
                )
            closed = closed or not data
            conn.receive_data(data)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            response = event
            progress.stage, progress.status = "body", event.status_code
            phases["ttfb"] = round((time.perf_counter() - sent_at) * 1000, 2)
            continue
        if isinstance(event, h11.Data):
            body.extend(event.data)
            if len(body) >= body_cap:
                truncated = True  # reading stopped at the cap; the rest is never fetched
                del body[body_cap:]
                break
            continue
        if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    assert response is not None
    received_at = arrival[0] or time.perf_counter()
    phases["total"] = round((received_at - started) * 1000, 2)
    length = next((v for k, v in response.headers if k == b"content-length"), None)
    return HttpResponse(
        status=response.status_code,
        reason=_shown(response.reason),
        http_version="HTTP/" + response.http_version.decode("ascii", "replace"),
        headers=[(k.decode("latin-1").lower(), _shown(v)) for k, v in response.headers],
        body=bytes(body),
        truncated=truncated,
        phases=phases,
        declared_length=int(length) if length is not None and length.isdigit() else None,
        received_at=received_at,
    )


_EVENTS: dict[tuple[str, str, str, tuple[tuple[str, str], ...]], h11.Request] = {}
# ~1 KiB an event: 2 MiB at most, which holds every request of a round that is not sharded
# (under 2000 checks); a worker of a sharded round rebuilds them rather than grow its memory
MAX_EVENTS = 2048


def _request_event(method: str, target: str, host_header: str, headers: tuple[tuple[str, str], ...]) -> h11.Request:
    """The request as an h11 event, built once per distinct request: h11 validates every
    header when the event is made (a tenth of a probe's CPU), and the same check sends the
    same request every round. Bounded: redirects can name new targets without end."""
    key = (method, target, host_header, headers)
    try:
        event = _EVENTS.get(key)
        keep = True
    except TypeError:  # a header given as something unhashable: build it, do not keep it
        event, keep = None, False
    if event is None:
        event = h11.Request(
            method=method, target=target, headers=[("Host", host_header), ("Connection", "close"), *headers]
        )
        if keep:
            if len(_EVENTS) >= MAX_EVENTS:
                _EVENTS.clear()
            _EVENTS[key] = event
    return event


def _cut_detail(where: str, response: h11.Response, received: int) -> str:
    """What a connection closed before the end of the announced body left: how much came,
    of how much (Content-Length), or that the chunked body never got its last chunk."""
    length = next((v for k, v in response.headers if k == b"content-length"), None)
    of = f" of the {int(length)} it announced" if length is not None and length.isdigit() else ""
    how = "" if of else " (chunked, the last chunk never came)"
    return f"{where}: the connection closed after {received} bytes of the body{of}{how}: the body is cut short"


_BYTES_REPR = re.compile(r"""(?:bytearray\()?b(['"])((?:\\.|(?!\1).)*)\1\)?""")


def h11_problem(exc: Exception) -> str:
    """h11's complaint with the server's bytes as printable text: it quotes them as Python
    reprs ("illegal status line: bytearray(b'HTTP/1.1 abc')"), which is noise to an
    operator and still carries escapes for control bytes."""

    def text(match: re.Match[str]) -> str:
        try:
            data = ast.literal_eval("b" + match.group(1) + match.group(2) + match.group(1))
        except (ValueError, SyntaxError):
            return match.group(0)
        return f"'{printable(data, 80)}'"

    return terminal_safe(_BYTES_REPR.sub(text, str(exc)))


def _stamp_arrivals(writer: asyncio.StreamWriter | _Wire) -> list[float | None]:
    """A one-item list that holds perf_counter() of the latest bytes received.

    The stamp is taken in the transport's call to data_received, one pass of the event
    loop before the task that reads them runs: with a thousand probes in flight, that
    pass is what a probe would otherwise count as the server's time."""
    if isinstance(writer, _Wire):
        return writer.arrival
    arrival: list[float | None] = [None]
    protocol = writer.transport.get_protocol()
    original = getattr(protocol, "data_received", None)
    if original is None or isinstance(protocol, asyncio.BufferedProtocol):
        return arrival

    def data_received(data: bytes) -> None:
        arrival[0] = time.perf_counter()
        original(data)

    protocol.data_received = data_received  # type: ignore[attr-defined]  # a streaming Protocol: has it (checked above)
    return arrival


def _shown(data: bytes) -> str:
    """A header value or reason phrase as it may be shown anywhere: control bytes (an
    escape sequence for the operator's terminal, a NUL for an XML report) replaced, the
    probe's secrets masked, and nothing cut off (an identity or a Location is kept whole).
    Everything downstream, expect_header and identities included, sees only this text."""
    return printable(data, limit=len(data))


async def fetch_pool_page(
    endpoint: Endpoint, url: Url, *, deadline: Deadline, headers: list[tuple[str, str]], body_cap: int, where: str
) -> HttpResponse:
    """One plain GET of the page an LB publishes its pool on (HAProxy's stats CSV, Apache's
    balancer-manager). Failing to read it is the check's own problem, UNKNOWN "cannot read
    the pool", never a verdict on the LB: the page may be down while the LB serves."""
    try:
        return await fetch(
            endpoint.ip,
            url.port,
            deadline=deadline,
            target=url.path,
            host_header=url.host_header,
            headers=headers,
            ssl_context=endpoint.ssl_context,
            sni=endpoint.sni,
            body_cap=body_cap,
            where=where,
        )
    except ProbeFailure as failure:
        failure.status = Status.UNKNOWN
        failure.detail = f"cannot read the pool: {failure.detail}"
        raise
