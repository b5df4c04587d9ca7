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
        assert "Not the Session store" in controller.message
        await pilot.press("2")  # the load balancer
        await until(pilot, lambda: isinstance(app.screen, DebriefScreen), "the debrief")
        text = app.screen.markdown
        assert "Score: **75/100** — 1 hint(s) (−10), 1 wrong answer(s): Session store, time (" in text
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
