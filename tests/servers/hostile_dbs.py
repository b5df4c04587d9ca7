"""Fake database servers that misbehave in ways no real server can be made to: malformed
PostgreSQL frames, a SCRAM exchange asking for twenty million iterations, truncated MySQL
ERR packets, a Redis that echoes the password back. Handlers for PyServers (loopback only).

Every read is bounded by READ_TIMEOUT and every handler ends after a fixed script.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Callable

READ_TIMEOUT = 10
SSL_REQUEST_CODE = 80877103


async def _read(reader: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), READ_TIMEOUT)


def pg_message(kind: bytes, body: bytes) -> bytes:
    return kind + (len(body) + 4).to_bytes(4, "big") + body


def pg_auth(code: int, rest: bytes = b"") -> bytes:
    return pg_message(b"R", code.to_bytes(4, "big") + rest)


async def pg_startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Read the client's SSLRequest (answering N) and StartupMessage; return the startup body."""
    body = await _read(reader, int.from_bytes(await _read(reader, 4), "big") - 4)
    if int.from_bytes(body[:4], "big") == SSL_REQUEST_CODE:
        writer.write(b"N")
        await writer.drain()
        body = await _read(reader, int.from_bytes(await _read(reader, 4), "big") - 4)
    return body


async def pg_client_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind = await _read(reader, 1)
    return kind, await _read(reader, int.from_bytes(await _read(reader, 4), "big") - 4)


def pg_script(*replies: bytes | Callable[[bytes], bytes]):
    """A 'PostgreSQL' that sends each reply in turn, reading one client message between them.
    A callable reply gets the client's last message body (to echo its SCRAM nonce)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        last = await pg_startup(reader, writer)
        for i, reply in enumerate(replies):
            writer.write(reply(last) if callable(reply) else reply)
            await writer.drain()
            if i < len(replies) - 1:
                _, last = await pg_client_message(reader)
        await asyncio.wait_for(reader.read(), READ_TIMEOUT)  # until the client hangs up

    return handle


def scram_server_first(
    extra: str = "", iterations: int = 4096, salt: bytes = b"salt-salt-salt"
) -> Callable[[bytes], bytes]:
    """AuthenticationSASLContinue extending the client's nonce (taken from its first message)."""

    def reply(client_first: bytes) -> bytes:
        nonce = client_first.split(b"r=", 1)[1].decode()
        text = f"r={nonce}{extra}srv,s={base64.b64encode(salt).decode()},i={iterations}"
        return pg_auth(11, text.encode())

    return reply


SASL_OFFER = pg_auth(10, b"SCRAM-SHA-256\0\0")


def pg_error(message: str, code: str = "28P01") -> bytes:
    body = b"SFATAL\0" + b"C" + code.encode() + b"\0" + b"M" + message.encode() + b"\0\0"
    return pg_message(b"E", body)


def pg_echo_password_error(prefix: str = "password authentication failed, got ") -> Callable[[bytes], bytes]:
    """An ErrorResponse quoting the cleartext password the client sent ('p' message)."""

    def reply(password_message: bytes) -> bytes:
        return pg_error(prefix + password_message.rstrip(b"\0").decode("utf-8", "replace"))

    return reply


def mysql_raw(data: bytes):
    """A 'MySQL' that sends `data` as its greeting, then holds the line until the client leaves."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        await asyncio.wait_for(reader.read(), READ_TIMEOUT)

    return handle


def redis_script(*replies: bytes | Callable[[list[bytes]], bytes]):
    """A 'Redis' answering each command in turn (a callable gets the command's words), then
    going silent until the client leaves."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            words = await _read_command(reader)
            writer.write(reply(words) if callable(reply) else reply)
            await writer.drain()
        await asyncio.wait_for(reader.read(), READ_TIMEOUT)

    return handle


async def _read_command(reader: asyncio.StreamReader) -> list[bytes]:
    header = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
    words = []
    for _ in range(min(int(header[1:-2]), 16)):
        size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT))[1:-2])
        words.append((await _read(reader, size + 2))[:-2])
    return words


def pg_asks_then_records(request: bytes, received: list[bytes]):
    """A 'PostgreSQL' that declines TLS, sends `request` (say AuthenticationCleartextPassword)
    after the StartupMessage, and keeps every byte the client sends afterwards in `received`
    until the client hangs up (bounded by READ_TIMEOUT and 64 KiB)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await pg_startup(reader, writer))
        writer.write(request)
        await writer.drain()
        data = b""
        while len(data) < 65536:
            chunk = await asyncio.wait_for(reader.read(4096), READ_TIMEOUT)
            if not chunk:
                break
            data += chunk
        received.append(data)

    return handle


async def _server_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context) -> asyncio.StreamWriter:
    """The server side of a TLS upgrade, on Python 3.10 too (StreamWriter.start_tls came in 3.11)."""
    if sys.version_info >= (3, 11):
        await writer.start_tls(context)
        return writer
    loop = asyncio.get_running_loop()
    protocol = writer.transport.get_protocol()
    transport = await loop.start_tls(writer.transport, protocol, context, server_side=True)
    upgraded = asyncio.StreamWriter(transport, protocol, reader, loop)
    protocol._stream_writer = upgraded
    protocol._transport = transport
    return upgraded


def pg_tls_asks_then_records(context, request: bytes, received: list[bytes]):
    """A 'PostgreSQL' that accepts TLS (`context`: the server side) and then behaves like
    pg_asks_then_records: sends `request`, answers the client's next message with a
    28P01 error, and keeps what the client sent in `received`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read(reader, 8)  # the SSLRequest
        writer.write(b"S")
        await writer.drain()
        writer = await asyncio.wait_for(_server_tls(reader, writer, context), READ_TIMEOUT)
        received.append(await _read(reader, int.from_bytes(await _read(reader, 4), "big") - 4))
        writer.write(request)
        await writer.drain()
        kind, body = await pg_client_message(reader)
        received.append(kind + body)
        writer.write(pg_error('password authentication failed for user "app"'))
        await writer.drain()

    return handle
