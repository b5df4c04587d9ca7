"""The faults a trainer can inject: what each does, how it is applied and reverted, and
the verdict stackscope must give.

The expected verdicts are part of the contract: tests inject every fault into a running
demo and check that `stackscope check` names exactly this layer. Each fault carries its
own apply and revert, so adding one is one entry here, never a branch in the stack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stackscope.model import Status

if TYPE_CHECKING:
    from stackscope.demo.stack import DemoStack

Change = Callable[["DemoStack"], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    what: str  # what the fault does to the stack, for the trainer
    layer: str  # the layer the verdict must name
    status: Status
    apply: Change
    revert: Change


# --------------------------------------------------------------------------- changes
# Each takes the running stack and runs on its event loop.


async def _misroute(stack: DemoStack) -> None:  # same server names, another service's addresses
    stack.require_lb().set_members([(f"auth{i}", decoy.server.port) for i, decoy in enumerate(stack.decoys, 1)])


async def _dead_pool(stack: DemoStack) -> None:
    stack.require_lb().set_members([(f"auth{i}", port) for i, port in enumerate(stack.dead_ports, 1)])


async def _auth_pool(stack: DemoStack) -> None:
    stack.require_lb().set_members(stack.auth_members())


async def _wrong_health_path(stack: DemoStack) -> None:
    stack.require_lb().health_path = "/healthz"


async def _right_health_path(stack: DemoStack) -> None:
    stack.require_lb().health_path = "/health"


def _dns_mode(mode: str) -> Change:
    async def change(stack: DemoStack) -> None:
        stack.dns.mode = mode

    return change


async def _crash_auth_2(stack: DemoStack) -> None:
    await stack.auth[1].server.stop()


async def _restart_auth_2(stack: DemoStack) -> None:
    if not stack.auth[1].server.running:
        await stack.auth[1].server.start()


def _backends_broken(broken: bool) -> Change:
    async def change(stack: DemoStack) -> None:
        for backend in stack.auth:
            backend.broken = broken

    return change


async def _store_down(stack: DemoStack) -> None:
    await stack.store.stop()


async def _store_up(stack: DemoStack) -> None:
    if not stack.store.running:
        await stack.store.start()


def _store_latency(seconds: float) -> Change:
    async def change(stack: DemoStack) -> None:
        stack.store.latency = seconds

    return change


def _store_saturated(saturated: bool) -> Change:
    async def change(stack: DemoStack) -> None:
        stack.store.saturated = saturated

    return change


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "lb-misroute",
            "LB pool switched to another service's servers",
            "the auth_servers pool now holds the billing servers (same server names, other addresses): the "
            "2023-12-07 incident",
            "Load balancer",
            Status.CRIT,
            _misroute,
            _auth_pool,
        ),
        Fault(
            "lb-dead-pool",
            "LB pool points at dead ports",
            "the auth_servers pool now holds addresses where nothing listens",
            "Load balancer",
            Status.CRIT,
            _dead_pool,
            _auth_pool,
        ),
        Fault(
            "lb-bad-healthcheck",
            "LB health check asks the wrong path",
            "the LB checks /healthz, which the backends do not serve: it marks them all DOWN",
            "Load balancer",
            Status.CRIT,
            _wrong_health_path,
            _right_health_path,
        ),
        Fault(
            "dns-wrong-answer",
            "DNS hands out the wrong address",
            "auth.demo.test resolves to 127.0.0.2, where nothing listens",
            "DNS",
            Status.CRIT,
            _dns_mode("wrong"),
            _dns_mode("ok"),
        ),
        Fault(
            "dns-nxdomain",
            "DNS says the name does not exist",
            "auth.demo.test answers NXDOMAIN",
            "DNS",
            Status.CRIT,
            _dns_mode("nxdomain"),
            _dns_mode("ok"),
        ),
        Fault(
            "dns-timeout",
            "DNS server stops answering",
            "the DNS server drops every query",
            "DNS",
            Status.CRIT,
            _dns_mode("silent"),
            _dns_mode("ok"),
        ),
        Fault(
            "backend-crash",
            "One auth backend crashed",
            "auth-2 stops listening; the pool serves on two of three",
            "Auth backends",
            Status.WARN,
            _crash_auth_2,
            _restart_auth_2,
        ),
        Fault(
            "backends-500",
            "A bad release: every backend answers 500",
            "all three auth backends answer 500 to everything",
            "Auth backends",
            Status.CRIT,
            _backends_broken(True),
            _backends_broken(False),
        ),
        Fault(
            "db-down",
            "Session store down",
            "the session store stops listening",
            "Session store",
            Status.CRIT,
            _store_down,
            _store_up,
        ),
        Fault(
            "db-slow",
            "Session store slow",
            "every session store reply takes 300 ms",
            "Session store",
            Status.WARN,
            _store_latency(0.3),
            _store_latency(0.0),
        ),
        Fault(
            "db-too-many-connections",
            "Session store out of connections",
            "the session store answers every new client 'max number of clients reached'",
            "Session store",
            Status.CRIT,
            _store_saturated(True),
            _store_saturated(False),
        ),
    )
}

CLEAR = "clear"
