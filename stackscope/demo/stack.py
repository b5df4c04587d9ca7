"""The demo stack: starts every piece on its own event loop thread, injects faults, and
writes the layout that describes it.

The stack runs on a thread of its own so the dashboard's loop (rendering, probing) can
never slow the servers it probes, and so `stop()` can prove a clean shutdown: the thread
joined, every listener closed, no task left behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Coroutine
from typing import Any

from stackscope.demo.backends import AuthBackend, DecoyBackend
from stackscope.demo.client import ClientStats, SyntheticClient
from stackscope.demo.dns_server import DemoDns
from stackscope.demo.faults import CLEAR, FAULTS, Fault
from stackscope.demo.lb import DemoLb
from stackscope.demo.store import SessionStore
from stackscope.loop_thread import LoopNotRunning, LoopThread
from stackscope.model import Address

ZONE = "demo.test"
SERVICE = f"auth.{ZONE}"
POOL = "auth_servers"
LAYERS = ("DNS", "Load balancer", "Auth backends", "Session store")


class DemoError(Exception):
    pass


PORT_NAMES = ("dns", "lb", "stats", "store", "auth-1", "auth-2", "auth-3", "billing-1", "billing-2")


def free_ports(count: int) -> list[int]:
    """Distinct ports where nothing listens now: what binding port 0 on 127.0.0.1 gives
    (the way every demo server picks its port), all bound together, then released."""
    socks = _bound_sockets(count)
    try:
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _bound_sockets(count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
    return socks


async def _drain_tasks(current: asyncio.Task | None, budget: float = 5.0) -> None:
    """Wait for the loop's other tasks to end, cancelling those that outlive a grace period.

    Repeated until none is left: a connection accepted just before its listener closed
    gets its handler task a loop iteration later, after any one listing of the tasks.
    Handlers of aborted connections end by themselves, so they get a grace period first
    (cancelling a stream handler makes Python 3.11 log a spurious error).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    while loop.time() < deadline:
        leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not leftovers:
            return
        _, pending = await asyncio.wait(leftovers, timeout=min(2.0, max(0.05, deadline - loop.time())))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=max(0.05, deadline - loop.time()))


class DemoStack:
    def __init__(self, workdir: str | None = None) -> None:
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="stackscope-demo-")
        self.runner = LoopThread("stackscope-demo")
        self.fault: str | None = None  # the fault applied now; changed on the stack's loop only
        self._switching: asyncio.Lock | None = None  # made on the loop, by the first switch
        self.store = SessionStore()
        self.auth = [AuthBackend(f"auth-{i}", lambda: self.store.port) for i in (1, 2, 3)]
        self.decoys = [DecoyBackend(f"billing-{i}") for i in (1, 2)]
        self.dns = DemoDns(ZONE, {SERVICE: "127.0.0.1"})
        self.lb: DemoLb | None = None
        self.client: SyntheticClient | None = None
        # Bound but never listening, for the life of the stack: a connection is refused
        # as if nothing were there, and no demo server binding port 0 can be handed one
        # of these ports (a released port can come straight back from the kernel).
        self._dead_holders = _bound_sockets(3)
        self._dead = [sock.getsockname()[1] for sock in self._dead_holders]
        self.unfinished_after_stop: list[str] | None = None  # tasks still pending after stop(): must be []

    # ------------------------------------------------------------------ lifecycle
    def start(self, fault: str | None = None) -> None:
        if fault is not None and fault not in FAULTS:
            raise DemoError(f"unknown fault '{fault}' (faults: {', '.join(FAULTS)})")
        self.runner.start()
        self._call(self._start_all())
        with open(self.layout_path, "w", encoding="utf-8") as handle:
            handle.write(self.layout_text())
        if fault:
            self.inject(fault)

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = 15) -> Any:
        try:
            return self.runner.call(coro, timeout)
        except LoopNotRunning:
            raise DemoError("the demo stack is not running") from None

    async def _start_all(self) -> None:
        await self.store.start()
        for backend in self.auth + self.decoys:
            await backend.server.start()
        await self.dns.start()
        self.lb = DemoLb(POOL, self.auth_members())
        await self.lb.start()
        self.client = SyntheticClient(SERVICE, self.lb.frontend.port, Address("127.0.0.1", self.dns.port))
        self.client.start()

    def stop(self) -> None:
        """Stop everything and join the thread; safe to call twice."""
        try:
            if self.runner.thread is None:
                return
            try:
                if self.runner.running:
                    self._call(self._stop_all())
            finally:
                self.runner.stop(10)
        finally:
            for sock in self._dead_holders:
                sock.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def _stop_all(self) -> None:
        if self.client is not None:
            await self.client.stop()
        if self.lb is not None:
            await self.lb.stop()
        await self.dns.stop()
        for backend in self.auth + self.decoys:
            await backend.server.stop()
        await self.store.stop()
        current = asyncio.current_task()
        await _drain_tasks(current)
        self.unfinished_after_stop = [
            t.get_name() + ": " + repr(t.get_coro()) for t in asyncio.all_tasks() if t is not current and not t.done()
        ]

    # ------------------------------------------------------------------ faults
    def auth_members(self) -> list[tuple[str, int]]:
        """The healthy pool: the LB's server names on the auth backends' ports."""
        return [(f"auth{i}", backend.server.port) for i, backend in enumerate(self.auth, 1)]

    @property
    def dead_ports(self) -> list[int]:
        """Ports held bound but never listening, for the dead-pool fault."""
        return list(self._dead)

    def require_lb(self) -> DemoLb:
        if self.lb is None:
            raise DemoError("the demo stack is not running")
        return self.lb

    def inject(self, name: str) -> None:
        """Apply one fault (replacing any other); `clear` restores the healthy stack."""
        if name != CLEAR and name not in FAULTS:
            raise DemoError(f"unknown fault '{name}' (faults: {', '.join(FAULTS)}, or clear)")
        self._call(self._switch(None if name == CLEAR else FAULTS[name]))

    async def _switch(self, fault: Fault | None) -> None:
        """Revert the fault in place, then apply `fault` (None: stay healthy).

        On the stack's loop, one switch at a time, and `fault` is set here: set by the
        caller after the switch returned, a second switch (the dashboard's worker and a
        trainer's keypress) could run in between, see no fault, and leave the first one
        applied (a DNS answering NXDOMAIN under the backend-crash fault)."""
        if self._switching is None:
            self._switching = asyncio.Lock()
        async with self._switching:
            if self.client is not None:
                self.client.fault_changed()  # on the loop the client's logins run on
            if self.fault is not None:
                await FAULTS[self.fault].revert(self)
                self.fault = None
            if fault is not None:
                await fault.apply(self)
                self.fault = fault.name

    # ------------------------------------------------------------------ what to show
    @property
    def layout_path(self) -> str:
        return os.path.join(self.workdir, "demo-layout.yaml")

    def client_stats(self) -> ClientStats | None:
        return self.client.stats() if self.client is not None else None

    def ports(self) -> dict[str, int]:
        """Each server's port, by the names of PORT_NAMES."""
        assert self.lb is not None
        return {
            "dns": self.dns.port,
            "lb": self.lb.frontend.port,
            "stats": self.lb.stats.port,
            "store": self.store.port,
            **{b.name: b.server.port for b in self.auth},
            **{d.name: d.server.port for d in self.decoys},
        }

    def layout_text(self) -> str:
        return layout_text(self.ports())


def layout_text(p: dict[str, int]) -> str:
    """The layout of a demo stack whose servers listen on ports `p` (by PORT_NAMES)."""
    from stackscope.probes import CHECK_TYPES

    store_type = "redis" if "redis" in CHECK_TYPES else "tcp"
    backends = "\n".join(
        f'      - {{http: "http://127.0.0.1:{p[f"auth-{i}"]}/health", name: auth-{i}, '
        f"identity_header: X-Served-By, warn_ms: 250}}"
        for i in (1, 2, 3)
    )
    return f"""\
# Generated by `stackscope demo`: the embedded training stack on 127.0.0.1.
# Ports change on every start; this file is rewritten each time.
name: demo-auth
description: Login path of a small auth service (stackscope demo)
interval: 2s
timeout: 1500ms
resolver: 127.0.0.1:{p["dns"]}
layers:
  - name: DNS
    role: dns
    checks:
      - dns: {SERVICE}
        expect: [127.0.0.1]

  - name: Load balancer
    role: lb
    checks:
      - http: http://{SERVICE}:{p["lb"]}/login      # what users do: log in through the LB, by name
        name: login via LB
        expect_status: 200
        identity_header: X-Served-By
        samples: 3                                # which servers answer through the LB?
        warn_ms: 250
      - haproxy: http://127.0.0.1:{p["stats"]}/stats;csv   # the pool, as the LB sees it
        name: pool
        backend: {POOL}

  - name: Auth backends
    role: backend
    checks:
{backends}

  - name: Session store
    role: db
    checks:
      - {store_type}: 127.0.0.1:{p["store"]}
        name: sessions
        warn_ms: 150
"""
