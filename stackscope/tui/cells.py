"""What a check row shows, as plain strings: no Textual, so it is tested on its own.

The sparkline uses a fixed logarithmic scale (two bars a decade, from under 1 ms to a
second and more) rather than scaling each row to its own min and max: a bar then means
the same latency in every row, and a row whose latency jitters within its band does not
change at all — which is what keeps an idle dashboard from repainting every round over a
slow SSH link.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable

from rich.cells import cell_len

from stackscope.history import Sample
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


STICKY = 2.0  # a latency this close (as a ratio) to the bound it crossed keeps the previous bar


class SparkLine:
    """A row's sparkline, kept as it was drawn: each new sample adds one character and
    the ones drawn before never change.

    A loopback target answers in 0.7 to 2.5 ms and crosses the 1 ms bound every other
    round: drawn afresh from the history each round, the line changed every round and the
    row repainted for nothing. Here a sample that only crossed into the neighbouring band,
    by less than a factor STICKY of the bound, keeps the previous bar (a bar then stands
    within a factor two of its latency, on a scale of half decades); a real move shows at
    once. A steady target's line is then one
    bar repeated, and shifting it repaints nothing."""

    def __init__(self, keep: int = 240) -> None:
        self.chars: deque[str] = deque(maxlen=keep)
        self.last_at: float | None = None
        self.previous: int | None = None  # the last bar's index, when the last was a bar

    def feed(self, history: Iterable[Sample]) -> None:
        """Take the samples of `history` newer than the last one taken."""
        tail = getattr(history, "tail", None)
        recent = list(tail(16)) if tail is not None and self.last_at is not None else list(history)
        if tail is not None and recent and self.last_at is not None and recent[0].at > self.last_at:
            recent = list(history)  # more than 16 rounds went by unseen
        for sample in recent:
            if self.last_at is not None and sample.at <= self.last_at:
                continue
            self.last_at = sample.at
            char = spark_char(sample)
            index = BARS.find(char)
            if index >= 0 and self.previous is not None and abs(index - self.previous) == 1:
                bound = BOUNDS_MS[min(index, self.previous)]
                if bound / STICKY <= (sample.latency_ms or 0.0) <= bound * STICKY:
                    index, char = self.previous, BARS[self.previous]
            self.previous = index if index >= 0 else None
            self.chars.append(char)

    def text(self, width: int) -> str:
        if width <= 0:
            return ""
        return "".join(list(self.chars)[-width:]).rjust(width)


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


def wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells, broken at spaces; a word longer than a
    line (a URL) is split across lines. Nothing is cut: what does not fit takes more
    lines. Cells, not characters: a wide glyph takes two."""
    width = max(1, width)
    lines: list[str] = []
    line = ""
    for token in re.findall(r"\S+|\s+", text.replace("\r", " ").replace("\n", " ")):
        if token.isspace():
            line += token if line else ""  # spaces at a break are dropped
            continue
        if cell_len(line + token) <= width:
            line += token
            continue
        if line:
            lines.append(line.rstrip())
            line = ""
        while cell_len(token) > width:
            head = _cells_prefix(token, width)
            lines.append(head)
            token = token[len(head) :]
        line = token
    lines.append(line.rstrip())
    return lines


def _cells_prefix(text: str, width: int) -> str:
    """The longest start of `text` within `width` cells (at least one character)."""
    out = text[0]
    for char in text[1:]:
        if cell_len(out + char) > width:
            break
        out += char
    return out


def wrap_items(prefix: str, items: list[str], sep: str, width: int, lines: int) -> list[str]:
    """`prefix` and as many whole `items` as fit in `lines` wrapped lines, then how many
    more there are ("(+2 more: v)"): a list is cut between two items, never inside one
    (an address cut to "127.0.…" reads as another address). The first item is shown
    whole even when it alone needs more lines."""
    for shown in range(len(items), 0, -1):
        more = f" (+{len(items) - shown} more: v)" if shown < len(items) else ""
        wrapped = wrap(prefix + sep.join(items[:shown]) + more, width)
        if len(wrapped) <= lines or shown == 1:
            return wrapped
    return wrap(prefix.rstrip(), width)


def row_latency(ms: float | None) -> str:
    """Latency as a row shows it: whole milliseconds ("<1 ms", "9 ms", "142 ms").

    A row is read at a glance and repainted over a slow link: tenths of a millisecond
    change every round without telling anyone anything. The detail screen keeps the
    precise value (format_latency, which also takes over from ten seconds up)."""
    if ms is None or ms >= 10000:
        return format_latency(ms)
    return "<1 ms" if ms < 1 else f"{ms:.0f} ms"


def steady_latency(shown: float | None, new: float | None) -> float | None:
    """The latency a row keeps showing: `shown` while `new` stays within half of it (or
    2.5 ms), else `new`. "<1 ms", "3 ms", "1 ms" round after round over a slow SSH link
    told nothing (a loopback answer jitters that much while the dashboard paints) and
    cost a repaint each; the detail screen and its graph keep every value."""
    if shown is None or new is None:
        return new
    if abs(new - shown) <= max(2.5, shown / 2):
        return shown
    return new


def probing_label(elapsed: float) -> str:
    return f"{elapsed:.1f}s"
