"""What the demo (issue 6) plugs in: its own actions and screens, blind mode, answer keys,
and a callback per diagnosis — all without changing the app. Hand-built data, no probing."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Label

from stackscope.tui.actions import BUILTIN, DASHBOARD, Action, ActionRegistry
from stackscope.tui.app import StackscopeApp
from stackscope.tui.screens import HelpScreen, VerdictScreen
from tests import dashboard_data as data


class FaultPicker(Screen):
    def compose(self):
        yield Label("pick a fault")


def demo_app(tmp_path, calls: list, **kwargs) -> StackscopeApp:
    inject = Action(
        "inject_fault",
        "x",
        "Inject fault…",
        "Break part of the demo stack on purpose.",
        run=lambda app: (calls.append("inject"), app.push_screen(FaultPicker())),
        footer_rank=20,
    )
    answers = [
        Action(
            f"answer_{i}",
            str(i),
            f"Answer {i}",
            f"Name layer {i} as the broken one.",
            run=lambda app, i=i: calls.append(app.layout.layers[i - 1].name),
            scope=DASHBOARD,
        )
        for i in range(1, 5)
    ]
    layout = data.layout()
    return StackscopeApp(
        layout,
        engine=data.engine_with_history(layout),
        actions=[inject, *answers],
        autoprobe=False,
        clock=lambda: data.T0,
        timeline_dir=str(tmp_path),
        **kwargs,
    )


async def test_caller_actions_get_keys_palette_footer_and_help(tmp_path):
    calls: list = []
    app = demo_app(tmp_path, calls)
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(broken=True))
        await pilot.press("1", "2", "4")
        assert calls == ["DNS", "Load balancer", "Database"]
        binding = app.screen.active_bindings["x"].binding
        assert binding.description == "Inject fault…" and binding.show
        titles = [command.title for command in app.get_system_commands(app.dashboard)]
        assert "Inject fault…" in titles and "Probe" in titles and "Answer 1" in titles
        await pilot.press("x")
        assert calls[-1] == "inject" and isinstance(app.screen, FaultPicker)
        assert "Answer 1" not in [c.title for c in app.get_system_commands(app.screen)]  # dashboard-only
        await pilot.press("1")  # dashboard keys do nothing on another screen
        assert calls[-1] == "inject"
        await pilot.press("escape")
        assert app.screen is app.dashboard
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text()
        assert "Inject fault… — Break part of the demo stack on purpose." in text and "Answer 4 — " in text


async def test_blind_mode_hides_the_verdict_everywhere(tmp_path):
    seen = []
    app = demo_app(tmp_path, [], blind=True, on_diagnosis=[seen.append])
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(broken=False, at=data.T0))
        app.show_snapshot(data.snapshot(broken=True, at=data.T0 + 2))
        await pilot.pause()
        assert [d.status.word for d in seen] == ["OK", "CRIT"]
        banner = " ".join(app.dashboard.banner.lines())
        assert banner.startswith("? Blind mode") and "Load balancer" not in banner
        assert not any("verdict" in line for line in app.dashboard.events.lines())
        assert any("Load balancer / lb-health  ✔ OK → ✖ CRIT" in line for line in app.dashboard.events.lines())
        await pilot.press("v")
        assert app.screen is app.dashboard  # the full verdict is disabled too
        assert "Verdict" not in [c.title for c in app.get_system_commands(app.dashboard)]
        app.blind = False
        await pilot.pause()
        assert app.dashboard.banner.lines()[0].startswith("✖ CRIT  Load balancer (lb) is the broken layer")
        assert any("verdict" in line for line in app.dashboard.events.lines())
        await pilot.press("v")
        assert isinstance(app.screen, VerdictScreen)


def test_registry_reports_key_clashes_and_builtins_have_none():
    assert ActionRegistry(BUILTIN).conflicts() == []
    clash = Action("mine", "r", "Mine", "Shadows probe now.")
    assert ActionRegistry([*BUILTIN, clash]).conflicts() == ["r: probe_now and mine"]


async def test_detail_screen_follows_new_results_and_keeps_the_last_problem(tmp_path):
    from stackscope.tui.screens import DetailScreen

    app = demo_app(tmp_path, [])
    async with app.run_test(size=(80, 24)) as pilot:
        app.show_snapshot(data.snapshot(broken=False, at=data.T0))
        await pilot.press("j", "j", "enter")  # DNS row -> LB title -> lb-health
        assert isinstance(app.screen, DetailScreen) and app.screen.check.name == "lb-health"
        assert "pool 3/3 UP" in app.screen.text() and "✔ declared" in app.screen.text()
        app.show_snapshot(data.snapshot(broken=True, at=data.T0 + 2))
        await pilot.pause()
        text = app.screen.text()
        assert "502 Bad Gateway (expected 200)" in text and "⚠ unexpected" in text and "decoy-1" in text
        app.show_snapshot(data.snapshot(broken=False, at=data.T0 + 4))
        await pilot.pause()
        text = app.screen.text()
        last = text[text.index("Last problem") :]
        assert "✖ CRIT" in last and "502 Bad Gateway (expected 200)" in last


async def test_a_round_that_raises_is_reported_and_probing_goes_on(tmp_path):
    from stackscope.engine import Engine

    class FlakyEngine(Engine):
        calls = 0

        async def run_round(self, on_start=None, on_result=None):
            FlakyEngine.calls += 1
            if FlakyEngine.calls == 1:
                raise RuntimeError("engine bug")
            return data.snapshot(broken=False, at=data.T0)

    layout = data.layout()
    app = StackscopeApp(layout, engine=FlakyEngine(layout), timeline_dir=str(tmp_path))
    errors = []
    app.notify = lambda message, **kwargs: errors.append(message)  # run_test hides notifications
    async with app.run_test(size=(80, 24)) as pilot:
        from tests.tui.stack import until

        await until(pilot, lambda: errors, "the failed round to be reported")
        assert errors == ["probe round failed: RuntimeError: engine bug"] and not app.round_running
        await pilot.press("r")
        await until(pilot, lambda: app.diagnosis is not None, "the next round")
        assert app.dashboard.banner.lines()[0].startswith("✔ OK  All layers healthy")


async def test_rows_out_of_view_are_painted_when_scrolled_to(tmp_path):
    app = demo_app(tmp_path, [])
    async with app.run_test(size=(80, 14)) as pilot:
        await pilot.pause()
        app.show_snapshot(data.snapshot(broken=False, at=data.T0))
        await pilot.pause()
        row = app.dashboard.path.rows[data.DB]
        assert not app.dashboard.path.can_view_partial(row)
        assert row.stale and row.main.plain == ""  # not painted while out of view
        for _ in range(12):
            await pilot.press("j")
        assert app.focused is row
        from tests.tui.stack import until

        await until(pilot, lambda: not row.stale and row.main.plain.startswith("▶"), "the row painted once in view")
        assert row.main.plain.startswith("▶✔ postgres") and "open" in row.main.plain  # selected: ▶, no colour needed
        assert row.latency.plain.strip() == "<1 ms"
