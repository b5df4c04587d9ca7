"""A light synthetic client: logins through the LB, found through the demo DNS, so error
rates move when any layer breaks, as users would feel it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from stackscope.demo.listener import cancel_and_wait
from stackscope.model import Address
from stackscope.probes.common import Deadline, ProbeFailure
from stackscope.probes.context import ResolveError, query_address
from stackscope.probes.httpclient import fetch

INTERVAL = 0.25
WINDOW = 40  # the last 40 logins (10 s) make the error rate


@dataclass(frozen=True)
class ClientStats:
    attempts: int
    errors: int
    window_error_rate: float  # 0..1 over the last WINDOW logins
    last_error: str


class SyntheticClient:
    def __init__(self, host: str, port: int, dns: Address) -> None:
        self.host, self.port, self.dns = host, port, dns
        self.recent: deque[bool] = deque(maxlen=WINDOW)
        self.attempts = 0
        self.errors = 0
        self.last_error = ""
        self._era = 0  # bumped when the fault changes: a login that began before it is old news
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="demo-client")

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._task)
        self._task = None

    def fault_changed(self) -> None:
        """Forget the last failure (it belonged to the previous fault), including one a
        login still in flight would report. Call on the client's loop."""
        self._era += 1
        self.last_error = ""

    def stats(self) -> ClientStats:
        rate = (self.recent.count(False) / len(self.recent)) if self.recent else 0.0
        return ClientStats(self.attempts, self.errors, rate, self.last_error)

    async def _run(self) -> None:
        while not self._stopping:  # until stop(); one login per INTERVAL
            started, era = time.monotonic(), self._era
            ok, error = await self._login()
            self.attempts += 1
            self.recent.append(ok)
            if not ok:
                self.errors += 1
                if era == self._era:
                    self.last_error = error
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - started)))

    async def _login(self) -> tuple[bool, str]:
        try:
            ip = await query_address(self.host, self.dns, 1.0)
        except ResolveError as exc:
            return False, str(exc)
        try:
            response = await fetch(
                ip,
                self.port,
                deadline=Deadline(2.0),
                target="/login",
                host_header=f"{self.host}:{self.port}",
                body_cap=4096,
            )
        except ProbeFailure as failure:
            return False, failure.detail
        if response.status != 200:
            return False, f"login answered {response.status_text}"
        return True, ""
