"""Several vantage points in the verdict: where a layer fails from, when they disagree.

A `prometheus` check with `per:` and `vantage: true` records each vantage point's state
as typed evidence (`model.SeriesEvidence`). When some vantage points see the layer fail
and others do not, the verdict's headline says so ("Load balancer: fails from 1 of 3
vantage points (zone-b): value 0, expected 1"), which points at the path between those
places and the layer rather than at the layer itself. Pure: it reads evidence, never facts, and imports no probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stackscope.model import SeriesEvidence

CAP = 5  # vantage points named in the headline; the rest are counted


def disagreement(evidence: Any) -> tuple[list[str], int, str] | None:
    """(failing vantage points, how many there are, why the first fails) when the
    vantage points of one check disagree; None otherwise."""
    if not isinstance(evidence, SeriesEvidence) or not evidence.vantage or not evidence.keys:
        return None
    if not evidence.failing or len(evidence.failing) >= len(evidence.keys):
        return None
    return list(evidence.failing), len(evidence.keys), evidence.why


def vantage_headline(layer: str, failing: Sequence[Any]) -> str | None:
    """The headline for `layer` when its most telling failing check (`failing[0]`, a
    CheckState) fails from some vantage points only; None leaves the headline as it is."""
    if not failing:
        return None
    found = disagreement(getattr(failing[0].result, "evidence", None))
    if found is None:
        return None
    names, total, why = found
    shown = ", ".join(names[:CAP]) + (f" and {len(names) - CAP} more" if len(names) > CAP else "")
    points = "vantage point" if total == 1 else "vantage points"
    return f"{layer}: fails from {len(names)} of {total} {points} ({shown})" + (f": {why}" if why else "")
