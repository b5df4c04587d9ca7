#!/usr/bin/env python3
"""Time to verdict on a real stack: how fast the verdict names the right layer after a
fault, how fast it says healthy again after the repair, and how often it names anything
else while the fault is in place.

The stack (tests/servers/authstack.py), all on 127.0.0.1: dnsmasq, HAProxy 2.6 in front of
three backend processes (`check inter 1s fall 2 rise 1`), Redis. The layout probes every
2 s with a 1 s timeout. Faults, each injected `--injections` times (default 5) at a random
phase of the probe interval, by this bench's own set-up code (stackscope never writes):

- kill-one     SIGKILL one backend                         -> Auth backends WARN
- hang-one     SIGSTOP one backend                         -> Auth backends WARN
- kill-all     SIGKILL every backend                       -> Auth backends CRIT
- misroute     Runtime API `set server … addr` elsewhere    -> Load balancer CRIT
- stop-redis   stop Redis                                  -> Cache CRIT
- stop-dns     stop dnsmasq                                -> DNS CRIT

The verdict is followed the way `watch --plain` follows it: re-judged on every result
once every check has reported in the round (stackscope/stream.py), and at every round's
end. Detection: the first verdict naming the expected layer and status (and the first
such verdict that is confirmed); recovery: the first healthy verdict after the repair.
A false verdict is any verdict naming another layer or status while the fault is in
place (an unconfirmed one counts too).

Run: python bench/time_to_verdict.py [--injections 5] [--seed 1]. It stops by itself
(a deadline per step and for the whole run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackscope.diagnosis import assess  # noqa: E402
from stackscope.engine import Engine  # noqa: E402
from stackscope.layout import parse_layout  # noqa: E402
from stackscope.model import Status  # noqa: E402
from stackscope.stream import VerdictStream, per_result, settled  # noqa: E402
from tests.servers.authstack import AuthStack  # noqa: E402

DETECT_DEADLINE = 12.0  # seconds: a fault not named by then counts as missed
RECOVER_DEADLINE = 15.0
HOLD = 2.5  # seconds the fault stays in place after it was named (false verdicts are counted meanwhile)
RUN_DEADLINE = 900.0


@dataclass
class Seen:
    at: float
    layer: str | None
    status: Status
    confirmed: bool
    summary: str


@dataclass
class Outcome:
    detect: list[float] = field(default_factory=list)
    detect_confirmed: list[float] = field(default_factory=list)
    recover: list[float] = field(default_factory=list)
    missed: int = 0
    not_recovered: int = 0
    false: list[str] = field(default_factory=list)
    during_recovery: list[str] = field(default_factory=list)  # verdicts between the repair and healthy


class Follower:
    """Runs the engine and records every verdict change, as `watch --plain` shows them."""

    def __init__(self, layout) -> None:
        self.engine = Engine(layout)
        self.stream = VerdictStream()
        self.seen: list[Seen] = []
        self.changed = asyncio.Event()

    def _record(self, diagnosis) -> None:
        if not self.stream.news(diagnosis):
            return
        v = diagnosis.verdict
        self.seen.append(
            Seen(
                time.monotonic(),
                v.layer if v else None,
                v.status if v else Status.OK,
                v.confirmed if v else True,
                v.summary if v else "healthy",
            )
        )
        self.changed.set()

    def on_result(self, result) -> None:
        snapshot, outstanding = per_result(self.engine)
        diagnosis = settled(snapshot, outstanding) if snapshot is not None else None
        if diagnosis is not None:
            self._record(diagnosis)

    def on_snapshot(self, snapshot) -> None:
        self._record(assess(snapshot))

    async def run(self) -> None:
        await self.engine.watch(self.on_snapshot, on_result=self.on_result)

    async def until(self, predicate, since: float, deadline: float) -> Seen | None:
        """The first verdict recorded after `since` that satisfies `predicate`."""
        end = time.monotonic() + deadline
        index = 0
        while True:
            for item in self.seen[index:]:
                if item.at >= since and predicate(item):
                    return item
            index = len(self.seen)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                return None

    def current(self) -> Seen | None:
        return self.seen[-1] if self.seen else None


def faults(stack: AuthStack):
    """(name, expected (layer, status), inject, repair) for each fault; blocking calls."""
    b = stack.backends

    def restart(*backends):
        def go():
            for backend in backends:
                backend.start()

        return go

    return [
        ("kill-one", ("Auth backends", Status.WARN), b[1].kill, restart(b[1])),
        ("hang-one", ("Auth backends", Status.WARN), b[1].pause, b[1].resume),
        ("kill-all", ("Auth backends", Status.CRIT), lambda: [x.kill() for x in b], restart(*b)),
        ("misroute", ("Load balancer", Status.CRIT), stack.misroute, stack.unmisroute),
        ("stop-redis", ("Cache", Status.CRIT), stack.redis.stop, stack.redis.start),
        ("stop-dns", ("DNS", Status.CRIT), stack.dnsmasq.stop, stack.dnsmasq.start),
    ]


async def healthy(follower: Follower, deadline: float = 20.0) -> bool:
    now = follower.current()
    if now is not None and now.layer is None:
        return True
    return await follower.until(lambda s: s.layer is None, 0.0, deadline) is not None


async def run_bench(injections: int, seed: int) -> dict[str, Outcome]:
    rng = random.Random(seed)
    stack = AuthStack().start()
    layout = parse_layout(stack.layout(), "authstack.yaml")
    follower = Follower(layout)
    task = asyncio.create_task(follower.run())
    results: dict[str, Outcome] = {}
    started = time.monotonic()
    try:
        if not await healthy(follower, 30):
            raise SystemExit(f"the stack never became healthy: {follower.current()}")
        for name, (layer, status), inject, repair in faults(stack):
            outcome = results[name] = Outcome()
            for _ in range(injections):
                if time.monotonic() - started > RUN_DEADLINE:
                    print("run deadline reached; stopping", file=sys.stderr)
                    return results
                await asyncio.sleep(rng.uniform(0, layout.interval))  # a random phase of the round
                t0 = time.monotonic()
                await asyncio.to_thread(inject)
                want = (layer, status)
                right = await follower.until(lambda s, want=want: (s.layer, s.status) == want, t0, DETECT_DEADLINE)
                if right is None:
                    outcome.missed += 1
                else:
                    outcome.detect.append(right.at - t0)
                    sure = await follower.until(
                        lambda s, want=want: (s.layer, s.status) == want and s.confirmed, t0, DETECT_DEADLINE
                    )
                    if sure is not None:
                        outcome.detect_confirmed.append(sure.at - t0)
                    await asyncio.sleep(HOLD)
                t1 = time.monotonic()
                for s in follower.seen:
                    if t0 <= s.at < t1 and s.layer is not None and (s.layer, s.status) != (layer, status):
                        outcome.false.append(f"{s.status.word} {s.layer}{'' if s.confirmed else ' (unconfirmed)'}")
                    elif t0 <= s.at < t1 and s.layer is None and right is not None and s.at > right.at:
                        outcome.false.append("healthy while the fault was in place")
                await asyncio.to_thread(repair)
                back = await follower.until(lambda s: s.layer is None, t1, RECOVER_DEADLINE)
                if back is None:
                    outcome.not_recovered += 1
                    await healthy(follower, 30)
                else:
                    outcome.recover.append(back.at - t1)
                    outcome.during_recovery += [
                        f"{s.status.word} {s.layer}{'' if s.confirmed else ' (unconfirmed)'}"
                        for s in follower.seen
                        if t1 <= s.at < back.at and s.layer is not None and (s.layer, s.status) != (layer, status)
                    ]
                await asyncio.sleep(1.5)  # let HAProxy's rise and the confirmations settle
                await healthy(follower, 20)
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        await follower.engine.aclose()
        stack.stop()
    return results


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--injections", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    args = parser.parse_args()
    results = asyncio.run(run_bench(args.injections, args.seed))
    print(
        f"{'fault':<11} {'n':>2}  {'detect s (min/med/max)':<22} {'confirmed s':<22} {'recover s':<22} "
        f"{'missed':>6} {'false':>5} {'other while recovering':>22}"
    )
    for name, o in results.items():
        n = len(o.detect) + o.missed
        print(
            f"{name:<11} {n:>2}  {spread(o.detect):<22} {spread(o.detect_confirmed):<22} {spread(o.recover):<22} "
            f"{o.missed:>6} {len(o.false):>5} {len(o.during_recovery):>22}"
        )
        for item in o.false:
            print(f"    false verdict: {item}")
        for item in o.during_recovery:
            print(f"    while recovering: {item}")
    if args.json:
        print(json.dumps({k: v.__dict__ for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
