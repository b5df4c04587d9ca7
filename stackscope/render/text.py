"""The human report: verdict first (what is broken, why, what is ruled out), then every
layer in path order with its checks. Coloured on a terminal, plain in a pipe; the status
is always a glyph and a word too, never colour alone. Every string that comes from data
(names, details, facts: much of it sent by servers) passes through terminal_safe() and
is never read as Rich markup, so nothing in it can drive the operator's terminal."""

from __future__ import annotations

import io
import os
import sys
import time

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from stackscope.diagnosis import Diagnosis
from stackscope.model import Status
from stackscope.safetext import terminal_safe as _safe
from stackscope.words import plural

STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.CRIT: "bold red", Status.UNKNOWN: "magenta"}


# The words differ in length (OK, WARN, CRIT, UNKNOWN): pad to the longest plus one, so
# the longest is followed by a space like the others and the names after line up.
WORD_WIDTH = max(len(status.word) for status in Status) + 1


def badge(status: Status) -> Text:
    return Text(f"{status.glyph} {status.word:<{WORD_WIDTH}}", style=STYLE[status])


def format_latency(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 10000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def verdict_block(diagnosis: Diagnosis) -> Group:
    verdict = diagnosis.verdict
    if verdict is None:
        total = sum(len(layer.checks) for layer in diagnosis.layers)
        return Group(Text.assemble(badge(Status.OK), (f"All layers healthy ({plural(total, 'check')})", "bold")))
    lines = [
        Text.assemble(
            badge(verdict.status),
            (_safe(verdict.layer), "bold"),
            f" ({_safe(verdict.role)}) is the broken layer" + ("" if verdict.confirmed else " (unconfirmed)"),
        ),
        Text("  " + _safe(verdict.summary)),
    ]
    for item in verdict.evidence:
        lines.append(Text("  • " + _safe(item), style="dim"))
    if verdict.ruled_out:
        lines.append(Text.assemble(("  ruled out: ", "green"), _safe("; ".join(verdict.ruled_out))))
    for item in verdict.also_failing:
        lines.append(Text.assemble(("  also failing: ", "yellow"), _safe(item)))
    return Group(*lines)


def layers_block(diagnosis: Diagnosis) -> Group:
    parts = []
    for index, layer in enumerate(diagnosis.layers):
        if index:
            parts.append(Text("  ↓", style="dim"))
        parts.append(
            Text.assemble(
                badge(layer.status),
                (_safe(layer.name), "bold"),
                (_safe(f"  {layer.layer.role}  {layer.summary}"), "dim"),
            )
        )
        grid = Table.grid(padding=(0, 1), expand=False)
        grid.add_column(width=3, no_wrap=True)
        grid.add_column(max_width=34, overflow="fold")
        grid.add_column(max_width=18, overflow="ellipsis", no_wrap=True)
        grid.add_column(justify="right", no_wrap=True, min_width=7)
        grid.add_column(ratio=1, overflow="fold")
        for state in layer.checks:
            result = state.result
            grid.add_row(
                Text("  " + state.status.glyph, style=STYLE[state.status]),
                Text(_safe(state.check.name)),
                Text(_safe(result.key_fact), style=STYLE[state.status]),
                format_latency(result.latency_ms),
                Text(_safe(result.detail), style="dim" if state.status is Status.OK else ""),
            )
        parts.append(grid)
    return Group(*parts)


def render_text(diagnosis: Diagnosis, *, color: bool | None = None, width: int | None = None) -> str:
    snapshot = diagnosis.snapshot
    layout = snapshot.layout
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=width or _width(),
        highlight=False,
        emoji=False,
    )
    checks = sum(len(layer.checks) for layer in diagnosis.layers)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.taken_at))
    # Piped into grep or a log, a verdict line cut in two ("none is a declared\nbackend")
    # is a line nobody finds: off a terminal the verdict is never wrapped.
    console.print(verdict_block(diagnosis), soft_wrap=width is None and not sys.stdout.isatty())
    console.print()
    console.print(
        Text(
            _safe(f"{layout.name} · {plural(len(layout.layers), 'layer')} · {plural(checks, 'check')} · {stamp}"),
            style="dim",
        )
    )
    console.print(layers_block(diagnosis))
    return buffer.getvalue().rstrip("\n")


def _width() -> int:
    """The terminal's width; off a terminal, COLUMNS if set (as `COLUMNS=200 stackscope
    check … | less` asks), else 100 for the table of checks."""
    try:
        if sys.stdout.isatty():
            return max(60, os.get_terminal_size().columns)
    except OSError:
        pass
    columns = os.environ.get("COLUMNS", "")
    return max(60, int(columns)) if columns.isdigit() else 100
