"""Helpers every probe uses: deadlines, failures as exceptions, connecting, bounded reads.

A probe may raise `ProbeFailure` anywhere; the engine turns it into a CRIT result with the
probe's own words. Anything else it raises becomes UNKNOWN (a bug in stackscope, never a
verdict about the target).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from stackscope.kinds import format_duration
from stackscope.model import ErrorKind, Evidence, Result, Status, Url, is_ip
from stackscope.probes.context import ProbeContext, ResolveError
from stackscope.redact import MASK
from stackscope.redact import active as active_redactor


class ProbeFailure(Exception):
    """The target failed the check; `detail` is the sentence shown to the operator."""

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        key_fact: str = "",
        facts: Mapping[str, Any] | None = None,
        status: Status = Status.CRIT,
        evidence: Evidence | None = None,
    ) -> None:
        super().__init__(detail)
        self.evidence = evidence
        self.kind = kind
        self.detail = detail
        self.key_fact = key_fact or kind.value
        self.facts = dict(facts or {})
        self.status = status


if sys.version_info >= (3, 11):
    timeout_scope = asyncio.timeout
else:

    @contextlib.asynccontextmanager
    async def timeout_scope(delay: float) -> AsyncIterator[None]:
        """asyncio.timeout for Python 3.10: cancel the current task when time is up."""
        task = asyncio.current_task()
        if task is None:  # what asyncio.timeout says in the same case
            raise RuntimeError("Timeout should be used inside a task")
        fired = False

        def fire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise TimeoutError from None
            raise
        finally:
            handle.cancel()

# timeout_scope is a cancel scope: cheaper than wait_for, which creates a task per call.


class Deadline:
    """One time budget shared by every step of a probe."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.perf_counter()
        self.end = self.started + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.perf_counter())

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    @property
    def text(self) -> str:
        return format_duration(self.seconds)


def result(
    check: Any,
    status: Status,
    detail: str,
    *,
    latency_ms: float | None = None,
    key_fact: str = "",
    facts: Mapping[str, Any] | None = None,
    kind: ErrorKind | None = None,
    evidence: Evidence | None = None,
) -> Result:
    """Build a Result, turning an OK above the check's warn_ms into a WARN. The typed
    evidence is `evidence`, else the pool evidence judge_pool left in the facts (so every
    LB check that builds its Result from a Judgement carries it)."""
    if status is Status.OK and check.warn_ms is not None and latency_ms is not None and latency_ms > check.warn_ms:
        status, kind = Status.WARN, ErrorKind.SLOW
        detail = f"{detail} — slow: {latency_ms:.0f} ms is above warn_ms {check.warn_ms:g}"
    return Result(
        check_id=check.id,
        status=status,
        detail=detail,
        latency_ms=latency_ms,
        key_fact=key_fact,
        facts=dict(facts or {}),
        error_kind=kind,
        evidence=evidence if evidence is not None else evidence_in(facts),
    )


def evidence_in(facts: Mapping[str, Any] | None) -> Evidence | None:
    """The typed evidence a shared builder left inside the facts: judge_pool's pool fact."""
    pool = (facts or {}).get("pool")
    return getattr(pool, "evidence", None)


def describe_os_error(exc: BaseException, where: str) -> tuple[ErrorKind, str, str]:
    """(kind, detail, key_fact) for a connection-level error, telling refused,
    timeout and unreachable apart."""
    if isinstance(exc, ConnectionRefusedError):
        return ErrorKind.REFUSED, f"{where} refused the connection (nothing listens there)", "refused"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ErrorKind.TIMEOUT, f"{where} did not answer (connection timed out)", "timeout"
    if isinstance(exc, ConnectionResetError):
        return ErrorKind.PROTOCOL, f"{where} reset the connection", "reset"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
        return ErrorKind.UNREACHABLE, f"{where} is unreachable ({exc.strerror})", "unreachable"
    if isinstance(exc, ssl.SSLError):
        return ErrorKind.TLS, f"TLS failed with {where}: {exc.reason or exc}", "tls error"
    if isinstance(exc, OSError):
        return ErrorKind.UNREACHABLE, f"{where}: {exc.strerror or exc}", "error"
    return ErrorKind.PROTOCOL, f"{where}: {exc}", "error"


async def resolve_host(ctx: ProbeContext, host: str, deadline: Deadline) -> tuple[str, dict[str, Any]]:
    """The IP to connect to for `host`, and facts about how it was found."""
    try:
        resolved = await ctx.resolve(host, max(0.05, deadline.remaining()))
    except ResolveError as exc:
        raise ProbeFailure(ErrorKind.RESOLVE, str(exc), key_fact="no address") from None
    if resolved.via == "literal":
        return resolved.ip, {}
    return resolved.ip, {
        "resolved": {"name": host, "address": resolved.ip, "via": resolved.via, "ms": round(resolved.ms, 2)}
    }


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach a URL: the IP to connect to (and facts about how the name
    resolved), the TLS context for https, and the SNI name (none for an IP literal)."""

    ip: str
    facts: dict[str, Any]
    ssl_context: ssl.SSLContext | None
    sni: str | None


async def reach(
    ctx: ProbeContext,
    url: Url,
    deadline: Deadline,
    *,
    verify: bool = True,
    ca: str | None = None,
    alpn: tuple[str, ...] = (),
) -> Endpoint:
    """Resolve a URL's host, then pick its TLS context and SNI: the one way every HTTP probe does it."""
    ip, facts = await resolve_host(ctx, url.host, deadline)
    context = ctx.ssl_context(verify, ca, alpn) if url.scheme == "https" else None
    return Endpoint(ip, facts, context, None if is_ip(url.host) else url.host)


def basic_auth(secret: str) -> tuple[str, str]:
    """The Authorization header for `user:password`."""
    return ("Authorization", "Basic " + base64.b64encode(secret.encode()).decode())


def basic_auth_from_env(ctx: ProbeContext, env: str, login: str) -> tuple[str, str]:
    """Basic auth from an environment variable that must hold user:password; when it does
    not, an UNKNOWN failure saying what is wrong with it (never its value) and what `login`
    the value belongs to."""
    secret = ctx.secret(env)
    if not secret or ":" not in secret:  # else: "Illegal header value b'Basic '" from deep down
        what = "is not set" if secret is None else "is empty" if not secret else "is not user:password"
        raise ProbeFailure(
            ErrorKind.AUTH,
            f"{env} {what}: set it to the user:password of {login}",
            key_fact="no credentials",
            status=Status.UNKNOWN,
        )
    return basic_auth(secret)


async def open_connection(
    host: str,
    port: int,
    deadline: Deadline,
    *,
    where: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect within the deadline or raise a ProbeFailure that says how it failed."""
    where = where or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=ssl_context, server_hostname=server_hostname if ssl_context else None, limit=2**16
            ),
            deadline.remaining(),
        )
    except asyncio.TimeoutError:
        raise ProbeFailure(
            ErrorKind.TIMEOUT, f"no connection to {where} within {deadline.text}", key_fact="timeout"
        ) from None
    except OSError as exc:
        kind, detail, key_fact = describe_os_error(exc, where)
        raise ProbeFailure(kind, detail, key_fact=key_fact) from None


async def upgrade_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext, sni: str | None
) -> asyncio.StreamWriter:
    """The connected stream, upgraded to TLS in place (raises what the handshake raises).

    StreamWriter.start_tls arrived in Python 3.11; on 3.10 the transport is upgraded by
    hand, as 3.11 does it inside start_tls. PostgreSQL needs this (TLS after its own
    SSLRequest on the same connection), and so does an http check that times its phases."""
    if sys.version_info >= (3, 11):
        await writer.start_tls(context, server_hostname=sni)
        return writer
    loop = asyncio.get_running_loop()
    protocol = writer.transport.get_protocol()
    transport = await loop.start_tls(writer.transport, protocol, context, server_hostname=sni)
    # start_tls returns None only on a closing loop, where the next write fails anyway
    upgraded = asyncio.StreamWriter(transport, protocol, reader, loop)  # type: ignore[arg-type]
    protocol._stream_writer = upgraded  # type: ignore[attr-defined]  # 3.10 only: no public way
    protocol._transport = transport  # type: ignore[attr-defined]
    return upgraded


class Conversation:
    """One wire-protocol connection and the step it is at.

    Mutable on purpose (unlike the frozen data elsewhere): the probe moves `awaiting` along
    as the protocol advances, so a timeout names the step that stalled ("answer INFO", not
    "answer PING" after the PONG came). `timeout_detail`, when set, replaces the whole
    sentence (for "nothing greeted" when the server should have spoken first).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, awaiting: str) -> None:
        self.reader, self.writer = reader, writer
        self.awaiting = awaiting
        self.timeout_detail: str | None = None


@contextlib.asynccontextmanager
async def conversation(
    ip: str,
    port: int,
    deadline: Deadline,
    facts: dict[str, Any],
    *,
    where: str,
    awaiting: str,
    goodbye: bytes = b"",
) -> AsyncIterator[Conversation]:
    """A connection for a wire-protocol probe that lives and dies with the probe's deadline.

    A server that accepts and then goes quiet mid-protocol becomes a TIMEOUT failure naming what
    the probe was waiting for at that step. The socket is always aborted (no lingering close
    handshake with a hung peer), after `goodbye` so a healthy server logs a clean disconnect, not
    a dropped client.
    """
    writer = None
    talk: Conversation | None = None
    try:
        async with timeout_scope(deadline.remaining()):
            reader, writer = await open_connection(ip, port, deadline, where=where)
            talk = Conversation(reader, writer, awaiting)
            yield talk
    except TimeoutError:
        step = talk.awaiting if talk is not None else awaiting
        detail = (
            talk.timeout_detail
            if talk is not None and talk.timeout_detail
            else f"{where} accepted the connection but did not {step} within {deadline.text}"
        )
        raise ProbeFailure(ErrorKind.TIMEOUT, detail, key_fact="no answer", facts=facts) from None
    finally:
        if writer is not None:
            if goodbye:
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write(goodbye)
            writer.transport.abort()


async def close_quietly(writer: asyncio.StreamWriter, timeout: float = 0.2) -> None:
    """Close a connection without letting a misbehaving peer hold the probe."""
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        pass
    except asyncio.CancelledError:
        writer.transport.abort()
        raise


async def read_some(reader: asyncio.StreamReader, deadline: Deadline, n: int = 63, wait: float = 0.2) -> bytes:
    """Up to n more bytes if they come within `wait`: enough to name what answered, never a hang."""
    try:
        async with timeout_scope(max(0.0, min(wait, deadline.remaining()))):
            return await reader.read(n)
    except (TimeoutError, OSError):
        return b""


_PLAIN = re.compile(rb"[\x20-\x7e]*")


def printable(data: bytes, limit: int = 40) -> str:
    """A short, safe rendering of bytes a server sent, for 'what answered' messages.

    Safe twice over: control bytes become '·', and the running probe's secrets are
    masked *before* the cut, since a secret cut in half ("pw=correct-hor…") is a prefix
    that no later redaction could recognise. A secret that starts within the limit is
    masked whole, wherever it ends.
    """
    redactor = active_redactor()
    if not redactor.longest and len(data) <= limit and _PLAIN.fullmatch(data):
        return data.decode("ascii")  # the usual header value: nothing to mask, nothing to cut
    text = data[: limit + redactor.longest].decode("latin-1")
    spans = {start: end for start, end in redactor.spans(text)}
    shown, i = [], 0
    while i < min(limit, len(text)):
        if i in spans:
            shown.append(MASK)
            i = spans[i]
            continue
        ch = text[i]
        shown.append(ch if 32 <= ord(ch) < 127 else "·")
        i += 1
    return "".join(shown) + ("…" if len(data) > max(i, limit) else "")


def guess_protocol(data: bytes, not_: str = "") -> str:
    """Name the protocol a banner or reply looks like, to say what answered on a port.

    `not_` names the protocol the probe expected and found broken ("MySQL"): bytes that
    merely resemble it then read "something that is not a MySQL server", never "a
    MySQL/MariaDB server answered" right after saying it does not speak MySQL."""
    guess = _guess(data)
    if not_ and guess.startswith(f"a {not_}"):
        return f"something that is not a {not_} server"
    return guess


def _guess(data: bytes) -> str:
    if data.startswith(b"HTTP/"):
        return "an HTTP server"
    if data.startswith(b"SSH-"):
        return "an SSH server"
    if data[:1] in (b"+", b"-") and data.endswith(b"\r\n"):
        return "a Redis server"
    if data.startswith((b"220 ", b"220-")):
        return "an SMTP or FTP server"
    if len(data) > 5 and data[4:5] == b"\x0a" and data[3:4] == b"\x00":
        return "a MySQL/MariaDB server"
    if data[:1] in (b"E", b"R") and len(data) >= 5:
        return "a PostgreSQL server"
    if data[:1] == b"\x16":
        return "a TLS server"
    return "an unknown protocol" if data else "a silent peer"
