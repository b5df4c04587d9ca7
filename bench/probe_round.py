#!/usr/bin/env python3
"""Round wall time and peak RSS for N http checks against a loopback server that
answers every request after 50 ms; and the cold start of `stackscope check`.

Also the median latency each round reports, against the server's 50 ms, and the CPU of
`stackscope check` on a one-check layout, cold. Targets (issue 16): at 1000 checks the
median reported latency within 10 ms of 50 ms; a one-check `check --format json` ≤ 0.12 s
CPU. Run: python bench/probe_round.py [--sizes 10,100,1000] [--root OTHER_TREE]
Everything listens on and probes 127.0.0.1 only; every loop here is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loopback_http import loopback_http  # noqa: E402  (bench/ is on the path when run as a script)


def layout_text(n: int, port: int) -> str:
    checks = "\n".join(f"      - {{http: 'http://127.0.0.1:{port}/?c={i}', name: c{i}}}" for i in range(n))
    return (
        f"name: bench\ninterval: 10s\ntimeout: 5s\nlayers:\n  - name: Pool\n    role: backend\n    checks:\n{checks}\n"
    )


def cpu_seconds() -> float:
    """CPU of this process and of its stackscope worker processes (not the server's).

    Workers run as `-m stackscope.worker_process` (`-m stackscope.workers` in older trees,
    which --root may measure): "stackscope.worker" matches both."""
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system
    for child in me.children(recursive=True):
        try:
            if "stackscope.worker" in " ".join(child.cmdline()):
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


async def measure(n: int, port: int, repeats: int) -> tuple[list[float], list[float], list[float], int]:
    """Per round: wall time, median reported latency (ms), CPU seconds (this process and
    its workers); and how many checks failed in all."""
    from stackscope.engine import Engine
    from stackscope.layout import parse_layout
    from stackscope.model import Status

    engine = Engine(parse_layout(layout_text(n, port)))
    times, medians, cpus, failed = [], [], [], 0
    try:
        for _ in range(repeats):
            started, cpu = time.perf_counter(), cpu_seconds()
            snapshot = await engine.run_round()
            times.append(time.perf_counter() - started)
            cpus.append(cpu_seconds() - cpu)
            medians.append(statistics.median(r.latency_ms or 0.0 for r in snapshot.results.values()))
            bad = [r for r in snapshot.results.values() if r.status is not Status.OK]
            failed += len(bad)
            if bad and n <= 1000:
                raise SystemExit(f"{len(bad)} checks failed, e.g. {bad[0].detail}")
    finally:
        await engine.aclose()
    return times, medians, cpus, failed


def cold_start(port: int, runs: int, fmt: str = "text", root: Path = ROOT) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of `stackscope check --format FMT` on one check."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(layout_text(1, port))
    times, cpus = [], []
    env = {**os.environ, "PYTHONPATH": str(root)}
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "stackscope", "check", handle.name, "--format", fmt], capture_output=True, env=env
        )
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(done.stdout.decode() + done.stderr.decode())
    os.unlink(handle.name)
    return times, cpus


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=9)
    parser.add_argument("--root", default=str(ROOT), help="the stackscope tree to measure (to compare)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))  # the tree measured (rounds and cold start alike)
    from stackscope.engine import raise_fd_limit

    raise_fd_limit()  # as the CLI does
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with loopback_http(delay=0.05) as port:
        from stackscope.engine import default_concurrency

        print(
            f"server: 127.0.0.1:{port}, answers after 50 ms; python {sys.version.split()[0]}; "
            f"fd limit {soft}, concurrency cap {default_concurrency()}"
        )
        print(
            f"{'checks':>7} {'round min':>10} {'median':>8} {'max':>8} {'CPU/round':>10} {'cores':>6} {'peak RSS':>9} "
            f"{'latency median':>15}"
        )
        for n in (int(s) for s in args.sizes.split(",")):
            times, medians, cpus, failed = asyncio.run(measure(n, port, args.repeats))
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            latency = statistics.median(medians)
            wall = statistics.median(times)
            cores = statistics.median(c / t for c, t in zip(cpus, times))
            if n >= 10000:
                target = f"(target, issue 22: ≤ 2.5 s wall on two cores, every core used; {failed} failed)"
            elif n == 1000:
                target = f"(error {latency - 50:+.1f} ms; targets: within 10 % of the server's 50 ms, round ≤ 0.6 s)"
            else:
                target = f"(error {latency - 50:+.1f} ms)"
            print(
                f"{n:>7} {min(times):>9.3f}s {wall:>7.3f}s {max(times):>7.3f}s "
                f"{statistics.median(cpus):>9.3f}s {cores:>6.2f} {rss_mb:>7.1f}MB {latency:>12.1f} ms  {target}",
                flush=True,
            )
        floor = []
        for _ in range(args.cold_runs):  # what Python and asyncio alone cost on this machine now
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", "import asyncio"], check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            floor.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        print(
            f"floor: `python -c 'import asyncio'` CPU median {statistics.median(floor):.3f}s (load: {os.getloadavg()[0]:.2f})"
        )
        for fmt in ("json", "text"):
            starts, cpus = cold_start(port, args.cold_runs, fmt, Path(args.root))
            target = "  (target ≤ 0.12 s CPU)" if fmt == "json" else ""
            print(
                f"cold `stackscope check --format {fmt}` (1 http check): CPU median {statistics.median(cpus):.3f}s "
                f"(min {min(cpus):.3f}s){target}; wall median {statistics.median(starts):.3f}s"
            )


if __name__ == "__main__":
    main()
