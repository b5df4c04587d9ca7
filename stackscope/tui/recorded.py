"""A walkthrough on a team's own incident: its `recording:` replayed instead of a demo fault.

The replay dashboard (replay.py) plays the recording at the walkthrough's speed (a story
minute is a minute of the incident: `minutes_per_second` × 60 is the replay's speed), and
the demo's controller (training.py) adds the same blind banner, story, hints, answers,
scoring and debrief. The session's clock is the replay's, so T+0 is the moment the
recording's first verdict named a broken layer (draft.alert_at), as the draft counted it.
The replay's speed and jump keys are left out: they would skip the story or the question.
"""

from __future__ import annotations

from typing import Any

from stackscope.demo.draft import alert_at
from stackscope.demo.walkthrough import Walkthrough
from stackscope.model import Layout
from stackscope.recording import Recording
from stackscope.replay import play_lines
from stackscope.tui.replay import ReplayApp
from stackscope.tui.training import DemoApp, DemoController


class RecordedIncident:
    """What the demo's controller asks of a stack, for a recording: its layout; no fault to
    inject, no synthetic users to count."""

    fault = ""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def client_stats(self) -> None:
        return None

    def inject(self, name: str) -> None:
        pass


class RecordedWalkthroughApp(ReplayApp):
    """The replay dashboard with the walkthrough's panel, keys and debrief."""

    CSS = DemoApp.CSS

    def __new__(cls, controller: DemoController, *args: Any, **options: Any) -> RecordedWalkthroughApp:
        return super().__new__(cls, *args, actions=controller.actions(), **options)  # type: ignore[return-value]  # a subclass of cls (bindings.py)

    def __init__(
        self, controller: DemoController, recording: Recording, layout: Layout, walkthrough: Walkthrough, **options: Any
    ) -> None:
        self.controller = controller
        speed = walkthrough.minutes_per_second * 60.0
        super().__init__(recording, layout, speed=speed, actions=controller.actions(), **options)
        _, _, timeline = play_lines(recording, layout, lambda line: None)
        cause = timeline.root_cause()
        alert = alert_at(timeline, cause[0] if cause is not None else recording.t0)
        # the session's seconds: the replay's, scaled to the wall clock at the replay's speed
        controller.clock = lambda: (self.now - alert) / self.speed
        controller.story_start = walkthrough.begins_at * 60.0 / self.speed

    def on_mount(self) -> None:
        super().on_mount()
        self.call_after_refresh(self.controller.install, self)


def recorded_walkthrough_app(walkthrough: Walkthrough, **options: Any) -> RecordedWalkthroughApp:
    """The app for a walkthrough with a `recording:` (ReplayError when it cannot be replayed)."""
    from stackscope.replay import load

    recording, layout = load(walkthrough.recording)
    controller = DemoController(RecordedIncident(layout), walkthrough)
    return RecordedWalkthroughApp(controller, recording, layout, walkthrough, **options)
