"""The dashboard's widgets: header, verdict banner, the path of layer panels with their
check rows, and the events pane.

They only display: the app feeds them results and diagnoses. Colours come from
component classes and CSS classes styled in `stackscope.tcss` (theme variables only);
the status is always a glyph and a word as well. Widgets repaint only what changed —
a check row refreshes just the cells that differ — so an idle dashboard writes little
to a slow terminal.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Iterable

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Label, Static

from stackscope.diagnosis import Diagnosis, LayerState, proof
from stackscope.engine import Sample
from stackscope.layout import Check, Layer
from stackscope.model import Result, Status
from stackscope.render.text import format_latency
from stackscope.timeline import VERDICT, Event
from stackscope.tui import cells

STATUS_CLASSES = {s: f"-{s}" for s in Status}  # Status.CRIT -> "-crit"


def set_status_class(widget: Widget, status: Status | None) -> None:
    """Put exactly one status class (-ok, -warn, -crit, -unknown) on `widget`."""
    for cls in STATUS_CLASSES.values():
        widget.set_class(status is not None and cls == STATUS_CLASSES[status], cls)


def badge(status: Status) -> str:
    return f"{status.glyph} {status.word}"


# --------------------------------------------------------------------------- header


class HeaderBar(Horizontal):
    """Layout name and interval, overall status, paused and filter flags, the clock."""

    def __init__(self, title: str, clock_text: str) -> None:
        super().__init__(id="header")
        self.title = Label(title, id="title")
        self.overall = Label("… waiting", id="overall")
        self.clock = Label(clock_text, id="clock")

    def compose(self) -> ComposeResult:
        yield self.title
        yield Label("problems only", id="filter-flag")
        yield Label("‖ PAUSED", id="paused-flag")
        yield self.overall
        yield self.clock

    def set_clock(self, text: str) -> None:
        self.clock.update(text, layout=False)

    def set_overall(self, status: Status) -> None:
        self.overall.update(badge(status))
        set_status_class(self.overall, status)

    def set_flags(self, *, paused: bool, problems_only: bool) -> None:
        self.set_class(paused, "-paused")
        self.set_class(problems_only, "-problems")


# --------------------------------------------------------------------------- verdict


class VerdictBanner(Widget):
    """The first thing the eye lands on: what is broken and what is not.

    Three lines, each cut to the width (the full verdict is one key away: v). Blind
    mode (for training) replaces it with a prompt and never renders the verdict."""

    DEFAULT_CLASSES = "-waiting"

    def __init__(self) -> None:
        super().__init__(id="verdict")
        self.diagnosis: Diagnosis | None = None
        self.blind_message = "Blind mode: the verdict is hidden. Which layer is broken?"
        self.waiting_message = "… probing every check for the first time"

    def show(self, diagnosis: Diagnosis) -> None:
        self.diagnosis = diagnosis
        self.remove_class("-waiting")
        set_status_class(self, diagnosis.status)
        self.refresh()

    def lines(self) -> list[str]:
        """The banner's text, also what tests read."""
        if self.has_class("-blind"):
            return ["? " + self.blind_message, "", ""]
        diagnosis = self.diagnosis
        if diagnosis is None:
            return [self.waiting_message, "", ""]
        verdict = diagnosis.verdict
        if verdict is None:
            checks = sum(len(layer.checks) for layer in diagnosis.layers)
            return [f"{badge(Status.OK)}  All layers healthy ({checks} checks)",
                    " · ".join(f"{layer.name}: {proof(layer)}" for layer in diagnosis.layers), ""]
        also = f"  (+{len(verdict.also_failing)} also failing)" if verdict.also_failing else ""
        ruled = "; ".join(verdict.ruled_out) if verdict.ruled_out else "nothing — every layer fails"
        return [f"{badge(verdict.status)}  {verdict.layer} ({verdict.role}) is the broken layer{also}",
                verdict.summary, f"ruled out: {ruled}"]

    def render(self) -> Text:
        width = max(1, self.size.width)
        head, summary, ruled = self.lines()
        text = Text(cells.fit(head, width).rstrip(), style="bold", no_wrap=True, overflow="ellipsis")
        for line in (summary, ruled):
            text.append("\n" + cells.fit(line, width).rstrip())
        return text


# --------------------------------------------------------------------------- path


class CheckRow(Widget, can_focus=True):
    """One check: glyph, name, key fact, latency and a sparkline of recent rounds."""

    COMPONENT_CLASSES = {"row--ok", "row--warn", "row--crit", "row--unknown", "row--dim", "row--probing"}

    def __init__(self, check: Check, history: Iterable[Sample] = ()) -> None:
        super().__init__(classes="-unknown")
        self.check = check
        self.history = history
        self.result: Result | None = None
        self.probing_for: float | None = None
        self._shown: list[tuple[str, str]] | None = None

    @property
    def status(self) -> Status:
        return self.result.status if self.result is not None else Status.UNKNOWN

    def set_result(self, result: Result) -> None:
        changed_status = self.result is None or self.result.status is not result.status
        self.result = result
        self.probing_for = None
        if changed_status:
            set_status_class(self, result.status)
        self._repaint()

    def set_probing(self, elapsed: float | None) -> None:
        self.probing_for = elapsed
        self._repaint()

    def segments(self, width: int) -> list[tuple[str, str]]:
        """(text, component) pieces that make the row `width` cells wide."""
        name_w, fact_w, lat_w, spark_w = cells.row_widths(width)
        status = self.status
        tone = f"row--{status}"
        result = self.result
        if self.probing_for is not None:
            fact, latency, fact_tone = "probing…", cells.probing_label(self.probing_for), "row--probing"
        elif result is None:
            fact, latency, fact_tone = "…", "", "row--dim"
        else:
            fact, latency, fact_tone = result.key_fact or result.detail, format_latency(result.latency_ms), tone
        glyph = status.glyph if result is not None else "…"
        out = [(glyph + " ", tone), (cells.fit(self.check.name, name_w) + " ", ""),
               (cells.fit(fact, fact_w) + " ", fact_tone), (cells.fit(latency, lat_w, right=True), "row--dim")]
        if spark_w:
            out.append((" " + cells.sparkline(self.history, spark_w), "row--dim"))
        return out

    def text(self) -> str:
        return "".join(piece for piece, _ in self.segments(max(20, self.size.width)))

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        for piece, component in self.segments(max(20, self.size.width)):
            text.append(piece, self.get_component_rich_style(component) if component else None)
        return text

    def _repaint(self) -> None:
        """Refresh only the cells that changed since the last paint."""
        width = self.size.width
        new = self.segments(max(20, width))
        old, self._shown = self._shown, new
        if not width or old is None or not self.is_mounted:
            self.refresh()
            return
        columns_new = [(ch, comp) for piece, comp in new for ch in piece]
        columns_old = [(ch, comp) for piece, comp in old for ch in piece]
        if columns_new == columns_old:
            return
        plain = "".join(ch for ch, _ in columns_new)
        if len(columns_new) != len(columns_old) or cell_len(plain) != len(plain):
            self.refresh()  # wide characters or a new width: cell and index differ
            return
        changed = [i for i, (a, b) in enumerate(zip(columns_new, columns_old)) if a != b]
        self.refresh(Region(changed[0], 0, changed[-1] - changed[0] + 1, 1))

    def on_resize(self) -> None:
        self._shown = None


class PanelHeader(Widget, can_focus=True):
    """A layer's title line: fold marker, name, role, status and how many checks pass."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(classes="-unknown")
        self.path_layer = layer
        self.state: LayerState | None = None
        self.collapsed = False

    def render(self) -> Text:
        marker = "▸" if self.collapsed else "▾"
        state = self.state
        status = badge(state.status) if state is not None else "… waiting"
        summary = f" · {state.summary}" if state is not None else ""
        if self.screen.has_class("-wide"):  # the border title carries the name
            line = f"{marker} {status} · {self.path_layer.role}{summary}"
        else:
            line = f"{marker} {status}  {self.path_layer.name} ({self.path_layer.role}){summary}"
        return Text(line, no_wrap=True, overflow="ellipsis")

    def on_resize(self) -> None:
        self.refresh()


class LayerPanel(Vertical):
    """One layer of the path: its header and one row per check."""

    def __init__(self, layer: Layer, histories: dict[str, Iterable[Sample]]) -> None:
        super().__init__(classes="-unknown")
        self.path_layer = layer
        self.header = PanelHeader(layer)
        self.rows = {c.id: CheckRow(c, histories.get(c.id, ())) for c in layer.checks}

    def compose(self) -> ComposeResult:
        yield self.header
        yield from self.rows.values()

    def on_mount(self) -> None:
        self.border_title = self.path_layer.name

    def set_state(self, state: LayerState) -> None:
        changed = self.header.state is None or self.header.state.status is not state.status
        old_summary = self.header.state.summary if self.header.state else None
        self.header.state = state
        if changed:
            set_status_class(self, state.status)
            set_status_class(self.header, state.status)
        if changed or old_summary != state.summary:
            self.header.refresh()

    @property
    def collapsed(self) -> bool:
        return self.header.collapsed

    def toggle(self) -> None:
        self.header.collapsed = not self.header.collapsed
        self.set_class(self.header.collapsed, "-collapsed")
        self.header.refresh()


class Arrow(Widget):
    """The arrow between two layers: → when the path runs across, ↓ when stacked."""

    def render(self) -> str:
        return "→" if self.size.width <= 2 else "↓"

    def on_resize(self) -> None:
        self.refresh()


class PathView(ScrollableContainer, can_focus=False):
    """The request path: a panel per layer in layout order, with arrows between."""

    def __init__(self, layers: Iterable[Layer], histories: dict[str, Iterable[Sample]]) -> None:
        super().__init__(id="path")
        self.panels = {layer.name: LayerPanel(layer, histories) for layer in layers}
        self.rows = {cid: row for panel in self.panels.values() for cid, row in panel.rows.items()}

    def compose(self) -> ComposeResult:
        for index, panel in enumerate(self.panels.values()):
            if index:
                yield Arrow(classes="arrow")
            yield panel


# --------------------------------------------------------------------------- events


class EventsPane(VerticalScroll):
    """State transitions and verdict changes, newest first, the last `limit` kept."""

    def __init__(self, limit: int = 200) -> None:
        super().__init__(id="events")
        self.events: deque[Event] = deque(maxlen=limit)
        self.blind = False
        self._body = Static("no events yet", id="events-body")

    def compose(self) -> ComposeResult:
        yield self._body

    def on_mount(self) -> None:
        self.border_title = "Events (newest first)"

    def add(self, events: Iterable[Event]) -> None:
        added = False
        for event in events:
            self.events.append(event)
            added = True
        if added:
            self._render_events()

    def set_blind(self, blind: bool) -> None:
        self.blind = blind
        self._render_events()

    def lines(self) -> list[str]:
        shown = [e for e in reversed(self.events) if not (self.blind and e.kind == VERDICT)]
        return [e.line(date=False) for e in shown] or ["no events yet"]

    def _render_events(self) -> None:
        self._body.update(Text("\n".join(self.lines()), no_wrap=True, overflow="ellipsis"))


def clock_text(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
