"""A newcomer's first hour, round 2: a screen's key pressed twice, the banner at every
size, marks that need no colour, a footer that says what f does now, and a palette that
offers what help lists. Hand-built data, no probing (the demo's fault picker on the
embedded stack)."""

from __future__ import annotations

import pytest
from textual.screen import Screen

from stackscope.tui.screens import DetailScreen, HelpScreen, VerdictScreen
from tests import dashboard_data as data
from tests.tui.test_dashboard_ux import app_on_data


def kinds(app) -> list[str]:
    return [type(screen).__name__ for screen in app.screen_stack]


# --------------------------------------------------------------------------- 1. screens open once


@pytest.mark.parametrize(
    "keys, top",
    [
        (("v", "v"), VerdictScreen),
        (("question_mark", "v", "question_mark"), HelpScreen),
        (("enter", "v", "enter", "question_mark", "v"), VerdictScreen),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else v.__name__,
)
async def test_a_screen_asked_for_again_is_switched_to_not_pushed_twice(tmp_path, keys, top):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        await pilot.press(*keys)
        assert isinstance(app.screen, top)
        assert len(kinds(app)) == len(set(kinds(app))), kinds(app)
        await pilot.press("escape")
        assert app.screen is app.dashboard or isinstance(app.screen, DetailScreen)
        assert app.is_running


async def test_v_on_an_open_verdict_shows_the_verdict_as_it_is_now(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(False, at=data.T0))
        await pilot.press("v")
        screen = app.screen
        assert isinstance(screen, VerdictScreen) and screen.diagnosis.verdict is None
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.press("v")
        assert app.screen is screen and screen.diagnosis is app.diagnosis
        assert screen.diagnosis.verdict is not None


async def test_every_push_goes_through_the_guard_the_demos_screens_too(tmp_path):
    """The demo pushes its fault picker with app.push_screen (i i stacked two): the
    guard is push_screen itself, so a caller's screens are opened once as well."""
    from stackscope.tui.training import FaultPicker

    app = app_on_data(tmp_path)
    picked: list[object] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.push_screen(FaultPicker(), picked.append)
        await pilot.pause()
        first = app.screen
        app.push_screen(VerdictScreen(None))
        await pilot.pause()
        app.push_screen(FaultPicker(), picked.append)  # below the verdict: back on top
        await pilot.pause()
        assert app.screen is first and kinds(app) == ["DashboardScreen", "FaultPicker"]
        await pilot.press("escape")
        assert app.screen is app.dashboard and picked == [None]


def test_open_screen_matches_the_class_exactly():
    class Plain(Screen):
        pass

    class Special(Plain):
        pass

    class Fake:
        screen_stack = [Plain(), Special()]

    from stackscope.tui.app import StackscopeApp

    assert StackscopeApp.open_screen(Fake(), Special) is Fake.screen_stack[1]  # type: ignore[arg-type]
    assert StackscopeApp.open_screen(Fake(), Plain) is Fake.screen_stack[0]  # type: ignore[arg-type]
