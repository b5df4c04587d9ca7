"""`init --probe`: the generated layout's own checks, run once, say whether the LB's
current state already looks wrong (members it holds DOWN, members that do not answer
their health path directly, a pool that differs from the declared backends). Those
entries are marked `# review:` rather than silently declared: the requests are exactly
the read-only ones `check` makes."""

from __future__ import annotations

import asyncio

from stackscope.discover.emit import Plan
from stackscope.discover.found import safe
from stackscope.model import Snapshot, Status


def probe_once(layout) -> Snapshot:
    """One round of `layout`'s checks in this process (the read-only requests `check` makes)."""
    from stackscope.engine import Engine

    async def once() -> Snapshot:
        engine = Engine(layout, workers=0)
        try:
            return await engine.run_round()
        finally:
            await engine.aclose()

    return asyncio.run(once())


def probe(plan: Plan, text: str) -> list[str]:
    """Run every check of the layout `text` once; mark each entry whose check is not OK
    for review, and return the notes for stderr."""
    from stackscope.layout import parse_layout

    layout = parse_layout(text, "<stackscope init>")
    by_id = {check.id: check.name for check in layout.checks()}
    snapshot = probe_once(layout)
    entries = {entry.check["name"]: entry for layer in plan.layers for entry in layer.entries}
    notes = []
    for check_id, result in snapshot.results.items():
        if result.status is Status.OK:
            continue
        name = by_id.get(check_id, check_id)
        entry = entries.get(name)
        if entry is None:
            continue
        why = safe(f"{result.status.name} now: {result.detail}")[:300]
        entry.review = why
        notes.append(f"{name}: {why}")
    return notes
