"""The demo dashboard on the real embedded stack: a walkthrough played end to end (story,
fault, hint, answers, debrief) and faults injected from the keyboard."""

from __future__ import annotations

from stackscope.model import Status
from stackscope.tui.training import DebriefScreen, DemoApp, DemoController, FaultPicker
from tests.tui.stack import until, walkthrough_app


def verdict_layer(app) -> str | None:
    verdict = app.diagnosis.verdict if app.diagnosis else None
    return verdict.layer if verdict else None


async def test_walkthrough_end_to_end(demo_stack):
    app, controller, clock = walkthrough_app(demo_stack, "inc-2023-12-07")  # T-20 .. ; fault at T-4; 2 min/s
    async with app.run_test(size=(100, 32)) as pilot:
        await until(pilot, lambda: controller.session is not None and controller.story, "the story to begin")
        assert controller.story[0].startswith(
            "15:10  T-20  🚀 auth-service 2.14.0"
        )  # the deploy, 20 minutes before the alert
        assert demo_stack.fault is None
        assert app.dashboard.banner.lines()[0].startswith("? Blind mode")  # the verdict is hidden
        clock.now += 9  # T-2: the fault began at T-4
        await until(pilot, lambda: demo_stack.fault == "lb-misroute", "the fault to be injected")
        await until(pilot, lambda: verdict_layer(app) == "Load balancer", "the dashboard to see it")
        assert app.dashboard.banner.lines()[0].startswith("? Blind mode")  # still hidden from the trainee
        clock.now += 2  # T+2: the alert
        await until(pilot, lambda: any("Monitoring" in line for line in controller.story), "the alert")
        await pilot.press("n")
        assert controller.session.hints_taken == 1 and "Hint 1 (−10)" in controller.message
        await pilot.press("4")  # the session store: wrong
        assert controller.session.wrong == ["Session store"]
        assert controller.message.startswith("Not Session store (−15 points). ")
        await pilot.press("2")  # the load balancer
        await until(pilot, lambda: isinstance(app.screen, DebriefScreen), "the debrief")
        text = app.screen.markdown
        assert "Score: **75/100** — 1 hint (−10), 1 wrong answer (−15: Session store), time in full (" in text
        assert "Verdict at the time: Load balancer: pool auth_servers routes to" in text
        assert "## Corrective measures" in text
        assert app.blind is False  # the verdict is revealed after the answer
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_faults_from_the_keyboard_and_clear(demo_stack):
    app = DemoApp(DemoController(demo_stack))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.diagnosis is not None and app.diagnosis.status is Status.OK, "a healthy stack")
        await pilot.press("i")
        assert isinstance(app.screen, FaultPicker)
        await pilot.press("enter")  # the first fault in the list: lb-misroute
        await until(pilot, lambda: demo_stack.fault == "lb-misroute", "the injection")
        await until(pilot, lambda: verdict_layer(app) == "Load balancer", "the LB verdict")
        assert "fault: lb-misroute" in app.controller.panel.lines()[0]
        await pilot.press("c")
        await until(pilot, lambda: demo_stack.fault is None, "the fault to clear")
        await until(pilot, lambda: app.diagnosis.status is Status.OK, "health again")
        palette = [a.label for a in app.registry if a.palette]
        assert "Inject fault: dns-nxdomain — DNS says the name does not exist" in palette
        assert "Clear faults" in palette


# --------------------------------------------------------------------------- a hostile walkthrough


HOSTILE_WALKTHROUGH = r"""name: "inc-\e]0;PWNED\a"
title: t
summary: "s \e]0;PWNED\a"
fault: lb-misroute
fault_at: 30
answer: Load balancer
clock: {start: "10:00", minutes_per_second: 1}
events:
  - {at: -60, kind: chat, text: "\e]0;PWNED\a\e[2Jstory-line \u202eright-to-left"}
hints:
  - {cost: 5, text: "hint-line \e]0;PWNED\a\e[2J"}
debrief: {root_cause: r, dashboard: d}
"""


def test_a_hostile_walkthrough_never_writes_its_escapes_to_the_terminal(tmp_path):
    """`stackscope demo --walkthrough FILE` (a file of the user's own) in a real pty: the
    story line and a hint are painted, and none of the file's escapes reach the terminal
    (before the fix the terminal got ESC ] 0 ; PWNED BEL: a new window title, then a clear)."""
    import os
    import sys

    from tests.conftest import ROOT
    from tests.tui.test_watch_cli import Terminal

    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE_WALKTHROUGH)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    env.pop("STACKSCOPE_KEYMAP", None)
    terminal = Terminal([sys.executable, "-m", "stackscope", "demo", "--walkthrough", str(path)], env, cols=120)
    try:
        terminal.expect("story-line")  # the panel's latest story event, painted
        terminal.send(b"n")
        terminal.expect("hint-line")  # the hint, painted
        terminal.send(b"q")
        assert terminal.wait() == 0
    finally:
        terminal.close()
    out = terminal.output
    assert b"]0;PWNED" in out  # the texts were shown (as harmless marks) ...
    assert b"\x1b]0;PWNED" not in out and b"PWNED\x07" not in out  # ... but never as a title
    assert b"\x1b[2Jstory" not in out and b"\xe2\x80\xae" not in out  # no clear, no raw bidi override
