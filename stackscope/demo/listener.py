"""What every demo server shares: listen on 127.0.0.1, track connections, stop cleanly."""

from __future__ import annotations

import asyncio


class Listener:
    """A TCP server on 127.0.0.1 that can stop and start again on the same port (a crash
    and a recovery), aborting its open connections when it stops."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            self._connections.discard(writer)
            writer.transport.abort()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


async def cancel_and_wait(task: asyncio.Task | None, attempts: int = 20) -> None:
    """Cancel a background task and wait until it has really finished.

    Cancels again if needed: on Python 3.11 a `wait_for` deep inside (dnspython uses it)
    can swallow a cancellation that races with its own completion, and the task would
    carry on as if nothing happened.
    """
    if task is None:
        return
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    if task.done() and not task.cancelled():
        task.exception()  # retrieve it, so asyncio does not log "never retrieved"
