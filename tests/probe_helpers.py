"""Build one-check layouts and run them through the real engine."""

from __future__ import annotations

from typing import Any

import yaml

from stackscope.engine import Engine
from stackscope.kinds import ParseContext
from stackscope.layout import parse_layout
from stackscope.model import Layout, Result


def layout_of(
    layers: list[dict[str, Any]],
    *,
    resolver: str | None = None,
    timeout: str = "2s",
    interval: str = "5s",
    name: str = "test",
    environ: dict | None = None,
) -> Layout:
    doc: dict[str, Any] = {"name": name, "interval": interval, "timeout": timeout, "layers": layers}
    if resolver:
        doc["resolver"] = resolver
    ctx = ParseContext(environ=environ if environ is not None else {}, require_env=environ is not None)
    return parse_layout(yaml.safe_dump(doc, sort_keys=False), "<test>", ctx)


def one_check(check: dict[str, Any], **kwargs: Any) -> Layout:
    return layout_of([{"name": "L", "role": "other", "checks": [check]}], **kwargs)


async def probe(check: dict[str, Any], **kwargs: Any) -> Result:
    """Probe a single check once through the engine and return its result."""
    environ = kwargs.pop("environ", None)
    layout = one_check(check, environ=environ, **kwargs)
    engine = Engine(layout, environ=environ or {})
    engine.confirm_retries = 0  # once: a status change is not re-probed to confirm it
    try:
        snapshot = await engine.run_round()
    finally:
        await engine.aclose()
    return next(iter(snapshot.results.values()))
