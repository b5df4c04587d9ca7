#!/usr/bin/env python3
"""False alarms on a healthy real stack, and how soon a hung backend is suspected.

The stack (tests/servers/authstack.py), all on 127.0.0.1: dnsmasq, HAProxy in front of
three backend processes, Redis; `--jittery` of the backends (default 1) answer after a
random log-normal delay truncated to 1–200 ms, so the frontend sees a heavy-tailed mix.
The engine probes it every second (timeout 1 s) with the layout's `suspect:` defaults.

1. Healthy phase (`--minutes`, default 10): every verdict that is not healthy is a false
   alarm, and so is every SUSPECTED result. Every answer's latency is kept, and replayed
   afterwards through the suspicion math with other settings and with Akka's model (a
   normal on raw latencies, spread floored in ms): for each answer, the crossing computed
   from the answers before it — an answer slower than that crossing would have been a
   false suspicion. That is how the model and the defaults are chosen.
2. Hang phase (`--hangs`, default 5): SIGSTOP a fast backend at a random phase of the
   round; time from the signal to its first SUSPECTED result and to its timeout, and the
   silence the suspicion fired at (from the probe's start).

Run: python bench/false_alarms.py [--minutes 10] [--hangs 5] [--jittery 1] [--seed 1].
I/O-light: one round a second of six checks. It stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackscope.diagnosis import assess  # noqa: E402
from stackscope.engine import Engine  # noqa: E402
from stackscope.layout import parse_layout  # noqa: E402
from stackscope.model import SUSPECT_WINDOW, ErrorKind, Result, Status, SuspectSettings  # noqa: E402
from stackscope.stream import VerdictStream, per_result, settled  # noqa: E402
from stackscope.suspicion import crossing, threshold_z  # noqa: E402
from tests.servers.authstack import AuthStack  # noqa: E402

HANG_DEADLINE = 5.0  # seconds after SIGSTOP by which the timeout must have come


@dataclasses.dataclass
class Seen:
    at: float
    check_id: str
    status: Status
    kind: ErrorKind | None
    latency_ms: float | None
    facts: dict


class Recorder:
    """Runs the engine; keeps every result and every verdict change (as `watch --plain`)."""

    def __init__(self, layout) -> None:
        self.engine = Engine(layout)
        self.stream = VerdictStream()
        self.results: list[Seen] = []
        self.verdicts: list[tuple[float, str]] = []
        self.arrived = asyncio.Event()

    def _record(self, diagnosis) -> None:
        if self.stream.news(diagnosis) and diagnosis.verdict is not None:
            self.verdicts.append((time.monotonic(), diagnosis.verdict.summary))

    def on_result(self, result: Result) -> None:
        self.results.append(
            Seen(time.monotonic(), result.check_id, result.status, result.error_kind, result.latency_ms, result.facts)
        )
        self.arrived.set()
        snapshot, outstanding = per_result(self.engine)
        diagnosis = settled(snapshot, outstanding) if snapshot is not None else None
        if diagnosis is not None:
            self._record(diagnosis)

    def on_snapshot(self, snapshot) -> None:
        self._record(assess(snapshot))

    async def first(self, predicate, since: float, deadline: float) -> Seen | None:
        end = time.monotonic() + deadline
        index = 0
        while True:
            for item in self.results[index:]:
                if item.at >= since and predicate(item):
                    return item
            index = len(self.results)
            if time.monotonic() >= end:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), end - time.monotonic())
            except TimeoutError:
                return None


# --------------------------------------------------------------------------- replay


def normal_crossing(window: list[float], timeout_ms: float, threshold: float, min_sd_ms: float, floor_ms: float):
    """Akka's model: a normal on raw latencies, σ floored in ms (no acceptable pause)."""
    mean, sd = statistics.fmean(window), max(statistics.stdev(window), min_sd_ms)
    at = max(mean + threshold_z(threshold) * sd, floor_ms)
    return None if at >= timeout_ms else at


def replay(series: dict[str, list[float]], timeout_ms: float, model) -> dict:
    """Per check and overall: answers slower than the crossing computed from the answers
    before them (false suspicions), and the median crossing where there was one."""
    false, judged, crossings, per_check = 0, 0, [], {}
    for check, latencies in series.items():
        mine = []
        for i in range(len(latencies)):
            window = latencies[max(0, i - SUSPECT_WINDOW) : i]
            at = model(window, timeout_ms) if len(window) >= SuspectSettings().min_samples else None
            if at is None:
                continue
            judged += 1
            crossings.append(at)
            mine.append(at)
            false += latencies[i] >= at
        per_check[check] = round(statistics.median(mine), 1) if mine else None
    return {
        "per_check_median_crossing_ms": per_check,
        "false_suspicions": false,
        "judged": judged,
        "median_crossing_ms": round(statistics.median(crossings), 1) if crossings else None,
    }


def lognormal(settings: SuspectSettings):
    def model(window, timeout_ms):
        got = crossing(window, timeout_ms, settings)
        return None if got is None else got.silence_ms

    return model


def normal(threshold: float, min_sd_ms: float, floor_ms: float):
    return lambda window, timeout_ms: normal_crossing(window, timeout_ms, threshold, min_sd_ms, floor_ms)


def replays(series: dict[str, list[float]], timeout_ms: float) -> dict:
    out = {}
    for threshold in (3, 5, 8, 12):
        for spread in (0.0, 0.1, 0.25, 0.5):
            for silence in (0.0, 0.1, 0.3):
                key = f"lognormal threshold={threshold} min_spread={spread} min_silence={silence * 1000:g}ms"
                settings = SuspectSettings(threshold=threshold, min_spread=spread, min_silence=silence)
                out[key] = replay(series, timeout_ms, lognormal(settings))
        for sd in (0.0, 20.0, 100.0):
            for silence in (0.0, 300.0):
                key = f"normal threshold={threshold} min_sd={sd:g}ms min_silence={silence:g}ms"
                out[key] = replay(series, timeout_ms, normal(threshold, sd, silence))
    return out


# --------------------------------------------------------------------------- run


async def run_bench(minutes: float, hangs: int, jittery: int, seed: int) -> dict:
    rng = random.Random(seed)
    stack = AuthStack(interval="1s", timeout="1s", jittery=jittery)
    stack.start()
    try:
        layout = parse_layout(stack.layout(), "authstack.yaml")
        recorder = Recorder(layout)
        task = asyncio.create_task(recorder.engine.watch(recorder.on_snapshot, on_result=recorder.on_result))
        try:
            began = time.monotonic()
            await asyncio.sleep(minutes * 60)
            healthy_end = time.monotonic()
            healthy = [r for r in recorder.results if r.at < healthy_end]
            series: dict[str, list[float]] = defaultdict(list)
            for r in healthy:
                if r.status is Status.OK and r.latency_ms is not None:
                    series[r.check_id].append(r.latency_ms)
            report: dict = {
                "settings": dataclasses.asdict(layout.suspect) if layout.suspect else None,
                "healthy_minutes": round((healthy_end - began) / 60, 2),
                "results": len(healthy),
                "not_ok": dict(
                    Counter(f"{r.check_id} {r.status.word} {r.kind}" for r in healthy if r.status is not Status.OK)
                ),
                "suspicions": [
                    f"{r.check_id} {r.facts.get('silence_ms')} ms (usually {r.facts.get('usual_ms')})"
                    for r in healthy
                    if r.kind is ErrorKind.SUSPECTED
                ],
                "false_verdicts": [summary for at, summary in recorder.verdicts if at < healthy_end],
                "latency_ms": {
                    check: {
                        "n": len(values),
                        "median": round(statistics.median(values), 2),
                        "p99": round(sorted(values)[int(0.99 * (len(values) - 1))], 2),
                        "max": round(max(values), 2),
                    }
                    for check, values in series.items()
                },
                "replay": replays(series, layout.timeout * 1000),
            }
            report["hangs"] = await hang_phase(stack, recorder, hangs, rng, layout.interval)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await recorder.engine.aclose()
    finally:
        stack.stop()
    return report


async def hang_phase(stack: AuthStack, recorder: Recorder, hangs: int, rng: random.Random, interval: float) -> dict:
    backend = stack.backends[0]  # a fast one
    check_id = f"Auth backends/{backend.name}"
    suspected, timed_out, silence, missed = [], [], [], 0
    for _ in range(hangs):
        await asyncio.sleep(rng.uniform(0, interval) + 2 * interval)  # a random phase; history back
        t0 = time.monotonic()
        await asyncio.to_thread(backend.pause)
        try:
            first = await recorder.first(
                lambda r: r.check_id == check_id and r.status is not Status.OK, t0, HANG_DEADLINE
            )
            crit = await recorder.first(
                lambda r: r.check_id == check_id and r.kind is ErrorKind.TIMEOUT, t0, HANG_DEADLINE
            )
        finally:
            await asyncio.to_thread(backend.resume)
        if first is not None and first.kind is ErrorKind.SUSPECTED:
            suspected.append(first.at - t0)
            silence.append(first.facts["silence_ms"])
        else:
            missed += 1
        if crit is not None:
            timed_out.append(crit.at - t0)
        # back to healthy before the next one (its OK answers rebuild nothing: history keeps them)
        await recorder.first(lambda r: r.check_id == check_id and r.status is Status.OK, time.monotonic(), 10)

    def summary(values):
        return (
            {"median_s": round(statistics.median(values), 3), "all_s": [round(v, 3) for v in values]} if values else {}
        )

    return {
        "check": check_id,
        "suspected_after_sigstop": summary(suspected),
        "timeout_after_sigstop": summary(timed_out),
        "suspected_at_silence_ms": silence,
        "not_suspected_first": missed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="healthy phase length (default 10)")
    parser.add_argument("--hangs", type=int, default=5, help="SIGSTOPs of a fast backend (default 5)")
    parser.add_argument("--jittery", type=int, choices=range(4), default=1, help="backends with 1-200 ms delays")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = parser.parse_args()
    report = asyncio.run(run_bench(args.minutes, args.hangs, args.jittery, args.seed))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    replay_rows = report.pop("replay")
    for key in (
        "lognormal threshold=8 min_spread=0.25 min_silence=300ms",
        "normal threshold=8 min_sd=20ms min_silence=0ms",
    ):
        print(f"{key}: median crossing per check {replay_rows[key]['per_check_median_crossing_ms']}")
    print(json.dumps(report, indent=2, default=str))
    print("\nreplay (answers slower than their crossing = false suspicions / answers judged; median crossing):")
    for key, row in replay_rows.items():
        print(f"  {key:58} {row['false_suspicions']:5} / {row['judged']:6}  {row['median_crossing_ms']} ms")


if __name__ == "__main__":
    main()
