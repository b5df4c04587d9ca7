"""The human report: verdict first (what is broken, why, what is ruled out), then every
layer in path order with its checks. Coloured on a terminal, plain in a pipe; the status
is always a glyph and a word too, never colour alone. Every string that comes from data
(names, details, facts: much of it sent by servers) passes through terminal_safe(), so
nothing in it can drive the operator's terminal.

Plain string formatting, not Rich tables: a 10,000-check report is 10,000 rows, and the
table layout cost as much CPU as probing them. The column widths are computed once per
report; colour is a handful of SGR escape codes, written only on a terminal (and never
with NO_COLOR). Piped, no line carries trailing padding, and the verdict is never wrapped
(a verdict line cut in two is a line grep never finds). Each row shows its latency once:
in the latency column, not again at the end of the detail."""

from __future__ import annotations

import os
import re
import sys
import time
import unicodedata

from stackscope.diagnosis import Diagnosis
from stackscope.model import Status
from stackscope.safetext import terminal_safe as _safe
from stackscope.words import plural

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
STYLE = {Status.OK: GREEN, Status.WARN: YELLOW, Status.CRIT: "\x1b[1;31m", Status.UNKNOWN: "\x1b[35m"}

# The words differ in length (OK, WARN, CRIT, UNKNOWN): pad to the longest plus one, so
# the longest is followed by a space like the others and the names after line up.
WORD_WIDTH = max(len(status.word) for status in Status) + 1
NAME_MAX, FACT_MAX, LATENCY_MIN = 34, 18, 7
# "200 OK in 2 ms" next to a latency column that says "1.7 ms": the probe's own figure
# goes, the column's stays (the detail screen and JSON keep the probe's wording).
_LATENCY_IN_DETAIL = re.compile(r" in \d+(?:\.\d+)? ms\b")


def badge(status: Status) -> str:
    """The status as glyph and word, padded so what follows lines up ("✔ OK      ")."""
    return f"{status.glyph} {status.word:<{WORD_WIDTH}}"


def format_latency(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 10000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def cells(text: str) -> int:
    """Terminal cells `text` takes (wide East Asian characters count two)."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


def fit(text: str, width: int) -> str:
    """`text` cut to `width` cells with an ellipsis (never padded)."""
    if cells(text) <= width:
        return text
    out, used = [], 0
    for char in text:
        size = cells(char)
        if used + size > width - 1:
            break
        out.append(char)
        used += size
    return "".join(out) + "…"


def wrap(text: str, width: int, indent: str) -> list[str]:
    """`text` folded into lines of `width` cells, at spaces when it can; continuation
    lines start with `indent`. Cheap when it fits, which is almost always."""
    if width <= 0 or cells(text) <= width:
        return [text]
    lines: list[str] = []
    rest = text
    room = width
    while cells(rest) > room and room > 8:
        cut = fit(rest, room + 1)[:-1]  # the longest prefix that fits
        space = cut.rfind(" ")
        if space > room // 3:
            cut = cut[:space]
        lines.append(cut.rstrip())
        rest = rest[len(cut) :].lstrip(" ")
        room = width - cells(indent)
    lines.append(rest)
    return [lines[0]] + [indent + line for line in lines[1:]]


class _Paint:
    """Wraps text in SGR codes when colour is on; the identity otherwise."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, code: str) -> str:
        if not self.color or not code or not text:
            return text
        return f"{code}{text}{RESET}"


def verdict_lines(diagnosis: Diagnosis, paint: _Paint, width: int | None) -> list[str]:
    verdict = diagnosis.verdict
    if verdict is None:
        total = sum(len(layer.checks) for layer in diagnosis.layers)
        return [
            paint(badge(Status.OK), STYLE[Status.OK]) + paint(f"All layers healthy ({plural(total, 'check')})", BOLD)
        ]
    head = (
        paint(badge(verdict.status), STYLE[verdict.status])
        + paint(_safe(verdict.layer), BOLD)
        + f" ({_safe(verdict.role)}) is the broken layer"
        + ("" if verdict.confirmed else " (unconfirmed)")
    )
    body: list[tuple[str, str, str]] = [("  ", _safe(verdict.summary), "")]  # (prefix, text, code)
    body += [("  • ", _safe(item), DIM) for item in verdict.evidence]
    lines = [head]

    def add(prefix: str, text: str, code: str, label: str = "", label_code: str = "") -> None:
        first = prefix + label
        parts = wrap(text, width - cells(first), "    ") if width else [text]
        lines.append(prefix + paint(label, label_code) + paint(parts[0], code))
        lines.extend(paint(part, code) for part in parts[1:])

    for prefix, text, code in body:
        add(prefix, text, code)
    if verdict.ruled_out:
        add("  ", _safe("; ".join(verdict.ruled_out)), "", "ruled out: ", GREEN)
    for item in verdict.also_failing:
        add("  ", _safe(item), "", "also failing: ", YELLOW)
    return lines


def layer_lines(diagnosis: Diagnosis, paint: _Paint, width: int | None) -> list[str]:
    rows = []  # (state, name, fact, latency, detail) of every check, made safe once
    for layer in diagnosis.layers:
        for state in layer.checks:
            result = state.result
            detail = result.detail
            if result.latency_ms is not None and " ms" in detail:
                detail = _LATENCY_IN_DETAIL.sub("", detail, count=1)
            rows.append(
                (
                    state.status,
                    _safe(state.check.name),
                    _safe(result.key_fact),
                    format_latency(result.latency_ms),
                    _safe(detail),
                )
            )
    # the widths, once for the whole report: names and facts up to a cap, latency right-aligned
    name_w = min(NAME_MAX, max((cells(r[1]) for r in rows), default=0))
    fact_w = min(FACT_MAX, max((cells(r[2]) for r in rows), default=0))
    lat_w = max(LATENCY_MIN, max((len(r[3]) for r in rows), default=0))
    detail_at = 4 + name_w + 1 + fact_w + 1 + lat_w + 1
    detail_w = (width - detail_at) if width else 0
    indent = " " * detail_at
    out: list[str] = []
    index = 0
    for number, layer in enumerate(diagnosis.layers):
        if number:
            out.append(paint("  ↓", DIM))
        out.append(
            paint(badge(layer.status), STYLE[layer.status])
            + paint(_safe(layer.name), BOLD)
            + paint(_safe(f"  {layer.layer.role}  {layer.summary}"), DIM)
        )
        for _ in layer.checks:
            status, name, fact, latency, detail = rows[index]
            index += 1
            name = fit(name, name_w)
            fact = fit(fact, fact_w)
            code = STYLE[status]
            parts = wrap(detail, detail_w, indent) if detail_w > 8 else [detail]
            line = (
                "  "
                + paint(status.glyph, code)
                + " "
                + name
                + " " * (name_w - cells(name) + 1)
                + paint(fact, code)
                + " " * (fact_w - cells(fact) + 1)
                + latency.rjust(lat_w)
            )
            detail_code = DIM if status is Status.OK else ""
            if parts[0]:
                line += " " + paint(parts[0], detail_code)
            out.append(line)
            out.extend(paint(part, detail_code) for part in parts[1:])
    return out


def render_text(diagnosis: Diagnosis, *, color: bool | None = None, width: int | None = None) -> str:
    snapshot = diagnosis.snapshot
    layout = snapshot.layout
    tty = sys.stdout.isatty()
    if color is None:
        color = tty and "NO_COLOR" not in os.environ
    paint = _Paint(color)
    # An explicit width folds everything to it. On a terminal long lines fold to its
    # width; piped, the verdict is never wrapped, and the details fold only when COLUMNS
    # asks for a width.
    verdict_width = width if width is not None else (_width() if tty else None)
    if width is None and (tty or os.environ.get("COLUMNS", "").isdigit()):
        width = _width()
    checks = sum(len(layer.checks) for layer in diagnosis.layers)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.taken_at))
    lines = verdict_lines(diagnosis, paint, verdict_width)
    lines.append("")
    lines.append(
        paint(
            _safe(f"{layout.name} · {plural(len(layout.layers), 'layer')} · {plural(checks, 'check')} · {stamp}"),
            DIM,
        )
    )
    lines += layer_lines(diagnosis, paint, width)
    if snapshot.overran:
        lines.append(paint(_safe(f"round overran: {snapshot.overran}"), YELLOW))
    return "\n".join(line.rstrip(" ") for line in lines)


def _width() -> int:
    """The terminal's width; off a terminal, COLUMNS if set (as `COLUMNS=200 stackscope
    check … | less` asks), else 100."""
    try:
        if sys.stdout.isatty():
            return max(60, os.get_terminal_size().columns)
    except OSError:
        pass
    columns = os.environ.get("COLUMNS", "")
    return max(60, int(columns)) if columns.isdigit() else 100
