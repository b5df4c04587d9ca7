"""The loop thread that runs the dashboard's probes and the demo stack."""

from __future__ import annotations

import asyncio
import threading

import pytest

from stackscope.loop_thread import LoopNotRunning, LoopThread


@pytest.fixture
def runner():
    runner = LoopThread("test-loop")
    runner.start()
    yield runner
    runner.stop(5)


def test_runs_coroutines_on_its_own_thread(runner):
    async def where() -> str:
        return threading.current_thread().name

    assert runner.call(where(), 5) == "test-loop"


async def test_awaiting_from_another_loop_and_cancelling_reaches_the_coroutine(runner):
    started, cancelled = threading.Event(), threading.Event()

    async def hang() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    assert await runner.run(asyncio.sleep(0, result=42)) == 42
    task = asyncio.ensure_future(runner.run(hang()))
    assert await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(cancelled.wait, 5)


def test_exceptions_cross_back(runner):
    async def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        runner.call(boom(), 5)


def test_stop_cancels_what_still_runs_and_joins():
    runner = LoopThread("test-stop")
    runner.start()
    started, cancelled = threading.Event(), threading.Event()

    async def hang() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    future = runner.submit(hang())
    assert started.wait(5)
    thread = runner.thread
    assert runner.stop(5) is True
    assert cancelled.is_set() and future.cancelled()
    assert not thread.is_alive() and not runner.running
    assert runner.stop(5) is True  # twice is fine
    coro = asyncio.sleep(0)
    with pytest.raises(LoopNotRunning):
        runner.submit(coro)
