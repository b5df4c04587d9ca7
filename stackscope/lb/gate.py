"""`stackscope lint LAYOUT --lb-config FILE`: the pre-deploy gate for LB configs.

Reads the haproxy.cfg or nginx.conf about to be deployed (type detected from its
contents), takes the pools the layout's haproxy/nginx checks name (or `--pool`), and
judges each against the declared backends with the same rules the live checks use.
Nothing is probed; host names are compared as written unless `--resolve` is given (a
name on one side and an address on the other cannot be compared, and the gate says so).
A pool that no frontend routes to fails the gate: the users' traffic goes elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stackscope.files import FileRefused, read_text
from stackscope.lb import ConfigError, apache_conf, caddy_conf, haproxy_cfg, nginx_conf, varnish_vcl
from stackscope.lb.pool import COMPARE_WITH_RESOLVE, DOES_NOT_RESOLVE, Declared, Judgement, Pool, judge_pool
from stackscope.model import Address, Layout, Status, is_ip
from stackscope.safetext import terminal_safe

MAX_CONFIG_BYTES = haproxy_cfg.MAX_BYTES  # the larger of the two parsers' caps


class GateError(Exception):
    """The gate cannot run: the message says why and how to fix it (exit 3). It names
    pools and files from the config, so it is made safe for a terminal here."""

    def __init__(self, message: str) -> None:
        super().__init__(terminal_safe(message))


@dataclass(frozen=True)
class PoolReport:
    pool: Pool
    declared: list[Declared]
    judgement: Judgement


def detect(path: str) -> str:
    try:
        head = read_text(path, MAX_CONFIG_BYTES, errors="replace")[: 256 * 1024]
    except FileRefused as exc:
        raise GateError(f"--lb-config {exc.strerror}") from None
    except OSError as exc:
        raise GateError(f"cannot read {path}: {exc.strerror or exc}") from None
    if re.search(
        r"^\s*<(Proxy|ProxyMatch|VirtualHost|IfModule|IfDefine|Location|Directory)\b", head, re.M | re.I
    ) or re.search(
        r"^\s*(BalancerMember|ProxyPass|ProxyPassMatch|ProxySet|LoadModule|ServerRoot|IncludeOptional)\s",
        head,
        re.M | re.I,
    ):  # nginx and haproxy have neither <Sections> nor these directives
        return "apache"
    if varnish_vcl.DETECT.search(head) or varnish_vcl.split_show(head):
        return "varnish"
    if caddy_conf.looks_like(path, head):
        return "caddy"
    if (
        nginx_conf.split_dump(head) is not None
        or re.search(r"^\s*(http|events|stream)\s*\{", head, re.M)
        or re.search(r"^\s*upstream\s+\S+\s*\{", head, re.M)
        or re.search(r"^\s*include\s+\S+\s*;", head, re.M)
    ):  # haproxy has no include: a file of includes
        return "nginx"
    if re.search(r"^\s*(backend|listen|frontend|defaults|global)\b", head, re.M):
        return "haproxy"
    raise GateError(
        f"{path} looks like neither an haproxy.cfg nor an nginx config"
        " (nor an Apache httpd config, a Varnish VCL, a Caddy JSON config or a Caddyfile)"
    )


# The option of each LB check type that names its pool (caddy: a route selector, or
# none: the reverse_proxy best matching the declared backends).
POOL_OPTION: dict[str, Callable[[Any], str | None]] = {
    "haproxy": lambda options: options.backend,
    "nginx": lambda options: options.upstream,
    "apache": lambda options: options.balancer,
    "caddy": lambda options: str(options.upstream) if options.upstream else None,
    "varnish": lambda options: options.director,
}


def _pool_names(layout: Layout, kind: str, explicit: str | None) -> list[tuple[str | None, str | None]]:
    """(pool name, backends layer) pairs to check."""
    if explicit:
        return [(explicit, None)]
    names = [
        (POOL_OPTION[kind](check.options), check.options.backends) for check in layout.checks() if check.type == kind
    ]
    if not names:
        raise GateError(f"the layout has no {kind} check naming a pool: add one, or name the pool with --pool")
    return list(dict.fromkeys(names))


def _declared(layout: Layout, layer: str | None, resolve) -> list[Declared]:
    out = []
    for check, address in layout.declared_backends(layer):
        if is_ip(address.host):
            out.append(Declared(str(address), check.name, str(address)))
            continue
        ip = resolve(address.host) if resolve else None
        if ip:
            out.append(Declared(str(Address(ip, address.port)), check.name, str(address)))
        else:  # unresolved: compared as written with the pool's names, never taken as a match
            out.append(Declared(None, check.name, str(address), DOES_NOT_RESOLVE if resolve else COMPARE_WITH_RESOLVE))
    return out


# A config loaded for the gate: finds a named pool in it, given the declared backends.
Finder = Callable[[Any, list[Declared]], Pool]
Resolve = Callable[[str], "str | None"] | None


def _resolved(hosts: set[str], resolve: Resolve) -> dict[str, str]:
    return {h: ip for h in hosts if resolve and (ip := resolve(h))}


def _haproxy(config_path: str, resolve: Resolve, note: str) -> Finder:
    cfg = haproxy_cfg.parse(config_path)
    backends = cfg.backends

    def find(name: str, declared: list[Declared]) -> Pool:
        if name not in backends:
            raise GateError(f"{config_path} has no backend '{name}' (backends: {', '.join(backends) or 'none'})")
        hosts = {s.host for s in backends[name].servers if s.host and not is_ip(s.host)}
        return haproxy_cfg.pool_of(cfg, name, _resolved(hosts, resolve), note)

    return find


def _apache(config_path: str, resolve: Resolve, note: str) -> Finder:
    apache = apache_conf.load(config_path)
    pools = apache_conf.balancers(apache)
    by_lower = {name.lower(): balancer for name, balancer in pools.items()}

    def find(name: str, declared: list[Declared]) -> Pool:
        if name.lower() not in by_lower:
            raise GateError(f"{config_path} has no balancer://{name} (balancers: {', '.join(pools) or 'none'})")
        balancer = by_lower[name.lower()]
        hosts = {m.host for m in balancer.members if m.host and not is_ip(m.host)}
        return apache_conf.pool_of(balancer, _resolved(hosts, resolve), apache, note)

    return find


def _caddy(config_path: str, resolve: Resolve, note: str) -> Finder:
    caddy = caddy_conf.load(config_path)
    return lambda name, declared: caddy_conf.gate_pool(caddy, name, declared, resolve, note)


def _varnish(config_path: str, resolve: Resolve, note: str) -> Finder:
    vcl = varnish_vcl.load(config_path)
    return lambda name, declared: varnish_vcl.gate_pool(vcl, name, resolve, note)


def _nginx(config_path: str, resolve: Resolve, note: str) -> Finder:
    config = nginx_conf.load(config_path)
    upstreams = nginx_conf.upstreams(config)

    def find(name: str, declared: list[Declared]) -> Pool:
        if name not in upstreams:
            raise GateError(f"{config_path} has no upstream '{name}' (upstreams: {', '.join(upstreams) or 'none'})")
        hosts = {s.host for s in upstreams[name].servers if s.host and not is_ip(s.host)}
        return nginx_conf.pool_of(upstreams[name], _resolved(hosts, resolve), config, note)

    return find


# What detect() names -> how the gate reads that kind of config.
LOADERS: dict[str, Callable[[str, Resolve, str], Finder]] = {
    "haproxy": _haproxy,
    "apache": _apache,
    "caddy": _caddy,
    "varnish": _varnish,
    "nginx": _nginx,
}


def run_gate(layout: Layout, config_path: str, *, pool: str | None = None, resolve: Resolve = None) -> list[PoolReport]:
    """Judge every pool the layout names in the config; `resolve(host) -> ip | None`."""
    kind = detect(config_path)
    note = DOES_NOT_RESOLVE if resolve else COMPARE_WITH_RESOLVE  # for a server whose name has no address
    reports = []
    try:
        find = LOADERS[kind](config_path, resolve, note)
        for name, layer in _pool_names(layout, kind, pool):
            declared = _declared(layout, layer, resolve)
            found = find(name, declared)
            reports.append(PoolReport(found, declared, judge_pool(found, declared)))
    except ConfigError as exc:
        raise GateError(str(exc)) from None
    return reports


def _where(file: str | None, config_path: str, main: str | None) -> str:
    """The file a server is defined in, as a reader finds it: the config's own name for
    the main file, a path relative to it for includes."""
    if not file:
        return os.path.basename(config_path)
    if file in (config_path, main):
        return os.path.basename(file)
    base = os.path.dirname(main or config_path)
    if os.path.isabs(file) != os.path.isabs(base):
        return file
    relative = os.path.relpath(file, base)
    if relative.startswith(".."):
        return file
    return relative


def render(reports: list[PoolReport], layout_path: str, config_path: str) -> str:
    """A diff per pool: + in the pool but not declared, - declared but not in the pool,
    ? not comparable (a name without --resolve, an address left to run time)."""
    lines = []
    config = os.path.basename(config_path)
    for report in reports:
        pool = report.pool
        judgement = report.judgement
        main = pool.extra.get("main")
        lines.append(f"pool {pool.name} ({pool.source}) vs declared backends ({layout_path}):")
        matches = dict(judgement.matches)
        strangers = set(judgement.unexpected)
        for index, server in enumerate(pool.servers):
            where = _where(server.file, config_path, main)
            where = f"{where}:{server.line}" if server.line else where
            shown = server.address or server.configured_as or server.name
            label = f"{server.name} [{where}]"
            if index in matches:
                lines.append(f"  = {shown:<24} {label} is {matches[index]}")
            elif not server.address:
                lines.append(f"  ? {shown:<24} {label}: {server.address_note or 'address unknown'}")
            elif server.address in strangers or not report.declared:
                what = "not a declared backend" + ("" if server.receives_traffic else f" ({server.state})")
                lines.append(f"  + {shown:<24} {label}: {what}")
            else:
                lines.append(f"  ? {shown:<24} {label}: not compared (a declared backend is unresolved)")
        matched = set(matches.values())
        for item in report.declared:
            if item.label in matched:
                continue
            if item.address and item.address in judgement.missing:
                lines.append(f"  - {item.address:<24} {item.label}: declared, not in the pool")
            elif not item.address:
                lines.append(f"  ? {item.written:<24} {item.label}: {item.note}")
        for template in pool.extra.get("dynamic", []):
            lines.append(f"  ~ {template}: members come from DNS at run time, not checked")
        if judgement.unrouted:
            lines.append(f"  ! nothing routes to {pool.name} in {config}")
        lines.append(f"{judgement.status.label}: {judgement.detail}")
        lines.append("")
    # names, addresses and notes come from the config file: no line may drive the terminal
    return "\n".join(terminal_safe(line) for line in lines).rstrip()


def gate_status(reports: list[PoolReport]) -> Status:
    return Status.worst((r.judgement.status for r in reports), default=Status.OK)
