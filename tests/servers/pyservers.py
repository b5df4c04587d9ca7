"""Small misbehaving servers, written in Python because no packaged server misbehaves
on demand: garbage speakers, silent listeners, endless bodies, slow responders and a
DNS server that only answers SERVFAIL.

They run on an asyncio loop in a background thread so the code under test (which runs
on the test's own loop) talks to them over real sockets, exactly as to a remote server.
Every loop they run is bounded and stops by itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from .base import LOOPBACK

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ENDLESS_CAP = 64 * 1024 * 1024  # an "endless" body still stops after 64 MiB
FLUSH_DEADLINE = 10.0  # seconds a handler's last bytes may take to reach a client that reads


class PyServers:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._servers: list = []
        self._stopping = False
        self.thread = threading.Thread(target=self.loop.run_forever, name="pyservers", daemon=True)
        self.thread.start()

    def _call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def tcp(self, handler: Handler, host: str = LOOPBACK) -> int:
        """A server on `host` (127.0.0.1, or another loopback address for a second host)."""
        assert host.startswith("127."), "test servers listen on loopback only"

        async def start() -> int:
            server = await asyncio.start_server(self._guard(handler), host, 0)
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]

        return self._call(start())

    def unix(self, handler: Handler, path: str) -> str:
        """A server on a unix socket at `path` (an HAProxy Runtime API impostor)."""

        async def start() -> str:
            server = await asyncio.start_unix_server(self._guard(handler), path)
            self._servers.append(server)
            return path

        return self._call(start())

    def udp(self, respond: Callable[[bytes], bytes | list[bytes] | None], port: int = 0) -> int:
        """A UDP server answering each datagram with `respond(data)` (None: no answer; a
        list: several datagrams in order);
        `port` puts it beside a TCP server of the same number (DNS over both)."""

        class Protocol(asyncio.DatagramProtocol):
            def connection_made(self, transport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr) -> None:
                reply = respond(data)
                for datagram in [reply] if isinstance(reply, bytes) else reply or []:
                    self.transport.sendto(datagram, addr)

        async def start() -> int:
            transport, _ = await self.loop.create_datagram_endpoint(Protocol, local_addr=(LOOPBACK, port))
            self._servers.append(transport)
            return transport.get_extra_info("sockname")[1]

        return self._call(start())

    def _guard(self, handler: Handler) -> Handler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
                # drain() returns with up to 64 KiB still buffered: all that the handler wrote
                # goes out before the hang-up (the abort below would drop it, and a slow
                # client would see a body cut short that the handler never meant to cut)
                if not writer.transport.is_closing():
                    writer.transport.set_write_buffer_limits(high=0)
                    await asyncio.wait_for(writer.drain(), FLUSH_DEADLINE)
            except (ConnectionError, asyncio.CancelledError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                pass
            finally:
                writer.transport.abort()

        return run

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            self._call(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


# ----------------------------------------------------------------------------- handlers


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)


def http_response(
    status: int = 200, body: bytes = b"ok\n", headers: dict[str, str] | None = None, reason: str = "OK"
) -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def responder(
    status: int = 200, body: bytes = b"ok\n", headers: dict[str, str] | None = None, delay: float = 0.0
) -> Handler:
    """An HTTP server answering every request the same way, after `delay` seconds."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if delay:
            await asyncio.sleep(delay)  # the server is slow on purpose
        writer.write(http_response(status, body, headers))
        await writer.drain()

    return handle


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and closes at once: a port that is open, for tcp checks."""


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers anything with bytes that are no protocol at all, then hangs up."""
    writer.write(bytes(range(256)) * 4)
    await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and never says a word; holds the connection until the client leaves."""
    await asyncio.wait_for(reader.read(), 60)


async def endless_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """200 OK with a body that never ends (until 64 MiB or the client hangs up)."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
    chunk = b"x" * 65536
    sent = 0
    while sent < ENDLESS_CAP and not writer.is_closing():
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk)


def dns_servfail(data: bytes) -> bytes | None:
    import dns.message
    import dns.rcode

    try:
        query = dns.message.from_wire(data)
    except Exception:
        return None
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.SERVFAIL)
    return response.to_wire()


def dns_truncated(data: bytes) -> bytes | None:
    """A UDP DNS answer with the TC bit set and no records: 'ask me over TCP'."""
    import dns.flags
    import dns.message

    try:
        query = dns.message.from_wire(data)
    except Exception:
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.TC
    return response.to_wire()


def dns_tcp_cut(sent: bytes) -> Handler:
    """A DNS-over-TCP server that reads the query, sends `sent` (b"": nothing; b"\\x00\\x01":
    a length prefix and no message; b"\\x00\\x50abc": 3 of the 80 bytes it announced) and
    hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 10), "big")
        await asyncio.wait_for(reader.readexactly(length), 10)
        if sent:
            writer.write(sent)
            await writer.drain()
        writer.close()

    return handle


async def dns_tcp_close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts a DNS-over-TCP connection and closes its side at once (a FIN before any
    answer). The query is read after that, only so that closing never turns into a reset
    (unread data at close sends RST, which would make the test depend on timing)."""
    writer.write_eof()
    length = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 10), "big")
    await asyncio.wait_for(reader.readexactly(length), 10)


def dns_garbage(data: bytes) -> bytes | None:
    return data[:2] + b"\xff" * 20  # right id, nonsense after it


def recorder(heads: list[bytes], status: int = 200, body: bytes = b"ok\n") -> Handler:
    """An HTTP server that keeps the head of every request it gets, to assert what was sent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await read_request(reader))
        writer.write(http_response(status, body))
        await writer.drain()

    return handle


def raw_head(head: bytes, body: bytes = b"ok\n") -> Handler:
    """An HTTP server sending exactly `head` (status line and headers, CRLF-separated) —
    for hostile bytes no well-behaved server library would let through."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()

    return handle
