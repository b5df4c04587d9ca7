"""The probe thread's side of the dashboard: engine callbacks in, coalesced messages out.

The engine calls `started` and `arrived` on its own thread, once per check. Posting a
message per call would wake the UI loop 10,000 times in a large round, so, as Toolong
coalesces line reads, calls are gathered and posted as one ProbesStarted and one
ResultsArrived per `delay` (a few a second), and whatever is left when the round ends
is posted by `flush` before the app hears the round finished. Nothing here touches a
widget; the batches are tuples, so the UI never holds what the probe thread mutates.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from textual.message import Message

from stackscope.model import Check, Result
from stackscope.tui.messages import ProbesStarted, ResultsArrived


class ProbeFeed:
    """Gathers one round's starts and results and posts them in batches to `post`."""

    def __init__(self, post: Callable[[Message], object], delay: float) -> None:
        self.post = post
        self.delay = delay
        self._lock = threading.Lock()  # guards the lists
        self._posting = threading.Lock()  # a batch is taken and posted as one step: in order
        self._started: list[tuple[str, float]] = []
        self._results: list[Result] = []
        self._scheduled = False

    def started(self, check: Check) -> None:
        """Engine callback (probe thread): a probe began."""
        with self._lock:
            self._started.append((check.id, time.monotonic()))
        self._schedule()

    def arrived(self, result: Result) -> None:
        """Engine callback (probe thread): a probe's result, redacted and recorded."""
        with self._lock:
            self._results.append(result)
        self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called off any loop: nothing to wait on, post now
            self.flush()
            return
        loop.call_later(self.delay, self.flush)

    def flush(self) -> None:
        """Post what has gathered (from any thread); nothing when nothing has."""
        with self._posting:
            with self._lock:
                started, self._started = tuple(self._started), []
                results, self._results = tuple(self._results), []
                self._scheduled = False
            if started:
                self.post(ProbesStarted(started))
            if results:
                self.post(ResultsArrived(results))
