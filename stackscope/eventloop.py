"""Which event loop runs the probes: uvloop where it pays, asyncio's own otherwise.

uvloop (libuv under asyncio's API) runs the same probes for less CPU: its transports and
timers are C, where asyncio's selector loop keeps a heap of Python timer objects compared
in Python. Measured on the 2-core CI machine class (bench/versus_blackbox.py and A/B
runs): an http probe in a 1000-check round 338–447 µs against 461–510 µs on asyncio, in a
worker of a 10,000-check round 349–394 µs against 405–477 µs. It costs ~5 ms to import
and ~1.6 MB of RSS, which a one-shot `check` of a few checks would pay for nothing, so it
is used:

- for every long-running command (`watch`, `export`) and every worker of a sharded round;
- for a one-shot run of FAST_FROM checks or more;
- only when importable (it is a Linux/macOS wheel: elsewhere, or if it is missing, the
  plain loop runs everything exactly as before).

STACKSCOPE_LOOP=asyncio (or uvloop) overrides the choice: to compare the two, or to rule
the loop out when something looks wrong.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

FAST_FROM = 50  # checks from which a one-shot run is worth uvloop's import
CHOICE_ENV = "STACKSCOPE_LOOP"


def wanted(checks: int, *, long_running: bool = False) -> bool:
    """Whether a run of `checks` checks should use uvloop (if it can be imported)."""
    choice = os.environ.get(CHOICE_ENV, "auto").strip().lower()
    if choice == "asyncio":
        return False
    if choice == "uvloop":
        return True
    return long_running or checks >= FAST_FROM


def run(coro: Coroutine[Any, Any, T], *, fast: bool) -> T:
    """asyncio.run(coro), on uvloop when `fast` and importable."""
    if fast:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """'uvloop' or 'asyncio': which loop runs (the running one by default), for benches."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
