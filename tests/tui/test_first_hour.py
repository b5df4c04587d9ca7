"""A newcomer's first hour, round 2: a screen's key pressed twice, the banner at every
size, marks that need no colour, a footer that says what f does now, and a palette that
offers what help lists. Hand-built data, no probing (the demo's fault picker on the
embedded stack)."""

from __future__ import annotations

import pytest
from textual.screen import Screen

from stackscope.tui.screens import HelpScreen, VerdictScreen
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
        await pilot.press("escape")  # the screen it switched from closed: one esc and back
        assert app.screen is app.dashboard and app.is_running


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


# --------------------------------------------------------------------------- 8. the banner wraps


MISROUTED = (
    "pool auth_servers routes to 127.0.0.1:19101, 127.0.0.1:19102 — none is a declared backend; "
    "declared 127.0.0.1:19001-19003 missing"
)


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_banner_wraps_a_long_verdict_at_every_size(tmp_path, size):
    import re

    from stackscope.model import ErrorKind, Result, Snapshot, Status

    app = app_on_data(tmp_path)
    layout = app.layout
    results = {
        **data.results(),
        data.LB: Result(data.LB, Status.CRIT, MISROUTED, 2.0, "misrouted", {}, ErrorKind.POOL),
        data.DB: Result(data.DB, Status.CRIT, "refused", None, "refused", {}, ErrorKind.REFUSED),
    }
    async with app.run_test(size=size) as pilot:
        verdict = app.show_snapshot(Snapshot(layout, results, data.T0 + 60)).verdict
        await pilot.pause()
        banner = app.dashboard.banner
        shown = banner.render().plain.splitlines()
        assert banner.size.height == len(shown)
        assert all(len(line) <= banner.size.width for line in shown)
        assert "…" not in "".join(shown)

        def words(text: str) -> str:
            return " ".join(text.split())

        painted = words(" ".join(shown))
        head, summary, ruled = banner.lines()
        assert words(head) in painted and words(summary) in painted  # the whole verdict line, word for word
        for address in re.findall(r"127\.0\.0\.1:[\d-]+", summary):
            assert any(address in line for line in shown), address  # never split across lines
        assert ruled.startswith("ruled out: ") and all(words(item) in painted for item in verdict.ruled_out)


# --------------------------------------------------------------------------- 9. no colour needed


async def test_a_selected_panel_title_has_a_mark_that_is_not_a_colour(tmp_path):
    from stackscope.tui.widgets import PanelHeader

    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.press("j")  # from the first check to the next panel's title
        headers = [panel.header for panel in app.dashboard.path.panels.values()]
        selected = app.focused
        assert isinstance(selected, PanelHeader)
        for header in headers:
            painted = header.render().plain
            assert painted.startswith("▶") == (header is selected), painted
        await pilot.press("j")
        assert not selected.render().plain.startswith("▶")


async def test_the_fault_pickers_current_row_is_reverse_video_not_only_a_colour(tmp_path):
    from textual.widgets import OptionList

    from stackscope.tui.training import FaultPicker

    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(FaultPicker())
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        current = options.get_component_rich_style("option-list--option-highlighted")
        assert current.reverse and current.bold
        assert not options.get_component_rich_style("option-list--option").reverse


async def test_f_says_what_it_does_now_in_the_footer_palette_and_help(tmp_path):
    from stackscope.tui.widgets import FittingFooter

    app = app_on_data(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()

        def footer() -> list[str]:
            return app.screen.query_one(FittingFooter).shown()

        def palette() -> list[str]:
            return [c.title for c in app.get_system_commands(app.dashboard)]

        assert "f Problems" in footer() and "Problems" in palette() and "All checks" not in palette()
        await pilot.press("f")
        await pilot.pause()
        assert app.problems_only
        assert "f All checks" in footer() and "f Problems" not in footer()
        assert "All checks" in palette() and "Problems" not in palette()
        await pilot.press("f")
        await pilot.pause()
        assert not app.problems_only and "f Problems" in footer()
        await pilot.press("question_mark")
        text = app.screen.text()
        assert "Problems — Show only checks" in text and "All checks — Show every check again" in text


async def test_the_palette_offers_what_help_lists_and_nothing_else(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.press("up")  # a panel title: Textual would offer to maximize it
        helped = {action.label for action in app.registry}
        for screen_keys in ((), ("enter",), ("escape", "v")):
            await pilot.press(*screen_keys)
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert titles and set(titles) <= helped, set(titles) - helped
        for textuals in ("Maximize", "Theme", "Screenshot", "Keys"):
            assert textuals not in titles
