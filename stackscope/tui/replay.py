"""`stackscope replay FILE`: the dashboard fed from a recording instead of probes.

The recorded moments (replay.moments: each result with the snapshot and outstanding
checks the live stream judged, each round's end) are shown on a clock of their own that
runs at 1× to 60×: a result paints its row and re-judges the verdict as the live run
did (stream.settled), a round's end shows its snapshot unless held. p pauses and plays,
+ and - change the speed, [ and ] jump to the previous or next verdict change; the
header's clock shows "replay 14:02:31, 2.0×". Nothing is probed.
"""

from __future__ import annotations

from typing import Any

from stackscope.diagnosis import assess
from stackscope.model import Layout
from stackscope.recording import Recording
from stackscope.replay import SPEEDS, Moment, moments
from stackscope.stream import LineWatch, held, settled
from stackscope.timeline import VERDICT, Timeline, format_time
from stackscope.tui.actions import DASHBOARD, Action
from stackscope.tui.app import StackscopeApp

STEP = 0.1  # seconds of wall time between the replay clock's ticks


def verdict_changes(layout: Layout, recorded: list[Moment]) -> list[int]:
    """The index of every moment that changed the verdict, judged as `replay --plain` does."""
    found: list[int] = []
    at = [0]
    watch = LineWatch(Timeline(layout.name), lambda event: found.append(at[0]) if event.kind == VERDICT else None)
    for index, moment in enumerate(recorded):
        at[0] = index
        if moment.round_end and moment.snapshot is not None:
            watch.round(moment.snapshot)
        else:
            watch.result(moment.snapshot, set(moment.outstanding))
    return sorted(set(found))


REPLAY_ACTIONS = (
    Action("faster", "plus,equals_sign", "Faster", "Replay faster (up to 60×).", scope=DASHBOARD, footer_rank=12),
    Action("slower", "minus", "Slower", "Replay slower (down to 1×).", scope=DASHBOARD, footer_rank=13),
    Action(
        "previous_change",
        "left_square_bracket",
        "Previous change",
        "Jump to the previous verdict change.",
        scope=DASHBOARD,
        footer_rank=14,
    ),
    Action(
        "next_change",
        "right_square_bracket",
        "Next change",
        "Jump to the next verdict change.",
        scope=DASHBOARD,
        footer_rank=15,
    ),
)


class ReplayApp(StackscopeApp):
    """The dashboard on a recording: `position` is the next moment to show."""

    def __new__(cls, *args: Any, actions: Any = REPLAY_ACTIONS, **options: Any) -> ReplayApp:
        return super().__new__(cls, *args, actions=actions, **options)  # the bindings come from the class

    def __init__(
        self, recording: Recording, layout: Layout, *, speed: float = 1.0, actions: Any = REPLAY_ACTIONS, **options: Any
    ) -> None:
        super().__init__(layout, autoprobe=False, actions=actions, **options)
        self.recording = recording
        self.moments = moments(recording, layout)
        self.changes = verdict_changes(layout, self.moments)
        self.position = 0
        self.speed = min(SPEEDS, key=lambda s: abs(s - speed))
        self.now = self.moments[0].step.at if self.moments else recording.t0

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(STEP, self._advance)
        self._show_position()

    # ------------------------------------------------------------------ the clock

    def _advance(self) -> None:
        if self.paused or self.position >= len(self.moments):
            return
        self.now += STEP * self.speed
        while self.position < len(self.moments) and self.moments[self.position].step.at <= self.now:
            self._show(self.moments[self.position])
            self.position += 1
        self._show_position()

    def _show(self, moment: Moment) -> None:
        if moment.round_end and moment.snapshot is not None:
            diagnosis = assess(moment.snapshot)
            if self.diagnosis is None or not held(diagnosis):
                self.show_snapshot(moment.snapshot, diagnosis=diagnosis)
            return
        if moment.result is not None:
            self._apply_result(moment.result)
        if moment.snapshot is not None:
            early = settled(moment.snapshot, set(moment.outstanding))
            if early is not None:
                self.show_snapshot(moment.snapshot, partial=True, diagnosis=early)

    def jump(self, target: int) -> None:
        """Show every moment up to `target` at once (from the start when it lies behind)."""
        target = max(0, min(target, len(self.moments)))
        if target < self.position:
            self.timeline = Timeline(self.layout.name, source=self.recording.layout_path, interval=self.layout.interval)
            self.dashboard.events.events.clear()
            self.diagnosis = None
            self.position = 0
        while self.position < target:
            self._show(self.moments[self.position])
            self.position += 1
        if self.position:
            self.now = self.moments[self.position - 1].step.at
        self._show_position()

    def _show_position(self) -> None:
        state = ", paused" if self.paused else (", end" if self.position >= len(self.moments) else "")
        self.dashboard.header.set_clock(f"replay {format_time(self.now, date=False)}, {self.speed:.1f}×{state}")

    def _tick_clock(self) -> None:
        pass  # the header's clock is the replay's (_show_position)

    # ------------------------------------------------------------------ controls

    def do_pause(self) -> None:
        self.paused = True
        self._show_position()

    def do_resume(self) -> None:
        self.paused = False
        self._show_position()

    def watch_paused(self, paused: bool) -> None:
        self.dashboard.header.set_flags(paused=paused, problems_only=self.problems_only)
        self.refresh_bindings()

    def do_probe_now(self) -> None:
        self.notify("a replay probes nothing", timeout=3)

    def do_faster(self) -> None:
        self.speed = next((s for s in SPEEDS if s > self.speed), SPEEDS[-1])
        self._show_position()

    def do_slower(self) -> None:
        self.speed = next((s for s in reversed(SPEEDS) if s < self.speed), SPEEDS[0])
        self._show_position()

    def do_next_change(self) -> None:
        later = [index for index in self.changes if index >= self.position]
        if later:
            self.jump(later[0] + 1)

    def do_previous_change(self) -> None:
        # the change shown now is the last one before `position`; the previous is the one before it
        shown = [index for index in self.changes if index < self.position]
        self.jump(shown[-2] + 1 if len(shown) >= 2 else 0)


def run_replay(recording: Recording, layout: Layout, *, speed: float = 1.0) -> int:
    """Open the replay dashboard until the user quits."""
    app = ReplayApp(recording, layout, speed=speed, handle_signals=True)
    app.run()
    return app.return_code or 0
