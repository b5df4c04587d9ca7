"""Streaming verdicts: judge again as each result arrives, say when the verdict changed.

The engine hands every result to a callback the moment it arrives (confirmation re-probes
included) and keeps the latest result of every check (`Engine.current`). The rule:

- Until every check has reported in the current round, the verdict is held: judged on a
  partial round, a failure seen through the LB would be compared with the backends' results
  of the round before (still healthy) and name the LB for the moment it takes the backends'
  own results to arrive. From then on every result re-judges it, against the latest
  result of every other check.
- Except when the verdict cannot depend on the checks still out: with at most
  EARLY_MAX_OUTSTANDING of them, the verdict is judged for every outcome each could
  bring (ok, slow, timeout, refused — an explainable and an own failure); when every
  combination names the same layer with the same status, it is shown at once (a pool
  misrouted on the LB is the LB's whatever the frontend check still in flight says).
- Never on evidence from two moments: when the checks the verdict rests on include
  results known before the latest change among them (diagnosis.stale_evidence), the
  verdict is held, whatever it says, until the engine's re-probes of those checks are in
  (Engine._refresh). A backend's 200 from just before it died must not clear it of the
  LB's 503 seen a moment later, nor a member's recovery pass for the LB's fault.
- A new verdict is news only when it differs from the last one shown: another layer, another
  status, another first clause (figures masked, as the timeline does), or the same verdict
  becoming confirmed. Results that change nothing print nothing.

`check --watch` (text and JSON), `watch --plain`, `replay`, the timeline and the dashboard
all use it. Pure: no I/O, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from stackscope.diagnosis import Diagnosis, Verdict, assess, verdict_key
from stackscope.model import ErrorKind, Result, Snapshot, Status

if TYPE_CHECKING:  # the timeline is the line-printing callers' (a one-shot `check` never loads it)
    from stackscope.timeline import Event, Timeline

EARLY_MAX_OUTSTANDING = 3  # 4**3 = 64 judgements at most per early result
# and at most this many check results judged in all for one early result (a 1000-check
# layout tries two outstanding checks at most: the verdict must stay cheap per result)
EARLY_BUDGET = 20_000
_OUTCOMES = (
    (Status.OK, None),
    (Status.WARN, ErrorKind.SLOW),
    (Status.CRIT, ErrorKind.TIMEOUT),  # may be explained from below
    (Status.CRIT, ErrorKind.REFUSED),  # always the layer's own
)


def settled(snapshot: Snapshot, outstanding: set[str]) -> Diagnosis | None:
    """The diagnosis of a partial round when no outcome of the `outstanding` checks could
    change the verdict's layer or status; None when one could (or too many are out)."""
    if (
        len(outstanding) > EARLY_MAX_OUTSTANDING
        or len(_OUTCOMES) ** len(outstanding) * len(snapshot.results) > EARLY_BUDGET
        and outstanding
    ):
        return None
    diagnosis = assess(snapshot)
    if diagnosis.verdict is not None and diagnosis.verdict.stale:
        return None  # evidence from before the latest change: wait for the re-probes
    if not outstanding:
        return diagnosis
    want = _named(diagnosis.verdict)
    ids = sorted(outstanding)
    for combo in itertools.product(_OUTCOMES, repeat=len(ids)):
        results = dict(snapshot.results)
        for check_id, (status, kind) in zip(ids, combo):
            # an outcome still to come is newer than every change: never stale
            results[check_id] = Result(
                check_id, status, "outstanding", key_fact="…", error_kind=kind, finished_at=snapshot.taken_at
            )
        if _named(assess(Snapshot(snapshot.layout, results, snapshot.taken_at, snapshot.round)).verdict) != want:
            return None
    return diagnosis


def held(diagnosis: Diagnosis) -> bool:
    """A round's diagnosis whose verdict rests on evidence from before the latest change
    (the engine's re-probes ran out of their bound for the round): a watch shows the last
    verdict it had rather than this one. Only a one-shot report, with nothing before it,
    prints it (never confirmed)."""
    return diagnosis.verdict is not None and bool(diagnosis.verdict.stale)


def _named(verdict: Verdict | None) -> tuple | None:
    return None if verdict is None else (verdict.layer, verdict.status)


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

    def judge(self, snapshot: Snapshot | None, outstanding: set[str] | None = None) -> Diagnosis | None:
        """The diagnosis of a per-result snapshot if it brings a new verdict, else None
        (also None for no snapshot, or a partial round whose outstanding checks could still
        change the verdict)."""
        if snapshot is None:
            return None
        diagnosis = settled(snapshot, outstanding or set())
        if diagnosis is None:
            return None
        return diagnosis if self.news(diagnosis) else None

    def news(self, diagnosis: Diagnosis) -> bool:
        key = stream_key(diagnosis.verdict)
        if self._started and key == self._shown:
            return False
        self._started = True
        self._shown = key
        return True


def per_result(engine) -> tuple[Snapshot | None, set[str]]:
    """What to judge when a result arrives: the latest snapshot and the checks still out
    this round (None while some check has never reported, or too many are still out to
    judge early: cheap for every result of a 1000-check round)."""
    if engine.outstanding_count() > EARLY_MAX_OUTSTANDING:
        return None, set()
    return engine.latest_snapshot(), engine.outstanding()


class LineWatch:
    """`watch --plain`'s judging, shared with `replay --plain` and `check --record`: a
    round's end and every result arriving go to the timeline as the live run saw them,
    and each event it makes goes to `say` (a line printer, a recorder). The replay feeds
    it the recorded moments, so it prints the very lines the live run printed."""

    def __init__(self, timeline: Timeline, say: Callable[[Event], None]) -> None:
        self.timeline = timeline
        self.say = say
        self.status: Status | None = None

    def observe(self, diagnosis: Diagnosis, partial: bool = False) -> None:
        self.status = diagnosis.status
        for event in self.timeline.observe(diagnosis, partial=partial):
            self.say(event)

    def round(self, snapshot: Snapshot) -> Diagnosis:
        """A round ended: its diagnosis is shown unless held (stream.held) after the first."""
        diagnosis = assess(snapshot)
        if not held(diagnosis) or self.timeline.first_at is None:
            self.observe(diagnosis)
        return diagnosis

    def result(self, snapshot: Snapshot | None, outstanding: set[str]) -> None:
        """A result arrived (per_result's snapshot and outstanding checks): every result
        re-judges the verdict once the round's checks have all reported, or earlier when
        the checks still out cannot change it; a change is said when its deciding result
        arrives."""
        diagnosis = settled(snapshot, outstanding) if snapshot is not None else None
        if diagnosis is not None:
            self.observe(diagnosis, partial=True)


def overran_line(snapshot: Snapshot) -> str | None:
    """The line `watch --plain` prints after a round that took longer than the interval."""
    if not snapshot.overran:
        return None
    from stackscope.timeline import format_time

    return f"{format_time(snapshot.taken_at)}  round overran: {snapshot.overran}"


def arrival(engine) -> tuple[Snapshot | None, set[str], set[str] | int]:
    """per_result's snapshot and outstanding checks, and what a recording keeps of the
    latter: their ids when few enough to judge early, else their count."""
    count = engine.outstanding_count()
    snapshot, outstanding = per_result(engine)
    return snapshot, outstanding, (outstanding if count <= EARLY_MAX_OUTSTANDING else count)
