"""A tiny HTTP/1.1 server for the demo's LB, backends and decoys (h11, one request per
connection). Bounded: request heads over 16 KiB are refused and slow clients time out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

from stackscope.demo.listener import Listener

READ_TIMEOUT = 5.0


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"


Handler = Callable[[Request], Awaitable[Response]]


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class HttpServer(Listener):
    """Serves `handler` on 127.0.0.1:port (0 = a free port) until stopped."""

    def __init__(self, handler: Handler, port: int = 0) -> None:
        super().__init__(port)
        self.handler = handler

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            request = await asyncio.wait_for(self._read_request(conn, reader), READ_TIMEOUT)
            if request is None:
                return
            response = await self.handler(request)
            headers = [
                ("Content-Type", response.content_type),
                ("Content-Length", str(len(response.body))),
                ("Connection", "close"),
                *response.headers.items(),
            ]
            writer.write(
                conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
            )
            if request.method != "HEAD":
                writer.write(conn.send(h11.Data(data=response.body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        except h11.ProtocolError:
            pass

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
        request = None
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(16384)
                if not data:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = Request(
                    event.method.decode(),
                    event.target.decode(),
                    {k.decode().lower(): v.decode("latin-1") for k, v in event.headers},
                )
            elif isinstance(event, h11.EndOfMessage):
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None
