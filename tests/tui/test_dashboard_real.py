"""The dashboard driven by Pilot against a real loopback stack (nginx, dnsmasq, a TCP
listener): what an operator sees and every key they press."""

from __future__ import annotations

import threading

import pytest

from stackscope.layout import load_layout
from stackscope.model import Status
from stackscope.tui.app import StackscopeApp
from stackscope.tui.screens import DetailScreen, HelpScreen, VerdictScreen
from stackscope.tui.widgets import CheckRow, LayerPanel, PanelHeader
from tests.conftest import write_layout
from tests.tui.stack import LoopbackStack, until

SIZES = [(80, 24), (160, 50)]
LAYERS = ["DNS", "Load balancer", "Auth backends", "Database"]


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory):
    stack = LoopbackStack(tmp_path_factory.mktemp("tui-stack")).start()
    yield stack
    stack.stop()


@pytest.fixture
def own_stack(tmp_path):
    stack = LoopbackStack(tmp_path / "stack").start()
    yield stack
    stack.stop()


def make_app(stack: LoopbackStack, tmp_path, **kwargs) -> StackscopeApp:
    path = write_layout(tmp_path, stack.layout_yaml(**kwargs.pop("layout", {})))
    return StackscopeApp(load_layout(str(path)), timeline_dir=str(tmp_path), **kwargs)


def healthy(app: StackscopeApp) -> bool:
    return app.diagnosis is not None and app.diagnosis.status is Status.OK


def panel(app: StackscopeApp, name: str) -> LayerPanel:
    return app.dashboard.path.panels[name]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_panels_appear_in_path_order_and_turn_healthy(shared_stack, tmp_path, size):
    app = make_app(shared_stack, tmp_path)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: healthy(app), "a healthy first round")
        await pilot.pause()
        panels = list(app.query(LayerPanel))
        assert [p.path_layer.name for p in panels] == LAYERS
        regions = [p.region for p in panels]
        if size[0] >= 160:  # left to right, side by side
            assert [r.x for r in regions] == sorted(r.x for r in regions) and len({r.y for r in regions}) == 1
        else:  # stacked, top to bottom
            assert [r.y for r in regions] == sorted(r.y for r in regions) and len({r.x for r in regions}) == 1
        assert all(p.has_class("-ok") for p in panels)
        banner = app.dashboard.banner.lines()
        assert banner[0] == "✔ OK  All layers healthy (6 checks)"
        assert "Auth backends: 3/3 answer 200 directly" in banner[1]
        row = app.dashboard.path.rows["Auth backends/auth-1"]
        assert row.text().startswith("✔ auth-1") and " 200 " in row.text()


async def test_stopping_the_backends_flips_their_panel_and_the_verdict(own_stack, tmp_path):
    app = make_app(own_stack, tmp_path, layout={"interval": "10s"})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: healthy(app), "a healthy first round")
        own_stack.stop_backends()
        await pilot.press("r")  # probe now instead of waiting for the 10s interval
        # the confirmed verdict (its re-probes agreed): the report names only that as the cause
        await until(
            pilot, lambda: app.diagnosis.verdict is not None and app.diagnosis.verdict.confirmed, "a confirmed verdict"
        )
        verdict = app.diagnosis.verdict
        assert verdict.layer == "Auth backends" and verdict.status is Status.CRIT
        assert panel(app, "Auth backends").has_class("-crit")
        assert panel(app, "Load balancer").has_class("-crit")  # 502, explained by the backends
        assert panel(app, "DNS").has_class("-ok") and panel(app, "Database").has_class("-ok")
        head, summary, ruled = app.dashboard.banner.lines()
        assert head.startswith("✖ CRIT  Auth backends (backend) is the broken layer")
        assert "Load balancer fails because of it" in summary
        assert ruled.startswith("ruled out: DNS: ") and "Database: 1/1 accept connections" in ruled
        assert app.dashboard.path.rows["Auth backends/auth-2"].text().startswith("✖ auth-2")
        lines = app.dashboard.events.lines()
        assert "verdict  ✖ CRIT  Auth backends is the broken layer" in lines[0]  # newest first
        assert any("Auth backends / auth-1  ✔ OK → ✖ CRIT" in line for line in lines)

        await pilot.press("t")
        path = app.last_timeline_path
        assert path is not None and path.parent == tmp_path
        text = path.read_text()
        assert text.startswith("# Incident report: auth-e2e — Auth backends CRIT")
        assert "| Auth backends | ✔ OK → ✖ CRIT | auth-1: " in text
        assert "| Load balancer | ✔ OK → ✖ CRIT | lb-health: 502 Bad Gateway (expected 200) |" in text
        assert "**Database**: 1/1 accept connections" in text


async def test_navigation_detail_and_back(shared_stack, tmp_path):
    app = make_app(shared_stack, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: healthy(app), "a healthy first round")
        first = app.focused
        assert isinstance(first, CheckRow) and first.check.name == "auth.stackscope.test"
        await pilot.press("j")
        assert isinstance(app.focused, PanelHeader) and app.focused.path_layer.name == "Load balancer"
        await pilot.press("down")
        assert app.focused.check.name == "lb-health"
        await pilot.press("k", "up")
        assert app.focused is first
        await pilot.press("right", "right")
        assert app.focused.check.name == "auth-1"
        await pilot.press("left")
        assert app.focused.check.name == "lb-health"

        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen) and app.screen.check.name == "lb-health"
        text = app.screen.text()
        assert "HTTP" in text and "Phases (ms)" in text and "connect" in text and "ttfb" in text
        assert "Headers" in text and "server" in text and "Latency history" in text
        await pilot.press("escape")
        assert app.screen is app.dashboard and app.focused.check.name == "lb-health"

        await pilot.press("l", "l", "l", "h", "h", "h")  # to Auth backends, Database, back to DNS
        assert app.focused.check.name == "auth.stackscope.test"
        await pilot.press("enter")
        dns_text = app.screen.text()
        assert "DNS" in dns_text and "answers" in dns_text and "127.0.0.1" in dns_text and "ttl" in dns_text
        await pilot.press("escape")


async def test_filter_collapse_pause_probe_help_verdict_palette_and_quit(shared_stack, tmp_path):
    app = make_app(shared_stack, tmp_path, layout={"interval": "10s"})
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: healthy(app), "a healthy first round")
        rows = app.dashboard.path.rows

        await pilot.press("f")  # problems only: every row is OK, so every row hides
        assert app.problems_only and not any(r.display for r in rows.values())
        assert isinstance(app.focused, PanelHeader)
        assert app.dashboard.header.has_class("-problems")
        await pilot.press("f")
        assert all(r.display for r in rows.values())

        await pilot.press("l", "l")  # Auth backends
        await pilot.press("space")
        backends = panel(app, "Auth backends")
        assert backends.collapsed and not backends.rows["Auth backends/auth-1"].region
        assert app.focused is backends.header
        await pilot.press("enter")  # enter on a panel title expands it too
        assert not backends.collapsed

        await pilot.press("p")
        assert app.paused and app.dashboard.header.has_class("-paused")
        rounds = app.engine.rounds
        await pilot.press("r")  # a manual round still runs while paused
        await until(pilot, lambda: app.engine.rounds > rounds and not app.round_running, "a manual round")
        await pilot.press("p")
        assert not app.paused and not app.dashboard.header.has_class("-paused")

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = app.screen.text()
        for action in app.registry:  # the same registry as the bindings and the palette
            assert f"{action.label} — " in shown, action.id
        for keys in ("↓ / j", "enter", "space", "ctrl+p", "esc", "?", "q / ctrl+q", "tab / shift+tab"):
            assert keys in shown
        await pilot.press("escape")
        assert app.screen is app.dashboard

        await pilot.press("v")
        assert isinstance(app.screen, VerdictScreen)
        await pilot.press("escape")

        await pilot.press("ctrl+p")
        from textual.command import CommandPalette

        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"probe")
        rounds = app.engine.rounds
        await pilot.press("enter")
        await until(pilot, lambda: app.engine.rounds > rounds, "a round started from the palette")
        assert app.screen is app.dashboard

        await pilot.press("q")
    assert app.return_code == 0


async def test_a_hung_target_shows_probing_and_quitting_is_instant(shared_stack, tmp_path, pyservers):
    from tests.servers.pyservers import silent

    hung = pyservers.tcp(silent)
    text = shared_stack.layout_yaml(interval="30s", timeout="30s").replace(
        "      - {tcp:", f'      - {{http: "http://127.0.0.1:{hung}/", name: hung, timeout: 30s}}\n      - {{tcp:'
    )
    app = StackscopeApp(load_layout(str(write_layout(tmp_path, text))), timeline_dir=str(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        row = app.dashboard.path.rows["Database/hung"]
        await until(pilot, lambda: "probing…" in row.text(), "the hung row to say probing…")
        others = [r for cid, r in app.dashboard.path.rows.items() if cid != "Database/hung"]
        await until(pilot, lambda: all(r.result is not None for r in others), "the other checks' results")
        assert app.round_running  # the round is still waiting for the hung target
        assert app.dashboard.path.rows["DNS/auth.stackscope.test"].text().startswith("✔")
        probe_thread = app.prober.thread
        assert probe_thread is not None and probe_thread.is_alive()
        await pilot.press("q")
    assert app.return_code == 0
    assert not app.engine.inflight  # the hung probe was cancelled, not waited for
    # this app's own probe thread has ended (another test's, still winding down, is not this one's)
    assert app.prober.thread is None and not probe_thread.is_alive()


async def test_a_probe_that_raises_shows_unknown_with_the_error(tmp_path, monkeypatch):
    from stackscope import probes
    from stackscope.kinds import CheckSpec, Text
    from stackscope.layout import parse_layout

    ran_on = []

    async def broken_probe(check, ctx):
        ran_on.append(threading.current_thread().name)
        raise ValueError("boom")

    from dataclasses import dataclass

    @dataclass(frozen=True)
    class NoOptions:
        pass

    spec = CheckSpec(key="broken", doc="raises", target=Text(), options=NoOptions, probe=broken_probe)
    monkeypatch.setitem(probes.CHECK_TYPES, "broken", "tests.tui.test_dashboard_real")
    monkeypatch.setitem(probes._loaded, "broken", spec)
    layout = parse_layout(
        "name: x\ninterval: 5s\nlayers:\n  - name: L\n    role: other\n    checks:\n"
        "      - broken: anything\n        name: buggy\n"
    )
    app = StackscopeApp(layout, timeline_dir=str(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.diagnosis is not None, "a round")
        row = app.dashboard.path.rows["L/buggy"]
        assert row.status is Status.UNKNOWN and row.text().startswith("? buggy")
        assert app.dashboard.banner.lines()[0].startswith("? UNKNOWN  L (other): cannot tell")
        await pilot.press("enter")
        assert "probe error: ValueError: boom" in app.screen.text()
    # probes run on their own loop: a repaint cannot be timed as the target's latency
    assert ran_on and set(ran_on) == {"stackscope-probes"}


async def test_resize_storm_keeps_the_dashboard_working(shared_stack, tmp_path):
    app = make_app(shared_stack, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: healthy(app), "a healthy first round")
        for width, height in [(200, 60), (40, 12), (120, 30), (81, 25), (160, 50), (20, 8), (80, 24)] * 5:
            await pilot.resize_terminal(width, height)
        await pilot.pause()
        assert app.dashboard.has_class("-narrow") and app.screen is app.dashboard
        await pilot.press("j", "j", "enter")
        assert isinstance(app.screen, DetailScreen) and app.screen.check.name == "lb-health"
        await pilot.press("escape")
        await pilot.resize_terminal(160, 50)
        await pilot.pause()
        assert app.dashboard.has_class("-wide")


async def test_record_writes_the_timeline_on_exit(shared_stack, tmp_path):
    record = tmp_path / "incident.md"
    app = make_app(shared_stack, tmp_path, record=str(record))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: healthy(app), "a healthy first round")
        await pilot.press("ctrl+q")
    assert record.read_text().startswith("# Watch report: auth-e2e — no incident")


async def test_record_keeps_a_recording_that_replays(shared_stack, tmp_path):
    """`watch --record` in the dashboard keeps the same recording as `watch --plain`: every
    result and round written from the probe thread, the verdicts shown; replayed, it judges
    the same verdicts."""
    from stackscope.recording import Recorder, read_recording
    from stackscope.replay import load, play_lines

    path = write_layout(tmp_path, shared_stack.layout_yaml())
    layout = load_layout(str(path))
    recorder = Recorder(str(tmp_path / "incident.jsonl"), layout, path.read_text())
    app = StackscopeApp(layout, record=str(tmp_path / "incident.md"), recorder=recorder, timeline_dir=str(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: healthy(app) and app.engine.rounds >= 2, "two healthy rounds")
        await pilot.press("ctrl+q")
    recording = read_recording(str(tmp_path / "incident.jsonl"))
    assert recording.problem == ""
    checks = {check.id for check in app.layout.checks()}
    results = [step for step in recording.steps if step.kind == "r"]
    assert {step.result.check_id for step in results if step.result} == checks
    assert len([step for step in recording.steps if step.kind == "round"]) >= 2
    shown = [step.line for step in recording.steps if step.kind == "v"]
    assert shown and "all layers healthy" in shown[0]
    _, verdicts, _ = play_lines(*load(str(tmp_path / "incident.jsonl")), lambda line: None)
    assert [line.split("  ", 1)[1] for line in verdicts] == [line.split("  ", 1)[1] for line in shown]
