"""`stackscope lint LAYOUT --lb-config FILE`: the pre-deploy gate for LB configs.

Reads the haproxy.cfg or nginx.conf about to be deployed (type detected from its
contents), takes the pools the layout's haproxy/nginx checks name (or `--pool`), and
judges each against the declared backends with the same rules the live checks use.
Nothing is probed; host names are compared as written unless `--resolve` is given.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from stackscope.layout import Layout
from stackscope.lb import ConfigError, haproxy_cfg, nginx_conf
from stackscope.lb.pool import Declared, Judgement, Pool, judge_pool
from stackscope.model import Status
from stackscope.schema import Address, is_ip


class GateError(Exception):
    """The gate cannot run: the message says why and how to fix it (exit 3)."""


@dataclass(frozen=True)
class PoolReport:
    pool: Pool
    declared: list[Declared]
    judgement: Judgement


def detect(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(256 * 1024)
    except OSError as exc:
        raise GateError(f"cannot read {path}: {exc.strerror or exc}") from None
    if nginx_conf.split_dump(head) is not None or re.search(r"^\s*(http|events|stream)\s*\{", head, re.M) \
            or re.search(r"^\s*upstream\s+\S+\s*\{", head, re.M):
        return "nginx"
    if re.search(r"^\s*(backend|listen|frontend|defaults|global)\b", head, re.M):
        return "haproxy"
    raise GateError(f"{path} looks like neither an haproxy.cfg nor an nginx config")


def _pool_names(layout: Layout, kind: str, explicit: str | None) -> list[tuple[str, str | None]]:
    """(pool name, backends layer) pairs to check."""
    if explicit:
        return [(explicit, None)]
    names = []
    for check in layout.checks():
        if check.type == kind == "haproxy":
            names.append((check.options.backend, check.options.backends))
        elif check.type == kind == "nginx":
            names.append((check.options.upstream, check.options.backends))
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
        else:
            out.append(Declared(None, check.name, str(address), "a host name: compare with --resolve"))
    return out


def run_gate(layout: Layout, config_path: str, *, pool: str | None = None, resolve=None) -> list[PoolReport]:
    """Judge every pool the layout names in the config; `resolve(host) -> ip | None`."""
    kind = detect(config_path)
    reports = []
    if kind == "haproxy":
        try:
            backends = haproxy_cfg.parse(config_path)
        except ConfigError as exc:
            raise GateError(str(exc)) from None
        for name, layer in _pool_names(layout, kind, pool):
            if name not in backends:
                raise GateError(f"{config_path} has no backend '{name}' (backends: {', '.join(backends) or 'none'})")
            hosts = {s.host for s in backends[name].servers if s.host and not is_ip(s.host)}
            resolved = {h: ip for h in hosts if resolve and (ip := resolve(h))}
            found = haproxy_cfg.pool_of(backends[name], config_path, resolved)
            declared = _declared(layout, layer, resolve)
            reports.append(PoolReport(found, declared, judge_pool(found, declared)))
    else:
        try:
            config = nginx_conf.load(config_path)
        except ConfigError as exc:
            raise GateError(str(exc)) from None
        upstreams = nginx_conf.upstreams(config)
        for name, layer in _pool_names(layout, kind, pool):
            if name not in upstreams:
                raise GateError(f"{config_path} has no upstream '{name}' (upstreams: "
                                f"{', '.join(upstreams) or 'none'})")
            hosts = {s.host for s in upstreams[name].servers if s.host and not is_ip(s.host)}
            resolved = {h: ip for h in hosts if resolve and (ip := resolve(h))}
            found = nginx_conf.pool_of(upstreams[name], resolved)
            declared = _declared(layout, layer, resolve)
            reports.append(PoolReport(found, declared, judge_pool(found, declared)))
    return reports


def render(reports: list[PoolReport], layout_path: str, config_path: str) -> str:
    """A diff per pool: + in the pool but not declared, - declared but not in the pool."""
    lines = []
    config = os.path.basename(config_path)
    for report in reports:
        pool = report.pool
        lines.append(f"pool {pool.name} ({pool.source}) vs declared backends ({layout_path}):")
        declared = {d.address: d for d in report.declared if d.address}
        for server in pool.servers:
            where = f"{config}:{server.line}" if server.line else config
            shown = server.address or server.configured_as or server.name
            label = f"{server.name} [{where}]"
            if server.address and server.address in declared:
                lines.append(f"  = {shown:<24} {label} is {declared[server.address].label}")
            elif not server.address and server.configured_as:
                lines.append(f"  ? {shown:<24} {label}: a host name; compare with --resolve")
            else:
                what = "not a declared backend" + ("" if server.receives_traffic else f" ({server.state})")
                lines.append(f"  + {shown:<24} {label}: {what}")
        for address, item in declared.items():
            if address not in {s.address for s in pool.servers}:
                lines.append(f"  - {address:<24} {item.label}: declared, not in the pool")
        for item in report.declared:
            if not item.address:
                lines.append(f"  ? {item.written:<24} {item.label}: {item.note}")
        for template in pool.extra.get("dynamic", []):
            lines.append(f"  ~ {template}: members come from DNS at run time, not checked")
        if not pool.extra.get("used_by"):
            lines.append(f"  ! nothing routes to {pool.name} in {config}")
        judgement = report.judgement
        lines.append(f"{judgement.status.glyph} {judgement.status.word}: {judgement.detail}")
        lines.append("")
    return "\n".join(lines).rstrip()


def gate_status(reports: list[PoolReport]) -> Status:
    return Status.worst((r.judgement.status for r in reports), default=Status.OK)
