"""Screenshots of the main screen, healthy and broken, at 80x24 and 160x50.

Deterministic: a fixed clock, hand-built results and latency history, no probing, the
time zone pinned to UTC. Review a change with `pytest --snapshot-update` and look at the
SVGs under __snapshots__/ before committing them."""

from __future__ import annotations

import time

import pytest

from stackscope.tui.app import StackscopeApp
from tests import dashboard_data as data


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("broken", [False, True], ids=["healthy", "broken"])
def test_dashboard(snap_compare, utc, size, broken):
    layout = data.layout()
    app = StackscopeApp(
        layout, engine=data.engine_with_history(layout, broken=broken), autoprobe=False, clock=lambda: data.T0 + 60
    )

    async def run_before(pilot) -> None:
        await pilot.pause()
        app.show_snapshot(data.snapshot(False, at=data.T0))
        if broken:
            app.show_snapshot(data.snapshot(True, at=data.T0 + 60))

    assert snap_compare(app, terminal_size=size, run_before=run_before)
