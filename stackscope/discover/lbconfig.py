"""An LB config file read by the gate's own parsers (stackscope/lb/), as FoundLb: its
frontends, its pools with their members and health-check path, and the pool check that
reads it. Nothing is resolved or probed; the kind comes from the gate's detect()."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace

from stackscope.discover.found import FoundLb, FoundPool, Frontend, Member, Origin, PoolCheck, safe
from stackscope.kinds import Invalid
from stackscope.lb import apache_conf, caddy_conf, haproxy_cfg, nginx_conf, varnish_vcl
from stackscope.lb.pool import BACKUP, IN, Pool, PoolServer
from stackscope.model import is_ip


class Options:
    """What the command line adds to a config: the LB's admin address (`--lb-admin`) and
    the Varnish CLI secret file."""

    def __init__(self, lb_admin: str | None = None, secret_file: str | None = None) -> None:
        self.lb_admin, self.secret_file = lb_admin, secret_file


def _url(host: str, port: int, tls: bool = False) -> str:
    host = host if host and host not in ("*", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


def pool_members(
    pool: Pool, origin: Callable[[PoolServer], Origin] | None = None
) -> tuple[tuple[Member, ...], tuple[str, ...]]:
    """The pool's members with an ip:port or host:port; the others, and why, for a note.
    A pool read from a running LB also says which members it holds out of rotation."""
    members, skipped = [], []
    for server in pool.servers:
        written = server.address or server.configured_as
        host, colon, port = (written or "").rpartition(":")
        if not colon or not port.isdigit() or (server.address is None and server.address_note != "" and not host):
            skipped.append(safe(f"{server.name}: {server.address_note or 'no address'}"))
            continue
        if server.address is None and server.configured_as is None:
            skipped.append(safe(f"{server.name}: {server.address_note or 'no address'}"))
            continue
        members.append(
            Member(
                safe(server.name),
                safe(host.strip("[]")),
                int(port),
                origin(server) if origin else Origin.of(server.file, server.line),
                server.standby,
                "" if pool.from_config or server.service_word() in (IN, BACKUP) else safe(server.state),
            )
        )
    return tuple(members), tuple(skipped)


def haproxy(path: str, opts: Options) -> FoundLb:
    cfg = haproxy_cfg.parse(path)
    pools, frontends, notes = [], [], []
    for name, backend in cfg.backends.items():
        members, skipped = pool_members(haproxy_cfg.pool_of(cfg, name))
        pools.append(
            FoundPool(
                safe(name),
                members,
                Origin.of(path, backend.line),
                safe(backend.check_path or "/"),
                Origin.of(path, backend.check_line) if backend.check_path else None,
                bool(backend.used_by),
                skipped,
            )
        )
    stats_url = None
    for frontend in cfg.frontends:
        if frontend.stats_uri and frontend.binds and not stats_url:
            host, port, tls, _ = frontend.binds[0]
            stats_url = (_url(host, port, tls) + frontend.stats_uri[0], frontend.stats_uri[1])
        pool = frontend.default_backend[0] if frontend.default_backend else None
        if pool is None and frontend.name in cfg.backends:  # a listen section serves its own servers
            pool = frontend.name
        if pool is None or not frontend.binds:
            continue
        host, port, tls, line = frontend.binds[0]
        hosts = tuple(safe(h) for h, _ in frontend.hosts)
        frontends.append(Frontend(safe(_url(host, port, tls)), Origin.of(path, line), safe(pool), hosts))
    admin = None
    if opts.lb_admin:
        admin = PoolCheck("haproxy", safe(opts.lb_admin), (), Origin("--lb-admin"), "backend")
    elif cfg.stats_socket:
        admin = PoolCheck(
            "haproxy", safe("unix:" + cfg.stats_socket[0]), (), Origin.of(path, cfg.stats_socket[1]), "backend"
        )
    elif stats_url:
        admin = PoolCheck("haproxy", safe(stats_url[0]), (), Origin.of(path, stats_url[1]), "backend")
    else:
        notes.append("no `stats socket` or `stats uri` in the config: no pool check (give one with --lb-admin)")
    return FoundLb("haproxy", safe(path), tuple(frontends), tuple(pools), admin, tuple(notes))


def _walk_nginx(directives, path=()):
    for directive in directives:
        yield directive, path
        if directive.block is not None:
            yield from _walk_nginx(directive.block, path + (directive,))


def nginx(path: str, opts: Options) -> FoundLb:
    config = nginx_conf.load(path)
    found = nginx_conf.upstreams(config)
    pools = []
    for name, upstream in found.items():
        members, skipped = pool_members(nginx_conf.pool_of(upstream, {}, config))
        members = tuple(replace(m, name=safe(f"{name}-{n}")) for n, m in enumerate(members, 1))  # nginx names none
        pools.append(
            FoundPool(
                safe(name), members, Origin.of(upstream.file, upstream.line), "/", None, bool(upstream.used_by), skipped
            )
        )
    frontends = []
    for directive, _ in _walk_nginx(config.directives):
        if directive.name != "server" or directive.block is None:
            continue
        listens = [d for d in directive.block if d.name == "listen" and d.args]
        names = tuple(safe(n) for d in directive.block if d.name == "server_name" for n in d.args if _a_name(n))
        for inner, _ in _walk_nginx(directive.block):
            if inner.name == "proxy_pass" and inner.args:
                target = inner.args[0].split("://", 1)[-1].split("/")[0]
                if target in found and listens:
                    listen = listens[0]
                    host, port = _split_listen(listen.args[0])
                    if port:
                        tls = "ssl" in listen.args[1:]
                        frontends.append(
                            Frontend(
                                safe(_url(host, port, tls)), Origin.of(listen.file, listen.line), safe(target), names
                            )
                        )
                        break
    target = os.path.abspath(config.main) if os.path.exists(config.main) else os.path.abspath(path)
    admin = PoolCheck("nginx", safe(target), (), Origin.of(path), "upstream")
    return FoundLb("nginx", safe(path), tuple(frontends), tuple(pools), admin)


def _a_name(name: str) -> bool:
    return (
        bool(name)
        and not is_ip(name.strip("[]"))
        and name not in ("_", "localhost", '""')
        and not name.startswith(("~", "*.", "."))
    )


def _split_listen(written: str) -> tuple[str, int | None]:
    host, colon, port = written.rpartition(":")
    if not colon:
        return ("", int(written)) if written.isdigit() else ("", None)
    return (host.strip("[]"), int(port)) if port.isdigit() else ("", None)


def apache(path: str, opts: Options) -> FoundLb:
    config = apache_conf.load(path)
    balancers = apache_conf.balancers(config)
    pools = []
    for name, balancer in balancers.items():
        members, skipped = pool_members(apache_conf.pool_of(balancer, {}, config))
        uri = next((m.params.get("hcuri") for m in balancer.members if m.params.get("hcuri")), None)
        hc_line = next((m.line for m in balancer.members if m.params.get("hcuri")), 0)
        pools.append(
            FoundPool(
                safe(name),
                members,
                Origin.of(balancer.file, balancer.line),
                safe(uri or "/"),
                Origin.of(balancer.file, hc_line) if uri else None,
                bool(balancer.used_by),
                skipped,
            )
        )
    listen = None
    manager = None
    names: list[str] = []
    routes: list[tuple[str, apache_conf.Directive]] = []
    for directive, path_ in apache_conf.walk(config.directives):
        if directive.key == "listen" and directive.args and listen is None:
            listen = directive
        elif directive.key == "servername" and directive.args and _a_name(directive.args[0]):
            names.append(safe(directive.args[0]))
        elif directive.key == "sethandler" and directive.args and directive.args[0].lower() == "balancer-manager":
            location = next((p for p in reversed(path_) if p.key in ("location", "locationmatch")), None)
            if location is not None and location.args:
                manager = (location.args[0], directive)
        elif directive.key == "proxypass" and len(directive.args) > 1:
            pool = apache_conf.balancer_name(directive.args[1])
            if pool:
                routes.append((pool, directive))
    frontends, notes = [], []
    admin = None
    if listen is not None:
        host, port = _split_listen(listen.args[0])
        if port:
            base = _url(host, port)
            for pool, directive in routes:
                match = next((n for n in balancers if n.lower() == pool.lower()), pool)
                frontends.append(
                    Frontend(safe(base), Origin.of(directive.file, directive.line), safe(match), tuple(names))
                )
                break
            if manager:
                admin = PoolCheck(
                    "apache", safe(base + manager[0]), (), Origin.of(manager[1].file, manager[1].line), "balancer"
                )
    if opts.lb_admin:
        admin = PoolCheck("apache", safe(opts.lb_admin), (), Origin("--lb-admin"), "balancer")
    if admin is None:
        notes.append("no balancer-manager Location in the config: no pool check (give its URL with --lb-admin)")
    return FoundLb("apache", safe(path), tuple(frontends), tuple(pools), admin, tuple(notes))


def caddy(path: str, opts: Options) -> FoundLb:
    config = caddy_conf.load(path)
    admin_url, origin = _caddy_admin(path, config)
    if opts.lb_admin:
        admin_url, origin = opts.lb_admin, Origin("--lb-admin")
    admin = PoolCheck("caddy", safe(admin_url), (), origin, "upstream")
    pools, frontends = caddy_pools(config.proxies, lambda line: Origin.of(path, line))
    return FoundLb("caddy", safe(path), frontends, pools, admin)


def caddy_pools(
    proxies: tuple[caddy_conf.Proxy, ...] | list[caddy_conf.Proxy],
    origin: Callable[[int | None], Origin],
    out: Callable[[caddy_conf.Proxy, str], str] = lambda proxy, dial: "",
) -> tuple[tuple[FoundPool, ...], tuple[Frontend, ...]]:
    """Caddy's reverse_proxy handlers (from a config file, or the admin API's /config/) as
    pools and frontends; `origin` names where a line came from, `out` why the running
    Caddy holds a member (by its dial address) out of rotation."""
    pools, frontends = [], []
    for index, proxy in enumerate(proxies):
        name = proxy.ids[-1] if proxy.ids else (f"{proxies[0].server}" if len(proxies) == 1 else f"proxy{index + 1}")
        members, skipped = [], []
        for number, upstream in enumerate(proxy.upstreams, 1):
            dial = caddy_conf.split_dial(upstream.dial)
            if isinstance(dial, str):
                skipped.append(safe(f"{upstream.dial}: {dial}"))
                continue
            member_origin = origin(upstream.line or proxy.line)
            why = safe(out(proxy, upstream.dial))
            members.append(Member(safe(f"{name}-{number}"), safe(dial[0]), dial[1], member_origin, False, why))
        health = proxy.active.uri if proxy.active else "/"
        pools.append(
            FoundPool(
                safe(name),
                tuple(members),
                origin(proxy.line),
                safe(health or "/"),
                origin(proxy.line) if proxy.active else None,
                True,
                tuple(skipped),
                _caddy_selector(proxy, proxies),
            )
        )
        for listen in proxy.listen[:1]:
            host, port = _split_listen(listen.split("/")[-1])
            if port:
                hosts = tuple(safe(h) for h in proxy.hosts if _a_name(h))
                frontends.append(Frontend(safe(_url(host, port, port == 443)), origin(proxy.line), safe(name), hosts))
    return tuple(pools), tuple(frontends)


def _caddy_selector(proxy: caddy_conf.Proxy, proxies: Sequence[caddy_conf.Proxy]) -> str:
    """What the caddy check's `upstream:` must say to find this handler among all of them:
    its @id, else a host/path, path or host that picks it alone. A Caddyfile's JSON has no
    @id, and the server's key (`srv0`) is not something the check selects by; when nothing
    picks the handler out, "" leaves the check to take the one holding the declared backends."""
    hosts = [h for h in proxy.hosts if h]
    candidates = [f"@{ident}" for ident in reversed(proxy.ids)]
    candidates += [host + path for host in hosts for path in proxy.paths]
    candidates += list(proxy.paths) + hosts
    for text in candidates:
        try:
            selector = caddy_conf.parse_selector(text)
        except Invalid:
            continue
        if [p for p in proxies if selector.matches(p)] == [proxy]:
            return safe(text)
    return ""


def _caddy_admin(path: str, config: caddy_conf.Config) -> tuple[str, Origin]:
    """The admin API's address: a JSON config's `admin.listen`, else Caddy's default."""
    if config.kind == "json":
        try:
            data, line_of = caddy_conf.parse_located(caddy_conf._read(path))
        except Exception:  # load() has read it once already; a failure here only loses the address
            data = None
        admin = data.get("admin") if isinstance(data, dict) else None
        listen = admin.get("listen") if isinstance(admin, dict) else None
        if isinstance(listen, str) and not listen.startswith(("unix/", "/")):
            host, port = _split_listen(listen.removeprefix("tcp/"))
            if port:
                return _url(host or "127.0.0.1", port), Origin.of(path, line_of(admin, "listen"))
    return "http://127.0.0.1:2019", Origin("Caddy's default admin address")


def varnish(path: str, opts: Options) -> FoundLb:
    vcl = varnish_vcl.load(path)
    notes = []
    admin = None
    if opts.lb_admin:
        options = (("secret_file", safe(opts.secret_file)),) if opts.secret_file else ()
        target = opts.lb_admin.removeprefix("varnish://")
        admin = PoolCheck("varnish", safe(target), options, Origin("--lb-admin"), "director")
    else:
        notes.append(
            "a VCL does not name varnishd's CLI address: no pool check (give it with --lb-admin HOST:PORT "
            "and --secret-file)"
        )
    notes.append("a VCL does not name the address users connect to: give it with --frontend URL")
    return FoundLb("varnish", safe(path), (), varnish_pools(vcl), admin, tuple(notes))


def varnish_pools(
    vcl: varnish_vcl.Vcl,
    health: dict[str, varnish_vcl.Health] | None = None,
    origin: Callable[[str | None, int | None], Origin] = Origin.of,
) -> tuple[FoundPool, ...]:
    """A VCL's directors as pools (a file, or the active VCL a running varnishd shows);
    `health` is backend.list's word for each backend when it is read live."""
    pools = []
    for name, director in vcl.directors.items():
        pool = varnish_vcl.pool_of(vcl, name, health=health)
        members, skipped = pool_members(pool, lambda server: origin(server.file, server.line))
        probe = next(
            (
                vcl.backends[m.ref].probe
                for m in director.members
                if m.ref in vcl.backends and vcl.backends[m.ref].probe
            ),
            None,
        )
        health_path = probe if probe and probe.startswith("/") else "/"
        pools.append(
            FoundPool(
                safe(name),
                members,
                origin(director.file, director.line),
                safe(health_path),
                None,
                bool(vcl.users_of(name)),
                skipped,
            )
        )
    return tuple(pools)


READERS: dict[str, Callable[[str, Options], FoundLb]] = {
    "haproxy": haproxy,
    "nginx": nginx,
    "apache": apache,
    "caddy": caddy,
    "varnish": varnish,
}
