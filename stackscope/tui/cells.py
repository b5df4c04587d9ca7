"""What a check row shows, as plain strings: no Textual, so it is tested on its own.

The sparkline uses a fixed logarithmic scale (two bars a decade, from under 1 ms to a
second and more) rather than scaling each row to its own min and max: a bar then means
the same latency in every row, and a row whose latency jitters within its band does not
change at all — which is what keeps an idle dashboard from repainting every round over a
slow SSH link.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from rich.cells import cell_len

from stackscope.engine import Sample
from stackscope.model import Status
from stackscope.render.text import format_latency

BARS = "▁▂▃▄▅▆▇█"
BOUNDS_MS = (1, 3, 10, 30, 100, 300, 1000)  # upper bounds of the first seven bars
FAILED, UNKNOWN, NO_DATA = "×", "?", "·"
PROBING_AFTER = 0.5  # seconds a probe runs before its row says "probing…"


def spark_char(sample: Sample) -> str:
    """One sample as one character: a bar for an answer, × for a failure, ? for unknown."""
    if sample.status is Status.CRIT:
        return FAILED
    if sample.status is Status.UNKNOWN:
        return UNKNOWN
    if sample.latency_ms is None:
        return NO_DATA
    return BARS[bisect_right(BOUNDS_MS, sample.latency_ms)]


def sparkline(samples: Iterable[Sample], width: int) -> str:
    """The last `width` samples, newest on the right, padded on the left."""
    if width <= 0:
        return ""
    tail = getattr(samples, "tail", None)
    recent = list(tail(width)) if tail is not None else list(samples)[-width:]
    return "".join(spark_char(s) for s in recent).rjust(width)


def fit(text: str, width: int, *, right: bool = False) -> str:
    """`text` in exactly `width` cells: cut with an ellipsis, or padded."""
    if width <= 0:
        return ""
    text = text.replace("\r", " ").replace("\n", " ")  # a multi-line detail must not break a row
    if cell_len(text) > width:
        out = ""
        for char in text:
            if cell_len(out + char) > width - 1:
                break
            out += char
        text = out + "…"
    pad = " " * (width - cell_len(text))
    return pad + text if right else text + pad


def row_latency(ms: float | None) -> str:
    """Latency as a row shows it: whole milliseconds ("<1 ms", "9 ms", "142 ms").

    A row is read at a glance and repainted over a slow link: tenths of a millisecond
    change every round without telling anyone anything. The detail screen keeps the
    precise value (format_latency, which also takes over from ten seconds up)."""
    if ms is None or ms >= 10000:
        return format_latency(ms)
    return "<1 ms" if ms < 1 else f"{ms:.0f} ms"


def probing_label(elapsed: float) -> str:
    return f"{elapsed:.1f}s"
