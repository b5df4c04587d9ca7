"""Minimal HTTP/1.1 and h2c servers in a child process on 127.0.0.1, for benchmarks.

A separate process so its CPU is not billed to the stackscope being measured; it answers
every request with 200 "ok" after an optional delay, and stops itself after `lifetime`
seconds even if the bench that started it dies. The h2c one (prior knowledge, built on
`h2`) gives the http check's `http2: prior-knowledge` a target as cheap as the HTTP/1.1 one.
`c_loopback_http` runs the same HTTP/1.1 answer from loopback_target.c instead: an epoll
loop in C, a few percent of a core at 10,000 connections where the Python one costs about
as much CPU as the prober measured (what a side-by-side against another prober needs).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# how both servers end a connection, and serve until `lifetime` is over
_SERVE = r"""
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

SERVER = r"""
import asyncio, sys
delay, lifetime = float(sys.argv[1]), float(sys.argv[2])
async def handle(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        if delay:
            await asyncio.sleep(delay)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        await writer.drain()"""
SERVER += _SERVE


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
            await writer.drain()"""
H2C_SERVER += _SERVE


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


C_TARGET = Path(__file__).resolve().parent / "loopback_target.c"


def build_c_target() -> Path | None:
    """loopback_target.c compiled with `cc -O2`, cached under the temp dir by the source's
    hash (a changed source is rebuilt); None when there is no C compiler or it fails."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    source = C_TARGET.read_bytes()
    cache = Path(tempfile.gettempdir()) / f"stackscope-bench-{os.getuid()}"
    cache.mkdir(mode=0o700, exist_ok=True)
    binary = cache / f"loopback_target-{hashlib.sha256(source).hexdigest()[:16]}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    partial = cache / f"{binary.name}.{os.getpid()}.tmp"  # renamed into place: concurrent benches never run half a file
    done = subprocess.run([compiler, "-O2", "-o", str(partial), str(C_TARGET)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"note: {compiler} failed on {C_TARGET.name}: {done.stderr.strip()[:500]}", file=sys.stderr)
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, binary)
    return binary


@contextlib.contextmanager
def c_loopback_http(delay: float = 0.0, lifetime: float = 900.0) -> Iterator[int]:
    """The HTTP/1.1 target of `loopback_http`, in C (loopback_target.c), for the duration of
    the block; yields its port. Without a C compiler, the Python server, with a note."""
    binary = build_c_target()
    if binary is None:
        print("note: no working C compiler; the Python loopback server stands in (costlier per connection)")
        with loopback_http(delay, lifetime) as port:
            yield port
        return
    server = subprocess.Popen([str(binary), str(delay), str(lifetime)], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"{binary.name} did not print its port (exit status {server.poll()})")
        yield int(line)
    finally:
        server.kill()
        server.wait()
