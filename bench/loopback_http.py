"""Minimal HTTP/1.1 and h2c servers in a child process on 127.0.0.1, for benchmarks.

A separate process so its CPU is not billed to the stackscope being measured; it answers
every request with 200 "ok" after an optional delay, and stops itself after `lifetime`
seconds even if the bench that started it dies. The h2c one (prior knowledge, built on
`h2`) gives the http check's `http2: prior-knowledge` a target as cheap as the HTTP/1.1 one.
"""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
from collections.abc import Iterator

SERVER = r"""
import asyncio, sys
delay, lifetime = float(sys.argv[1]), float(sys.argv[2])
async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        if delay:
            await asyncio.sleep(delay)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(lifetime)
asyncio.run(main())
"""


H2C_SERVER = r"""
import asyncio, sys
import h2.config, h2.connection, h2.events
delay, lifetime = float(sys.argv[1]), float(sys.argv[2])
async def handle(reader, writer):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    try:
        for _ in range(64):  # a probe sends a handful of frames; bounded either way
            data = await reader.read(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    if delay:
                        await asyncio.sleep(delay)
                    conn.send_headers(event.stream_id, [(":status", "200"), ("content-length", "3")])
                    conn.send_data(event.stream_id, b"ok\n", end_stream=True)
            writer.write(conn.data_to_send())
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(lifetime)
asyncio.run(main())
"""


def _more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


@contextlib.contextmanager
def loopback_http(delay: float = 0.0, lifetime: float = 900.0, h2c: bool = False) -> Iterator[int]:
    """Run the server (HTTP/1.1, or h2c by prior knowledge) for the duration of the block; yields its port."""
    server = subprocess.Popen(
        [sys.executable, "-c", H2C_SERVER if h2c else SERVER, str(delay), str(lifetime)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_more_files,
    )
    try:
        yield int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
