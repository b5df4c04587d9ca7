"""A walkthrough drafted from a recording, played to the end by a scripted trainee: the
replayed dashboard with the blind banner, a wrong answer, a hint, the right answer and
the debrief. Nothing is probed."""

from __future__ import annotations

from stackscope.demo.draft import draft, render
from stackscope.demo.walkthrough import load_walkthrough
from stackscope.tui.recorded import recorded_walkthrough_app
from stackscope.tui.training import DebriefScreen
from tests.tui.stack import until
from tests.unit.test_walkthrough_draft import make_recording


async def test_a_trainee_plays_a_drafted_walkthrough_to_the_end(tmp_path):
    recording = make_recording(tmp_path / "incident.jsonl")
    data = draft(recording, str(tmp_path / "walk.yaml"))
    data["clock"]["minutes_per_second"] = 1.0  # a minute of the incident a second: the replay at 60x
    (tmp_path / "walk.yaml").write_text(render(data))
    walk = load_walkthrough(str(tmp_path / "walk.yaml"))
    app = recorded_walkthrough_app(walk, blind=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.controller.session is not None, "the story to begin")
        assert app.speed == 60.0 and app.blind
        await until(
            pilot,
            lambda: app.diagnosis is not None and app.diagnosis.verdict is not None,
            "the replay to reach the broken layer",
        )
        assert app.diagnosis.verdict.layer == "Web"
        await pilot.press("1")  # Front: wrong
        await pilot.press("n")  # the first hint
        assert app.controller.session.wrong == ["Front"] and app.controller.session.hints_taken == 1
        await pilot.press("2")  # Web
        await until(pilot, lambda: isinstance(app.screen, DebriefScreen), "the debrief")
        assert app.controller.session.finished and not app.blind
        assert "Score: **75/100**" in app.controller.debrief
