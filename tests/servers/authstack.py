"""The HAProxy stack of the verdict tests: three backend processes behind HAProxy
(`inter 1s fall 2 rise 1`), Redis and dnsmasq (tests/servers/lbstacks.py has the same stack
behind every LB). Faults are injected by the stack's own set-up code (signals, the Runtime
API's `set server … addr`); stackscope itself never writes anything.
"""

from __future__ import annotations

from .lbstacks import Backend, HaproxyStack

__all__ = ["AuthStack", "Backend"]


class AuthStack(HaproxyStack):
    """HaproxyStack with the verdict tests' 1 s probe timeout."""

    def __init__(
        self, *, dns: bool = True, redis: bool = True, interval: str = "2s", timeout: str = "1s", jittery: int = 0
    ) -> None:
        """`jittery`: how many backends (the last ones) answer after a log-normal 1-200 ms delay."""
        super().__init__(dns=dns, redis=redis, interval=interval, timeout=timeout)
        for backend in self.backends[3 - jittery :]:
            backend.jitter = True
