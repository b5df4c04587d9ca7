"""A monkey at the keyboard: seeded random key sequences against the dashboard.

Every key of every screen (the registry's and whatever the current screen binds), keys
pressed twice (`v v`, `? ?`), escape storms, enter on every row, the command palette
with random letters typed into it, and resizes between 60x20 and 240x60, against the
demo on its embedded stack (probing live, faults injected by the monkey) and against a
hand-built broken path. Nothing may raise, and afterwards the app still answers: the
screen stack holds each kind of screen once, esc leads back to the dashboard, and `v`
and `?` still open their screens. `v v` killed the dashboard (DuplicateIds) until every
screen was opened through one guard (StackscopeApp.push_screen).

A seed that fails replays exactly: the test's id names it."""

from __future__ import annotations

import random

import pytest
from textual.screen import Screen

from stackscope.tui.app import StackscopeApp
from stackscope.tui.screens import DetailScreen, HelpScreen, VerdictScreen
from tests import dashboard_data as data
from tests.tui.stack import until

SIZES = [(60, 20), (80, 24), (120, 40), (240, 60)]
EXTRA_KEYS = ["enter", "escape", "tab", "shift+tab", "space", "pageup", "pagedown", "home", "end", "ctrl+p", "x"]
BURSTS = [
    ("v", "v"),
    ("question_mark", "question_mark"),
    ("escape",) * 6,
    ("v", "question_mark", "v", "question_mark"),
    ("enter", "enter", "enter"),
    ("ctrl+p", "ctrl+p"),
    ("f", "f", "f"),
    ("p", "p"),
    ("i", "i", "v"),
    ("ctrl+p", "h", "e", "l", "enter"),
    ("ctrl+p", "v", "e", "r", "enter", "v"),
]
STEPS = 16  # a key costs ~0.1 s under Pilot: 16 steps (~22 keys) a seed keep this file near 20 s


def registry_keys(app: StackscopeApp) -> list[str]:
    keys = {k.strip() for action in app.registry if action.bind for k in action.keys.split(",") if k.strip()}
    return sorted(keys)


def screen_keys(app: StackscopeApp) -> list[str]:
    """The keys bound where the focus is now (the screen's, its widgets', the app's)."""
    return sorted(app.active_bindings)


def sane_stack(app: StackscopeApp) -> None:
    stack = app.screen_stack
    assert stack[0] is app.dashboard
    kinds = [type(screen).__name__ for screen in stack]
    assert len(kinds) == len(set(kinds)), f"a screen pushed twice: {kinds}"
    ids = [screen.id for screen in stack if screen.id]
    assert len(ids) == len(set(ids)), f"screen ids twice: {ids}"


async def monkey(pilot, app: StackscopeApp, seed: int) -> list[str]:
    """Press a seeded random sequence; return it (for the failure message)."""
    rng = random.Random(seed)
    pressed: list[str] = []
    base = registry_keys(app) + EXTRA_KEYS
    keys: tuple[str, ...] = ()
    for _ in range(STEPS):
        roll = rng.random()
        if roll < 0.1:
            size = rng.choice(SIZES)
            pressed.append(f"<resize {size[0]}x{size[1]}>")
            await pilot.resize_terminal(*size)
            continue
        if roll < 0.35 and keys:  # a key pressed twice: the opened screen's own key again
            keys = keys[-1:]
        elif roll < 0.55:
            keys = rng.choice(BURSTS)
        else:
            keys = (rng.choice(base + screen_keys(app)),)
        pressed.extend(keys)
        await pilot.press(*keys)
    return pressed


async def still_answers(pilot, app: StackscopeApp, pressed: list[str]) -> None:
    assert app.is_running, f"the app stopped after {pressed}"
    sane_stack(app)
    for _ in range(len(app.screen_stack) + 2):  # esc closes whatever is open, the palette too
        if app.screen is app.dashboard:
            break
        await pilot.press("escape")
    assert app.screen is app.dashboard, f"esc did not lead back from {app.screen!r} after {pressed}"
    await pilot.resize_terminal(80, 24)
    await pilot.press("v")
    assert isinstance(app.screen, VerdictScreen)
    await pilot.press("question_mark")
    assert isinstance(app.screen, HelpScreen)
    await pilot.press("escape", "escape")
    assert app.screen is app.dashboard
    sane_stack(app)


def no_exit(app: StackscopeApp) -> list[str]:
    """The monkey presses q too: quitting is recorded instead of ending the run."""
    quits: list[str] = []
    app.do_quit = lambda: quits.append("quit")  # type: ignore[method-assign]
    return quits


def broken_path_app(tmp_path) -> StackscopeApp:
    layout = data.layout()
    app = StackscopeApp(
        layout,
        engine=data.engine_with_history(layout, broken=True),
        autoprobe=False,
        clock=lambda: data.T0 + 60,
        timeline_dir=str(tmp_path),
    )
    no_exit(app)
    return app


async def test_enter_on_every_row_and_title(tmp_path):
    """Enter on a row opens its detail (esc closes it), on a title folds the panel (a
    second enter unfolds it); then the next item."""
    app = broken_path_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        await pilot.press("up")  # the first panel's title
        pressed: list[str] = ["up"]
        items = app.dashboard.selectable()
        for item in items:
            assert app.focused is item
            await pilot.press("enter")
            if isinstance(app.screen, DetailScreen):  # a row: its detail, then back
                assert app.screen.check is getattr(item, "check", None)
                await pilot.press("escape")
            else:  # a title: folded, then unfolded
                await pilot.press("enter")
            assert app.screen is app.dashboard and app.focused is item
            await pilot.press("down")
            pressed += ["enter", "enter/escape", "down"]
        assert app.dashboard.selectable() == items  # every panel unfolded again
        await still_answers(pilot, app, pressed)


@pytest.mark.parametrize("seed", [1, 3])
async def test_monkey_on_a_broken_path(seed, tmp_path):
    app = broken_path_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        pressed = await monkey(pilot, app, seed)
        await still_answers(pilot, app, pressed)


@pytest.mark.parametrize("seed", [12])
async def test_monkey_on_the_demo(seed, demo_stack, tmp_path):
    from stackscope.tui.training import DemoApp, DemoController

    app = DemoApp(DemoController(demo_stack), timeline_dir=str(tmp_path))
    no_exit(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.diagnosis is not None, "a first round")
        pressed = await monkey(pilot, app, seed)
        await still_answers(pilot, app, pressed)


def test_the_sane_stack_check_sees_a_screen_twice():
    """The check the monkey relies on: two screens of one kind fail it."""

    class Fake:
        dashboard = Screen()
        screen_stack = [dashboard, VerdictScreen(None), VerdictScreen(None)]

    with pytest.raises(AssertionError, match="pushed twice"):
        sane_stack(Fake())  # type: ignore[arg-type]
