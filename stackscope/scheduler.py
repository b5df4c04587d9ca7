"""When each probe of a round starts, so that the latency a probe reports is the target's
and not our own queueing.

One event loop runs every probe of a round. A probe costs this process a few hundred
microseconds of CPU (connect, send, parse, judge); a thousand started in the same 50 ms
answer together 50 ms later and wait in line for the loop — a 50 ms server read as a
median of 213-245 ms. So starts are paced by what they cost:

- one start every `cost / START_RATE` seconds, where `cost` is the CPU a probe took in
  the rounds before (measured with process_time, the kernel's share included; a first
  round assumes DEFAULT_COST). Measured on the 2-core machine class (1000 checks, a
  50 ms target, uvloop, medians of 3; round wall and median latency read): at 0.5,
  0.90 s and 51.1 ms; at 0.8, 0.50 s and 51.6 ms; at 1.0, 0.45 s and 52.0 ms; at 1.2,
  0.36 s and 52.8 ms — blackbox_exporter's round took 0.37–0.6 s reading 160–250 ms.
  Spreading starts thinner also costs CPU (every start and answer gets a loop pass of
  its own: 510 µs a probe at 0.5, 300 µs at 1.2). The lag limit below, not a slow
  rate, is what keeps answers from queueing;
- the pacer is also the lag meter: it sleeps TICK and measures how late it woke; while
  the loop runs more than LAG_LIMIT late, no probe starts (in-flight probes are capped by
  measured lag, whatever the cost estimate says);
- a worker process of a sharded round (workers.py) starts at SHARD_START_RATE: there
  the two cores are shared by the workers, the parent and often the target, and a
  faster rate did not shorten a 10,000-check round (2.63 s at 0.9, 2.65 s at 1.2);
- the whole spread is capped (`max_spread`, part of the interval): past it, whatever is
  left starts at once — a round must end before the next one is due.

A result measured while the loop was late by LAG_NOTE or more carries the lag in its
facts (`loop_lag_ms`), so a latency taken under load says so.

A small round barely notices: 30 checks start within a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

WORKER_THRESHOLD = 2000  # checks from which a round is shared among processes (workers.py)
TICK = 0.001  # the pacer's sleep: also the resolution of the lag it measures
METER_TICK = 0.005  # the lag meter's sleep once every probe has started
LAG_LIMIT = 0.002  # the loop this late (s): start nothing until it catches up
LAG_NOTE = 0.001  # a result measured with the loop this late (s) or more says so
START_RATE = 1.2  # starts per probe cost of loop time (see above)
SHARD_START_RATE = 0.9  # the same in a worker process of a sharded round
DEFAULT_COST = 0.0004  # CPU seconds a probe is assumed to cost before any is measured
MAX_COST = 0.002  # the estimate never goes above this (1000 checks then spread over 4 s)
MIN_GAP = 0.00025  # never more than four starts a millisecond
BURST = 8  # starts allowed back to back after an idle stretch


class Pacer:
    """Starts a round's probes at a pace the event loop can keep up with.

    One per engine: it remembers what a probe cost in the previous rounds."""

    def __init__(
        self,
        rate: float = START_RATE,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        """`clock` and `cpu_clock` are time.monotonic and time.process_time; tests give
        their own to see the pacing decisions without timing anything."""
        self.rate = rate
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.cost = DEFAULT_COST
        self.lag = 0.0  # the most recent lag measured (s)
        self.max_lag = 0.0  # the worst lag of the last round (s)
        self.spread = 0.0  # how long the last round took to start every probe (s)
        self._running = False

    def gap(self) -> float:
        return max(MIN_GAP, self.cost / self.rate)

    async def run(self, items: Sequence[T], start: Callable[[T], Awaitable[R]], *, max_spread: float = 1.0) -> list[R]:
        """Start `start(item)` for every item, paced; return the results in order."""
        # time.monotonic, not loop.time(): uvloop's clock moves in whole milliseconds, and
        # the gap between starts and the lag measured are fractions of one
        clock = self.clock
        began = clock()
        cpu_began = self.cpu_clock()
        deadline = began + max(0.0, max_spread)
        gap = self.gap()
        tasks: list[asyncio.Future[R]] = []
        self.max_lag = self.lag = 0.0
        self._running = True
        meter = None
        try:
            next_at = began
            index = 0
            while index < len(items):
                now = clock()
                if now >= deadline:  # out of time: the rest start at once
                    tasks.extend(asyncio.ensure_future(start(item)) for item in items[index:])
                    break
                burst = 0
                while index < len(items) and next_at <= now and burst < BURST and self.lag <= LAG_LIMIT:
                    tasks.append(asyncio.ensure_future(start(items[index])))
                    index += 1
                    burst += 1
                    next_at = max(next_at + gap, now - BURST * gap)
                if index >= len(items):
                    break
                # sleep until the next start is due (at least TICK): no idle wake-ups
                await self._tick(max(TICK, next_at - clock()) if self.lag <= LAG_LIMIT else TICK)
            self.spread = clock() - began
            if len(items) > BURST:  # keep measuring the lag while the probes answer
                meter = asyncio.ensure_future(self._meter())
            results = await asyncio.gather(*tasks)
        finally:
            self._running = False
            if meter is not None:
                meter.cancel()
        if len(items) >= 20:  # enough probes for the cost per probe to mean something
            # The round's CPU includes the pacer's own wake-ups, which grow with the spread
            # that the cost sets: a round may raise the estimate by half at most, so the
            # two cannot chase each other up.
            measured = (self.cpu_clock() - cpu_began) / len(items)
            self.cost = min(MAX_COST, 0.5 * self.cost + 0.5 * min(measured, 1.5 * self.cost))
        return results

    async def _tick(self, seconds: float = TICK) -> None:
        before = self.clock()
        await asyncio.sleep(seconds)
        self.lag = max(0.0, self.clock() - before - seconds)
        self.max_lag = max(self.max_lag, self.lag)

    async def _meter(self) -> None:
        while self._running:  # ends when the round's probes have all answered
            await self._tick(METER_TICK)

    def lag_ms(self) -> float | None:
        """The loop's lag right now in ms, when it is worth noting on a result."""
        if self._running and self.lag >= LAG_NOTE:
            return round(self.lag * 1000, 1)
        return None
