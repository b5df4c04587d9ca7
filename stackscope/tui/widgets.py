"""The dashboard's widgets: header, verdict banner, the path of layer panels with their
check rows, and the events pane.

They only display: the app feeds them results and diagnoses (attributes go down), and
what a widget needs from its container it asks for by message (messages go up). Colours come from
component classes and CSS classes styled in `stackscope.tcss` (theme variables only);
the status is always a glyph and a word as well. Widgets repaint only what changed —
a check row refreshes just the cells that differ — so an idle dashboard writes little
to a slow terminal.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer, Label, Static

from stackscope.diagnosis import Diagnosis, LayerState, proof
from stackscope.history import Sample
from stackscope.model import Check, Layer, Result, Status
from stackscope.timeline import VERDICT, Event
from stackscope.tui import cells
from stackscope.words import blame, plural

STATUS_CLASSES = {s: f"-{s}" for s in Status}  # Status.CRIT -> "-crit"


def set_status_class(widget: Widget, status: Status | None) -> None:
    """Put exactly one status class (-ok, -warn, -crit, -unknown) on `widget`."""
    for cls in STATUS_CLASSES.values():
        widget.set_class(status is not None and cls == STATUS_CLASSES[status], cls)


SELECTED = "▶"  # marks the selected check row or panel title, colour or not


def badge(status: Status) -> str:
    return f"{status.glyph} {status.word}"


def nothing_ruled_out(diagnosis: Diagnosis) -> str:
    """What 'ruled out' says when no layer is: a one-layer path has no other layer; a layer
    that is only degraded is not 'failing'."""
    if len(diagnosis.layers) == 1:
        return "nothing (one layer)"
    if all(layer.status is Status.CRIT for layer in diagnosis.layers):
        return "nothing — every layer fails"
    return "nothing — every layer is failing or degraded"


# --------------------------------------------------------------------------- header


class HeaderBar(Horizontal):
    """Layout name and interval, overall status, paused and filter flags, the clock."""

    def __init__(self, title: str, clock_text: str) -> None:
        super().__init__(id="header")
        self.title_label = Label(title, id="title")
        self.overall = Label("… waiting", id="overall")
        self.clock = Label(clock_text, id="clock")

    def compose(self) -> ComposeResult:
        yield self.title_label
        yield Label("problems only", id="filter-flag")
        yield Label("‖ PAUSED", id="paused-flag")
        yield self.overall
        yield self.clock

    def set_clock(self, text: str) -> None:
        self.clock.update(text, layout=False)

    def set_overall(self, status: Status) -> None:
        if not self.overall.has_class(STATUS_CLASSES[status]):
            self.overall.update(badge(status))
            set_status_class(self.overall, status)

    def set_flags(self, *, paused: bool, problems_only: bool) -> None:
        self.set_class(paused, "-paused")
        self.set_class(problems_only, "-problems")


# --------------------------------------------------------------------------- verdict


class VerdictBanner(Widget):
    """The first thing the eye lands on: what is broken and what is not.

    The head line and the summary wrap at any width, as many lines as they need: they
    name what is broken and how, and a misrouted pool's addresses run long (cut, an
    address "127.0.…" read as another one). What is ruled out (or, on a healthy path,
    each layer's proof) gets RULED_OUT_LINES lines of whole items, then "(+N more: v)":
    the full verdict is one key away. Blind mode (for training) replaces it with a
    prompt and never renders the verdict."""

    RULED_OUT_LINES = 2
    PROOF_LINES = 1  # a healthy path: the banner stays three lines

    DEFAULT_CLASSES = "-waiting"

    def __init__(self) -> None:
        super().__init__(id="verdict")
        self.diagnosis: Diagnosis | None = None
        self.blind_message = "Blind mode: the verdict is hidden. Which layer is broken?"
        self.waiting_message = "… probing every check for the first time"

    def show(self, diagnosis: Diagnosis) -> None:
        before = self.lines()
        width = max(1, self.size.width)
        height = len(self.painted(width))
        self.diagnosis = diagnosis
        self.remove_class("-waiting")
        set_status_class(self, diagnosis.status)
        if self.lines() != before:  # most rounds change nothing here: paint nothing
            self.refresh(layout=len(self.painted(width)) != height)

    def lines(self) -> list[str]:
        """The banner's text, unwrapped (what tests read): head, summary, ruled out; a
        healthy path: head, the layers' proofs."""
        head, summary, (prefix, items, sep, _) = self._parts()
        listed = prefix + sep.join(items)
        return [head, summary, listed] if summary else [head, listed, ""]

    def _parts(self) -> tuple[str, str, tuple[str, list[str], str, int]]:
        """Head, summary, and the list after them: (prefix, items, separator, lines)."""
        nothing: tuple[str, list[str], str, int] = ("", [], "", 1)
        if self.has_class("-blind"):
            return "? " + self.blind_message, "", nothing
        diagnosis = self.diagnosis
        if diagnosis is None:
            return self.waiting_message, "", nothing
        verdict = diagnosis.verdict
        if verdict is None:
            checks = sum(len(layer.checks) for layer in diagnosis.layers)
            proofs = [f"{layer.name}: {proof(layer)}" for layer in diagnosis.layers]
            return (
                f"{badge(Status.OK)}  All layers healthy ({plural(checks, 'check')})",
                "",
                (
                    "",
                    proofs,
                    " · ",
                    self.PROOF_LINES,
                ),
            )
        also = f"  (+{len(verdict.also_failing)} also failing)" if verdict.also_failing else ""
        ruled = list(verdict.ruled_out) or [nothing_ruled_out(diagnosis)]
        more = f"(+{plural(verdict.more_failing, 'more failing check')}; v for all)" if verdict.more_failing else ""
        unconfirmed = " (unconfirmed)" if not verdict.confirmed else ""
        return (
            f"{badge(verdict.status)}  {verdict.layer} ({verdict.role})"
            f"{blame(verdict.status is Status.UNKNOWN, verdict.recovering)}{unconfirmed}{also}",
            verdict.compose(more=more),
            ("ruled out: ", ruled, "; ", self.RULED_OUT_LINES),
        )

    def painted(self, width: int) -> list[str]:
        """The lines as painted at `width` (three at least: the banner does not jump as
        it fills)."""
        head, summary, (prefix, items, sep, lines) = self._parts()
        out = cells.wrap(head, width)
        if summary:
            out += cells.wrap(summary, width)
        if items:
            out += cells.wrap_items(prefix, items, sep, width, lines)
        return out + [""] * (3 - len(out))

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.painted(max(1, width)))

    def render(self) -> Text:
        return Text("\n".join(self.painted(max(1, self.size.width))), style="bold")


# --------------------------------------------------------------------------- path


class Cell(Widget):
    """A part of a row that repaints on its own.

    Textual writes a changed widget's whole line span to the terminal, so the parts of
    a row that change every round (latency, sparkline) are widgets of their own: a new
    latency rewrites seven cells, not the row. `set` ignores an unchanged value."""

    def __init__(self, classes: str) -> None:
        super().__init__(classes=classes)
        self._text = Text()

    def set(self, text: Text) -> None:
        if text.plain != self._text.plain or text.spans != self._text.spans:
            self._text = text
            self.refresh()

    @property
    def plain(self) -> str:
        return self._text.plain

    def render(self) -> Text:
        return self._text


class CheckRow(Widget, can_focus=True):
    """One check: glyph, name, key fact, latency and a sparkline of recent rounds.

    The row holds no history: it is given the samples as they come (`add_samples`) and
    its sparkline keeps what it drew. Its fact column's width is its panel's to decide
    (aligned across the panel's rows): a new key fact posts FactChanged, and the panel
    sets `fact_width` on every row."""

    COMPONENT_CLASSES = {"row--ok", "row--warn", "row--crit", "row--unknown", "row--probing"}
    NARROW = 30  # below this many cells the sparkline gives its room to the name

    class FactChanged(Message):
        """The row's key fact changed: its panel may need a wider (or narrower) fact column."""

    def __init__(self, check: Check, history: Iterable[Sample] = ()) -> None:
        super().__init__(classes="-unknown")
        self.check = check
        self.result: Result | None = None
        self.fact_width: int | None = None  # the panel's fact column in wide mode (LayerPanel)
        self.probing_for: float | None = None
        self.shown_latency: float | None = None  # what the latency cell shows (cells.steady_latency)
        self.sparkline = cells.SparkLine()
        self._painted: tuple | None = None  # _paint_key() of what the cells show
        self.viewport: Widget | None = None  # the scrolling path, set by PathView
        self.stale = False
        self.main = Cell("row-main")
        self.latency = Cell("row-latency")
        self.spark = Cell("row-spark")
        self.sparkline.feed(history)

    def compose(self) -> ComposeResult:
        yield self.main
        yield self.latency
        yield self.spark

    @property
    def status(self) -> Status:
        return self.result.status if self.result is not None else Status.UNKNOWN

    def add_samples(self, samples: Iterable[Sample]) -> None:
        """New rounds for the sparkline (painted with the next result)."""
        self.sparkline.feed(samples)

    def set_result(self, result: Result) -> None:
        if self.result is None or self.result.status is not result.status:
            set_status_class(self, result.status)
            self.shown_latency = result.latency_ms
        else:
            self.shown_latency = cells.steady_latency(self.shown_latency, result.latency_ms)
        before = self.fact
        self.result = result
        self.probing_for = None
        if self.fact != before:
            self.post_message(self.FactChanged())
        self.update_cells()

    @property
    def fact(self) -> str | None:
        """The key fact the row shows (None before the first result)."""
        return None if self.result is None else (self.result.key_fact or self.result.detail)

    def set_fact_width(self, width: int) -> None:
        if width != self.fact_width:
            self.fact_width = width
            self.update_cells()

    def set_probing(self, elapsed: float | None) -> None:
        self.probing_for = elapsed
        self.update_cells()

    def update_cells(self) -> None:
        """Repaint the cells that changed; a row scrolled out of view waits until it is
        seen again (PathView.catch_up), since repainting it would cost a full re-layout. So
        does a row whose view is leaving the screen (a round finishing as the app exits)."""
        viewport = self.viewport
        if viewport is not None and self.is_mounted and not (viewport.is_attached and viewport.can_view_partial(self)):
            self.stale = True
            return
        self.stale = False
        key = self._paint_key()
        if key == self._painted:  # same text, same widths, same style: nothing to build
            return
        self._painted = key
        main, latency, spark = self._texts()
        self.main.set(main)
        self.latency.set(latency)
        self.spark.set(spark)

    def _paint_key(self) -> tuple:
        """Everything the row's text depends on: most rounds of a steady row change none
        of it, and building the texts (styles, fitting) is most of an idle round's CPU."""
        spark_w = (self.spark.size.width or 13) - 1
        mounted = self.is_mounted
        return (
            self.main.size.width,
            self.latency.size.width,
            self.sparkline.text(spark_w),
            self.status,
            self.fact,
            self.shown_latency,
            self.probing_for,
            mounted and self.app.focused is self,
            mounted and self.screen.has_class("-wide"),
            self.fact_width,
            mounted and self.app.theme,
            mounted and self.screen.has_class("-no-color"),
        )

    def _texts(self) -> tuple[Text, Text, Text]:
        width = self.main.size.width or 40
        fact_w = 16 if width >= 48 else 11
        if self.is_mounted and self.screen.has_class("-wide"):
            # side by side, every cell counts: the fact column is as wide as the panel's
            # longest fact needs (aligned across its rows), the name gets the rest
            fact_w = min(fact_w, self.fact_width or fact_w)
        name_w = max(4, width - 1 - 2 - 1 - fact_w)
        result, status = self.result, self.status
        tone = self._style(f"row--{status}")
        if self.probing_for is not None:
            fact, latency, fact_tone = "probing…", cells.probing_label(self.probing_for), self._style("row--probing")
        elif result is None:
            fact, latency, fact_tone = "…", "", None
        else:
            fact, latency, fact_tone = result.key_fact or result.detail, cells.row_latency(self.shown_latency), tone
        main = Text(no_wrap=True, overflow="crop")
        # the selection is a glyph as well as a highlight: it must not need colour (NO_COLOR,
        # a monochrome console, a screen reader, a colour-blind trainee)
        main.append(SELECTED if self.is_mounted and self.app.focused is self else " ")
        main.append((status.glyph if result is not None else "…") + " ", tone)
        main.append(cells.fit(self.check.name, name_w) + " ")
        main.append(cells.fit(fact, fact_w), fact_tone)
        latency_text = Text(cells.fit(latency, max(1, (self.latency.size.width or 8) - 1), right=True))
        spark_w = (self.spark.size.width or 13) - 1
        spark = Text(" " + self.sparkline.text(spark_w)) if spark_w > 0 else Text()
        return main, latency_text, spark

    def _style(self, component: str):
        # Partial: colour and text style only. The full style carries the row's background
        # as it is when painted, so a row that lost the selection kept the highlight in
        # its glyph and fact until its next result repainted them.
        return self.get_component_rich_style(component, partial=True) if self.is_mounted else None

    def text(self) -> str:
        """The row as plain text (what tests read), painted or not, without the selection
        marker (`painted()` has it)."""
        main, latency, spark = self._texts()
        return (main.plain[1:].rstrip() + " " + latency.plain.strip() + " " + spark.plain.strip()).strip()

    def painted(self) -> str:
        """The row's main cell as painted, selection marker included."""
        return self._texts()[0].plain.rstrip()

    def on_resize(self) -> None:
        self.spark.display = self.size.width >= self.NARROW
        self.call_after_refresh(self.update_cells)

    def on_focus(self) -> None:
        self.update_cells()

    def on_blur(self) -> None:
        self.update_cells()


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
        # selected: a glyph in the column left of the fold marker, as a selected row has
        # one; the highlight alone vanished on a monochrome terminal and for a colour-blind eye
        selected = SELECTED if self.has_focus else " "
        if self.screen.has_class("-wide"):  # the border title carries the name
            line = f"{selected}{marker} {status} · {self.path_layer.role}{summary}"
        else:
            line = f"{selected}{marker} {status}  {self.path_layer.name} ({self.path_layer.role}){summary}"
        return Text(line, no_wrap=True, overflow="ellipsis")

    def on_resize(self) -> None:
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


class LayerPanel(Vertical):
    """One layer of the path: its header and one row per check."""

    def __init__(self, layer: Layer, histories: Mapping[str, tuple[Sample, ...]]) -> None:
        super().__init__(classes="-unknown")
        self.path_layer = layer
        self.header = PanelHeader(layer)
        self.rows = {c.id: CheckRow(c, histories.get(c.id, ())) for c in layer.checks}

    def compose(self) -> ComposeResult:
        yield self.header
        yield from self.rows.values()

    def on_mount(self) -> None:
        self.border_title = self.path_layer.name

    fact_width = 0  # cells the longest key fact of the panel's rows needs

    _refit_due = False

    def on_check_row_fact_changed(self, message: CheckRow.FactChanged) -> None:
        """Refit once for a burst (a round's results change many facts at once), after
        the messages already queued: one pass over the rows, not one per row."""
        message.stop()
        if not self._refit_due:
            self._refit_due = True
            self.call_later(self._refit_now)

    def _refit_now(self) -> None:
        self._refit_due = False
        self.refit_facts()

    def refit_facts(self) -> bool:
        """Recompute the fact column's width; on a change give it to every row (True)."""
        facts = [r.fact for r in self.rows.values() if r.fact is not None]
        width = max([cell_len("probing…"), *(cell_len(f) for f in facts)])
        if width == self.fact_width:
            return False
        self.fact_width = width
        for row in self.rows.values():
            row.set_fact_width(width)
        return True

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


class PathView(ScrollableContainer, can_focus=False, inherit_bindings=False):
    """The request path: a panel per layer in layout order, with arrows between.

    It keeps none of the arrow-key bindings a scrollable container has: those take the
    arrows for scrolling as soon as the path overflows (at 80x24 it often does), and the
    arrows would stop selecting checks while j/k still did. Selecting a check scrolls it
    into view; the page keys still scroll."""

    BINDINGS = [
        Binding("home", "scroll_home", "Scroll Home", show=False),
        Binding("end", "scroll_end", "Scroll End", show=False),
        Binding("pageup", "page_up", "Page Up", show=False),
        Binding("pagedown", "page_down", "Page Down", show=False),
    ]

    def __init__(self, layers: Iterable[Layer], histories: Mapping[str, tuple[Sample, ...]]) -> None:
        super().__init__(id="path")
        self.panels = {layer.name: LayerPanel(layer, histories) for layer in layers}
        self.rows = {cid: row for panel in self.panels.values() for cid, row in panel.rows.items()}
        for row in self.rows.values():
            row.viewport = self

    def catch_up(self) -> None:
        """Paint the rows that changed while out of view and are now in it."""
        for row in self.rows.values():
            if row.stale:
                row.update_cells()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.call_after_refresh(self.catch_up)

    def watch_scroll_x(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_x(old_value, new_value)
        self.call_after_refresh(self.catch_up)

    def compose(self) -> ComposeResult:
        for index, panel in enumerate(self.panels.values()):
            if index:
                yield Arrow(classes="arrow")
            yield panel


# --------------------------------------------------------------------------- events


class EventsPane(VerticalScroll):
    """State transitions and verdict changes, newest first, the last `limit` kept; a long
    event wraps (the pane scrolls), so every word of it can be read."""

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
        # Each event wraps under its text, its time alone in the left column: nothing is
        # cut off however long the detail ("pool auth_servers routes to 127.0.0.1:…").
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(ratio=1, overflow="fold")
        for line in self.lines():
            stamp, _, rest = line.partition("  ")
            if rest:
                table.add_row(stamp, rest)
            else:
                table.add_row(line, "")
        self._body.update(table)


# --------------------------------------------------------------------------- footer

ESSENTIAL = ("app.invoke('help')", "app.invoke('quit')", "app.quit")
BACK = ("app.invoke('back')", "app.pop_screen")


class FittingFooter(Footer):
    """The footer, in the order of the actions' `footer_rank`, cut to the terminal's width.

    Textual's footer lets keys run off the right edge, so at 80 columns (or 60) the last
    ones — often ? Help and q Quit — were never seen. This one drops the least important
    keys (the highest ranks) until the rest fit, and never drops help or quit.

    Textual's key widget (FooterKey) lives in a private module; it is recognised here by
    what it has (FooterKeyLike) rather than imported or named, so a Textual release that
    moves or renames it breaks nothing."""

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())  # plain keys: the app uses no binding groups
        palette = [w for w in widgets if w.has_class("-command-palette")]
        keys = [w for w in widgets if w not in palette and footer_key(w) is not None]
        registry = getattr(self.app, "registry", None)
        rank = {a.action_string: index for index, a in enumerate(registry.footer() if registry else ())}
        # on a pushed screen (detail, story, debrief, help) the way back is essential too
        essential = ESSENTIAL + (BACK if len(self.app.screen_stack) > 1 else ())
        keys.sort(key=lambda k: (action_of(k) in essential, rank.get(action_of(k), len(rank))))
        budget = self.app.size.width - sum(key_width(p) for p in palette)  # its border replaces a pad
        while keys and sum(key_width(k) for k in keys) > budget:
            droppable = [k for k in keys if action_of(k) not in essential]
            if not droppable:
                break
            keys.remove(droppable[-1])
        yield from keys
        yield from palette

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != getattr(self, "_fitted_width", None):
            self._fitted_width = event.size.width
            self.call_after_refresh(self.recompose)

    def shown(self) -> list[str]:
        """The keys the footer shows (the palette's aside), as 'key label' (what tests read)."""
        shown = []
        for widget in self.children:
            key = footer_key(widget)
            if key is not None and not widget.has_class("-command-palette"):
                shown.append(f"{key.key_display} {key.description}".strip())
        return shown


@runtime_checkable
class FooterKeyLike(Protocol):
    """What the footer's key widgets have and FittingFooter reads: the action the key
    runs, the key as shown and the label."""

    action: str
    key_display: str
    description: str


def footer_key(widget: Widget) -> FooterKeyLike | None:
    """`widget` as a footer key, or None for the footer's other widgets (labels, groups)."""
    return widget if isinstance(widget, FooterKeyLike) and isinstance(widget.action, str) else None


def action_of(widget: Widget) -> str:
    key = footer_key(widget)
    return key.action if key is not None else ""


def key_width(widget: Widget) -> int:
    """A footer key's cells in the default (not compact) style: ' k ' then 'Label '."""
    key = footer_key(widget)
    if key is None:
        return 0
    return cell_len(key.key_display) + 2 + (cell_len(key.description) + 1 if key.description else 0)


def clock_text(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))
