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
import shutil
import sys
import time
import unicodedata

from stackscope.diagnosis import Diagnosis
from stackscope.model import Status
from stackscope.safetext import terminal_safe as _safe
from stackscope.words import blame, plural

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
# On a narrow terminal the name and fact columns give way (down to these) so that a
# detail keeps DETAIL_MIN cells beside them; no wrapped line is narrower than RIBBON_MIN.
NAME_MIN, FACT_MIN, DETAIL_MIN, RIBBON_MIN = 12, 10, 30, 20
# Narrower than this, a terminal cannot show a report; it is folded as if this wide.
WIDTH_MIN = 40
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
    """Terminal cells `text` takes: wide East Asian characters and emoji count two;
    combining marks, variation selectors and joiners none."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
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


def _prefix(text: str, room: int) -> str:
    """The longest start of `text` that takes at most `room` cells (at least one character)."""
    used = 0
    for index, char in enumerate(text):
        used += cells(char)
        if used > room:
            return text[: max(1, index)]
    return text


def wrap(text: str, width: int | None, *, start: int = 0, indent: int = 0) -> list[str]:
    """`text` folded for a line `width` cells wide (the terminal's: the one width every
    wrap in the report is given), at spaces when it can. The first line's text begins at
    column `start` (after what the caller already wrote there), the others at `indent`:
    they come back with their indent, the first without. No line goes past `width`, and
    no ribbon is narrower than RIBBON_MIN: a deep indent moves left, and text that would
    start too near the edge starts on the next line (the first line is then "").
    `width` None: not folded. Cheap when it fits, which is almost always."""
    if width is None or start + cells(text) <= width:
        return [text]
    indent = max(0, min(indent, width - RIBBON_MIN))
    lines: list[str] = []
    rest = text
    room = width - start
    if room < RIBBON_MIN:
        lines.append("")
        room = width - indent
    while cells(rest) > room:
        cut = _prefix(rest, max(1, room))
        space = cut.rfind(" ")
        if len(cut) < len(rest) and rest[len(cut)] == " ":
            space = len(cut)  # the cut falls on a space: the whole piece fits
        if space > len(cut) // 3:
            cut = cut[:space]
        lines.append(cut.rstrip(" "))
        rest = rest[len(cut) :].lstrip(" ")
        room = max(1, width - indent)
    lines.append(rest)
    return [lines[0]] + [" " * indent + line for line in lines[1:]]


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
    layer = _safe(verdict.layer)
    words = wrap(
        f"({_safe(verdict.role)}){blame(verdict.status is Status.UNKNOWN, verdict.recovering)}"
        + ("" if verdict.confirmed else " (unconfirmed)"),
        width,
        start=WORD_WIDTH + 2 + cells(layer) + 1,
        indent=4,
    )
    lines = [paint(badge(verdict.status), STYLE[verdict.status]) + paint(layer, BOLD) + " " + words[0]] + words[1:]
    body: list[tuple[str, str, str]] = [("  ", _safe(verdict.summary), "")]  # (prefix, text, code)
    body += [("  • ", _safe(item), DIM) for item in verdict.evidence]

    def add(prefix: str, text: str, code: str, label: str = "", label_code: str = "") -> None:
        parts = wrap(text, width, start=cells(prefix + label), indent=4)
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
    if width is not None:  # a narrow terminal: the fact, then the name, give way to the detail
        spare = width - (4 + 1 + 1 + lat_w + 1) - DETAIL_MIN
        if name_w + fact_w > spare:
            fact_w = max(min(fact_w, FACT_MIN), spare - name_w)
            name_w = max(min(name_w, NAME_MIN), spare - fact_w)
    detail_at = 4 + name_w + 1 + fact_w + 1 + lat_w + 1
    out: list[str] = []
    index = 0
    for number, layer in enumerate(diagnosis.layers):
        if number:
            out.append(paint("  ↓", DIM))
        name = _safe(layer.name) if width is None else fit(_safe(layer.name), width - WORD_WIDTH - 2)
        about = wrap(
            _safe(f"{layer.layer.role}  {layer.summary}"), width, start=WORD_WIDTH + 2 + cells(name) + 2, indent=4
        )
        out.append(
            paint(badge(layer.status), STYLE[layer.status])
            + paint(name, BOLD)
            + paint("  " + about[0] if about[0] else "", DIM)
        )
        out.extend(paint(part, DIM) for part in about[1:])
        for _ in layer.checks:
            status, name, fact, latency, detail = rows[index]
            index += 1
            name = fit(name, name_w)
            fact = fit(fact, fact_w)
            code = STYLE[status]
            parts = wrap(detail, width, start=detail_at, indent=detail_at)
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
    about = f"{layout.name} · {plural(len(layout.layers), 'layer')} · {plural(checks, 'check')} · {stamp}"
    lines += [paint(line, DIM) for line in wrap(_safe(about), width, indent=2)]
    lines += layer_lines(diagnosis, paint, width)
    if snapshot.overran:
        lines += [paint(line, YELLOW) for line in wrap(_safe(f"round overran: {snapshot.overran}"), width, indent=2)]
    return "\n".join(line.rstrip(" ") for line in lines)


def _width() -> int:
    """The width every wrap in the report is given: COLUMNS if set (as `COLUMNS=200
    stackscope check … | less` asks), else the terminal's, else 80; never under WIDTH_MIN."""
    return max(WIDTH_MIN, shutil.get_terminal_size((80, 24)).columns)
