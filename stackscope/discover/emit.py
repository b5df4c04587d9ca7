"""The layout `init` writes, built as data and serialised by the YAML emitter; only the
provenance comments are text of our own (terminal-safe, one line each). The text is
parsed back by the layout loader before anyone sees it: a layout `lint` would refuse is
our bug, reported as such, never printed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from stackscope.discover.found import FoundLb, FoundPool, Member, Origin, Service, safe

INTERVAL, TIMEOUT = "5s", "2s"  # an incident's pace: a fresh verdict every few seconds, a hang named in two


@dataclass
class Entry:
    check: dict[str, Any]
    origin: Origin
    review: str = ""


@dataclass
class LayerOut:
    name: str
    role: str
    entries: list[Entry] = field(default_factory=list)


class InitBug(Exception):
    """The generated layout does not load: a bug in init, named by its entry."""


@dataclass
class Plan:
    """Everything the layout will say, in order (upstream first)."""

    name: str
    read: list[str] = field(default_factory=list)  # what was read, for the header
    review: list[str] = field(default_factory=list)  # what to review, for the header
    layers: list[LayerOut] = field(default_factory=list)


def _unique(name: str, taken: set[str], prefix: str) -> str:
    candidate = name if name not in taken else f"{prefix}-{name}"
    number = 2
    while candidate in taken:
        candidate, number = f"{prefix}-{name}-{number}", number + 1
    taken.add(candidate)
    return candidate


def layer_name(pool: str) -> str:
    return f"{pool} backends"


def plan_lb(
    plan: Plan,
    lb: FoundLb,
    frontends: list[str],
    declared: dict[str, tuple[Member, ...]],
    identity: dict[str, str],
    reviews: dict[str, str],
) -> None:
    """Add the DNS, LB and backend layers for one LB; `declared` replaces a pool's members
    (--backends), `identity` gives a pool's identity header when its members name
    themselves, `reviews` marks entries (by pool name or pool/member) for review."""
    taken = {e.check["name"] for layer in plan.layers for e in layer.entries}
    pools = {p.name: p for p in lb.pools}
    serving = [f for f in lb.frontends if f.pool in pools]
    extra = [(url, Origin("--frontend")) for url in frontends]
    used: list[FoundPool] = []
    for frontend in serving:
        if pools[frontend.pool] not in used:  # type: ignore[index]
            used.append(pools[frontend.pool])  # type: ignore[index]
    if extra and not used:
        used = [p for p in lb.pools if p.routed] or list(lb.pools)
    for pool in lb.pools:
        if pool in used or not pool.members:
            continue
        if pool.routed:
            used.append(pool)
        else:  # declaring it would put a pool nobody uses on the dashboard as if it mattered
            plan.review.append(f"pool {pool.name} ({pool.origin.text}): no frontend routes to it, left out")
    dns = LayerOut("DNS", "dns")
    lbl = LayerOut("Load balancer", "lb")
    backend_layers = []
    for pool in used:
        members = declared.get(pool.name, pool.members)
        if not members:
            plan.review.append(f"pool {pool.name}: no member with an address ({'; '.join(pool.skipped) or 'empty'})")
            continue
        header = identity.get(pool.name)
        urls = [(f.url, f.origin, f.hosts) for f in serving if f.pool == pool.name]
        if not urls and pool is used[0]:
            urls = [(u, o, ()) for u, o in extra]
        for url, origin, hosts in urls:
            check: dict[str, Any] = {
                "http": url.rstrip("/") + pool.health_path,
                "name": _unique(f"frontend-{pool.name}" if len(used) > 1 else "frontend", taken, pool.name),
            }
            if hosts:
                check["headers"] = {"Host": hosts[0]}
            if header:
                check["identity_header"] = header
                check["samples"] = 3  # the LB's answers name who served them; three tell a pool from one server
            lbl.entries.append(Entry(check, origin, reviews.get(pool.name, "")))
            for host in hosts:
                if not any(e.check.get("dns") == host for e in dns.entries):
                    dns.entries.append(Entry({"dns": host, "name": _unique(f"dns-{host}", taken, "dns")}, origin))
        layer = layer_name(pool.name)
        if lb.admin is not None:
            check = {lb.admin.type: lb.admin.target, "name": _unique(f"pool-{pool.name}", taken, lb.kind)}
            selector = pool.name if pool.selector is None else pool.selector
            if selector:
                check[lb.admin.pool_option] = selector
            check.update(dict(lb.admin.options))
            check["backends"] = layer
            why = reviews.get(pool.name, "") or ("" if pool.routed else "no frontend routes to this pool")
            lbl.entries.append(Entry(check, Origin(f"{pool.origin.text} (pool {pool.name})"), why))
        out = LayerOut(layer, "backend")
        for member in members:
            check = {"http": f"http://{_host(member.host)}:{member.port}{pool.health_path}"}
            check["name"] = _unique(member.name, taken, pool.name)
            if header:
                check["identity_header"] = header
            out.entries.append(Entry(check, member.origin, reviews.get(f"{pool.name}/{member.name}", "")))
        backend_layers.append(out)
    plan.layers.extend(layer for layer in (dns, lbl) if layer.entries)
    plan.layers.extend(backend_layers)


def plan_services(plan: Plan, services: list[Service]) -> None:
    taken = {e.check["name"] for layer in plan.layers for e in layer.entries}
    layers = {"db": LayerOut("Databases", "db"), "cache": LayerOut("Cache", "cache")}
    for service in services:
        name = service.name or service.type
        check: dict[str, Any] = {service.type: service.address, "name": _unique(name, taken, service.type)}
        check.update(dict(service.options))
        if service.password_env:
            check["password_env"] = service.password_env
        role = "cache" if service.type == "redis" else "db"
        origin = service.origin
        if service.password_env:
            origin = Origin(f"{origin.text} — export {service.password_env} with its password")
        layers[role].entries.append(Entry(check, origin))
    plan.layers.extend(layer for layer in layers.values() if layer.entries)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def data_of(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "interval": INTERVAL,
        "timeout": TIMEOUT,
        "layers": [
            {"name": layer.name, "role": layer.role, "checks": [e.check for e in layer.entries]}
            for layer in plan.layers
        ],
    }


def _flow(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=1 << 30, sort_keys=False)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _block(value: dict[str, Any]) -> list[str]:
    return yaml.safe_dump(value, default_flow_style=False, width=1 << 30, sort_keys=False).splitlines()


def _comment(text: str) -> str:
    return "# " + safe(text)


def render(plan: Plan, when: str) -> str:
    """The layout's text: a header comment, then the data with one provenance comment
    per check."""
    lines = [_comment(f"Generated by `stackscope init` on {when} from: {', '.join(plan.read) or 'nothing'}")]
    lines.append(
        _comment("Review before trusting it: the backend layers below are what this layout declares as the truth.")
    )
    lines += [_comment(f"review: {item}") for item in plan.review]
    data = data_of(plan)
    lines += _block({k: data[k] for k in ("name", "interval", "timeout")})
    lines.append("layers:")
    for layer in plan.layers:
        head = _block({"name": layer.name, "role": layer.role})
        lines.append("  - " + head[0])
        lines += ["    " + line for line in head[1:]]
        lines.append("    checks:")
        for entry in layer.entries:
            note = entry.origin.text + (f" — review: {entry.review}" if entry.review else "")
            lines.append(f"      - {_flow(entry.check)}  {_comment(note)}")
    text = "\n".join(lines) + "\n"
    validate(text, data)
    return text


def validate(text: str, data: dict[str, Any]) -> None:
    """The text must be the data, and a layout the loader accepts (without the secrets its
    password_env names, as `lint` does)."""
    from stackscope.kinds import ParseContext
    from stackscope.layout import LayoutError, parse_layout

    if yaml.safe_load(text) != data:
        raise InitBug("the emitted YAML does not read back as the layout built")
    try:
        parse_layout(text, "<stackscope init>", ParseContext(require_env=False))
    except LayoutError as error:
        lines = text.splitlines()
        named = []
        for problem in error.problems:
            entry = lines[problem.line - 1].strip() if 0 < problem.line <= len(lines) else ""
            named.append(f"{problem} (entry: {entry})")
        raise InitBug("; ".join(named)) from None
