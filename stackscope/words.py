"""Small wording helpers shared by every output."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """'1 check', '3 checks', '0 checks'."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def blame(unknown: bool) -> str:
    """What the verdict line says after the layer's name. A layer whose checks could not
    read their evidence (UNKNOWN: a stats page without the field the check needs, a
    probe error) is where to look, not a layer known to be broken: "cannot tell"."""
    return ": cannot tell (its evidence cannot be read)" if unknown else " is the broken layer"
