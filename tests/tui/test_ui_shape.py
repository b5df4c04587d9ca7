"""Issue 12: the dashboard guards its own shape. The UI uses no private Textual API, reads
no live engine state, and the core stylesheet holds no demo rules."""

from __future__ import annotations

import re
from pathlib import Path

import stackscope

PACKAGE = Path(stackscope.__file__).parent
UI = sorted((PACKAGE / "tui").glob("*.py")) + sorted((PACKAGE / "demo").glob("*.py"))

PRIVATE_TEXTUAL = [
    r"\._bindings\b",  # a node's BindingsMap: bindings come from BINDINGS (tui/bindings.py)
    r"key_to_bindings",
    r"__name__\s*==\s*[\"']FooterKey",  # widgets.FooterKeyLike instead
    r"from textual\.\w+\._|import textual\.\w+\._|from textual\._",  # private modules
]
# what the probe thread mutates while a round runs; the app has its own record (messages)
ENGINE_LIVE_STATE = [r"engine\.inflight", r"engine\.history\b(?!\.items\(\)\})"]


def offending(patterns: list[str], files: list[Path]) -> list[str]:
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(re.search(p, line) for p in patterns):
                found.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    return found


def test_the_ui_uses_no_private_textual_api():
    assert offending(PRIVATE_TEXTUAL, UI) == []


def test_the_ui_reads_no_live_engine_state():
    # app.py copies the engine's history once, before the probe thread exists
    assert offending(ENGINE_LIVE_STATE, UI) == []


def test_the_core_stylesheet_has_no_demo_rules():
    rules = re.sub(r"/\*.*?\*/", "", (PACKAGE / "tui" / "stackscope.tcss").read_text(), flags=re.S)
    assert not re.search(r"demo|fault|debrief|story", rules, flags=re.I)
