"""The plain dashboard at small sizes (audit of issue 5): events are never cut off, the
footer always keeps ? Help and q Quit, the palette keeps its key hints. Hand-built data,
no probing."""

from __future__ import annotations

import time

import pytest
from textual.content import Content
from textual.geometry import Region

from stackscope.tui.app import StackscopeApp
from stackscope.tui.widgets import FittingFooter
from tests import dashboard_data as data


def app_on_data(tmp_path) -> StackscopeApp:
    layout = data.layout()
    return StackscopeApp(
        layout,
        engine=data.engine_with_history(layout),
        autoprobe=False,
        clock=lambda: data.T0 + 60,
        timeline_dir=str(tmp_path),
    )


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_events_wrap_instead_of_being_cut(tmp_path, size):
    app = app_on_data(tmp_path)
    async with app.run_test(size=size) as pilot:
        app.show_snapshot(data.snapshot(False, at=data.T0))
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        body = app.dashboard.events.query_one("#events-body")
        painted = body.render_lines(Region(0, 0, body.size.width, body.size.height))
        shown = "\n".join(strip.text for strip in painted)
        assert max(len(line.rstrip()) for line in shown.splitlines()) <= body.size.width
        words = " ".join(shown.split())
        for line in app.dashboard.events.lines():
            stamp, _, rest = line.partition("  ")
            assert " ".join(rest.split()) in words  # every word of every event, in order
        assert "…" not in shown


@pytest.mark.parametrize("size", [(80, 24), (60, 20), (40, 12)])
async def test_footer_always_keeps_help_and_quit(tmp_path, size):
    app = app_on_data(tmp_path)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        shown = app.screen.query_one(FittingFooter).shown()
        assert shown[-2:] == ["? Help", "q Quit"]
        if size[0] == 80:
            assert shown == ["⏎ Detail", "f Problems", "r Probe", "p Pause", "t Timeline", "? Help", "q Quit"]
        await pilot.resize_terminal(120, 30)
        await pilot.pause()
        await pilot.pause()
        assert "t Timeline" in app.screen.query_one(FittingFooter).shown()


async def test_palette_help_keeps_its_key_hint(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)):
        commands = {c.title: c.help for c in app.get_system_commands(app.dashboard)}
        assert Content.from_markup(commands["Probe"]).plain.endswith(" [r]")
        assert Content.from_markup(commands["Pause"]).plain.endswith(" [p]")


async def test_the_linux_console_gets_its_own_red_for_crit(tmp_path, monkeypatch):
    from stackscope.tui.app import SIXTEEN_COLOUR_THEME, sixteen_colours
    from stackscope.tui.widgets import CheckRow

    assert sixteen_colours("linux") and not sixteen_colours("xterm-256color") and not sixteen_colours("screen-256color")
    monkeypatch.setenv("TERM", "linux")
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        assert app.theme == SIXTEEN_COLOUR_THEME
        variables = app.get_css_variables()
        assert variables["text-error"] == "ansi_red" and variables["text-success"] == "ansi_green"
        assert variables["text-accent"] != variables["text-success"]  # UNKNOWN is not OK's colour
        row = app.dashboard.path.rows[data.LB]
        assert isinstance(row, CheckRow)
        style = row.get_component_rich_style("row--crit")
        assert style.color is not None and style.color.number == 1  # the terminal's own red


async def test_banner_counts_more_failing_checks_and_a_lone_layer(tmp_path):
    from stackscope.layout import parse_layout
    from stackscope.model import ErrorKind, Result, Snapshot, Status

    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        snap = data.snapshot(False, at=data.T0)
        results = dict(snap.results)
        for cid in (data.B1, data.B2, data.B3):
            results[cid] = Result(
                cid, Status.CRIT, "500 Internal Server Error", 3.0, "500", {"status_code": 500}, ErrorKind.HTTP_STATUS
            )
        app.show_snapshot(Snapshot(snap.layout, results, data.T0, 2))
        await pilot.pause()
        assert (
            app.dashboard.banner.lines()[1]
            == "Auth backends: 500 Internal Server Error (+2 more failing checks; v for all)"
        )
    lone = parse_layout(
        "name: one\nlayers:\n  - name: Web\n    role: lb\n    checks:\n      - {tcp: '127.0.0.1:1', name: web}\n",
        "one.yaml",
    )
    app = StackscopeApp(lone, autoprobe=False, timeline_dir=str(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        result = Result("Web/web", Status.CRIT, "refused", None, "refused", {}, ErrorKind.REFUSED)
        app.show_snapshot(Snapshot(lone, {"Web/web": result}, data.T0, 1))
        await pilot.pause()
        assert app.dashboard.banner.lines()[2] == "ruled out: nothing (one layer)"


async def test_sigterm_quits_the_dashboard_and_writes_the_record(tmp_path):
    import os
    import signal

    record = tmp_path / "t.md"
    layout = data.layout()
    app = StackscopeApp(
        layout,
        engine=data.engine_with_history(layout),
        autoprobe=False,
        record=str(record),
        clock=lambda: data.T0 + 60,
        handle_signals=True,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0))
        await pilot.pause()
        # the signal goes to this very process: without the app's handler it would end the run
        assert signal.SIGTERM in app._signals_installed
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not app._exit and time.monotonic() < deadline:  # the loop runs the handler: poll for it
            await pilot.pause()
        assert app._exit
    assert app.return_code == 0
    assert record.read_text().startswith("# Incident report: auth-prod — Load balancer CRIT")
    assert app._signals_installed == []  # removed again: pytest's own handling is back


async def test_problems_only_hides_healthy_layers_and_keys_say_what_they_do(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(True, at=data.T0 + 60))
        await pilot.pause()
        await pilot.press("f")
        await pilot.pause()
        shown = [name for name, panel in app.dashboard.path.panels.items() if panel.display]
        assert shown == ["Load balancer"]
        await pilot.press("p")
        await pilot.pause()
        assert "p Resume" in app.screen.query_one(FittingFooter).shown()
        await pilot.press("p", "j", "enter")
        await pilot.pause()
        assert app.screen is not app.dashboard
        assert "esc Back" in app.screen.query_one(FittingFooter).shown()


async def test_a_new_verdict_scrolls_its_layer_into_view_unless_the_user_just_moved(tmp_path):
    app = app_on_data(tmp_path)
    async with app.run_test(size=(80, 16)) as pilot:
        app.show_snapshot(data.snapshot(False, at=data.T0))
        await pilot.pause()
        path = app.dashboard.path
        snap = data.snapshot(False, at=data.T0 + 10)
        from stackscope.model import ErrorKind, Result, Snapshot, Status

        results = dict(snap.results)
        results[data.DB] = Result(data.DB, Status.CRIT, "refused", None, "refused", {}, ErrorKind.REFUSED)
        app.show_snapshot(Snapshot(snap.layout, results, data.T0 + 10, 2))
        await pilot.pause()
        await pilot.pause()
        assert path.can_view_entire(path.panels["Database"])


async def test_the_banner_says_when_a_verdict_is_not_confirmed_yet(tmp_path):
    import dataclasses

    from stackscope.model import Snapshot

    app = app_on_data(tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        snap = data.snapshot(True, at=data.T0)
        results = dict(snap.results)
        results[data.LB] = dataclasses.replace(results[data.LB], confirmed=False)
        app.show_snapshot(Snapshot(snap.layout, results, data.T0, 2), partial=True)
        await pilot.pause()
        assert app.dashboard.banner.lines()[0].startswith(
            "✖ CRIT  Load balancer (lb) is the broken layer (unconfirmed)"
        )
        app.show_snapshot(data.snapshot(True, at=data.T0 + 1))
        await pilot.pause()
        head = app.dashboard.banner.lines()[0]
        assert head.startswith("✖ CRIT  Load balancer (lb) is the broken layer") and "unconfirmed" not in head
