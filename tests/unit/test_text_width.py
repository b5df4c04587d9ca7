"""The text report on a narrow terminal: one wrap, given the real width, everywhere the
report folds (issue 21: a long detail became a 14-column ribbon next to the latency
column, and a long check name pushed lines past 80 columns)."""

from __future__ import annotations

import unicodedata

import pytest

from stackscope.diagnosis import assess
from stackscope.layout import parse_layout
from stackscope.model import ErrorKind, Result, Snapshot, Status
from stackscope.render import render
from stackscope.render.text import RIBBON_MIN, wrap

LONG_NAME = "auth-backend-in-the-secondary-datacentre-behind-the-vpn"
WIDE_NAME = "認証サーバー🔥東京リージョン"
LAYOUT = parse_layout(
    f"""\
name: auth
layers:
  - name: Load balancer in front of everything that the customers reach from the internet
    role: lb
    checks:
      - {{http: "http://127.0.0.1:18080/health", name: lb}}
  - name: App servers
    role: backend
    checks:
      - {{http: "http://127.0.0.1:19001/health", name: {LONG_NAME}}}
      - {{http: "http://127.0.0.1:19002/health", name: "{WIDE_NAME}"}}
      - {{http: "http://127.0.0.1:19003/health", name: a}}
""",
    "auth.yaml",
)
LONG_DETAIL = (
    "503 Service Unavailable: the upstream said the connection pool to the database is exhausted "
    "(max_connections 100 reached) and asked the client to retry after 30 seconds"
)
WIDE_DETAIL = "応答なし：データベース接続プールが枯渇しました 🔥🔥 再試行してください " * 3


def _cells(line: str) -> int:
    """Independent of the renderer's own count: wide and full-width characters are two
    cells, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _diagnosis():
    results = {}
    for check in LAYOUT.checks():
        detail = {"lb": "200 OK", LONG_NAME: LONG_DETAIL, WIDE_NAME: WIDE_DETAIL}.get(check.name, "x" * 130)
        status = Status.OK if check.name == "lb" else Status.CRIT
        kind = None if status is Status.OK else ErrorKind.HTTP_STATUS
        results[check.id] = Result(check.id, status, detail, 12345.0, "503 Service Unavailable", {}, kind)
    return assess(Snapshot(LAYOUT, results, 0.0))


@pytest.mark.parametrize("width", [60, 80, 120])
def test_no_line_over_the_width_and_no_ribbon_too_narrow(width):
    out = render(_diagnosis(), "text", color=False, width=width)
    lines = out.split("\n")
    assert [line for line in lines if _cells(line) > width] == [], out
    # every folded line (one that starts with spaces and is followed by more of the same
    # text) has at least RIBBON_MIN cells of room: the detail was not squeezed into a ribbon
    for line in lines:
        if line.startswith("    ") and line.strip():
            indent = len(line) - len(line.lstrip(" "))
            assert width - indent >= RIBBON_MIN, (width, line)
    assert "…" in out  # the long name was cut to its column, not pushed past the edge
    words = " ".join(line.strip() for line in lines)
    assert "retry after 30 seconds" in words  # the detail is all there, only folded


def test_a_detail_beside_the_latency_column_at_80_columns_gets_more_than_a_ribbon():
    """The bug: the wrap width had the indent taken off twice, so continuation lines held
    14 cells of a detail at 80 columns."""
    out = render(_diagnosis(), "text", color=False, width=80)
    lines = out.split("\n")
    row = max(i for i, line in enumerate(lines) if LONG_NAME[:20] in line)
    beside = lines[row].split(" s ", 1)[1]  # the detail after the latency column ("12.3 s")
    under = []
    for line in lines[row + 1 :]:
        if not line.startswith(" " * 20):
            break
        under.append(line.strip())
    assert len(beside) >= 25 and all(len(line) >= 20 for line in under[:-1]), out
    assert all(_cells(line) <= 80 for line in lines[row : row + 1 + len(under)]), out


def test_wrap_breaks_at_spaces_and_counts_wide_characters():
    assert wrap("short", 80, start=70) == ["short"]
    lines = wrap("alpha beta gamma delta epsilon zeta eta theta iota kappa", 30, start=10, indent=4)
    assert lines[0] == "alpha beta gamma"
    assert all(10 + _cells(lines[0]) <= 30 for _ in lines) and all(_cells(line) <= 30 for line in lines[1:])
    assert all(line.startswith("    ") and not line.startswith("     ") for line in lines[1:])
    wide = wrap("漢字" * 40, 40, indent=2)
    assert all(_cells(line) <= 40 for line in wide) and len(wide) > 1
    # too little room after `start`: the text starts on the next line instead of a ribbon
    assert wrap("some words that do not fit", 30, start=25, indent=4)[0] == ""
    # an indent deeper than width - RIBBON_MIN moves left
    deep = wrap("word " * 40, 40, indent=35)
    assert all(40 - (len(line) - len(line.lstrip())) >= RIBBON_MIN for line in deep[1:])
    assert wrap("x" * 500, None) == ["x" * 500]  # piped: never folded


def test_the_width_is_columns_else_80(monkeypatch):
    from stackscope.render.text import _width

    monkeypatch.setenv("COLUMNS", "123")
    assert _width() == 123
    monkeypatch.delenv("COLUMNS")
    import shutil

    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): __import__("os").terminal_size(fallback))
    assert _width() == 80
