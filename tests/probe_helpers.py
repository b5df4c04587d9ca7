"""Build one-check layouts and run them through the real engine."""

from __future__ import annotations

import re
from typing import Any

import yaml

from stackscope.engine import Engine
from stackscope.kinds import ParseContext
from stackscope.layout import parse_layout
from stackscope.model import ErrorKind, Layout, Result, Status


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


# A Python exception's name or a traceback in a detail means the probe crashed and the
# engine reported the crash: the operator should read the reason instead.
PYTHON_NAMES = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception)\b|Traceback|\bint\(|\bfloat\(")


def assert_unreadable(result: Result, words: str) -> None:
    """The check could not read what the server sent and says why, in words: UNKNOWN, an
    error kind that is neither `internal` (a crash) nor `timeout` (it came back in time
    with an answer, not at the deadline), `words` in the detail, no exception name."""
    assert result.status is Status.UNKNOWN, (result.status, result.detail)
    assert result.error_kind not in (ErrorKind.INTERNAL, ErrorKind.TIMEOUT), (result.error_kind, result.detail)
    assert words in result.detail, result.detail
    assert not PYTHON_NAMES.search(result.detail), result.detail
