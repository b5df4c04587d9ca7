"""A load balancer's pool, and how it compares with the backends the layout declares.

Both the haproxy and nginx checks (live) and `lint --lb-config` (static) build a `Pool`
and hand it to `judge_pool`, so the 2023-12-07 failure mode — a pool quietly pointing at
the wrong servers while the right ones are healthy — is judged by one set of rules.
Addresses are compared, never names: a misconfigured pool can keep the right server
names on the wrong addresses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from stackscope.kinds import Invalid, parse_address
from stackscope.model import Address, ErrorKind, Status
from stackscope.words import plural

# Why a member's address is open when its host name has no address here. The gate compares
# names as written unless it is told to resolve them; the live checks resolve every name
# through the layout's resolver, as the LB did when it loaded its config.
COMPARE_WITH_RESOLVE = "a host name: compare with --resolve"
DOES_NOT_RESOLVE = "does not resolve"
LAYOUT_RESOLVER_FAILED = "a host name the layout's resolver does not resolve"

# Whether a member takes new requests and, if not, why: PoolServer.service, the `service`
# fact, and PoolMember.service in the evidence the diagnosis reads (never the state words,
# which each LB words its own way). The words live in the model; re-exported here.
from stackscope.model import (  # noqa: E402
    BACKUP,
    DISABLED,
    DOWN_BY_CHECK,
    DRAIN,
    IN,
    MAINT,
    NOLB,
    UNKNOWN,
    WEIGHT_0,
    PoolEvidence,
    PoolMember,
)

__all__ = ["BACKUP", "DISABLED", "DOWN_BY_CHECK", "DRAIN", "IN", "MAINT", "NOLB", "UNKNOWN", "WEIGHT_0"]


@dataclass(frozen=True)
class PoolServer:
    """One member of an LB pool as the LB sees it."""

    name: str
    address: str | None  # "ip:port" (IPv6 as [ip]:port); None when the source hides it
    state: str  # as the LB words it: UP, DOWN, MAINT, DRAIN, NOLB, "UP 1/3", "no check", ...
    receives_traffic: bool  # new requests go to it right now, as a primary (a backup never does)
    serving: bool  # up and healthy as far as the LB knows
    check: str = ""  # last health check, e.g. "L7OK 200", "L4CON Connection refused"
    last_change_s: int | None = None
    sessions: int | None = None
    errors: int | None = None
    weight: int | None = None
    flags: tuple[str, ...] = ()  # backup, down, ...
    configured_as: str | None = None  # the address as written in the config, when it is not an ip:port
    line: int | None = None  # where it is defined, for static configs
    file: str | None = None  # the file that defines it (an nginx include, say), for static configs
    address_note: str = ""  # why address is None when the config, not the source, leaves it open
    standby: bool = False  # a backup member: it takes traffic when the primaries fail
    service: str = ""  # IN, BACKUP, DOWN_BY_CHECK, MAINT...; empty: IN if it receives traffic, else UNKNOWN
    check_failing: bool = False  # the LB's last health check of it failed (it may still be UP 1/2)
    errors_rising: bool = False  # its error, retry or redispatch counters rose since the last read
    failures: int | None = None  # error + retry + redispatch counters, where the LB keeps them
    readmit_s: float | None = None  # see model.PoolMember.readmit_s
    # read from a config that health-checks it: it takes traffic only once a check passes,
    # which a config cannot tell; judged as a running LB judges a member that is not UP yet
    health_checked: bool = False

    def service_word(self) -> str:
        return self.service or (IN if self.receives_traffic else UNKNOWN)

    def to_fact(self, declared: bool, declared_as: str = "") -> dict[str, Any]:
        fact: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "state": self.state,
            "service": self.service_word(),
            "check": self.check,
            "last_change_s": self.last_change_s,
            "sessions": self.sessions,
            "errors": self.errors,
            "weight": self.weight,
            "declared": declared,
        }
        if declared_as:
            fact["declared_as"] = declared_as  # the layout's name for it: auth-1
        if self.flags:
            fact["flags"] = list(self.flags)
        if self.configured_as:
            fact["configured_as"] = self.configured_as
        if self.address_note:
            fact["address_note"] = self.address_note
        if self.readmit_s is not None:
            fact["readmit_s"] = self.readmit_s  # how long the LB may keep it out once it answers
        return fact


class PoolFacts(dict):
    """The `pool` fact (a plain dict for display and JSON) that also carries the typed
    PoolEvidence. Every LB check builds its Result from judge_pool's facts through
    probes.common.result, which moves the evidence into Result.evidence: a new LB check
    gets it without a line of its own (a copy of the outer facts keeps this inner dict)."""

    evidence: PoolEvidence | None = None


def pool_evidence(pool: Pool, match: dict[int, Declared]) -> PoolEvidence:
    return PoolEvidence(
        pool.name,
        tuple(
            PoolMember(
                name=s.name,
                address=s.address,
                service=s.service_word(),
                declared=i in match,
                declared_as=match[i].label if i in match else "",
                state=s.state,
                check=s.check,
                check_failing=s.check_failing,
                errors_rising=s.errors_rising,
                readmit_s=s.readmit_s,
            )
            for i, s in enumerate(pool.servers)
        ),
    )


@dataclass(frozen=True)
class Pool:
    name: str
    source: str  # where the pool was read: "stats CSV http://…", "nginx.conf:12"
    servers: tuple[PoolServer, ...]
    status: str | None = None  # the LB's own word for the whole pool, when it has one
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific facts
    # Read from a config file, not from the running LB: nothing is known of health, so
    # a member is "enabled", never "up" (a gate on an unprobed file must not say "up").
    from_config: bool = False

    @property
    def serving_word(self) -> str:
        return "enabled" if self.from_config else "up"


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
    matches: tuple[tuple[int, str], ...] = ()  # (index in pool.servers, declared label)
    unrouted: bool = False  # the config routes no traffic to the pool


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
        for port in ports[1:] + [None]:
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


def _port(text: str | None) -> int | None:
    match = re.search(r":(\d+)$", text or "")
    return int(match.group(1)) if match else None


def _could_be(server: PoolServer, declared: Declared) -> bool:
    """With an unknown address on one side, the two may be the same backend unless their
    ports say otherwise."""
    mine, theirs = _port(server.address or server.configured_as), _port(declared.address or declared.written)
    return mine is None or theirs is None or mine == theirs


def judge_pool(pool: Pool, declared: list[Declared]) -> Judgement:
    """Judge a pool on its own health and against the declared backends.

    A pool read from a config (its `used_by` fact lists what routes to it) that nothing
    routes to is CRIT whatever its members: the users' traffic does not reach the
    declared backends (`default_backend other`, a typo in proxy_pass). A running LB's
    stats say nothing about routing (no `used_by`), so this rule is for configs only.
    """
    judgement = _judge_members(pool, declared)
    if "used_by" not in pool.extra or pool.extra["used_by"]:
        return judgement
    main = pool.extra.get("main")
    where = f" in {os.path.basename(main)}" if main else ""
    detail = f"nothing routes to pool {pool.name}{where}: users' traffic does not reach the declared backends"
    routes = pool.extra.get("routes")
    if routes:
        detail += f" (traffic goes to {', '.join(routes)})"
    if judgement.status is not Status.OK:
        detail += f"; {judgement.detail}"
    return replace(
        judgement, status=Status.CRIT, detail=detail, key_fact="unrouted", kind=ErrorKind.POOL, unrouted=True
    )


def _judge_members(pool: Pool, declared: list[Declared]) -> Judgement:
    """The pool's members, on their own health and against the declared backends.

    In order of severity:
    - a member that is not a declared backend and receives traffic: CRIT (misrouting),
      even when the frontend answers 200 — wrong servers may answer;
    - none of the declared backends in the pool: CRIT; no member can take traffic: CRIT;
    - some declared missing, an undeclared backup (it takes traffic when the primaries
      fail) or undeclared DOWN member (it takes traffic once it comes UP), a member whose
      address the config leaves open, some members down, in maintenance or draining: WARN;
    - declared backends that could not be resolved, so the pool cannot be compared:
      UNKNOWN, never OK. Names are matched as written when both sides are names.
    """
    match = _match(pool.servers, declared)
    members = _classify(pool.servers, declared, match)
    facts = _facts(pool, declared, match, members)
    key = f"pool {len(members.serving)}/{len(pool.servers)} {'enabled' if pool.from_config else 'UP'}"

    def judged(status: Status, detail: str, kind: ErrorKind | None, key_fact: str = key) -> Judgement:
        return Judgement(
            status,
            detail,
            key_fact,
            kind,
            facts,
            tuple(members.missing),
            tuple(s.address for s in members.strangers if s.address),
            tuple((i, d.label) for i, d in match.items()),
        )

    return _ladder(pool, declared, match, members, judged)


def _match(servers: tuple[PoolServer, ...], declared: list[Declared]) -> dict[int, Declared]:
    """Which member (by index) is which declared backend: by address, or by the name as
    written when neither side has an address."""
    known = {d.address: d for d in declared if d.address}
    by_written = {d.written.lower(): d for d in declared if not d.address}
    match: dict[int, Declared] = {}
    for index, server in enumerate(servers):
        if server.address and server.address in known:
            match[index] = known[server.address]
        elif not server.address and (server.configured_as or "").lower() in by_written:
            match[index] = by_written[server.configured_as.lower()]  # type: ignore[union-attr]
    return match


@dataclass(frozen=True)
class _Members:
    """The pool's members and the declared backends, sorted by what the ladder asks."""

    open_declared: list[Declared]  # declared backends no member matched
    unresolved: list[Declared]  # ... of them, those without an address
    unknown: list[PoolServer]  # unmatched members whose address the source leaves open
    strangers: list[PoolServer]  # members that are no declared backend
    missing: list[str]  # declared addresses not in the pool
    live: list[PoolServer]  # strangers taking traffic
    standby: list[PoolServer]  # strangers that are serving backups
    coming: list[PoolServer]  # strangers that take traffic once they come UP
    idle: list[PoolServer]  # strangers taking none
    traffic: list[PoolServer]  # members that take traffic (backups that serve included)
    serving: list[PoolServer]


def _classify(servers: tuple[PoolServer, ...], declared: list[Declared], match: dict[int, Declared]) -> _Members:
    """Each member's service and traffic state, against the declared backends."""
    open_declared = [d for d in declared if d not in match.values()]
    unresolved = [d for d in open_declared if not d.address]
    unknown = [s for i, s in enumerate(servers) if i not in match and not s.address]
    undeclared = [s for i, s in enumerate(servers) if i not in match and s.address and declared]
    strangers = [s for s in undeclared if not any(_could_be(s, d) for d in unresolved)]
    missing = [d.address for d in open_declared if d.address and not any(_could_be(s, d) for s in unknown)]
    live: list[PoolServer] = []  # strangers by what they do with traffic
    standby: list[PoolServer] = []
    coming: list[PoolServer] = []
    idle: list[PoolServer] = []
    # a config's undeclared member behind a health check, beside declared ones (a typo in
    # a port): WARN until seen taking traffic, as a running LB's member that is not UP yet
    # (live: CRIT once UP). A pool with no declared member at all stays a misroute.
    pending = bool(match)
    for s in strangers:
        if s.receives_traffic and not (s.health_checked and pending):
            live.append(s)
        elif s.standby and s.serving:
            standby.append(s)
        elif s.state.startswith("DOWN") or s.service == DOWN_BY_CHECK or s.receives_traffic:  # Apache: HcFl/Err
            coming.append(s)
        else:
            idle.append(s)
    traffic = [s for s in servers if s.receives_traffic or (s.standby and s.serving)]
    serving = [s for s in servers if s.serving]
    return _Members(
        open_declared, unresolved, unknown, strangers, missing, live, standby, coming, idle, traffic, serving
    )


def _facts(pool: Pool, declared: list[Declared], match: dict[int, Declared], members: _Members) -> dict[str, Any]:
    """The pool as facts (with its typed evidence), for every renderer."""
    servers = pool.servers
    pool_fact = PoolFacts(
        {
            "backend": pool.name,
            "source": pool.source,
            "status": pool.status,
            "servers": [s.to_fact(i in match, match[i].label if i in match else "") for i, s in enumerate(servers)],
            "declared": [d.address or d.written for d in declared],
            # the layout's name of each declared backend, so a table can show that a bad
            # pool kept the names (auth1, auth2) on other addresses
            "declared_names": {d.address or d.written: d.label for d in declared},
            "missing": members.missing,
            "unexpected": [s.address for s in members.strangers],
            **pool.extra,
        }
    )
    pool_fact.evidence = pool_evidence(pool, match)
    facts: dict[str, Any] = {"pool": pool_fact}
    if members.unresolved:
        facts["pool"]["unresolved"] = [f"{d.written}: {d.note}" for d in members.unresolved]
    if members.unknown:
        facts["pool"]["unknown_address"] = [
            f"{s.name}: {s.address_note or 'hidden by the source'}" for s in members.unknown
        ]
    return facts


def _ladder(
    pool: Pool,
    declared: list[Declared],
    match: dict[int, Declared],
    members: _Members,
    judged: Callable[..., Judgement],
) -> Judgement:
    """The status ladder: the first rung that holds names the pool's state."""
    servers = pool.servers
    open_declared, unresolved, unknown = members.open_declared, members.unresolved, members.unknown
    missing, live, standby, coming, idle = members.missing, members.live, members.standby, members.coming, members.idle
    traffic, serving = members.traffic, members.serving
    unresolved_text = ", ".join(f"{d.written} ({d.note})" if d.note else d.written for d in unresolved)
    name = pool.name
    if servers and len(unknown) == len(servers) and not any(s.address_note for s in unknown):
        return judged(
            Status.UNKNOWN, f"pool {name}: the source shows no server addresses", ErrorKind.CONFIG, "no addresses"
        )
    if live:
        routes = compress([s.address for s in live])  # type: ignore[misc]
        if not match:
            detail = f"pool {name} routes to {routes} — none is a declared backend"
        else:
            detail = (
                f"pool {name} routes to {routes}, which {'is' if len(live) == 1 else 'are'} "
                f"not {'a declared backend' if len(live) == 1 else 'declared backends'}"
            )
        if missing:
            detail += f"; declared {compress(missing)} missing"
        return judged(Status.CRIT, detail, ErrorKind.POOL, "misrouted")
    if declared and len(missing) == len(declared):
        holds = compress([s.address for s in servers if s.address]) or "no servers"
        idle_note = " (none taking traffic)" if servers and not traffic else ""
        return judged(
            Status.CRIT,
            f"none of the declared backends ({compress(missing)}) is in pool {name}; it holds {holds}{idle_note}",
            ErrorKind.POOL,
            "drift",
        )
    if servers and not traffic:
        down = ", ".join(_describe(s) for s in servers[:4]) + (f" (+{len(servers) - 4})" if len(servers) > 4 else "")
        return judged(
            Status.CRIT, f"pool {name} has no server that can take traffic: {down}", ErrorKind.MEMBERS_DOWN, "pool 0 UP"
        )
    if not servers:
        return judged(Status.CRIT, f"pool {name} has no servers", ErrorKind.POOL, "empty")
    warnings: list[tuple[ErrorKind, str]] = []
    if missing:
        present = len(declared) - len(open_declared)
        warnings.append(
            (
                ErrorKind.POOL,
                f"declared {compress(missing)} missing from pool {name} ({present}/{len(declared)} present)",
            )
        )
    for server in standby:
        warnings.append(
            (
                ErrorKind.POOL,
                f"pool {name}: {server.address} ({server.name}, backup) is not a declared "
                "backend — it takes traffic when the primaries fail",
            )
        )
    for server in coming:
        warnings.append(
            (
                ErrorKind.POOL,
                f"pool {name}: {server.address} ({server.name}, {server.state}) is not a "
                "declared backend — it takes traffic once "
                + ("its health check passes" if server.health_checked else "it comes UP"),
            )
        )
    for server in unknown:
        warnings.append(
            (
                ErrorKind.CONFIG,
                f"pool {name}: the address of {server.name} is unknown "
                f"({server.address_note or 'hidden by the source'})",
            )
        )
    impaired = [s for i, s in enumerate(servers) if not s.serving and (i in match or not declared)]
    if impaired:
        listed = ", ".join(_describe(s) for s in impaired[:3]) + (
            f" (+{len(impaired) - 3})" if len(impaired) > 3 else ""
        )
        warnings.append(
            (ErrorKind.MEMBERS_DOWN, f"pool {name}: {len(serving)}/{len(servers)} {pool.serving_word} — {listed}")
        )
    if warnings:
        detail = "; ".join(text for _, text in warnings)
        if unresolved:
            detail += f"; {plural(len(unresolved), 'declared backend')} unresolved: {unresolved_text}"
        return judged(Status.WARN, detail, warnings[0][0])
    if unresolved:
        return judged(
            Status.UNKNOWN,
            f"pool {name}: {len(serving)}/{len(servers)} {pool.serving_word}; cannot compare the pool: "
            f"{plural(len(unresolved), 'declared backend')} unresolved: {unresolved_text}",
            ErrorKind.RESOLVE,
            "cannot compare",
        )
    tail = "all declared backends present" if declared else "no backend layer declared to compare with"
    if idle:
        tail += f"; undeclared but taking no traffic: {', '.join(_describe(s) for s in idle)}"
    return judged(Status.OK, f"pool {name}: {len(serving)}/{len(servers)} {pool.serving_word}, {tail}", None)
