"""The faults a trainer can inject, what each does, and the verdict stackscope must give.

The expected verdicts are part of the contract: tests inject every fault into a running
demo and check that `stackscope check` names exactly this layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from stackscope.model import Status


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    what: str  # what the fault does to the stack, for the trainer
    layer: str  # the layer the verdict must name
    status: Status


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
        ),
        Fault(
            "lb-dead-pool",
            "LB pool points at dead ports",
            "the auth_servers pool now holds addresses where nothing listens",
            "Load balancer",
            Status.CRIT,
        ),
        Fault(
            "lb-bad-healthcheck",
            "LB health check asks the wrong path",
            "the LB checks /healthz, which the backends do not serve: it marks them all DOWN",
            "Load balancer",
            Status.CRIT,
        ),
        Fault(
            "dns-wrong-answer",
            "DNS hands out the wrong address",
            "auth.demo.test resolves to 127.0.0.2, where nothing listens",
            "DNS",
            Status.CRIT,
        ),
        Fault(
            "dns-nxdomain", "DNS says the name does not exist", "auth.demo.test answers NXDOMAIN", "DNS", Status.CRIT
        ),
        Fault("dns-timeout", "DNS server stops answering", "the DNS server drops every query", "DNS", Status.CRIT),
        Fault(
            "backend-crash",
            "One auth backend crashed",
            "auth-2 stops listening; the pool serves on two of three",
            "Auth backends",
            Status.WARN,
        ),
        Fault(
            "backends-500",
            "A bad release: every backend answers 500",
            "all three auth backends answer 500 to everything",
            "Auth backends",
            Status.CRIT,
        ),
        Fault("db-down", "Session store down", "the session store stops listening", "Session store", Status.CRIT),
        Fault("db-slow", "Session store slow", "every session store reply takes 300 ms", "Session store", Status.WARN),
        Fault(
            "db-too-many-connections",
            "Session store out of connections",
            "the session store answers every new client 'max number of clients reached'",
            "Session store",
            Status.CRIT,
        ),
    )
}

CLEAR = "clear"
