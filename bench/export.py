#!/usr/bin/env python3
"""`stackscope export`: scrape latency and size, and its idle CPU next to `watch --plain`.

1. Scrapes: `stackscope export` on a layout of 1000 checks (990 http, 10 tcp) against a
   loopback server; once a round has finished, N scrapes of /metrics in the Prometheus
   text format, N in OpenMetrics and N gzip-compressed; reports median and p95 latency
   and the body size. A scrape reads the latest round, it never probes.
2. Idle CPU: `export` and `watch --plain` on the same 30-check layout probing every
   second, one after the other, for --seconds each after a warm-up; CPU % of one core
   from psutil. The export is scraped every 5 s during its window, as Prometheus would.
3. Idle connections: N connections (default 200) opened to `export` and left silent:
   how long the N connects take to be accepted, the exporter's thread count while they
   are held, how long a scrape takes meanwhile, and how long the server holds an idle
   connection before closing it (capped at 60 s).

Run: python bench/export.py [--checks 1000] [--scrapes 50] [--seconds 30] [--idle 200]
     [--only scrapes|cpu|idle]
Everything listens on and probes 127.0.0.1 only; every loop here is bounded.
"""

from __future__ import annotations

import argparse
import gzip
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_http import loopback_http  # noqa: E402
from tui_idle import layout_text as idle_layout  # noqa: E402


def big_layout(port: int, checks: int) -> str:
    lines = ["name: bench-export", "interval: 10s", "timeout: 5s", "layers:"]
    lines += ["  - name: Backends", "    role: backend", "    checks:"]
    http = checks - checks // 100
    lines += [f"      - {{http: 'http://127.0.0.1:{port}/b{i}', name: backend-{i}}}" for i in range(http)]
    lines += ["  - name: Database", "    role: db", "    checks:"]
    lines += [f"      - {{tcp: '127.0.0.1:{port}', name: db-{i}}}" for i in range(checks - http)]
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return response.status, body, time.perf_counter() - started
    except urllib.error.HTTPError as error:
        return error.code, b"", time.perf_counter() - started
    except OSError:
        return 0, b"", time.perf_counter() - started


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "stackscope", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"export exited with {proc.returncode}")
        if get(f"{url}/healthz")[0] == 200:
            return
        time.sleep(0.1)
    raise SystemExit("export not healthy in time")


def stop(proc: subprocess.Popen) -> float:
    started = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    return time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def bench_scrapes(port: int, checks: int, scrapes: int, workdir: Path) -> None:
    layout = workdir / "big.yaml"
    layout.write_text(big_layout(port, checks))
    listen = free_port()
    url = f"http://127.0.0.1:{listen}"
    proc = start(["export", str(layout), "--listen", f"127.0.0.1:{listen}"])
    try:
        wait_healthy(url, proc)
        kinds = {
            "text": {},
            "openmetrics": {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
            "text+gzip": {"Accept-Encoding": "gzip"},
        }
        print(f"scrapes of /metrics with {checks} checks ({scrapes} each, after the first round):")
        for name, headers in kinds.items():
            times, sizes = [], []
            for _ in range(scrapes):
                status, body, seconds = get(f"{url}/metrics", headers)
                assert status == 200, status
                times.append(seconds * 1000)
                sizes.append(len(body))
            lines = (gzip.decompress(body) if name.endswith("gzip") else body).count(b"\n")
            # the first scrape after a round encodes; the rest of the round reuses the bytes
            print(
                f"  {name:12} first {times[0]:6.1f} ms  then median {statistics.median(times[1:]):5.1f} ms  "
                f"p95 {percentile(times[1:], 0.95):5.1f} ms  size {statistics.median(sizes) / 1024:6.1f} KiB  "
                f"({lines} lines)"
            )
        print(f"  SIGTERM to exit: {stop(proc) * 1000:.0f} ms")
    finally:
        if proc.poll() is None:
            stop(proc)


def cpu_percent(proc: subprocess.Popen, seconds: float, scrape_url: str | None) -> float:
    ps = psutil.Process(proc.pid)
    before = ps.cpu_times()
    started = time.monotonic()
    next_scrape = started
    while time.monotonic() - started < seconds:
        if scrape_url and time.monotonic() >= next_scrape:
            get(scrape_url)
            next_scrape += 5
        time.sleep(0.5)
    after = ps.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / (time.monotonic() - started)


def bench_idle(port: int, seconds: float, workdir: Path) -> None:
    layout = workdir / "idle.yaml"
    layout.write_text(idle_layout(port, 30))
    print(f"idle CPU, 30 checks every 1 s, {seconds:.0f} s each (% of one core):")
    listen = free_port()
    url = f"http://127.0.0.1:{listen}"
    proc = start(["export", str(layout), "--listen", f"127.0.0.1:{listen}"])
    try:
        wait_healthy(url, proc)
        time.sleep(3)  # warm-up: imports and the first rounds are not the steady state
        export_cpu = cpu_percent(proc, seconds, f"{url}/metrics")
    finally:
        stop(proc)
    proc = start(["watch", str(layout), "--plain"])
    try:
        time.sleep(5)  # warm-up, as above
        watch_cpu = cpu_percent(proc, seconds, None)
    finally:
        stop(proc)
    print(f"  export (scraped every 5 s) {export_cpu:5.2f} %")
    print(f"  watch --plain              {watch_cpu:5.2f} %")


def bench_idle_connections(port: int, count: int, workdir: Path) -> None:
    layout = workdir / "idle-conns.yaml"
    layout.write_text(idle_layout(port, 30))
    listen = free_port()
    url = f"http://127.0.0.1:{listen}"
    proc = start(["export", str(layout), "--listen", f"127.0.0.1:{listen}"])
    held: list[socket.socket] = []
    try:
        wait_healthy(url, proc)
        threads_before = psutil.Process(proc.pid).num_threads()
        started = time.perf_counter()
        for _ in range(count):
            sock = socket.socket()
            sock.settimeout(60)
            sock.connect(("127.0.0.1", listen))
            held.append(sock)
        connect_seconds = time.perf_counter() - started
        # a connect can return once the kernel queued it; the scrape behind them answers only
        # once the server has accepted all N (the listen queue is first come, first served)
        status, _, scrape_seconds = get(f"{url}/metrics")
        accept_seconds = time.perf_counter() - started
        threads = psutil.Process(proc.pid).num_threads()
        first = held[0]
        first.settimeout(max(0.1, 60 - (time.perf_counter() - started)))
        try:
            closed = first.recv(1) == b""
        except (TimeoutError, ConnectionResetError) as exc:
            closed = isinstance(exc, ConnectionResetError)
        held_seconds = time.perf_counter() - started
        print(f"{count} idle connections to export:")
        print(
            f"  {count} connects: {connect_seconds:6.2f} s; with one scrape behind them answered: {accept_seconds:6.2f} s"
        )
        print(f"  that scrape: status {status} in {scrape_seconds * 1000:6.1f} ms")
        print(f"  threads: {threads_before} before, {threads} while {count} idle connections are open")
        print(f"  an idle connection held: {held_seconds:5.1f} s" + ("" if closed else " and still open (cap)"))
    finally:
        for sock in held:
            sock.close()
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--idle", type=int, default=200, help="idle connections to hold open")
    parser.add_argument("--only", choices=("scrapes", "cpu", "idle"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, loopback_http() as port:
        if args.only in (None, "scrapes"):
            bench_scrapes(port, args.checks, args.scrapes, Path(tmp))
        if args.only in (None, "cpu"):
            bench_idle(port, args.seconds, Path(tmp))
        if args.only in (None, "idle"):
            bench_idle_connections(port, args.idle, Path(tmp))


if __name__ == "__main__":
    main()
