"""A running LB as an `init` SOURCE: its live pools, read with exactly the requests its
check makes (the probes' own readers, so the read-only allow-lists and the caps apply:
nothing here sends a command or a request of its own), turned into FoundLb.

A live pool also says which members the LB holds out of rotation now (Member.out), so
init can mark them for review instead of declaring them. Where the source cannot show
the address users connect to (HAProxy's stats name frontends, not their binds; varnishd's
CLI never shows its -a), `--frontend URL` is required and the error says so."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace
from typing import Any

from stackscope.discover.found import FoundLb, FoundPool, Frontend, Origin, PoolCheck, safe
from stackscope.discover.lbconfig import Options, caddy_pools, pool_members, varnish_pools
from stackscope.lb.pool import Pool, PoolServer

PREFIXES = ("http://", "https://", "unix:", "varnish://")
KINDS = ("haproxy", "apache", "caddy", "varnish")


class LiveError(Exception):
    """The live LB could not be read; the message names the source and says why (safe)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(safe(f"{source}: {message}"))


def is_live(source: str) -> bool:
    return source.startswith(PREFIXES)


def kind_of(source: str, forced: str | None) -> str:
    """The LB behind a live source, from its form: unix: is HAProxy's Runtime API,
    varnish:// Varnish's CLI, an http URL by its path (…/stats or ;csv, …balancer-manager,
    or none at all: Caddy's admin API)."""
    if forced:
        if forced not in KINDS:
            raise LiveError(source, f"--kind {forced} has no live source (live: {', '.join(KINDS)})")
        return forced
    if source.startswith("unix:"):
        return "haproxy"
    if source.startswith("varnish://"):
        return "varnish"
    path = "/" + source.split("://", 1)[1].partition("/")[2]
    if path.rstrip("/").endswith(("/stats", ";csv")) or path.endswith("/stats;csv"):
        return "haproxy"
    if "balancer-manager" in path:
        return "apache"
    if path in ("/", "/config/", "/config"):
        return "caddy"
    raise LiveError(
        source, "cannot tell which LB publishes this URL: give --kind haproxy (stats), apache or caddy (admin API)"
    )


def read(source: str, kind: str | None, opts: Options, frontends: list[str], timeout: float) -> FoundLb:
    """The live LB at `source` as FoundLb; LiveError (never a traceback) when it cannot be read."""
    from stackscope.lb import ConfigError
    from stackscope.lb.apache_manager import ManagerError
    from stackscope.lb.caddy_conf import ShapeError
    from stackscope.lb.haproxy_stats import RefusedCommand, StatsError
    from stackscope.lb.varnish_cli import CliError, Refused
    from stackscope.probes.common import Deadline, ProbeFailure
    from stackscope.probes.context import ProbeContext

    lb_kind = kind_of(source, kind)
    reader = {"haproxy": _haproxy, "apache": _apache, "caddy": _caddy, "varnish": _varnish}[lb_kind]

    async def run() -> FoundLb:
        ctx = ProbeContext()
        try:
            return await reader(source, opts, bool(frontends), ctx, Deadline(timeout))
        finally:
            await ctx.aclose()

    try:
        return asyncio.run(run())
    except ProbeFailure as failure:
        raise LiveError(source, failure.detail) from None
    except (StatsError, ManagerError, ShapeError, ConfigError, CliError) as exc:
        raise LiveError(source, f"cannot read the pool: {exc}") from None
    except (RefusedCommand, Refused) as exc:  # a name from the server that would make a command of its own
        raise LiveError(source, f"refused to send a command built from the server's answer: {exc}") from None


def _parse(kind: Any, text: str, source: str) -> Any:
    from stackscope.kinds import Invalid, ParseContext

    try:
        return kind.parse(text, ParseContext())
    except Invalid as exc:
        raise LiveError(source, f"{exc.message} ({exc.fix})" if exc.fix else exc.message) from None


def _need_frontend(source: str, what: str, given: bool) -> None:
    if not given:
        raise LiveError(source, f"{what}: give the users' entry point through the LB with --frontend URL")


def _found(
    kind: str, source: str, label: str, pools: list[Pool], health: dict[str, str], admin: PoolCheck, notes: list[str]
) -> FoundLb:
    found = []
    for pool in pools:

        def origin(server: PoolServer, pool: Pool = pool) -> Origin:
            return Origin(safe(f"{label}: {pool.name}/{server.name} {server.state}"))

        members, skipped = pool_members(pool, origin)
        where = Origin(safe(f"{label}: {pool.name}"))
        path = health.get(pool.name, "/")
        found.append(FoundPool(safe(pool.name), _named(members, pool.name), where, path, None, True, skipped))
    return FoundLb(kind, safe(source), (), tuple(found), admin, tuple(notes))


def _named(members: tuple, pool: str) -> tuple:
    """Members whose LB name is a URL (an Apache worker without a route) get POOL-N."""
    from dataclasses import replace

    return tuple(
        replace(m, name=safe(f"{pool}-{n}")) if "/" in m.name or not m.name.strip() else m
        for n, m in enumerate(members, 1)
    )


# ----------------------------------------------------------------------------- HAProxy


async def _haproxy(source: str, opts: Options, frontends: bool, ctx: Any, deadline: Any) -> FoundLb:
    from stackscope.lb.haproxy_stats import _PROXY, parse_csv, pool_from_csv
    from stackscope.probes import haproxy as probe

    text = source
    if source.startswith(("http://", "https://")) and not source.split("?")[0].endswith(";csv"):
        text = source.rstrip("/") + ";csv"
    stats = _parse(probe.StatsSourceKind(), text, source)
    if stats.kind == "http":
        rows = await probe.read_stats_csv(stats, ctx, deadline)
    else:
        rows = parse_csv(await probe.read_runtime_api(stats, ("show stat",), deadline))
    names = [str(r.get("pxname", "")) for r in rows if r.get("svname") == "FRONTEND"]
    _need_frontend(
        source,
        f"HAProxy's stats name its frontends ({safe(', '.join(names[:10])) or 'none'}) but never their addresses",
        frontends,
    )
    backends: list[str] = []
    for row in rows:
        name = str(row.get("pxname", ""))
        if row.get("svname") not in ("FRONTEND", "BACKEND") and name not in backends:
            backends.append(name)
    notes, pools = [], []
    for name in backends:
        if not _PROXY.fullmatch(name):
            notes.append(f"backend {safe(name)[:80]}: not an HAProxy name, left out")
            continue
        if stats.kind == "http":
            pool = pool_from_csv(rows, name, f"stats CSV {stats.raw}")
        else:
            check = SimpleNamespace(address=stats, options=SimpleNamespace(backend=name))
            pool = await probe.pool_from_socket(check, deadline)
        if pool.servers and all(s.address is None and not s.address_note for s in pool.servers):
            raise LiveError(source, f"the stats CSV hides the servers' addresses: {probe.SHOW_LEGENDS_FIX}")
        pools.append(pool)
    notes.append(
        "HAProxy's stats do not show the health-check path: members are checked on / "
        "(give haproxy.cfg as SOURCE for `option httpchk`'s path)"
    )
    admin = PoolCheck("haproxy", safe(stats.raw), (), Origin(safe(source)), "backend")
    return _found("haproxy", source, safe(source), pools, {}, admin, notes)


# ----------------------------------------------------------------------------- Apache


async def _apache(source: str, opts: Options, frontends: bool, ctx: Any, deadline: Any) -> FoundLb:
    from stackscope.lb import apache_manager
    from stackscope.probes import apache as probe

    url = _parse(probe.ManagerUrlKind(), source, source)
    page = await probe.read_page(SimpleNamespace(address=url, options=SimpleNamespace(auth_env=None)), ctx, deadline)
    balancers = apache_manager.parse_page(page)
    pools, health, routes = [], {}, []
    notes: list[str] = []
    for balancer in balancers:
        if balancer.problem:
            raise LiveError(source, f"cannot read the pool: balancer://{balancer.name}: {balancer.problem}")
        pools.append(apache_manager.pool_of(balancer, f"balancer-manager {url.raw}", {}, ""))
        uri = next((w.get("HC uri") for w in balancer.workers if w.get("HC uri").startswith("/")), "")
        health[balancer.name] = safe(uri or "/")
        routes.append((balancer.name, balancer.settings.get("Path", "")))
    admin = PoolCheck("apache", safe(url.raw), (), Origin(safe(source)), "balancer")
    found = _found("apache", source, safe(url.raw), pools, health, admin, notes)
    # the manager shows each balancer's ProxyPass path, not the virtual host serving it:
    # the manager's own address is the best guess, and the note says so
    path_of = dict(routes)
    routed = tuple(
        FoundPool(p.name, p.members, p.origin, p.health_path, None, bool(path_of.get(p.name)), p.skipped)
        for p in found.pools
    )
    fronts = []
    if not frontends:
        base = f"{url.scheme}://{url.host_header}"
        for name, path in routes:
            if path.startswith("/"):
                where = Origin(safe(f"{url.raw}: balancer://{name} Path {path}"))
                fronts.append(Frontend(safe(base + path.rstrip("/")), where, safe(name)))
        if fronts:
            notes.append(
                f"the balancer-manager shows each balancer's path, not the virtual host serving it: the frontend "
                f"is taken as {base} (the manager's own address); give --frontend URL if users enter elsewhere"
            )
    return FoundLb("apache", found.source, tuple(fronts), routed, admin, tuple(notes))


# ----------------------------------------------------------------------------- Caddy


async def _caddy(source: str, opts: Options, frontends: bool, ctx: Any, deadline: Any) -> FoundLb:
    from stackscope.lb import caddy_conf
    from stackscope.probes import caddy as probe
    from stackscope.probes.common import resolve_host

    url = _parse(probe.AdminUrlKind(), source, source)
    ip, _ = await resolve_host(ctx, url.host, deadline)
    config = await probe.get_json(url, ip, "/config/", deadline)
    if config is None:
        raise LiveError(source, "Caddy runs no config (GET /config/ answered null)")
    counters = probe.counters_of(await probe.get_json(url, ip, "/reverse_proxy/upstreams", deadline))
    proxies = await asyncio.to_thread(caddy_conf.proxies, config, None, probe.safe_text)
    fails = {probe.safe_text(address): count.fails for address, count in counters.items()}

    def out(proxy: caddy_conf.Proxy, dial: str) -> str:
        passive = proxy.passive
        count = fails.get(dial, 0)
        if passive is not None and passive.counting and count >= passive.max_fails:
            return f"DOWN ({count} fails through Caddy, max_fails {passive.max_fails})"
        return ""

    where = url.raw.rstrip("/") + "/config/"
    pools, found_frontends = caddy_pools(proxies, lambda line: Origin(safe(where)), out)
    admin = PoolCheck("caddy", safe(url.raw.rstrip("/")), (), Origin(safe(source)), "upstream")
    return FoundLb("caddy", safe(source), () if frontends else found_frontends, pools, admin)


# ----------------------------------------------------------------------------- Varnish


async def _varnish(source: str, opts: Options, frontends: bool, ctx: Any, deadline: Any) -> FoundLb:
    from stackscope.kinds import AddressKind
    from stackscope.probes import varnish as probe

    _need_frontend(source, "varnishd's CLI does not show the address users connect to (its -a)", frontends)
    address = _parse(AddressKind(), source.removeprefix("varnish://"), source)
    options = SimpleNamespace(secret_file=opts.secret_file, secret_env=None)
    try:
        vcl, states, facts = await probe.read_pool(SimpleNamespace(address=address, options=options), ctx, deadline)
    except probe.ProbeFailure as failure:
        if "set secret_file or secret_env" in failure.detail:
            failure.detail = f"the Varnish CLI at {address} asks for its secret: give --secret-file (varnishd -S)"
        raise
    health = {name: state.health for name, state in states.items()}
    label = f"{address} vcl {facts['varnish']['vcl']}"
    pools = varnish_pools(
        vcl, health, lambda file, line: Origin(safe(f"{label}: {os.path.basename(file or '?')}:{line or '?'}"))
    )
    secret = (("secret_file", safe(opts.secret_file)),) if opts.secret_file else ()
    admin = PoolCheck("varnish", safe(str(address)), secret, Origin(safe(source)), "director")
    return FoundLb("varnish", safe(source), (), pools, admin)
