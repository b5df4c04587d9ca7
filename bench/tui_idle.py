#!/usr/bin/env python3
"""The dashboard at rest: CPU, memory and terminal bytes of `stackscope watch`.

Runs `stackscope watch` on a 30-check layout probing every second, for 60 s, inside a
pseudo-terminal (as over SSH), against loopback servers that always answer the same.
Reports, for the steady state after a short warm-up: CPU % of one core, peak RSS, and
bytes written to the terminal per second while nothing changes; then how long ctrl+q
takes; at each size given (80x24, 160x50 and 240x60 by default). Targets (issue 16,
item 4): < 3 % CPU and < 2 KB/s at every size; < 120 MB RSS.

Run: python bench/tui_idle.py [--seconds 60] [--sizes 80x24,160x50,240x60] [--checks 30] [--root TREE]
Everything listens on and probes 127.0.0.1 only; every loop here is bounded.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent

from loopback_http import loopback_http  # noqa: E402  (bench/ is on the path when run as a script)


def layout_text(port: int, checks: int) -> str:
    """Four layers like a real path: an LB, a pool of backends, a database and a cache."""
    backends = max(1, checks - 1 - 2 * (checks // 6))
    side = checks - 1 - backends
    lines = [
        "name: bench-idle",
        "interval: 1s",
        "timeout: 1s",
        "layers:",
        "  - name: Load balancer",
        "    role: lb",
        "    checks:",
        f"      - {{http: 'http://127.0.0.1:{port}/health', name: lb}}",
        "  - name: Backends",
        "    role: backend",
        "    checks:",
    ]
    lines += [f"      - {{http: 'http://127.0.0.1:{port}/b{i}', name: backend-{i}}}" for i in range(backends)]
    lines += ["  - name: Database", "    role: db", "    checks:"]
    lines += [f"      - {{tcp: '127.0.0.1:{port}', name: db-{i}}}" for i in range(side - side // 2)]
    if side // 2:
        lines += ["  - name: Cache", "    role: cache", "    checks:"]
        lines += [f"      - {{tcp: '127.0.0.1:{port}', name: cache-{i}}}" for i in range(side // 2)]
    return "\n".join(lines) + "\n"


def spawn_in_pty(argv: list[str], cols: int, rows: int, env: dict) -> tuple[subprocess.Popen, int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True
    )
    os.close(slave)
    return proc, master


def drain(master: int, deadline: float, sink: list[tuple[float, int]], dump=None) -> None:
    """Read the terminal until `deadline`, recording (time, bytes) of every read."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([master], [], [], min(left, 0.2))
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            sink.append((time.monotonic(), len(chunk)))
            if dump is not None:
                dump.write(chunk)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out before measuring")
    parser.add_argument("--checks", type=int, default=30)
    parser.add_argument("--sizes", default="80x24,160x50,240x60", help="terminal sizes, measured one after another")
    parser.add_argument("--root", default=str(ROOT), help="the stackscope tree to run (to compare)")
    parser.add_argument("--term", default="xterm-256color")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="run `watch --plain` instead: the probing alone, to see what the dashboard adds",
    )
    parser.add_argument("--dump", help="write the steady-state terminal bytes to this file (to see what repaints)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared: figures are noisy)")
    for size in args.sizes.split(","):
        measure(args, size)
    return 0


def measure(args, size: str) -> None:
    cols, rows = (int(v) for v in size.split("x"))

    with loopback_http() as port:
        with tempfile.TemporaryDirectory() as tmp:
            layout = Path(tmp) / "bench.yaml"
            layout.write_text(layout_text(port, args.checks))
            env = {
                **os.environ,
                "PYTHONPATH": str(args.root),
                "TERM": args.term,
                "COLUMNS": str(cols),
                "LINES": str(rows),
            }
            env.pop("NO_COLOR", None)
            argv = [sys.executable, "-m", "stackscope", "watch", str(layout)] + (["--plain"] if args.plain else [])
            proc, master = spawn_in_pty(argv, cols, rows, env)
            ps = psutil.Process(proc.pid)
            writes: list[tuple[float, int]] = []
            try:
                start = time.monotonic()
                drain(master, start + args.warmup, writes)
                cpu0, t0 = ps.cpu_times(), time.monotonic()
                peak = ps.memory_info().rss
                end = start + args.seconds
                dump = open(args.dump, "wb") if args.dump else None
                while time.monotonic() < end:  # bounded by --seconds
                    drain(master, min(end, time.monotonic() + 0.5), writes, dump)
                    peak = max(peak, ps.memory_info().rss)
                cpu1, t1 = ps.cpu_times(), time.monotonic()
                if dump is not None:
                    dump.close()
                steady = sum(n for at, n in writes if at >= t0)
                first = sum(n for at, n in writes if at < t0)
                quit_started = time.monotonic()
                if args.plain:
                    proc.send_signal(signal.SIGINT)
                else:
                    os.write(master, b"\x11")  # ctrl+q
                try:
                    proc.wait(10)
                    quit_s = time.monotonic() - quit_started
                except subprocess.TimeoutExpired:
                    quit_s = float("nan")
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
                os.close(master)

    window = t1 - t0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / window * 100
    print(
        f"stackscope watch{' --plain' if args.plain else ''}, {args.checks} checks every 1s, {size} {args.term}, "
        f"{window:.0f}s measured after {args.warmup:.0f}s warm-up (load {os.getloadavg()[0]:.2f})"
    )
    print(f"  CPU            {cpu:6.2f} % of one core     (target < 3 %)")
    print(f"  peak RSS       {peak / 2**20:6.1f} MB              (target < 120 MB)")
    print(f"  terminal       {steady / window:6.0f} bytes/s         (target < 2048; first paint {first} bytes)")
    print(f"  {'ctrl-c' if args.plain else 'ctrl+q'}         {quit_s:6.2f} s to exit", flush=True)


if __name__ == "__main__":
    sys.exit(main())
