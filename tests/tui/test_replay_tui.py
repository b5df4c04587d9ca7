"""The replay dashboard's transport controls on a hand-made recording (OK, then CRIT, then
OK again): speed, pause, and jumps between verdict changes, with the position in the
header. The Textual pilot drives the real app; nothing is probed."""

from __future__ import annotations

import dataclasses

from stackscope.kinds import ParseContext
from stackscope.layout import parse_layout
from stackscope.model import ErrorKind, Result, Status
from stackscope.recording import Recorder
from stackscope.replay import load
from stackscope.tui.replay import ReplayApp

TEXT = "name: rec\ninterval: 1s\nlayers:\n  - name: Web\n    role: backend\n    checks:\n      - {http: http://127.0.0.1:9/, name: web}\n"
T0 = 1_800_000_000.0


def recording(tmp_path):
    layout = dataclasses.replace(parse_layout(TEXT, "x.yaml", ParseContext()), path=str(tmp_path / "x.yaml"))
    recorder = Recorder(str(tmp_path / "r.jsonl"), layout, TEXT, clock=lambda: T0)
    for n, status in enumerate([Status.OK, Status.CRIT, Status.CRIT, Status.OK], start=1):
        at = T0 + 100 * n  # far apart: the 1× clock never reaches the next one during the test
        kind = None if status is Status.OK else ErrorKind.REFUSED
        recorder.result(Result("Web/web", status, "answer", 1.0, error_kind=kind, finished_at=at), n, set(), at)
        recorder.round(at, n, 0.1)
    recorder.close()
    return load(str(tmp_path / "r.jsonl"))


def header(app) -> str:
    return str(app.dashboard.header.clock.render())


async def test_transport_controls(tmp_path):
    app = ReplayApp(*recording(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "replay " in header(app) and ", 1.0×" in header(app)
        await pilot.press("plus")
        assert ", 2.0×" in header(app)
        await pilot.press("minus", "minus")
        assert ", 1.0×" in header(app)
        await pilot.pause(0.3)  # the clock has shown the first round: all healthy
        assert app.diagnosis is not None and app.diagnosis.verdict is None
        await pilot.press("right_square_bracket")  # Web turns CRIT
        assert app.diagnosis.verdict is not None and app.diagnosis.verdict.layer == "Web"
        assert app.now >= T0 + 200 and "replay " in header(app)
        await pilot.press("right_square_bracket")  # healthy again, the end
        assert app.diagnosis.verdict is None and app.position == len(app.moments)
        await pilot.press("left_square_bracket")
        assert app.diagnosis.verdict is not None
        await pilot.press("p")
        assert app.paused and "paused" in header(app)
        position = app.position
        await pilot.pause(0.3)
        assert app.position == position
