"""What probes share: name resolution through the layout's resolver, TLS contexts and
access to secrets.

One context lives as long as the engine. Creating an SSL context costs milliseconds (it
loads the CA store), so contexts are made once and reused; resolutions are
cached for one round only, so a DNS change shows up on the next round.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stackscope.kinds import format_duration
from stackscope.model import Address, is_ip
from stackscope.redact import Redactor


class ResolveError(Exception):
    """A host name that could not be turned into an address; the message says why."""


@dataclass(frozen=True)
class Resolved:
    host: str
    ip: str
    via: str  # "127.0.0.1:5353" or "system resolver"
    ms: float


class ProbeContext:
    def __init__(
        self, resolver: Address | None = None, environ: Mapping[str, str] | None = None, layout: Any = None
    ) -> None:
        import os

        self.layout = layout  # for checks that compare with other layers (an LB pool vs the backends)
        self.resolver = resolver
        self._environ = os.environ if environ is None else environ
        self._resolutions: dict[str, asyncio.Future[Resolved]] = {}
        # what a probe keeps from one round to the next (counters to compare), by key
        self.memory: dict[Any, Any] = {}
        self._ssl: dict[Any, ssl.SSLContext] = {}
        # Built here, where the secrets are known, so that the engine masks results with it
        # and probes mask server text with it before they shorten it (see redact.py).
        self.redactor = Redactor.for_layout(layout, self._environ) if layout is not None else Redactor()

    # ------------------------------------------------------------------ secrets
    def secret(self, env_name: str) -> str | None:
        """The value of a secret-bearing environment variable (None when unset)."""
        return self._environ.get(env_name)

    # ------------------------------------------------------------------ rounds
    def begin_round(self) -> None:
        self._resolutions = {}

    # ------------------------------------------------------------------ resolution
    async def resolve(self, host: str, timeout: float) -> Resolved:
        """Resolve `host` once per round (concurrent callers share one lookup)."""
        if is_ip(host):
            return Resolved(host, host, "literal", 0.0)
        future = self._resolutions.get(host)
        if future is None:
            future = asyncio.ensure_future(self._lookup(host, timeout))
            self._resolutions[host] = future
        # shield: one caller timing out must not cancel the lookup others wait on
        return await asyncio.shield(future)

    async def _lookup(self, host: str, timeout: float) -> Resolved:
        started = time.perf_counter()
        if self.resolver is not None:
            ip = await query_address(host, self.resolver, timeout)
            return Resolved(host, ip, str(self.resolver), (time.perf_counter() - started) * 1000)
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout)
        except asyncio.TimeoutError:
            raise ResolveError(
                f"cannot resolve {host}: system resolver gave no answer in {format_duration(timeout)}"
            ) from None
        except socket.gaierror as exc:
            raise ResolveError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        if not infos:
            raise ResolveError(f"cannot resolve {host}: no address")
        # Prefer IPv4, as most LB and backend configs do.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        ip = str(infos[0][4][0])
        return Resolved(host, ip, "system resolver", (time.perf_counter() - started) * 1000)

    # ------------------------------------------------------------------ TLS and HTTP
    def ssl_context(
        self, verify: bool = True, ca_file: str | None = None, alpn: tuple[str, ...] = ()
    ) -> ssl.SSLContext:
        """A TLS context shared by the probes that ask for the same one; `alpn` (HTTP/2
        probes) gets a context of its own, since protocols offered by ALPN are answered."""
        key = (verify, ca_file, alpn)
        ctx = self._ssl.get(key)
        if ctx is None:
            if verify:
                ctx = ssl.create_default_context(cafile=ca_file)
            else:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            self._ssl[key] = ctx
        return ctx

    async def aclose(self) -> None:
        for future in self._resolutions.values():
            future.cancel()


# What dnspython raises, besides its own DNSException, when a server's bytes are not a
# DNS message: EOFError when a TCP stream ends before the length-prefixed message does,
# ValueError/struct.error/IndexError/UnicodeError from wire parsing of a malformed reply.
WIRE_ERRORS = (EOFError, ValueError, IndexError, UnicodeError)


def dns_wire_problem(exc: BaseException, server: object, over_tcp: bool) -> tuple[str, str]:
    """(sentence, key fact) for a DNS reply that never became a DNS message: `exc` is an
    exception from dns.asyncquery other than a timeout or an OSError. The sentence names
    the server and never carries its raw bytes."""
    import dns.message

    from stackscope.safetext import terminal_safe

    if isinstance(exc, EOFError):
        if over_tcp:
            return (
                f"the DNS server {server} closed the TCP connection before answering (no whole DNS message came back)",
                "closed early",
            )
        return f"the DNS server {server} sent an empty or cut-off reply", "cut-off reply"
    if isinstance(exc, dns.message.Truncated):
        return f"the DNS server {server} sent a cut-off DNS message (it ends inside a record)", "cut-off reply"
    why = terminal_safe(str(exc) or type(exc).__name__)[:120]
    return f"the DNS server {server} sent a reply that is not valid DNS ({why})", "bad reply"


class NoReply(Exception):
    """No reply to our query within the time; `ignored` replies came that were not ours."""

    def __init__(self, ignored: int) -> None:
        super().__init__(f"no reply ({ignored} not ours ignored)")
        self.ignored = ignored


class _Replies(asyncio.DatagramProtocol):
    """Every datagram the connected socket receives, queued (up to a bound): dnspython's
    asyncio socket keeps one pending receive, so a reply that came right behind a spoofed
    one could be dropped, and the real answer lost to the spoof."""

    LIMIT = 64  # replies held at once; a flood beyond that is dropped, and the wait goes on

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(self.LIMIT)
        self.error: OSError | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: nothing listens there (refused)
        if isinstance(exc, OSError) and self.error is None:
            self.error = exc
            if not self.queue.full():
                self.queue.put_nowait(b"")  # wake the reader


async def udp_query(query: Any, server: Address, timeout: float) -> Any:
    """Send `query` over UDP and wait for *its* reply, as a resolver does: a reply whose ID
    or question is not the query's is what spoofing (or a late answer to an earlier query)
    looks like, so it is ignored and the wait goes on until the right one or the timeout
    (dnspython's udp() fails at the first such reply, or with ignore_errors hides
    malformed replies too, which must stay visible as a broken server). The socket is
    connected to the server, so the kernel drops datagrams from any other address and
    reports a closed port (ICMP) as refused instead of leaving it to the timeout."""
    import dns.message

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    transport, replies = await loop.create_datagram_endpoint(
        _Replies, remote_addr=(server.host, server.port), family=family
    )
    ignored = 0
    try:
        transport.sendto(query.to_wire())
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoReply(ignored)
            try:
                data = await asyncio.wait_for(replies.queue.get(), remaining)
            except asyncio.TimeoutError:
                raise NoReply(ignored) from None
            if replies.error is not None:
                raise replies.error
            reply = dns.message.from_wire(data)  # malformed: the caller names the broken server
            if query.is_response(reply):
                return reply
            ignored += 1
    finally:
        transport.close()


async def query_address(host: str, server: Address, timeout: float) -> str:
    """The first A (else AAAA) address of `host` from one DNS server, following CNAMEs."""
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.rcode
    import dns.rdatatype

    deadline = time.monotonic() + timeout
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        query = dns.message.make_query(host, rdtype)
        over_tcp = False
        try:
            response = await udp_query(query, server, remaining)
            if response.flags & dns.flags.TC:
                over_tcp = True
                response = await dns.asyncquery.tcp(
                    query, server.host, port=server.port, timeout=max(0.05, deadline - time.monotonic())
                )
        except (dns.exception.Timeout, NoReply):
            raise ResolveError(
                f"cannot resolve {host}: no answer from {server} in {format_duration(timeout)}"
            ) from None
        except OSError as exc:
            raise ResolveError(f"cannot resolve {host}: {server}: {exc.strerror or exc}") from None
        except (dns.exception.DNSException, *WIRE_ERRORS) as exc:
            sentence, _ = dns_wire_problem(exc, server, over_tcp)
            raise ResolveError(f"cannot resolve {host}: {sentence}") from None
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise ResolveError(f"cannot resolve {host}: {server} answered {dns.rcode.to_text(rcode)}")
        for rrset in response.answer:
            if rrset.rdtype == rdtype:
                for record in rrset:
                    return record.address
    raise ResolveError(f"cannot resolve {host}: {server} has no A or AAAA record for it")
