"""Small wording helpers shared by every output."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """'1 check', '3 checks', '0 checks'."""
    return f"{count} {word}" + ("" if count == 1 else "s")
