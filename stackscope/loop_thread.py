"""An asyncio event loop on a daemon thread of its own.

Two things need one: the dashboard's probes, so a round is never queued behind a
repaint (on the UI loop, a probe started during the first paint reported 400 ms for a
loopback server that answers in under 1 ms), and the demo stack, so the servers being
probed are never slowed by the dashboard probing them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopNotRunning(RuntimeError):
    """The thread was never started or has been stopped."""


class LoopThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.loop is not None and self.loop.is_running()

    def start(self, timeout: float = 5.0) -> None:
        if self.loop is not None:
            return
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, args=(ready,), name=self.name, daemon=True)
        self.thread.start()
        if not ready.wait(timeout):
            raise LoopNotRunning(f"the {self.name} thread did not start within {timeout:g}s")

    def _run(self, ready: threading.Event) -> None:
        assert self.loop is not None
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the thread's loop; callable from any thread."""
        if not self.running:
            coro.close()
            raise LoopNotRunning(f"the {self.name} thread is not running")
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` there and wait for it here (blocking: not for use on an event loop)."""
        return self.submit(coro).result(timeout)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` there and await it from another loop; cancelling this cancels it there."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout: float = 10.0) -> bool:
        """Cancel what still runs there, stop the loop and join the thread; safe to call twice.
        False if the thread did not end within `timeout` (it is a daemon: it cannot hold the
        process open)."""
        loop, thread = self.loop, self.thread
        if loop is None or thread is None:
            return True
        if loop.is_running():
            loop.call_soon_threadsafe(self._cancel_all_and_stop)
            thread.join(timeout)
        ended = not thread.is_alive()
        if ended:
            loop.close()
        self.loop = None
        self.thread = None
        return ended

    @staticmethod
    def _cancel_all_and_stop() -> None:
        loop = asyncio.get_running_loop()
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in tasks:
            task.cancel()
        if not tasks:
            loop.stop()
            return
        gathered = asyncio.gather(*tasks, return_exceptions=True)
        gathered.add_done_callback(lambda _: loop.stop())
