#!/usr/bin/env python3
"""What the report costs next to the probing: CPU of `check --format text` (piped and on a
terminal) and `--format json` for the result of one real round of N http checks.

Probes N http checks once against a loopback server (50 ms), notes the round's CPU, then
renders that round's diagnosis several times in each format. Target (issue 16, item 2):
text rendering ≤ 10 % of a 1000-check round's CPU, piped or not.

Run: python bench/render_text.py [--checks 1000] [--repeats 5]
Everything listens on and probes 127.0.0.1 only; every loop here is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loopback_http import loopback_http  # noqa: E402
from probe_round import layout_text  # noqa: E402


async def one_round(n: int, port: int):
    from stackscope.engine import Engine
    from stackscope.layout import parse_layout

    engine = Engine(parse_layout(layout_text(n, port)))
    try:
        await engine.run_round()  # warm: imports, first connections
        cpu = time.process_time()
        snapshot = await engine.run_round()
        return snapshot, time.process_time() - cpu
    finally:
        await engine.aclose()


def render_cpu(diagnosis, fmt: str, color: bool, repeats: int) -> float:
    from stackscope.render import render

    times = []
    for _ in range(repeats):
        started = time.process_time()
        render(diagnosis, fmt, color=color)
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", default=str(ROOT), help="the stackscope tree to measure (to compare)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    from stackscope.diagnosis import assess
    from stackscope.engine import raise_fd_limit

    raise_fd_limit()
    os.environ.pop("COLUMNS", None)
    with loopback_http(delay=0.05) as port:
        snapshot, round_cpu = asyncio.run(one_round(args.checks, port))
    diagnosis = assess(snapshot)
    n = args.checks
    print(
        f"load {os.getloadavg()[0]:.2f}; {n} http checks; one round cost {round_cpu * 1000:.0f} ms CPU ({round_cpu / n * 1e6:.0f} µs a check)"
    )
    figures = {}
    for label, fmt, color in (("text, piped", "text", False), ("text, terminal", "text", True), ("json", "json", None)):
        cpu = render_cpu(diagnosis, fmt, bool(color), args.repeats)
        figures[label] = cpu
        share = cpu / round_cpu * 100
        target = "   (target ≤ 10 % of the round)" if fmt == "text" else ""
        print(f"  {label:<15} {cpu * 1000:7.1f} ms  {cpu / n * 1e6:6.0f} µs/check  {share:5.1f} % of the round{target}")
    print(f"  text/json CPU   {figures['text, piped'] / figures['json']:.2f}×")


if __name__ == "__main__":
    main()
