"""Small wording helpers shared by every output."""

from __future__ import annotations


def plural(count: int, word: str) -> str:
    """'1 check', '3 checks', '0 checks'."""
    return f"{count} {word}" + ("" if count == 1 else "s")


def blame(unknown: bool, recovering: bool = False) -> str:
    """What the verdict line says after the layer's name. A layer whose checks could not
    read their evidence (UNKNOWN: a stats page without the field the check needs, a
    probe error) is where to look, not a layer known to be broken: "cannot tell". A
    layer that answers again while the LB has yet to take it back is "recovering"."""
    if unknown:
        return ": cannot tell (its evidence cannot be read)"
    return " is recovering" if recovering else " is the broken layer"


# Layer names that end in "s" but name one thing ("Postgres fails", not "fail").
_ONE_THING = frozenset({"postgres", "redis", "kubernetes", "jenkins", "express", "status", "analytics", "dns", "cors"})


def reads_plural(name: str) -> bool:
    """Whether a layer's name reads as a plural noun ("App servers", "Auth backends"),
    so that a sentence about it takes a plural verb; acronyms ("DNS") and the names in
    _ONE_THING are one thing."""
    words = name.split()
    if not words:
        return False
    last = words[-1]
    if last.isupper() or last.lower() in _ONE_THING:
        return False
    return last.lower().endswith("s") and not last.lower().endswith(("ss", "us", "is"))
