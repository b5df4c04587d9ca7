"""What a trainee sees at 80x24 in a walkthrough (issue 6 audit): the latest hint or
feedback on screen, every hint and story line re-readable, no answer before the fault,
no fault keys during a walkthrough, a frozen debrief after the answer, a footer that
fits. The real embedded stack; the story clock is moved by the test."""

from __future__ import annotations

import pytest

from stackscope.tui.screens import HelpScreen
from stackscope.tui.training import (
    PLAIN_ICONS,
    DebriefScreen,
    DemoApp,
    DemoController,
    DemoPanel,
    StoryScreen,
    story_icons,
)
from stackscope.tui.widgets import FittingFooter
from tests.tui.stack import until, walkthrough_app


def footer(app) -> list[str]:
    return app.screen.query_one(FittingFooter).shown()


def panel_on_screen(app) -> list[str]:
    """The demo panel's three lines (clock and score, story, message) as painted: the
    first cut to the width, the others wrapped (joined back here), and where they are."""
    panel = app.controller.panel
    painted = panel.render().plain.split("\n")
    assert all(len(line) <= panel.size.width for line in painted)
    assert panel.region.height == len(painted) <= 1 + 2 * panel.WRAP_LINES
    assert panel.region.bottom <= app.size.height - 1  # above the footer
    lines, rest = [painted[0]], painted[1:]
    for logical in panel.lines()[1:]:
        taken = []
        while (
            rest and " ".join(taken + [rest[0]]).split() == logical.split()[: len(" ".join(taken + [rest[0]]).split())]
        ):
            taken.append(rest.pop(0))
            if " ".join(taken).split() == logical.split():
                break
        lines.append(" ".join(taken) if taken else rest.pop(0))
    return lines


async def start(pilot, controller) -> None:
    await until(pilot, lambda: controller.session is not None and controller.story, "the story to begin")


async def test_walkthrough_at_80x24_messages_story_and_footer(demo_stack):
    app, controller, clock = walkthrough_app(demo_stack, "inc-2023-12-07")  # T-20 ..; fault at T-4; 2 min/s
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, controller)
        await pilot.pause()
        assert footer(app) == ["⏎ Detail", "1-4 Answer", "n Hint", "s Story", "r Probe", "? Help", "q Quit"]
        await pilot.press("3")  # T-20: nothing is broken yet
        lines = panel_on_screen(app)
        assert len(lines) == 3 and lines[0].startswith("15:10 T-20 · score 100")
        assert lines[0].endswith("inc-2023-12-07")  # the neutral id: the title would give the answer away
        assert "Logins fail" not in " ".join(lines)
        assert lines[2].startswith("Nothing is broken yet — watch the panels")
        assert controller.session.wrong == [] and controller.session.score == 100
        clock.now += 11  # T+2: the fault began at T-4, the alert at T+0
        await until(pilot, lambda: demo_stack.fault == "lb-misroute", "the fault")
        await pilot.press("3")
        assert panel_on_screen(app)[2].startswith("Not Auth backends (−15 points)")
        await pilot.press("n", "n")
        lines = panel_on_screen(app)
        assert lines[0].startswith("15:32 T+2 · score 55") and lines[2].startswith("Hint 2 (−20): ")
        assert lines[2] == controller.message  # wrapped, never cut: the whole hint is read at 80x24
        await pilot.press("s")
        assert isinstance(app.screen, StoryScreen)
        story = " ".join(app.screen.text().split())  # wrapped lines joined back
        assert "15:10 T-20 🚀 auth-service 2.14.0 rolled out to auth-1, auth-2 and auth-3" in story
        assert "T+0 🔔 Monitoring: more than 25% of logins failing" in story
        assert "Nothing is broken yet — watch the panels." in story
        hints = [h.text for h in controller.walkthrough.hints[:2]]
        assert f"Hint 1 (−10): {hints[0]}" in story and f"Hint 2 (−20): {hints[1]}" in story
        await pilot.press("escape")
        assert app.screen is app.dashboard
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_lines = [line.split(None, 1) + [""] for line in app.screen.text().splitlines() if line.strip()]
        assert any(cut[0] == "s" and cut[1].startswith("Story — The story so far") for cut in help_lines)
        # the layer's own name, no article: not "Name the DNS as the broken layer"
        assert any(
            cut[0] == "1" and cut[1].startswith("Answer: DNS — Answer that the broken layer is DNS.")
            for cut in help_lines
        )


async def test_no_fault_keys_during_a_walkthrough(demo_stack):
    app, controller, clock = walkthrough_app(demo_stack, "inc-2023-12-07")
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, controller)
        clock.now += 9
        await until(pilot, lambda: demo_stack.fault == "lb-misroute", "the training fault")
        await pilot.press("c", "i")
        await pilot.pause()
        assert app.screen is app.dashboard and demo_stack.fault == "lb-misroute"
        assert not any(a.id.startswith(("fault_", "inject", "clear")) for a in app.registry)
        titles = [c.title for c in app.get_system_commands(app.dashboard)]
        assert not any("fault" in t.lower() for t in titles)


async def test_after_the_right_answer_the_clock_stops_and_the_debrief_is_frozen(demo_stack):
    app, controller, clock = walkthrough_app(demo_stack, "inc-2023-12-07")
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, controller)
        clock.now += 11
        await until(
            pilot,
            lambda: (
                app.diagnosis is not None
                and app.diagnosis.verdict is not None
                and app.diagnosis.verdict.layer == "Load balancer"
            ),
            "the LB verdict",
        )
        await pilot.press("2")
        await until(pilot, lambda: isinstance(app.screen, DebriefScreen), "the debrief")
        await pilot.pause()
        keys = footer(app)
        assert keys.count("q Quit") == 1 and "esc Back" in keys  # once: the screen bound q a second time
        assert "d Debrief" not in keys  # the debrief is open
        first = app.screen.markdown
        assert "Verdict at the time: Load balancer" in first
        await pilot.press("escape")
        assert panel_on_screen(app)[2] == "answered — d: debrief again · s: the story"
        stopped = panel_on_screen(app)[0]
        shown = len(controller.story)
        clock.now += 300  # ten story hours later
        demo_stack.inject("clear")
        await until(pilot, lambda: app.diagnosis.verdict is None, "a healthy stack")
        controller.tick()  # a story tick, run here rather than waited for
        await pilot.pause()
        assert panel_on_screen(app)[0].split(" · ")[:2] == stopped.split(" · ")[:2]  # the clock stopped
        assert len(controller.story) == shown
        await pilot.press("2")
        assert app.screen is app.dashboard  # answering again does nothing
        assert "1-4 Answer" not in footer(app) and "d Debrief" in footer(app)
        await pilot.press("d")
        assert isinstance(app.screen, DebriefScreen) and app.screen.markdown == first


async def test_free_demo_footer_palette_and_help(demo_stack):
    app = DemoApp(DemoController(demo_stack))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown = footer(app)
        assert shown[:2] == ["⏎ Detail", "i Fault"] and shown[-2:] == ["? Help", "q Quit"]
        assert len(panel_on_screen(app)) == 1
        commands = {c.title: c.help for c in app.get_system_commands(app.dashboard)}
        from textual.content import Content

        assert Content.from_markup(commands["Probe"]).plain.endswith("[r]")
        nxdomain = [t for t in commands if "nxdomain" in t]
        assert nxdomain == ["Inject fault: dns-nxdomain — DNS says the name does not exist"]
        assert not Content.from_markup(commands[nxdomain[0]]).plain.endswith("]")
        await pilot.press("question_mark")
        text = app.screen.text()
        line = next(line for line in text.splitlines() if "dns-nxdomain" in line)
        assert line.split()[0] == "palette"


async def test_typing_a_fault_name_in_the_palette_finds_its_entry(demo_stack):
    from textual.command import CommandList, CommandPalette

    app = DemoApp(DemoController(demo_stack))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"nxdomain")
        commands = app.screen.query_one(CommandList)

        def hits() -> list[str]:
            return [str(commands.get_option_at_index(i).hit.text) for i in range(commands.option_count)]

        wanted = "Inject fault: dns-nxdomain — DNS says the name does not exist"
        await until(pilot, lambda: wanted in hits(), "the fault's palette entry among the hits")
        assert hits()[0] == wanted  # the best hit, above other faults' entries


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_help_and_quit_always_fit_the_footer(demo_stack, size):
    app, _, _ = walkthrough_app(demo_stack, "inc-2024-03-14")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        shown = footer(app)
        assert shown[-2:] == ["? Help", "q Quit"]
        if size[0] >= 80:
            assert {"1-4 Answer", "n Hint"} <= set(shown)


def test_story_icons_on_the_linux_console():
    assert story_icons("linux") is PLAIN_ICONS
    assert all(len(icon) == 1 for icon in PLAIN_ICONS.values())
    assert story_icons("xterm-256color")["alert"] == "🔔"


def toasts(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_walkthrough_messages_toasts_and_prompt_at_80x24(demo_stack):
    app, controller, clock = walkthrough_app(demo_stack, "inc-2024-06-21")  # T-15 ..; fault at T-2; 2 min/s
    async with app.run_test(size=(80, 24)) as pilot:
        await start(pilot, controller)
        await pilot.pause()
        assert toasts(app) == []  # the summary is in the story log, not a toast over the path
        assert controller.log[0].kind == "summary"
        prompt = panel_on_screen(app)[2]
        assert prompt == "name the broken layer: 1 DNS  2 LB  3 Backends  4 Store · n hint · s story"
        assert "…" not in prompt
        await pilot.press("3")  # T-15: nothing broken yet
        assert panel_on_screen(app)[2].startswith("Nothing is broken yet")
        clock.now += 7  # T-1: the fault has begun
        await until(pilot, lambda: demo_stack.fault == "db-too-many-connections", "the fault")
        controller.tick()
        assert panel_on_screen(app)[2] == prompt  # the stale "nothing is broken yet" is gone
        await pilot.press("2")
        assert controller.session.score == 85
        assert panel_on_screen(app)[2].startswith("Not Load balancer (−15 points). The LB takes backends out")
        assert app.controller.panel.has_class("-fresh")  # the news stands out where it is written
        await pilot.press("2")  # the same wrong answer again: no charge
        assert controller.session.score == 85
        assert panel_on_screen(app)[2] == "Already tried: Load balancer."
        await pilot.press("n", "n", "n", "n")
        assert [e.text for e in controller.log].count("No more hints.") == 1
        assert toasts(app) == []  # the panel tells it: a toast covered the events pane
        await pilot.press("s")
        assert isinstance(app.screen, StoryScreen)
        await pilot.press("1")  # a wrong answer from the story screen
        assert toasts(app) == [] and controller.message.startswith("Not DNS (−15 points)")


async def test_the_last_login_failure_belongs_to_the_current_fault(demo_stack):
    controller = DemoController(demo_stack)
    app = DemoApp(controller)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: controller.app is not None, "the controller")
        controller.inject("dns-nxdomain")
        await until(
            pilot, lambda: any(l.startswith("last login failure") for l in controller.panel_lines()), "a login failure"
        )
        demo_stack.inject("backend-crash")  # as the controller's worker does, then look at once
        lines = controller.panel_lines()
        assert not any("resolve" in line or "NXDOMAIN" in line for line in lines[1:]), lines


def overlaps(a, b) -> bool:
    return a.x < b.right and b.x < a.right and a.y < b.bottom and b.y < a.bottom


@pytest.mark.parametrize("name", ["inc-2023-12-07", "inc-2024-03-14", "inc-2024-06-21"])
async def test_every_layer_and_the_events_stay_in_view_at_80x24(demo_stack, name):
    """Issue 21: the fourth layer (in inc-2024-06-21 the answer) was below the fold, and
    the answer's toast covered the events pane. With the panel at its tallest (a message
    longer than two lines) every layer panel is whole inside the path's view, and nothing
    the training shows lies over the events."""
    app, controller, clock = walkthrough_app(demo_stack, name)
    walkthrough = controller.walkthrough
    async with app.run_test(size=(80, 24), notifications=True) as pilot:  # toasts drawn, as in a terminal
        await start(pilot, controller)
        clock.now += (walkthrough.fault_at - walkthrough.begins_at) / walkthrough.minutes_per_second + 3
        await until(pilot, lambda: demo_stack.fault == walkthrough.fault, "the fault")
        wrong = next(i for i, layer in enumerate(controller.layers, 1) if layer not in walkthrough.accepted)
        await pilot.press(str(wrong), "n")  # feedback, then a hint: the latest message
        controller.message = "a trainer's long hint " * 20  # wraps past its two lines
        controller.tick()
        panel, path, events = controller.panel, app.dashboard.path, app.dashboard.events
        await until(pilot, lambda: panel.region.height == 1 + 2 * panel.WRAP_LINES, "the panel at its tallest")
        await pilot.pause()  # the layout settles around it
        panels = path.panels  # layer name -> its LayerPanel
        assert sorted(panels) == sorted(controller.layers)
        for layer, widget in panels.items():
            region = widget.region
            assert region.height >= 1 + len(widget.rows), layer  # its title and every check
            assert app.screen.region.contains_region(region), (layer, region)
            assert path.region.contains_region(region), (layer, region, path.region)
        assert walkthrough.answer in panels
        assert events.region.height >= 4 and app.screen.region.contains_region(events.region)
        covering = [t for t in app.screen.query("Toast") if overlaps(t.region, events.region)]
        assert covering == []


@pytest.mark.parametrize("name", ["inc-2023-12-07", "inc-2024-03-14", "inc-2024-06-21"])
def test_every_shipped_story_line_hint_and_feedback_reads_whole_in_the_panel_at_80x24(name):
    """The panel wraps a story line or a message to two lines at 80x24 (so that every layer
    fits above it): each shipped text, as the panel words it, fits in those two uncut."""
    from stackscope.demo.walkthrough import builtin_walkthroughs, load_walkthrough

    walkthrough = load_walkthrough(builtin_walkthroughs()[name])
    width = 80 - 2  # the panel's padding
    shown = [f"12:43 {'T+30':>5}  💬 {e.text}" for e in walkthrough.events]
    shown += [f"Hint {i} (−{h.cost}): {h.text}" for i, h in enumerate(walkthrough.hints, 1)]
    shown += [f"Not {layer} (−{walkthrough.wrong_answer_cost} points). {text}" for layer, text in walkthrough.feedback]
    for line in shown:
        painted = DemoPanel.wrap(line, width)
        assert len(painted) <= DemoPanel.WRAP_LINES and " ".join(painted).split() == line.split(), line
