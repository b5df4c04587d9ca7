#!/usr/bin/env python3
"""CPU per probe at 1000 checks: http (HTTP/1.1, h11), http with `http2: prior-knowledge`
(h2c, the h2 client), grpc (health Check framed over h2 by hand, as the grpc check does), and for the record the same call made with grpcio's
asyncio client; plus the cold import of each client. The measurements behind the
choice of framing gRPC by hand (see stackscope/probes/grpc.py).

Run: python bench/grpc_probe.py [--checks 1000]. Servers are child processes on
127.0.0.1 (their CPU is not counted); every loop here is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loopback_http import loopback_http  # noqa: E402  (bench/ is on the path when run as a script)
from probe_round import cpu_seconds  # noqa: E402


def layout_text(n: int, check: str) -> str:
    checks = "\n".join(f"      - {{{check}, name: c{i}}}" for i in range(n))
    return f"name: bench\ninterval: 10s\ntimeout: 5s\nlayers:\n  - name: L\n    role: backend\n    checks:\n{checks}\n"


async def engine_round(n: int, check: str) -> tuple[float, float]:
    """(wall s, CPU s) of the second of two rounds (the first pays for imports and TLS)."""
    from stackscope.engine import Engine
    from stackscope.layout import parse_layout
    from stackscope.model import Status

    engine = Engine(parse_layout(layout_text(n, check)))
    try:
        await engine.run_round()
        started, cpu = time.perf_counter(), cpu_seconds()
        snapshot = await engine.run_round()
        wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        await engine.aclose()
    bad = [r for r in snapshot.results.values() if r.status is not Status.OK]
    if bad:
        raise SystemExit(f"{len(bad)} of {n} checks failed, e.g. {bad[0].detail}")
    return wall, used


async def grpcio_calls(n: int, port: int) -> tuple[float, float]:
    """n health Checks with grpcio.aio, a channel each (a probe opens its own connection)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def one() -> None:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.use_local_subchannel_pool", 1)],  # a connection each, as a probe
        ) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

    await asyncio.gather(*(one() for _ in range(50)))  # warm
    started, cpu = time.perf_counter(), time.process_time()
    for batch in range(0, n, 100):
        await asyncio.gather(*(one() for _ in range(min(100, n - batch))))
    return time.perf_counter() - started, time.process_time() - cpu


async def our_calls(n: int, port: int) -> tuple[float, float]:
    """n health Checks with the grpc check's own probe function, without the engine."""
    from stackscope.layout import parse_layout
    from stackscope.probes.context import ProbeContext
    from stackscope.probes.grpc import probe

    layout = parse_layout(layout_text(1, f"grpc: '127.0.0.1:{port}'"))
    check = layout.layers[0].checks[0]
    ctx = ProbeContext()

    async def one() -> None:
        assert (await probe(check, ctx)).key_fact == "SERVING"

    await asyncio.gather(*(one() for _ in range(50)))  # warm
    started, cpu = time.perf_counter(), time.process_time()
    for batch in range(0, n, 100):
        await asyncio.gather(*(one() for _ in range(min(100, n - batch))))
    return time.perf_counter() - started, time.process_time() - cpu


def import_ms(module: str, runs: int = 9) -> float:
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, float(out.stdout) * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=1000)
    n = parser.parse_args().checks
    from tests.servers.grpc_health import GrpcHealthServer

    server = GrpcHealthServer(Path(tempfile.mkdtemp(prefix="bench-grpc-"))).start()
    try:
        with loopback_http() as http_port:
            wall, cpu = asyncio.run(engine_round(n, f"http: 'http://127.0.0.1:{http_port}/'"))
            print(f"http (h11)        {n} checks: {wall:.2f} s wall, {cpu / n * 1000:.3f} ms CPU per probe")
        with loopback_http(h2c=True) as h2c_port:
            check = f"http: 'http://127.0.0.1:{h2c_port}/', http2: prior-knowledge, expect_protocol: h2"
            wall, cpu = asyncio.run(engine_round(n, check))
            print(f"http (h2c)        {n} checks: {wall:.2f} s wall, {cpu / n * 1000:.3f} ms CPU per probe")
        wall, cpu = asyncio.run(engine_round(n, f"grpc: '127.0.0.1:{server.port}'"))
        print(f"grpc (h2, ours)   {n} checks: {wall:.2f} s wall, {cpu / n * 1000:.3f} ms CPU per probe")
        wall, cpu = asyncio.run(our_calls(n, server.port))
        print(f"grpc probe calls  {n} calls:  {wall:.2f} s wall, {cpu / n * 1000:.3f} ms CPU per call (no engine)")
        wall, cpu = asyncio.run(grpcio_calls(n, server.port))
        print(f"grpcio.aio calls  {n} calls:  {wall:.2f} s wall, {cpu / n * 1000:.3f} ms CPU per call (no engine)")
    finally:
        server.stop()
    for module in ("h11", "h2.connection", "grpc", "grpc, grpc_health.v1.health_pb2_grpc"):
        print(f"import {module}: {import_ms(module):.0f} ms (best of 9)")


if __name__ == "__main__":
    main()
