"""A check's recent rounds in compact form, for sparklines and the detail screen.

A deque of 120 Sample objects cost ~18 KiB a check (an object, its dict and two floats
per round); at 10,000 checks that is 180 MB for a sparkline and much of the garbage
collector's time spent walking it. Here a check's history is three flat arrays used as a
ring: 17 bytes a round. Samples are made on the fly when someone reads them.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from stackscope.model import Status


@dataclass(frozen=True, slots=True)
class Sample:
    """One point of a check's history, for sparklines and the detail screen."""

    at: float
    status: Status
    latency_ms: float | None


_STATUS = {status.value: status for status in Status}
_NONE = math.nan  # a round without a latency (refused, timed out)


class History:
    """The last `maxlen` Samples of one check, oldest first; append() and iteration as a
    deque(maxlen=…) of Samples offers them."""

    __slots__ = ("maxlen", "_at", "_ms", "_status", "_start")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._at = array("d")
        self._ms = array("d")
        self._status = bytearray()
        self._start = 0  # index of the oldest sample once the ring is full

    def append(self, sample) -> None:
        ms = _NONE if sample.latency_ms is None else float(sample.latency_ms)
        if len(self._status) < self.maxlen:
            self._at.append(sample.at)
            self._ms.append(ms)
            self._status.append(sample.status.value)
            return
        if not self.maxlen:
            return
        i = self._start
        self._at[i], self._ms[i], self._status[i] = sample.at, ms, sample.status.value
        self._start = (i + 1) % self.maxlen

    def __len__(self) -> int:
        return len(self._status)

    def __bool__(self) -> bool:
        return bool(self._status)

    def __iter__(self) -> Iterator:
        return self.tail(len(self._status))

    def _ring(self, count: int) -> Iterator[int]:
        """The ring positions of the newest `count` samples, oldest first."""
        size = len(self._status)
        return ((self._start + k) % size for k in range(size - max(0, min(count, size)), size))

    def tail(self, count: int) -> Iterator:
        """The newest `count` samples, oldest first."""
        for i in self._ring(count):
            ms = self._ms[i]
            yield Sample(self._at[i], _STATUS[self._status[i]], None if ms != ms else ms)

    def answered_ms(self, count: int, ok: Status) -> list[float]:
        """The latencies of the newest `count` samples that have status `ok` and a latency,
        oldest first: what suspicion judges a check by, at the start of every probe,
        without making a Sample of each."""
        wanted, status, latency = ok.value, self._status, self._ms
        return [latency[i] for i in self._ring(count) if status[i] == wanted and latency[i] == latency[i]]

    def __repr__(self) -> str:
        return f"History({list(self)!r}, maxlen={self.maxlen})"
