"""A load balancer's pool, and how it compares with the backends the layout declares.

Both the haproxy and nginx checks (live) and `lint --lb-config` (static) build a `Pool`
and hand it to `judge_pool`, so the 2023-12-07 failure mode — a pool quietly pointing at
the wrong servers while the right ones are healthy — is judged by one set of rules.
Addresses are compared, never names: a misconfigured pool can keep the right server
names on the wrong addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stackscope.model import ErrorKind, Status
from stackscope.schema import Address, Invalid, parse_address


@dataclass(frozen=True)
class PoolServer:
    """One member of an LB pool as the LB sees it."""

    name: str
    address: str | None  # "ip:port" (IPv6 as [ip]:port); None when the source hides it
    state: str  # as the LB words it: UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/3", "no check", ...
    receives_traffic: bool  # would new requests be sent to it right now
    serving: bool  # up and healthy as far as the LB knows
    check: str = ""  # last health check, e.g. "L7OK 200", "L4CON Connection refused"
    last_change_s: int | None = None
    sessions: int | None = None
    errors: int | None = None
    weight: int | None = None
    flags: tuple[str, ...] = ()  # backup, down, ...
    configured_as: str | None = None  # the host as written in the config, when it was a name
    line: int | None = None  # where it is defined, for static configs

    def to_fact(self, declared: bool) -> dict[str, Any]:
        fact = {"name": self.name, "address": self.address, "state": self.state, "check": self.check,
                "last_change_s": self.last_change_s, "sessions": self.sessions, "errors": self.errors,
                "weight": self.weight, "declared": declared}
        if self.flags:
            fact["flags"] = list(self.flags)
        if self.configured_as:
            fact["configured_as"] = self.configured_as
        return fact


@dataclass(frozen=True)
class Pool:
    name: str
    source: str  # where the pool was read: "stats CSV http://…", "nginx.conf:12"
    servers: tuple[PoolServer, ...]
    status: str | None = None  # the LB's own word for the whole pool, when it has one
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific facts


@dataclass(frozen=True)
class Declared:
    """A backend the layout declares: the address to compare and where it came from."""

    address: str | None  # "ip:port" once resolved; None if it could not be resolved
    label: str  # the check's name, e.g. auth-1
    written: str  # as the layout wrote it, e.g. auth-1.internal:8080
    note: str = ""  # why address is None


@dataclass(frozen=True)
class Judgement:
    status: Status
    detail: str
    key_fact: str
    kind: ErrorKind | None
    facts: dict[str, Any]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]


def normalise(address: str) -> str:
    """'127.0.0.1:80', '[::1]:80', '::1' + port... -> one canonical ip:port text."""
    try:
        return str(parse_address(address))
    except Invalid:
        return address


def compress(addresses: list[str]) -> str:
    """'127.0.0.1:19001, 127.0.0.1:19002, 127.0.0.1:19003' -> '127.0.0.1:19001-19003'
    (runs of three or more; two neighbours read better listed)."""
    parsed: list[Address | str] = []
    for text in addresses:
        try:
            parsed.append(parse_address(text))
        except Invalid:
            parsed.append(text)
    by_host: dict[str, list[int]] = {}
    others: list[str] = []
    order: list[str] = []
    for item in parsed:
        if isinstance(item, Address):
            host = str(Address(item.host, 0)).rsplit(":", 1)[0]
            if host not in by_host:
                by_host[host] = []
                order.append(host)
            by_host[host].append(item.port)
        else:
            others.append(item)
    parts = []
    for host in order:
        ports = sorted(set(by_host[host]))
        start = prev = ports[0]
        for port in ports[1:] + [None]:  # type: ignore[list-item]
            if port is not None and port == prev + 1:
                prev = port
                continue
            if prev - start >= 2:
                parts.append(f"{host}:{start}-{prev}")
            else:
                parts.extend(f"{host}:{p}" for p in range(start, prev + 1))
            if port is not None:
                start = prev = port
    return ", ".join(parts + others)


def _describe(server: PoolServer) -> str:
    check = f" ({server.check})" if server.check else ""
    return f"{server.name} {server.state}{check}"


def judge_pool(pool: Pool, declared: list[Declared]) -> Judgement:
    """Judge a pool on its own health and against the declared backends.

    In order of severity:
    - a member that is not a declared backend and receives traffic: CRIT (misrouting),
      even when the frontend answers 200 — wrong servers may answer;
    - no member can take traffic: CRIT;
    - none of the declared backends in the pool: CRIT; some missing: WARN;
    - some members down, in maintenance or draining: WARN.
    """
    declared_addrs = {d.address: d for d in declared if d.address}
    servers = pool.servers
    unreadable = [s for s in servers if not s.address]
    in_pool = {s.address: s for s in servers if s.address}
    missing = [a for a in declared_addrs if a not in in_pool]
    unexpected = [s for s in servers if s.address and declared_addrs and s.address not in declared_addrs]
    unexpected_live = [s for s in unexpected if s.receives_traffic]
    traffic = [s for s in servers if s.receives_traffic]
    serving = [s for s in servers if s.serving]
    facts: dict[str, Any] = {
        "pool": {
            "backend": pool.name,
            "source": pool.source,
            "status": pool.status,
            "servers": [s.to_fact(bool(s.address and s.address in declared_addrs)) for s in servers],
            "declared": [d.address or d.written for d in declared],
            "missing": missing,
            "unexpected": [s.address for s in unexpected],
            **pool.extra,
        }
    }
    unresolved = [d for d in declared if not d.address]
    if unresolved:
        facts["pool"]["unresolved"] = [f"{d.written}: {d.note}" for d in unresolved]
    key = f"pool {len(serving)}/{len(servers)} UP"

    def judged(status: Status, detail: str, kind: ErrorKind | None, key_fact: str = key) -> Judgement:
        return Judgement(status, detail, key_fact, kind, facts, tuple(missing),
                         tuple(s.address for s in unexpected if s.address))

    name = pool.name
    if unreadable and len(unreadable) == len(servers) and servers:
        return judged(Status.UNKNOWN, f"pool {name}: the source shows no server addresses", ErrorKind.CONFIG,
                      "no addresses")
    if unexpected_live:
        routes = compress([s.address for s in unexpected_live])  # type: ignore[misc]
        present = [a for a in declared_addrs if a in in_pool]
        if not present:
            detail = f"pool {name} routes to {routes} — none is a declared backend"
        else:
            detail = f"pool {name} routes to {routes}, which {'is' if len(unexpected_live) == 1 else 'are'} " \
                     f"not {'a declared backend' if len(unexpected_live) == 1 else 'declared backends'}"
        if missing:
            detail += f"; declared {compress(missing)} missing"
        return judged(Status.CRIT, detail, ErrorKind.POOL, "misrouted")
    if declared_addrs and len(missing) == len(declared_addrs):
        holds = compress([s.address for s in servers if s.address]) or "no servers"
        idle = " (none taking traffic)" if servers and not traffic else ""
        return judged(Status.CRIT, f"none of the declared backends ({compress(missing)}) is in pool {name}; "
                      f"it holds {holds}{idle}", ErrorKind.POOL, "drift")
    if servers and not traffic:
        down = ", ".join(_describe(s) for s in servers[:4]) + (f" (+{len(servers) - 4})" if len(servers) > 4 else "")
        return judged(Status.CRIT, f"pool {name} has no server that can take traffic: {down}",
                      ErrorKind.MEMBERS_DOWN, "pool 0 UP")
    if not servers:
        return judged(Status.CRIT, f"pool {name} has no servers", ErrorKind.POOL, "empty")
    if missing:
        present = len(declared_addrs) - len(missing)
        return judged(Status.WARN, f"declared {compress(missing)} missing from pool {name} "
                      f"({present}/{len(declared_addrs)} present)", ErrorKind.POOL)
    impaired = [s for s in servers if not s.serving and (not s.address or s.address in declared_addrs
                                                          or not declared_addrs)]
    if impaired:
        listed = ", ".join(_describe(s) for s in impaired[:3]) + (f" (+{len(impaired) - 3})" if len(impaired) > 3
                                                                  else "")
        return judged(Status.WARN, f"pool {name}: {len(serving)}/{len(servers)} up — {listed}",
                      ErrorKind.MEMBERS_DOWN)
    tail = "all declared backends present" if declared_addrs else "no backend layer declared to compare with"
    idle = [s for s in unexpected if not s.receives_traffic]
    if idle:
        tail += f"; undeclared but taking no traffic: {', '.join(_describe(s) for s in idle)}"
    return judged(Status.OK, f"pool {name}: {len(serving)}/{len(servers)} up, {tail}", None)
