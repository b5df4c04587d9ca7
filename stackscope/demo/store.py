"""The session store: enough of the Redis protocol (RESP2) for the demo, with faults.

PING, GET, SET, INFO, QUIT and AUTH; `latency` delays every reply (db-slow), `saturated`
answers every new connection as a full Redis does (db-too-many-connections), and `down`
closes the listener so connections are refused (db-down). Reads are bounded.
"""

from __future__ import annotations

import asyncio

from stackscope.demo.listener import Listener

MAX_LINE = 64 * 1024
MAX_BULK = 1024 * 1024
MAX_KEYS = 10_000


class ProtocolError(Exception):
    pass


class SessionStore(Listener):
    def __init__(self) -> None:
        super().__init__()
        self.latency = 0.0
        self.saturated = False
        self.data: dict[bytes, bytes] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.saturated:
            writer.write(b"-ERR max number of clients reached\r\n")
            await writer.drain()
            return
        while True:
            try:
                command = await asyncio.wait_for(_read_command(reader), 30)
            except (ProtocolError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                writer.write(b"-ERR Protocol error\r\n")
                return
            if command is None:
                return
            if self.latency:
                await asyncio.sleep(self.latency)  # the store is slow on purpose (db-slow)
            reply, close = self._execute(command)
            writer.write(reply)
            await writer.drain()
            if close:
                return

    def _execute(self, command: list[bytes]) -> tuple[bytes, bool]:
        if not command:
            return b"-ERR empty command\r\n", False
        name = command[0].upper()
        if name == b"PING":
            return (b"+PONG\r\n" if len(command) == 1 else _bulk(command[1])), False
        if name == b"GET" and len(command) == 2:
            value = self.data.get(command[1])
            return (b"$-1\r\n" if value is None else _bulk(value)), False
        if name == b"SET" and len(command) >= 3:
            if len(self.data) >= MAX_KEYS:
                self.data.clear()
            self.data[command[1]] = command[2]
            return b"+OK\r\n", False
        if name == b"INFO":
            text = (
                f"# Server\r\nredis_version:7.0.15-stackscope-demo\r\n"
                f"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"
                f"# Keyspace\r\ndb0:keys={len(self.data)}\r\n"
            )
            return _bulk(text.encode()), False
        if name == b"AUTH":
            return b"-ERR AUTH <password> called without any password configured for the default user.\r\n", False
        if name == b"QUIT":
            return b"+OK\r\n", True
        return b"-ERR unknown command '" + name.decode("latin-1", "replace")[:32].encode() + b"'\r\n", False


def _bulk(value: bytes) -> bytes:
    return b"$" + str(len(value)).encode() + b"\r\n" + value + b"\r\n"


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readuntil(b"\r\n")
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    return line[:-2]


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    try:
        first = await _read_line(reader)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    if not first.startswith(b"*"):
        return first.split()  # inline command: PING\r\n
    count = int(first[1:]) if first[1:].isdigit() else -1
    if not 0 <= count <= 64:
        raise ProtocolError("bad array")
    out = []
    for _ in range(count):
        head = await _read_line(reader)
        if not head.startswith(b"$") or not head[1:].isdigit() or int(head[1:]) > MAX_BULK:
            raise ProtocolError("bad bulk")
        out.append((await reader.readexactly(int(head[1:]) + 2))[:-2])
    return out


async def ping(port: int, timeout: float) -> str | None:
    """None when the store answers PONG in time, else what went wrong (for /health)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except asyncio.TimeoutError:
        return f"session store 127.0.0.1:{port} did not accept within {timeout:g}s"
    except OSError as exc:
        return f"session store 127.0.0.1:{port}: {exc.strerror or exc}"
    try:
        writer.write(b"PING\r\n")
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (asyncio.TimeoutError, OSError):
        return f"session store 127.0.0.1:{port} did not answer PING within {timeout:g}s"
    finally:
        writer.transport.abort()
    if line.startswith(b"+PONG"):
        return None
    return f"session store 127.0.0.1:{port} answered {line.strip().decode('latin-1')[:60] or 'nothing'}"
