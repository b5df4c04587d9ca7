"""Text from servers made safe for the places it ends up: a terminal, an XML file.

Probes already pass what a server sent through `printable()`, but the renderers are the
last line of defence: a probe written tomorrow (or a fact nobody thought of) must not be
able to move the operator's cursor, recolour the terminal or make a JUnit report that CI
cannot parse. Nothing here shortens text; only characters that cannot be shown change.
"""

from __future__ import annotations

import re

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
