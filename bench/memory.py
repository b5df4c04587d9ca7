#!/usr/bin/env python3
"""Bytes per check: the parsed layout, the engine and a full history (120 rounds) per
check, at 1000 and 10,000 checks; and the garbage collector's share of a round of result
objects, before and after settle_memory() (gc.freeze and a higher gen-0 threshold).

Nothing is probed: the history is filled with Samples as rounds would fill it, so the
figure is the data structures', not the network's. Target (issue 16, item 5): history in
compact form; report bytes per check (the old deque of Samples is measured alongside).

Run: python bench/memory.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections import deque
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probe_round import layout_text  # noqa: E402


def per_check(n: int, old_form: bool) -> tuple[float, float]:
    """(bytes per check for layout + engine + history, of which the history)."""
    from stackscope.engine import DEFAULT_HISTORY, Engine
    from stackscope.history import Sample
    from stackscope.layout import parse_layout
    from stackscope.model import Status

    gc.collect()
    tracemalloc.start()
    engine = Engine(parse_layout(layout_text(n, 8080)), workers=0)
    if old_form:  # what the engine kept before: a deque of Sample objects (non-slotted equivalent)
        engine.history = {cid: deque(maxlen=DEFAULT_HISTORY) for cid in engine.history}
    before_history = tracemalloc.get_traced_memory()[0]
    for history in engine.history.values():
        for i in range(DEFAULT_HISTORY):
            sample = (
                Sample(1.7e9 + i, Status.OK, 1.0 + i % 7)
                if not old_form
                else _OldSample(1.7e9 + i, Status.OK, 1.0 + i % 7)
            )
            history.append(sample)
    total = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del engine
    return total / n, (total - before_history) / n


@dataclass(frozen=True)
class _OldSample:
    """The Sample as it was: a frozen dataclass without __slots__ (an instance dict)."""

    at: float
    status: object
    latency_ms: float | None


def gc_share(n: int, settle: bool) -> float:
    """Share of the time spent in the collector while building `n` results with facts, ×3
    rounds, with the engine's history alive (as a watch at n checks allocates)."""
    from stackscope.engine import Engine, settle_memory
    from stackscope.layout import parse_layout
    from stackscope.model import Result, Status

    gc.collect()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    engine = Engine(parse_layout(layout_text(n, 8080)), workers=0)
    if settle:
        settle_memory()
    spent = [0.0]
    started = [0.0]

    def callback(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    t0 = time.perf_counter()
    try:
        for _ in range(3):
            results = [
                Result(c.id, Status.OK, "200 OK", 1.0, "200", {"phases": {"connect": 0.1, "total": 1.0}, "headers": {}})
                for c in engine.layout.checks()
            ]
            del results
    finally:
        gc.callbacks.remove(callback)
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
    return spent[0] / (time.perf_counter() - t0) * 100


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    print(f"{'checks':>7} {'form':<22} {'bytes/check':>12} {'of which history':>17}")
    for n in (int(s) for s in args.sizes.split(",")):
        for old in (True, False):
            total, history = per_check(n, old)
            form = "deque of Samples (old)" if old else "History arrays (now)"
            print(f"{n:>7} {form:<22} {total:>12,.0f} {history:>17,.0f}")
    print("target: compact history; the figures above are per check with 120 rounds kept")
    for n in (int(s) for s in args.sizes.split(",")):
        plain, settled = gc_share(n, False), gc_share(n, True)
        print(
            f"{n:>7} checks: GC share of building a round's results {plain:4.1f} % → {settled:4.1f} % after settle_memory()"
        )


if __name__ == "__main__":
    main()
