"""A minimal HTTP/1.1 server in a child process on 127.0.0.1, for benchmarks.

A separate process so its CPU is not billed to the stackscope being measured; it answers
every request with 200 "ok" after an optional delay, and stops itself after `lifetime`
seconds even if the bench that started it dies.
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


def _more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


@contextlib.contextmanager
def loopback_http(delay: float = 0.0, lifetime: float = 900.0) -> Iterator[int]:
    """Run the server for the duration of the block; yields its port."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(delay), str(lifetime)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_more_files,
    )
    try:
        yield int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
