"""Text from servers and layouts made safe for the places it ends up: a terminal, an XML file.

Terminal safety is a property of the data, not of each renderer: `model.Result` passes
its `detail`, `key_fact` and every string nested in `facts` through `safe_value()` when it
is built (so a probe written tomorrow cannot hand a renderer raw server bytes), and the
layout loader does the same for the text a layout shows (names, targets as written). The rule is defined in
model.py (which may import nothing else of the project) and re-exported here. What reaches the JSON, the timeline,
`watch --plain` or the dashboard therefore cannot retitle, clear or reorder the operator's
terminal. The renderers still call `terminal_safe()`/`xml_safe()` as a last line of
defence. Nothing here shortens text; only characters that cannot be shown change.
"""

from __future__ import annotations

import re

# The terminal-safe rule lives with the data it protects (model.py, which may import
# nothing else of the project); it is re-exported here for the renderers and the loader.
from stackscope.model import SHOWN_INSTEAD, is_terminal_safe, safe_value, terminal_safe

__all__ = ["SHOWN_INSTEAD", "is_terminal_safe", "safe_value", "terminal_safe", "xml_safe"]

# What XML 1.0 cannot hold at all, even escaped (§2.2 Char): the complement of its
# [\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff], written as the few ranges it
# leaves out. The negated form took 6 ms to compile at every start, for every command;
# this one 0.5 ms (tests/unit/test_outputs_safe.py holds the two equal).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: object) -> str:
    """`text` with the characters XML 1.0 forbids replaced, so the document parses."""
    return _XML_ILLEGAL.sub(SHOWN_INSTEAD, str(text))
