"""The dashboard's screens: the main one, the detail of a check, the full verdict, help.

Screens arrange widgets and move the selection; what an action does lives in the app,
and which keys exist lives in the action registry.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Label, Static

from stackscope.diagnosis import Diagnosis, proof
from stackscope.history import Sample
from stackscope.model import Check, Layout, Result, Status
from stackscope.tui import facts
from stackscope.tui.actions import Action
from stackscope.tui.messages import CURSOR_SCROLLS
from stackscope.tui.widgets import (
    CheckRow,
    EventsPane,
    FittingFooter,
    HeaderBar,
    LayerPanel,
    PanelHeader,
    PathView,
    VerdictBanner,
    badge,
    nothing_ruled_out,
)
from stackscope.words import blame


class DashboardScreen(Screen):
    """Header, verdict banner, the request path, events, footer.

    The panels run left to right once each layer gets 36 columns (37 × layers − 1, and
    never below 120: 147 for four layers); below that they stack top to bottom (the CSS
    keys off the breakpoint classes). The path and the events pane scroll, so
    at 80x24 nothing is out of reach."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    AUTO_FOCUS = "CheckRow"
    HANDS_OFF = 5.0  # seconds after the user moved the selection in which nothing scrolls for them

    def __init__(
        self, layout: Layout, histories: Mapping[str, tuple[Sample, ...]], header_title: str, clock_text: str
    ) -> None:
        super().__init__(id="dashboard")
        # Panels run left to right only when each gets a usable width (36 cells).
        count = len(layout.layers)
        self.HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (max(120, 36 * count + count - 1), "-wide")]
        self.header = HeaderBar(header_title, clock_text)
        self.banner = VerdictBanner()
        self.path = PathView(layout.layers, histories)
        self.events = EventsPane()
        self.last_moved = float("-inf")  # time.monotonic() of the user's last move

    def compose(self) -> ComposeResult:
        yield self.header
        yield self.banner
        yield self.path
        yield self.events
        yield FittingFooter()

    # ------------------------------------------------------------------ selection

    def selectable(self) -> list[Widget]:
        """Panel headers and visible rows, in path order."""
        out: list[Widget] = []
        for panel in self.path.panels.values():
            if not panel.display:  # problems only hides healthy layers
                continue
            out.append(panel.header)
            if not panel.collapsed:
                out.extend(row for row in panel.rows.values() if row.display)
        return out

    def selected_panel(self) -> LayerPanel | None:
        node: DOMNode | None = self.focused
        while node is not None and not isinstance(node, LayerPanel):
            node = node.parent
        return node

    def move(self, step: int) -> None:
        self.last_moved = time.monotonic()
        items = self.selectable()
        if not items:
            return
        current = self.focused
        index = items.index(current) if current in items else (-1 if step > 0 else len(items))
        items[max(0, min(len(items) - 1, index + step))].focus()

    def jump_panel(self, step: int) -> None:
        self.last_moved = time.monotonic()
        panels = [p for p in self.path.panels.values() if p.display] or list(self.path.panels.values())
        current = self.selected_panel()
        index = panels.index(current) if current in panels else -1
        target = panels[max(0, min(len(panels) - 1, index + step))]
        rows = [r for r in target.rows.values() if r.display] if not target.collapsed else []
        (rows[0] if rows else target.header).focus()

    def show_culprit(self, layer: str) -> bool:
        """Scroll the verdict's layer into view (a new verdict), unless the user moved
        the selection in the last HANDS_OFF seconds: at 80x24 the broken layer can sit
        below the fold. True when it scrolled."""
        panel = self.path.panels.get(layer)
        if panel is None or time.monotonic() - self.last_moved < self.HANDS_OFF:
            return False
        self.path.scroll_to_widget(panel, animate=False, top=False)
        return True

    def refocus(self) -> None:
        """Keep the selection on something visible after collapsing or filtering."""
        focused = self.focused
        panel = self.selected_panel()
        if panel is not None and not panel.display:  # its layer is hidden (problems only)
            items = self.selectable()
            if items:
                items[0].focus()
            return
        if isinstance(focused, CheckRow) and (not focused.display or self._in_collapsed(focused)):
            if panel is not None:
                panel.header.focus()

    @staticmethod
    def _in_collapsed(row: CheckRow) -> bool:
        parent = row.parent
        return isinstance(parent, LayerPanel) and parent.collapsed

    def row_for_focus(self) -> CheckRow | None:
        return self.focused if isinstance(self.focused, CheckRow) else None

    def header_for_focus(self) -> PanelHeader | None:
        return self.focused if isinstance(self.focused, PanelHeader) else None


class DetailScreen(Screen):
    """Every fact of one check, updated live while it is open."""

    def __init__(self, check: Check) -> None:
        super().__init__(id="detail")
        self.check = check
        self.result: Result | None = None
        self.content: Group = Group()
        self._title = Label("", id="detail-title")
        self._body = Static("", id="detail-body")

    def compose(self) -> ComposeResult:
        yield self._title
        with VerticalScroll(id="detail-scroll", classes=CURSOR_SCROLLS):
            yield self._body
        yield FittingFooter()

    def show(self, result: Result | None, history: Iterable[Sample], last_problem: Result | None) -> None:
        self.result = result
        status = badge(result.status) if result is not None else "… not probed yet"
        self._title.update(f"{status}  {self.check.layer} / {self.check.name}  ({self.check.type})")
        width = max(40, (self.size.width or self.app.size.width) - 4)
        parts = []
        for title, body in facts.sections(self.check, result, history, last_problem, width=width):
            parts += [Text(title, style="bold underline"), body, Text("")]
        self.content = Group(*parts)
        self._body.update(self.content)

    def text(self) -> str:
        """The screen's content as plain text (what tests read)."""
        return plain_text(self.content, self.app.size.width - 4)


class VerdictScreen(Screen):
    """The verdict in full: nothing cut to the width of the banner."""

    def __init__(self, diagnosis: Diagnosis | None) -> None:
        super().__init__(id="verdict-screen")
        self.diagnosis = diagnosis
        self._body = Static(verdict_text(diagnosis), id="detail-body")

    def compose(self) -> ComposeResult:
        yield Label("Verdict", id="detail-title")
        with VerticalScroll(id="detail-scroll", classes=CURSOR_SCROLLS):
            yield self._body
        yield FittingFooter()

    def show(self, diagnosis: Diagnosis | None) -> None:
        if diagnosis is not self.diagnosis:
            self.diagnosis = diagnosis
            self._body.update(verdict_text(diagnosis))


def verdict_text(diagnosis: Diagnosis | None) -> Text:
    if diagnosis is None:
        return Text("No round has finished yet.")
    verdict = diagnosis.verdict
    if verdict is None:  # the banner has room for a proof or two: here are all of them
        lines = [Text(f"{badge(diagnosis.status)}  All layers healthy — nothing to rule out."), Text("")]
        lines += [Text("Each layer's proof", style="bold underline")]
        lines += [Text(f"{badge(layer.status)}  {layer.name}: {proof(layer)}") for layer in diagnosis.layers]
        return Text("\n").join(lines)
    lines = [
        Text(
            f"{badge(verdict.status)}  {verdict.layer} ({verdict.role})"
            f"{blame(verdict.status is Status.UNKNOWN, verdict.recovering)}",
            style="bold",
        ),
        Text(verdict.summary),
        Text(""),
        Text("Evidence", style="bold underline"),
    ]
    lines += [Text(f"• {item}") for item in verdict.evidence] or [Text("—")]
    lines += [Text(""), Text("Ruled out", style="bold underline")]
    lines += [Text(f"✔ {item}") for item in verdict.ruled_out] or [Text(nothing_ruled_out(diagnosis))]
    if verdict.also_failing:
        lines += [Text(""), Text("Also failing", style="bold underline")]
        lines += [Text(f"• {item}") for item in verdict.also_failing]
    return Text("\n").join(lines)


class HelpScreen(Screen):
    """Every key, from the same registry that makes the bindings and the palette."""

    def __init__(self, actions: Iterable[Action]) -> None:
        super().__init__(id="help")
        self.actions = list(actions)

    def text(self) -> str:
        return plain_text(help_table(self.actions), self.app.size.width - 4)

    def compose(self) -> ComposeResult:
        yield Label("Keys — esc to close; the command palette (ctrl+p) offers the same actions", id="detail-title")
        with VerticalScroll(id="detail-scroll", classes=CURSOR_SCROLLS):
            yield Static(help_table(self.actions), id="help-body")
        yield FittingFooter()


def help_table(actions: Iterable[Action]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, style="bold")
    table.add_column()
    for action in actions:
        table.add_row(action.keys_for_humans(), f"{action.label} — {action.help}")
    return table


def plain_text(renderable, width: int) -> str:
    """A renderable as plain text at `width`, as the screen shows it without colour."""
    console = Console(width=max(40, width), record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()
