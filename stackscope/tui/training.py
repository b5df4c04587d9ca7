"""The demo's additions to the dashboard: inject faults, play a walkthrough, debrief.

Everything arrives through the app's extension points — extra actions (keys, palette
entries and help lines like any other; those with a `footer_rank` in the footer too), a
panel mounted on the dashboard, and `blind` — so the dashboard itself knows nothing of
training. The story logic is the pure `Session` in stackscope/demo/walkthrough.py; this
module only shows it and feeds it the time.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Label, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from stackscope.demo.faults import CLEAR, FAULTS
from stackscope.demo.walkthrough import NOTHING_BROKEN_YET, Session, Walkthrough
from stackscope.tui import cells
from stackscope.tui.actions import BUILTIN, Action, Handler
from stackscope.tui.app import StackscopeApp
from stackscope.tui.messages import CURSOR_SCROLLS
from stackscope.tui.screens import plain_text
from stackscope.tui.widgets import FittingFooter

STORY_TICK = 0.5
NO_MORE_HINTS = "No more hints."
FRESH_SECONDS = 4  # the panel stands out this long after a hint, feedback, an alert or a fault
# Story icons: emoji where the terminal draws them, single-width symbols on the Linux
# console (its fonts have no emoji, and a double-width glyph shifts the line).
EMOJI_ICONS = {"alert": "🔔", "deploy": "🚀", "change": "🔧", "chat": "💬", "metric": "📈", "note": "📝"}
PLAIN_ICONS = {"alert": "!", "deploy": "↑", "change": "*", "chat": "»", "metric": "#", "note": "•"}


def story_icons(term: str | None = None) -> dict[str, str]:
    term = os.environ.get("TERM", "") if term is None else term
    return PLAIN_ICONS if term.startswith("linux") or term in ("vt100", "vt220", "ansi") else EMOJI_ICONS


class FaultPicker(ModalScreen[str | None]):
    """Pick a fault to inject (or clear them); esc leaves everything as it is."""

    DEFAULT_CSS = """
    FaultPicker { align: center middle; }
    #fault-picker {
        width: 76;
        height: auto;
        max-height: 20;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    #fault-picker-title { text-style: bold; height: 1; }
    #fault-list { height: auto; max-height: 16; }
    """

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

    # q quits through the app's own action; a binding here too showed "q Quit" twice
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    #debrief-scroll { height: 1fr; padding: 0 1; }
    """

    def __init__(self, markdown: str) -> None:
        super().__init__(id="debrief")
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="debrief-scroll", classes=CURSOR_SCROLLS):
            yield Markdown(self.markdown, id="debrief-body")
        yield FittingFooter()


@dataclass(frozen=True)
class LogEntry:
    """One line of the story log: a story event, a hint taken, an answer's feedback."""

    at: float  # story minutes
    icon: str
    text: str
    kind: str  # a story event kind, or one of MESSAGE_KINDS


MESSAGE_KINDS = ("summary", "hint", "answer")  # log entries that are not story events


class StoryScreen(Screen):
    """Everything the walkthrough said so far, with its story time: events, hints taken,
    the feedback to each answer. Long lines wrap; the screen scrolls."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, controller: DemoController) -> None:
        super().__init__(id="story")
        self.controller = controller
        self.body = Static("", id="story-body")

    def compose(self) -> ComposeResult:
        yield Label("Story so far — esc to close", id="detail-title")
        with VerticalScroll(id="detail-scroll", classes=CURSOR_SCROLLS):
            yield self.body
        yield FittingFooter()

    def on_mount(self) -> None:
        self.body.update(self.controller.story_renderable())

    def text(self) -> str:
        return plain_text(self.controller.story_renderable(), self.app.size.width - 4)


class DemoPanel(Widget):
    """What the trainer and trainee need besides the dashboard. In a walkthrough: the
    story clock and score with what users feel (the synthetic logins' failure rate), the
    latest story line, and the latest message (hint, feedback) or the prompt. Outside
    one: the fault (or "healthy") with the logins' failure rate, and while logins fail a
    second line with the last login failure.

    The first line is cut to the width; the others wrap, up to WRAP_LINES lines each (the
    last cut with an ellipsis), so a story line or a hint can be read whole at 80x24
    (before, "db on-call: 'the primary looks normal, 40 connections… we could fa…").
    Two lines each, not three: at 80x24 the panel's five lines, the events pane and all
    four layers just fit (the shipped texts fit in two; `s` shows any text whole).

    It is also where news is told: a hint, an answer's feedback, an alert or a fault make
    it stand out for FRESH_SECONDS (`flash`) instead of a toast, which covered the events
    pane at 80x24."""

    WRAP_LINES = 2
    DEFAULT_CSS = """
    DemoPanel {
        height: auto;
        max-height: 5;  /* one line, then the story and the message wrapped (WRAP_LINES each) */
        padding: 0 1;
        background: $primary-muted;
        color: $foreground;
    }
    DemoPanel.-fresh { background: $warning-muted; }
    """

    def __init__(self) -> None:
        super().__init__(id="demo-panel")
        self._lines: list[str] = []
        self._height = 0
        self._unflash: Timer | None = None

    def set_lines(self, lines: list[str]) -> None:
        if lines != self._lines:
            self._lines = lines
            height = len(self.wrapped(max(1, self.size.width or 80)))
            self.refresh(layout=height != self._height)
            self._height = height

    def flash(self) -> None:
        """Stand out for FRESH_SECONDS: something new is in the panel."""
        self.add_class("-fresh")
        if self._unflash is not None:
            self._unflash.stop()
        self._unflash = self.set_timer(FRESH_SECONDS, lambda: self.remove_class("-fresh"))

    def lines(self) -> list[str]:
        """The panel's text, also what tests read (before any cut to the width)."""
        return list(self._lines)

    def wrapped(self, width: int) -> list[str]:
        """The lines as painted at `width`: the first cut, the others wrapped."""
        out = [cells.fit(self._lines[0], width).rstrip()] if self._lines else []
        for line in self._lines[1:]:
            out.extend(self.wrap(line, width))
        return out

    @classmethod
    def wrap(cls, line: str, width: int) -> list[str]:
        """A story line or message as painted at `width`: up to WRAP_LINES lines, the last
        cut with an ellipsis when the text is longer."""
        if cell_len(line) <= width:
            return [cells.fit(line, width).rstrip()]
        # textwrap counts characters; an icon takes two cells: leave room for them
        wide = cell_len(line[: 2 * width]) - len(line[: 2 * width])
        parts = textwrap.wrap(line, max(8, width - wide), break_on_hyphens=False) or [""]
        if len(parts) > cls.WRAP_LINES:
            parts = parts[: cls.WRAP_LINES - 1] + [" ".join(parts[cls.WRAP_LINES - 1 :])]
        return [cells.fit(part, width).rstrip() for part in parts]

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self.wrapped(max(1, width))))

    def on_resize(self) -> None:
        self.refresh(layout=True)

    def render(self) -> Text:
        width = max(1, self.size.width)
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, line in enumerate(self.wrapped(width)):
            if index:
                text.append("\n")
            text.append(line, style="bold" if index == 0 else "")
        return text


class DemoController:
    """Owns the demo's state in the UI: the stack, the walkthrough session, the panel."""

    def __init__(
        self,
        stack,
        walkthrough: Walkthrough | None = None,
        clock: Callable[[], float] = time.monotonic,
        icons: dict[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.walkthrough = walkthrough
        self.clock = clock
        self.icons = icons if icons is not None else story_icons()
        self.session: Session | None = None
        self.log: list[LogEntry] = []
        self.message = ""
        self.debrief: str | None = None  # the debrief as it was at the right answer
        self.panel = DemoPanel()
        self.app: StackscopeApp | None = None
        self.story_start: float | None = None  # the session's start on `clock`, when not its first reading
        layers = stack_layers(stack)
        self.layers = [layer.name for layer in layers]
        self.short_names = [short_layer_name(layer.name, layer.role) for layer in layers]

    # ------------------------------------------------------------------ actions
    def actions(self) -> list[Action]:
        if self.walkthrough is None:
            # Faults are the trainer's tools: in a walkthrough they would clear or replace
            # the training fault, so only the free demo has them.
            out = [
                Action(
                    "inject_fault",
                    "i",
                    "Inject fault…",
                    "Break the demo stack on purpose (pick a fault).",
                    run=lambda app: self.pick_fault(),
                    footer_rank=20,
                    footer_label="Fault",
                ),
                Action(
                    "clear_fault",
                    "c",
                    "Clear faults",
                    "Restore the healthy demo stack.",
                    run=lambda app: self.inject(CLEAR),
                ),
            ]
            out += [
                Action(
                    f"fault_{name.replace('-', '_')}",
                    "",
                    f"Inject fault: {name} — {fault.title}",
                    fault.what,
                    run=self._injects(name),
                    bind=False,
                )
                for name, fault in FAULTS.items()
            ]
            return out
        out = []
        for index, layer in enumerate(self.layers[:4], 1):
            out.append(
                Action(
                    f"answer_{index}",
                    str(index),
                    f"Answer: {layer}",
                    f"Answer that the broken layer is {layer}.",
                    run=self._answers(layer),
                    footer_rank=20 if index == 1 else None,
                    key_display="1-4" if index == 1 else None,
                    footer_label="Answer",
                    enabled=lambda app: not self.solved,
                )
            )
        out += [
            Action(
                "hint",
                "n",
                "Hint",
                "Take the next hint (it costs points).",
                run=lambda app: self.hint(),
                footer_rank=22,
                enabled=lambda app: not self.solved,
            ),
            Action(
                "story",
                "s",
                "Story",
                "The story so far: every event with its story time, the hints taken and the feedback to each answer.",
                run=lambda app: self.show_story(),
                footer_rank=26,
                enabled=lambda app: not isinstance(app.screen, StoryScreen),
            ),
            Action(
                "debrief",
                "d",
                "Debrief",
                "Open the debrief again (after the right answer).",
                run=lambda app: self.show_debrief(),
                footer_rank=24,
                enabled=lambda app: self.solved and not isinstance(app.screen, DebriefScreen),
            ),
        ]
        # A trainee probes again more often than they filter: "r Probe" before "f Problems",
        # so that it still fits at 80 columns (the registry lets an action replace a built-in).
        probe = next(a for a in BUILTIN if a.id == "probe_now")
        out.append(dataclasses.replace(probe, footer_rank=28))
        return out

    def _injects(self, name: str) -> Handler:
        return lambda app: self.inject(name)

    def _answers(self, layer: str) -> Handler:
        return lambda app: self.answer(layer)

    @property
    def solved(self) -> bool:
        return self.session is not None and self.session.finished

    # ------------------------------------------------------------------ wiring
    def install(self, app: StackscopeApp) -> None:
        self.app = app
        app.dashboard.mount(self.panel, before=app.dashboard.events)
        if self.walkthrough is not None:
            app.dashboard.add_class("-walkthrough")  # DemoApp.CSS: every layer on screen at 80x24
            start = self.clock() if self.story_start is None else self.story_start
            self.session = Session(self.walkthrough, started=start)
            summary = " ".join(self.walkthrough.summary.split())
            if summary:
                self.log.append(LogEntry(self.walkthrough.begins_at, "▶", summary, "summary"))
        app.set_interval(STORY_TICK, self.tick)
        self.tick()

    def tick(self) -> None:
        if self.session is not None and not self.session.finished:
            now = self.clock()
            for event in self.session.due_events(now):
                self.log.append(LogEntry(event.at, self.icons.get(event.kind, "•"), event.text, event.kind))
                if event.kind == "alert":
                    self.panel.flash()
            if self.session.fault_due(now) and self.walkthrough is not None and self.walkthrough.fault:
                if self.message == NOTHING_BROKEN_YET:
                    self.message = ""  # it is now: the prompt comes back
                self.inject(self.walkthrough.fault, quiet=True)
        self.panel.set_lines(self.panel_lines())

    def panel_lines(self) -> list[str]:
        stats = self.stack.client_stats()
        users = ""
        if stats is not None and stats.attempts:
            users = f"logins {stats.window_error_rate:.0%} failing (10 s)"
        if self.session is None:
            fault = self.stack.fault
            state = f"fault: {fault} — {FAULTS[fault].what}" if fault else "healthy — i injects a fault"
            lines = ["demo · " + " · ".join(filter(None, (users, state)))]
            if stats is not None and stats.window_error_rate and stats.last_error:
                lines.append(f"last login failure: {stats.last_error}")
            return lines
        s = self.session
        now = self.clock()
        head = f"{s.story_clock(now)} {s.label(s.story_minutes(now))} · score {s.score_at(now)}"
        # the walkthrough's neutral id: its title would give the answer away (the debrief tells it)
        first = " · ".join(filter(None, (head, users, s.walkthrough.name)))
        latest = next(reversed(self.story), "the story begins…")
        if s.finished:
            last = "answered — d: debrief again · s: the story"
        else:
            prompt = "name the broken layer: " + "  ".join(f"{i} {n}" for i, n in enumerate(self.short_names[:4], 1))
            last = self.message or prompt + " · n hint · s story"
        return [first, latest, last]

    @property
    def story(self) -> list[str]:
        """The story events so far as the panel shows them ('15:10  T-20  🚀 …'), from the log."""
        s = self.session
        if s is None:
            return []
        return [
            f"{s.clock_at(e.at)} {s.label(e.at):>5}  {e.icon} {e.text}" for e in self.log if e.kind not in MESSAGE_KINDS
        ]

    def story_renderable(self) -> Table:
        """The story log: story time, icon and text, long lines wrapped under their text."""
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        session = self.session
        for entry in self.log:
            clock = session.clock_at(entry.at) if session else ""
            label = session.label(entry.at) if session else ""
            table.add_row(clock, f"{label:>5}", entry.icon, entry.text)
        if not self.log:
            table.add_row("", "", "", "nothing has happened yet")
        return table

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
            self.panel.flash()  # its first line names the fault (or "healthy")
        self.app.do_probe_now()
        self.tick()

    def _say(self, message: str, kind: str) -> None:
        """The latest message: the panel's last line (flashed) and the story log."""
        self.message = message
        if self.session is not None:
            self.log.append(LogEntry(self.session.story_minutes(self.clock()), "›", message, kind))
        self.panel.flash()
        self.tick()

    def hint(self) -> None:
        if self.session is None:
            return
        hint = self.session.take_hint()
        if hint is None:
            if not any(e.text == NO_MORE_HINTS for e in self.log):  # said once is enough
                self._say(NO_MORE_HINTS, "hint")
        else:
            costs = f" (−{hint.cost})" if hint.cost else ""
            self._say(f"Hint {self.session.hints_taken}{costs}: {hint.text}", "hint")

    def answer(self, layer: str) -> None:
        if self.session is None or self.app is None or self.session.finished:
            return
        outcome = self.session.answer(layer, self.clock())
        if outcome.correct:
            self.message = outcome.message
            self.log.append(LogEntry(self.session.story_minutes(self.clock()), "✔", outcome.message, "answer"))
            self.app.blind = False
            verdict = self.app.diagnosis.verdict if self.app.diagnosis else None
            # Frozen now: reopening the debrief later shows what was true at the answer.
            self.debrief = "\n".join(
                self.session.debrief_lines(verdict.summary if verdict else None, verdict.ruled_out if verdict else ())
            )
            self.tick()
            self.app.refresh_bindings()
            self.show_debrief()
        else:
            self._say(outcome.message, "answer")

    def show_story(self) -> None:
        if self.app is not None and not isinstance(self.app.screen, StoryScreen):
            self.app.push_screen(StoryScreen(self))

    def show_debrief(self) -> None:
        if self.app is not None and self.debrief is not None and not isinstance(self.app.screen, DebriefScreen):
            self.app.push_screen(DebriefScreen(self.debrief))


def short_layer_name(name: str, role: str) -> str:
    """The prompt's word for a layer, so that four fit in 80 columns: 'LB' for a
    load balancer, else the last word of a longer name ('Auth backends' -> 'Backends',
    'Session store' -> 'Store'); a one-word name stays as it is."""
    words = name.split()
    if len(words) == 1:
        return name
    if role == "lb":
        return "LB"
    return words[-1][:1].upper() + words[-1][1:]


def stack_layers(stack):
    from stackscope.layout import load_layout

    layout = getattr(stack, "layout", None)  # a RecordedIncident's: no file to read
    return layout.layers if layout is not None else load_layout(stack.layout_path).layers


class DemoApp(StackscopeApp):
    """The dashboard on the demo stack, with the controller's actions and panel."""

    # In a walkthrough at 80x24 every layer stays on screen (the answer may be the last):
    # the blind banner goes (the panel's prompt says the same), and so do the arrows
    # between the stacked layers on a short terminal; the path then needs 11 lines.
    CSS = """
    DashboardScreen.-walkthrough #verdict.-blind { display: none; }
    DashboardScreen.-walkthrough.-narrow.-short Arrow { display: none; }
    """

    def __new__(cls, controller: DemoController, **options: Any) -> DemoApp:
        # the app's key bindings are made from its actions when it is made (bindings.py)
        return super().__new__(cls, actions=controller.actions(), **options)

    def __init__(self, controller: DemoController, **options: Any) -> None:
        from stackscope.layout import load_layout

        self.controller = controller
        super().__init__(load_layout(controller.stack.layout_path), actions=controller.actions(), **options)

    def on_mount(self) -> None:
        super().on_mount()
        # the dashboard composes its widgets during the first refresh: mount beside them then
        self.call_after_refresh(self.controller.install, self)


def run_demo_dashboard(stack, walkthrough: Walkthrough | None = None, blind: bool = False) -> int:
    from stackscope.engine import raise_fd_limit
    from stackscope.exits import EXIT_UNKNOWN
    from stackscope.tui.keymap import user_keymap

    controller = DemoController(stack, walkthrough)
    keymap = user_keymap(controller.actions())
    if keymap is None:
        return EXIT_UNKNOWN
    raise_fd_limit()
    app = DemoApp(controller, blind=blind, handle_signals=True, keymap=keymap)
    app.run()
    return app.return_code or 0
