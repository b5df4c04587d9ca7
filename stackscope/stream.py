"""Streaming verdicts: judge again as each result arrives, say when the verdict changed.

The engine hands every result to a callback the moment it arrives (confirmation re-probes
included) and keeps the latest result of every check (`Engine.current`). The rule:

- Until every check has reported in the current round, the verdict is held: judged on a
  partial round, a failure seen through the LB would be compared with the backends' results
  of the round before (still healthy) and name the LB for the moment it takes the backends'
  own results to arrive. From then on every result re-judges it, against the latest
  result of every other check.
- A new verdict is news only when it differs from the last one shown: another layer, another
  status, another first clause (figures masked, as the timeline does), or the same verdict
  becoming confirmed. Results that change nothing print nothing.

`check --watch` (text and JSON), `watch --plain`, the timeline and the dashboard all use it.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from stackscope.diagnosis import Diagnosis, Verdict, assess
from stackscope.model import Snapshot
from stackscope.timeline import verdict_key


def stream_key(verdict: Verdict | None) -> tuple | None:
    """What makes a shown verdict stale: the timeline's verdict key, and whether it is confirmed."""
    if verdict is None:
        return None
    return (verdict_key(verdict), verdict.confirmed)


class VerdictStream:
    """Remembers the last verdict shown; `news` says whether a diagnosis brings another."""

    def __init__(self) -> None:
        self._shown: tuple | None = None
        self._started = False

    def judge(self, snapshot: Snapshot | None) -> Diagnosis | None:
        """The diagnosis of a per-result snapshot if it brings a new verdict, else None
        (also None for no snapshot: a round whose checks have not all reported yet)."""
        if snapshot is None:
            return None
        diagnosis = assess(snapshot)
        return diagnosis if self.news(diagnosis) else None

    def news(self, diagnosis: Diagnosis) -> bool:
        key = stream_key(diagnosis.verdict)
        if self._started and key == self._shown:
            return False
        self._started = True
        self._shown = key
        return True
