"""The pacer's decisions (scheduler.py), seen through a fake clock: how many probes start
per wake-up, that none starts while the loop lags, that the spread cap starts the rest at
once, and how the cost estimate moves. Nothing here is timed."""

from __future__ import annotations

import asyncio

import pytest

from stackscope import scheduler
from stackscope.scheduler import BURST, LAG_LIMIT, Pacer


class FakeTime:
    """A clock that moves only when the pacer sleeps, by what it asked for plus `late`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0
        self.late = 0.0

    def clock(self) -> float:
        return self.now

    def cpu_clock(self) -> float:
        return self.cpu


def paced(rate: float, cost: float, fake: FakeTime, starts_per_tick: list[int], started: list[int]) -> Pacer:
    pacer = Pacer(rate, clock=fake.clock, cpu_clock=fake.cpu_clock)
    pacer.cost = cost

    async def tick(seconds: float = scheduler.TICK) -> None:
        starts_per_tick.append(len(started))
        fake.now += seconds + fake.late
        pacer.lag = fake.late
        await asyncio.sleep(0)

    pacer._tick = tick  # type: ignore[method-assign]  # the fake clock's sleep
    return pacer


def run(pacer: Pacer, n: int, started: list[int], max_spread: float = 60.0) -> list[int]:
    async def start(i: int) -> int:
        started.append(i)
        return i * 10

    async def main() -> list[int]:
        return await pacer.run(list(range(n)), start, max_spread=max_spread)

    return asyncio.run(main())


@pytest.mark.parametrize("rate,cost", [(1.0, 0.01), (2.0, 0.01), (1.2, 0.0024), (1.2, 0.0003)])
def test_starts_are_spaced_by_cost_over_rate(rate, cost):
    fake, ticks, started = FakeTime(), [], []
    pacer = paced(rate, cost, fake, ticks, started)
    gap = max(scheduler.MIN_GAP, cost / rate)
    assert pacer.gap() == pytest.approx(gap)
    results = run(pacer, 40, started)
    assert results == [i * 10 for i in range(40)]  # every item once, results in order
    assert sorted(started) == list(range(40))
    # the clock only moves when the pacer sleeps: the last start came 39 gaps after the
    # first (give or take a tick: it never sleeps less than TICK)
    assert pacer.spread == pytest.approx(39 * gap, abs=max(gap, scheduler.TICK))


def test_nothing_starts_while_the_loop_runs_late():
    fake, ticks, started = FakeTime(), [], []
    pacer = paced(10.0, 0.0001, fake, ticks, started)  # fast enough to start a burst per tick
    fake.late = LAG_LIMIT * 2  # every sleep overruns: the loop is behind

    async def main() -> None:
        async def start(i: int) -> int:
            started.append(i)
            return i

        task = asyncio.ensure_future(pacer.run(list(range(50)), start, max_spread=60.0))
        while len(ticks) < 5:  # bounded: each pass lets the pacer sleep once more
            await asyncio.sleep(0)
        lagging = len(started)
        fake.late = 0.0  # the loop catches up
        await task
        assert lagging <= BURST  # only the first burst, before any lag was measured
        assert sorted(started) == list(range(50))

    asyncio.run(main())


def test_past_the_spread_cap_the_rest_start_at_once():
    fake, ticks, started = FakeTime(), [], []
    pacer = paced(1.0, 1.0, fake, ticks, started)  # a start a second
    run(pacer, 30, started, max_spread=2.5)
    assert sorted(started) == list(range(30))
    # one a second until 2.5 s, then the rest (a probe started runs when the pacer first sleeps)
    assert [n for n in ticks if n < 30] == [0, 1, 2]
    assert pacer.spread == pytest.approx(3.0)


def test_no_spread_allowed_starts_everything_before_any_sleep():
    fake, ticks, started = FakeTime(), [], []
    run(paced(1.0, 1.0, fake, ticks, started), 30, started, max_spread=0.0)
    assert sorted(started) == list(range(30))
    assert not ticks or ticks[0] == 30  # the meter may tick after, never before the starts


@pytest.mark.parametrize(
    "measured,expected",
    [
        (0.0100, 0.00125),  # 10x the estimate: raised by a quarter (halfway to 1.5x, the most it counts)
        (0.0001, 0.00055),  # cheaper: halfway there
        (0.0010, 0.0010),  # as estimated
    ],
)
def test_the_cost_estimate_moves_halfway_and_never_chases_its_own_spread(measured, expected):
    fake, ticks, started = FakeTime(), [], []
    pacer = paced(100.0, 0.001, fake, ticks, started)

    async def start(i: int) -> int:
        fake.cpu += measured * 10 if i == 0 else 0.0  # this round's CPU, all in one place
        started.append(i)
        return i

    asyncio.run(pacer.run(list(range(10)), start, max_spread=60.0))
    assert pacer.cost == 0.001  # fewer than 20 probes: not enough to judge by
    fake.cpu = 0.0

    async def start20(i: int) -> int:
        fake.cpu += measured * 20 if i == 0 else 0.0
        return i

    async def main() -> None:
        await pacer.run(list(range(20)), start20, max_spread=60.0)

    asyncio.run(main())
    assert pacer.cost == pytest.approx(min(scheduler.MAX_COST, expected))
