"""Text from servers and layouts made safe for the places it ends up: a terminal, an XML file.

Terminal safety is a property of the data, not of each renderer: `model.Result` passes its
`detail`, `key_fact` and every string nested in `facts` through `safe_value()` when it is
built (so a probe written tomorrow cannot hand a renderer raw server bytes), and the layout
loader does the same for every string a layout holds. What reaches the JSON, the timeline,
`watch --plain` or the dashboard therefore cannot retitle, clear or reorder the operator's
terminal. The renderers still call `terminal_safe()`/`xml_safe()` as a last line of
defence. Nothing here shortens text; only characters that cannot be shown change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SHOWN_INSTEAD = "·"  # the same mark printable() uses for a byte that cannot be shown

# C0 controls (tab and newline included: a row or a detail is one line), DEL, C1 controls
# (0x9b is a one-byte CSI on some terminals) and the bidi overrides that reorder text.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# What XML 1.0 cannot hold at all, even escaped (§2.2 Char).
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def terminal_safe(text: object) -> str:
    """`text` with every control character replaced, for text and Nagios output."""
    return _TERMINAL_UNSAFE.sub(SHOWN_INSTEAD, str(text))


def xml_safe(text: object) -> str:
    """`text` with the characters XML 1.0 forbids replaced, so the document parses."""
    return _XML_ILLEGAL.sub(SHOWN_INSTEAD, str(text))


def is_terminal_safe(text: str) -> bool:
    """True when `text` holds no character terminal_safe() would replace."""
    return _TERMINAL_UNSAFE.search(text) is None


def safe_value(value: Any) -> Any:
    """`value` with every string in it (mapping keys too, at any depth) terminal-safe.

    Numbers, booleans and None pass unchanged; lists and tuples keep their type. A string
    that is already safe is returned as is, so sanitising twice costs a regex scan only."""
    if isinstance(value, str):
        return value if is_terminal_safe(value) else terminal_safe(value)
    if isinstance(value, Mapping):
        return {safe_value(k): safe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(safe_value(v) for v in value)
    if isinstance(value, bytes):  # never meant for output, but a probe might put some in a fact
        return terminal_safe(value.decode("latin-1"))
    return value
