"""The demo's additions to the dashboard: inject faults, play a walkthrough, debrief.

Everything arrives through the app's extension points — extra actions (so the keys show
in the footer, the palette and help like any other), a panel mounted on the dashboard,
and `blind` — so the dashboard itself knows nothing of training. The story logic is the
pure `Session` in stackscope/demo/walkthrough.py; this module only shows it and feeds it
the time.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Label, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from stackscope.demo.faults import CLEAR, FAULTS
from stackscope.demo.walkthrough import Session, Walkthrough
from stackscope.tui.actions import Action
from stackscope.tui.app import StackscopeApp

STORY_TICK = 0.5
ICONS = {"alert": "🔔", "deploy": "🚀", "change": "🔧", "chat": "💬", "metric": "📈", "note": "📝"}


class FaultPicker(ModalScreen[str | None]):
    """Pick a fault to inject (or clear them); esc leaves everything as it is."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        options = [Option(f"{f.name:<24} {f.title}", id=f.name) for f in FAULTS.values()]
        options.append(Option(f"{CLEAR:<24} restore the healthy stack", id=CLEAR))
        with Vertical(id="fault-picker"):
            yield Label("Inject a fault — enter to pick, esc to cancel", id="fault-picker-title")
            yield OptionList(*options, id="fault-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class DebriefScreen(Screen):
    """The end of a walkthrough: the outcome, the real cause, what to change."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back to the dashboard"), Binding("q", "app.quit", "Quit")]

    def __init__(self, markdown: str) -> None:
        super().__init__(id="debrief")
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="debrief-scroll"):
            yield Markdown(self.markdown, id="debrief-body")
        yield Footer()


class DemoPanel(Static):
    """What the trainer and trainee need besides the dashboard: the active fault, what
    users feel (the synthetic logins), and in a walkthrough the story so far."""

    def __init__(self) -> None:
        super().__init__("", id="demo-panel")


class DemoController:
    """Owns the demo's state in the UI: the stack, the walkthrough session, the panel."""

    def __init__(self, stack, walkthrough: Walkthrough | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stack = stack
        self.walkthrough = walkthrough
        self.clock = clock
        self.session: Session | None = None
        self.story: list[str] = []
        self.message = ""
        self.panel = DemoPanel()
        self.app: StackscopeApp | None = None
        self.layers = [layer.name for layer in stack_layers(stack)]

    # ------------------------------------------------------------------ actions
    def actions(self) -> list[Action]:
        out = [
            Action("inject_fault", "i", "Inject fault…", "Break the demo stack on purpose (pick a fault).",
                   run=lambda app: self.pick_fault(), footer=True),
            Action("clear_fault", "c", "Clear faults", "Restore the healthy demo stack.",
                   run=lambda app: self.inject(CLEAR)),
        ]
        out += [Action(f"fault_{name.replace('-', '_')}", name, f"Inject fault: {fault.title}", fault.what,
                       run=lambda app, name=name: self.inject(name), bind=False)
                for name, fault in FAULTS.items()]
        if self.walkthrough is not None:
            for index, layer in enumerate(self.layers[:4], 1):
                out.append(Action(f"answer_{index}", str(index), f"Answer: {layer}",
                                  f"Name the {layer} as the broken layer.",
                                  run=lambda app, layer=layer: self.answer(layer), footer=index == 1,
                                  key_display="1-4" if index == 1 else None))
            out.append(Action("hint", "n", "Hint", "Take the next hint (it costs points).",
                              run=lambda app: self.hint(), footer=True))
        return out

    # ------------------------------------------------------------------ wiring
    def install(self, app: StackscopeApp) -> None:
        self.app = app
        app.dashboard.mount(self.panel, before=app.dashboard.events)
        if self.walkthrough is not None:
            self.session = Session(self.walkthrough, started=self.clock())
            self.message = self.walkthrough.summary.strip()
        app.set_interval(STORY_TICK, self.tick)
        self.tick()

    def tick(self) -> None:
        if self.session is not None and not self.session.finished:
            now = self.clock()
            for event in self.session.due_events(now):
                line = f"{self.session.clock_at(event.at)} {self.session.label(event.at):>5}  " \
                       f"{ICONS.get(event.kind, '•')} {event.text}"
                self.story.append(line)
                if event.kind == "alert" and self.app is not None:
                    self.app.notify(event.text, title="Alert", severity="warning", timeout=8)
            if self.session.fault_due(now):
                self.inject(self.walkthrough.fault, quiet=True)
        self.panel.update(self.render_panel())

    def render_panel(self) -> Text:
        text = Text()
        fault = self.stack.fault
        stats = self.stack.client_stats()
        if self.session is None:
            state = f"fault: {fault} — {FAULTS[fault].what}" if fault else "healthy — press i to inject a fault"
            text.append("demo · ", style="bold")
            text.append(state + "\n")
        else:
            w, s = self.session.walkthrough, self.session
            text.append(f"▶ {w.title}", style="bold")
            text.append(f"   {s.story_clock(self.clock())} · score {s.score}\n")
            text.append("name the broken layer: " + "  ".join(f"{i} {name}" for i, name in
                                                               enumerate(self.layers[:4], 1)) + "   n hint\n")
            for line in self.story[-3:]:
                text.append(line + "\n")
            if self.message:
                text.append(self.message + "\n", style="italic")
        if stats is not None and stats.attempts:
            text.append(f"synthetic logins: {stats.window_error_rate:.0%} failing over the last 10 s")
            if stats.window_error_rate and stats.last_error:
                text.append(f" ({stats.last_error[:70]})")
        return text

    # ------------------------------------------------------------------ doing things
    def pick_fault(self) -> None:
        assert self.app is not None
        self.app.push_screen(FaultPicker(), lambda name: self.inject(name) if name else None)

    def inject(self, name: str, quiet: bool = False) -> None:
        """Apply a fault from a worker thread (the stack lives on its own loop), then probe."""
        app = self.app
        assert app is not None

        def apply() -> None:
            self.stack.inject(name)
            app.call_from_thread(self._injected, name, quiet)

        app.run_worker(apply, thread=True, group="demo-fault", exclusive=True, name=f"inject {name}")

    def _injected(self, name: str, quiet: bool) -> None:
        assert self.app is not None
        if not quiet:
            words = "faults cleared: the stack is healthy" if name == CLEAR else f"injected {name}: {FAULTS[name].what}"
            self.app.notify(words, title="Demo", timeout=6)
        self.app.do_probe_now()
        self.tick()

    def hint(self) -> None:
        if self.session is None:
            return
        hint = self.session.take_hint()
        self.message = f"Hint (−{hint.cost}): {hint.text}" if hint else "No more hints."
        self.tick()

    def answer(self, layer: str) -> None:
        if self.session is None or self.app is None:
            return
        outcome = self.session.answer(layer, self.clock())
        self.message = outcome.message
        self.tick()
        if outcome.correct:
            self.app.blind = False
            verdict = self.app.diagnosis.verdict if self.app.diagnosis else None
            lines = self.session.debrief_lines(verdict.summary if verdict else None,
                                               verdict.ruled_out if verdict else ())
            self.app.push_screen(DebriefScreen("\n".join(lines)))


def stack_layers(stack):
    from stackscope.layout import load_layout

    return load_layout(stack.layout_path).layers


class DemoApp(StackscopeApp):
    """The dashboard on the demo stack, with the controller's actions and panel."""

    def __init__(self, controller: DemoController, **options) -> None:
        from stackscope.layout import load_layout

        self.controller = controller
        super().__init__(load_layout(controller.stack.layout_path), actions=controller.actions(), **options)

    def on_mount(self) -> None:
        super().on_mount()
        # the dashboard composes its widgets during the first refresh: mount beside them then
        self.call_after_refresh(self.controller.install, self)


def run_demo_dashboard(stack, walkthrough: Walkthrough | None = None, blind: bool = False) -> int:
    from stackscope.engine import raise_fd_limit

    raise_fd_limit()
    app = DemoApp(DemoController(stack, walkthrough), blind=blind)
    app.run()
    return app.return_code or 0
