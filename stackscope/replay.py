"""Playing a recording (recording.py) back: the engine's view rebuilt moment by moment.

A recording keeps every result with the moment it arrived, its round and the checks still
out then, and every round's end. `Player` rebuilds, from those, exactly what the live
engine handed the stream at each moment (per_result's snapshot and outstanding checks,
the round's snapshot), so `replay --plain` judges them through the same LineWatch as
`watch --plain` and prints the same lines at the same times, and the dashboard's replay
source posts the same results. The layout is rebuilt from its recorded text by the loader
(the only reader of layouts), which makes every text it shows terminal-safe. No I/O here
but `load`; no clock.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from stackscope.model import Layout, Result, Snapshot
from stackscope.recording import Recording, RecordingError, Step, read_recording
from stackscope.stream import EARLY_MAX_OUTSTANDING
from stackscope.timeline import Timeline

SPEEDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # the replay's speeds (the dashboard's + and -)


class ReplayError(ValueError):
    """A recording that cannot be replayed, with every reason in words."""


def load(path: str) -> tuple[Recording, Layout]:
    """The recording at `path` and its layout, or ReplayError."""
    from stackscope.kinds import ParseContext
    from stackscope.layout import LayoutError, parse_layout
    from stackscope.model import terminal_safe

    try:
        recording = read_recording(path)
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None
    # a recording comes from another machine: its secrets are masked, its *_env variables
    # need not be set here, and relative paths start beside the recording
    ctx = ParseContext(base_dir=os.path.dirname(os.path.abspath(path)), environ={}, require_env=False)
    try:
        layout = parse_layout(recording.layout_text, f"{terminal_safe(path)} (recorded layout)", ctx)
    except LayoutError as error:
        raise ReplayError(
            "its layout cannot be rebuilt:\n" + "\n".join(f"  {problem}" for problem in error.problems)
        ) from None
    return recording, layout


@dataclass(frozen=True)
class Moment:
    """What one recorded step gives the stream: a result with the snapshot and outstanding
    checks per_result gave live, or a round's snapshot."""

    step: Step
    result: Result | None = None
    snapshot: Snapshot | None = None
    outstanding: frozenset[str] = frozenset()
    round_end: bool = False


class Player:
    """Rebuilds the engine's latest results step by step (steps of unknown checks, and
    rounds before every check reported, are passed over: a hostile or cut recording)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.ids = [check.id for check in layout.checks()]
        self._known = set(self.ids)
        self.latest: dict[str, Result] = {}

    def apply(self, step: Step) -> Moment | None:
        if step.kind == "r" and step.result is not None:
            result = step.result
            if result.check_id not in self._known:
                return None
            self.latest[result.check_id] = result
            out = step.outstanding
            if isinstance(out, int) or len(self.latest) < len(self.ids):
                # too many still out to judge early (per_result), or some check never reported
                return Moment(step, result)
            if len(out) > EARLY_MAX_OUTSTANDING:
                return Moment(step, result)
            snapshot = Snapshot(self.layout, dict(self.latest), step.at, max(1, step.round))
            return Moment(step, result, snapshot, frozenset(out) & self._known)
        if step.kind == "round":
            if len(self.latest) < len(self.ids):
                return None
            results = {cid: self.latest[cid] for cid in self.ids}
            return Moment(
                step, snapshot=Snapshot(self.layout, results, step.at, step.round, step.duration), round_end=True
            )
        return None


def moments(recording: Recording, layout: Layout) -> list[Moment]:
    player = Player(layout)
    return [moment for step in recording.steps if (moment := player.apply(step)) is not None]


def play_lines(recording: Recording, layout: Layout, say: Callable[[str], None]) -> tuple[int, list[str], Timeline]:
    """Judge the recording again as `watch --plain` did and `say` each line; return the exit
    code of the last status shown, the verdict lines it made, and the timeline."""
    from stackscope.exits import EXIT_UNKNOWN
    from stackscope.stream import LineWatch, overran_line
    from stackscope.timeline import VERDICT

    timeline = Timeline(layout.name, source=recording.layout_path, interval=layout.interval)
    verdicts: list[str] = []

    def shown(event) -> None:
        line = event.line()
        if event.kind == VERDICT:
            verdicts.append(line)
        say(line)

    watcher = LineWatch(timeline, shown)
    for moment in moments(recording, layout):
        if moment.round_end and moment.snapshot is not None:
            watcher.round(moment.snapshot)
            if (line := overran_line(moment.snapshot)) is not None:
                say(line)
        else:
            watcher.result(moment.snapshot, set(moment.outstanding))
    code = watcher.status.exit_code if watcher.status is not None else EXIT_UNKNOWN
    return code, verdicts, timeline
