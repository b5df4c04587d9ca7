"""`caddy`: the pool of one reverse_proxy, read from Caddy 2.6's admin API, each member probed.

Two GETs and nothing else (every other admin endpoint can change the server): `/config/`
is the pool Caddy runs (the reverse_proxy handlers and their `upstreams[].dial`), and
`/reverse_proxy/upstreams` says, per member address, how many requests are in flight and
how many recent failures Caddy counted (passive health checks). Caddy 2.6 does not
publish the results of its active health checks, so each member is probed directly: the
GET of the active health check's uri when the handler has one (what Caddy itself asks),
else the path of the declared backend's http check, else a TCP connect.

A member is taken out by Caddy when its fails reach max_fails (or, with an active check,
when that check fails): `down-by-check`, the same word an HAProxy member DOWN by its
health checks gets, so a pool whose members fail through Caddy while answering directly
reads as the LB's fault. Caddy has no administrative state per member (no MAINT, DRAIN or
disabled member as HAProxy has): a member is in the config or it is not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from stackscope.jsonbound import JsonRefused, NotJson, kind_of, loads
from stackscope.kinds import CheckSpec, Invalid, LayerRef, ParseContext, Text, UrlKind, describe, option
from stackscope.lb import caddy_conf
from stackscope.lb.caddy_conf import SelectError, Selector, ShapeError
from stackscope.lb.declared import pool_result, resolve_declared
from stackscope.lb.pool import DOWN_BY_CHECK, IN, LAYOUT_RESOLVER_FAILED, Pool, judge_pool
from stackscope.model import ErrorKind, Result, Status, Url
from stackscope.probes.common import Deadline, ProbeFailure, printable, resolve_host, timeout_scope
from stackscope.probes.context import ResolveError
from stackscope.probes.httpclient import HttpResponse, fetch

REPLY_CAP = 4 * 1024 * 1024  # the JSON config of a large site fits; a bomb is cut here
MEMBER_CAP = 4096
MAX_MEMBERS_AT_ONCE = 32
MAX_MEMBERS = 1000  # members of one pool probed directly; a bigger pool is refused, not half-read
MAX_NAMES = 64  # host names in dial addresses resolved per round
MEMBER_SHARE = 0.8  # of the time left: members that hang leave time to report them


class AdminUrlKind(UrlKind):
    """Caddy's admin endpoint: http://host:port, nothing after it (the probe adds the paths)."""

    def __init__(self) -> None:
        super().__init__(("http",))
        self.hint = "the admin endpoint, e.g. http://127.0.0.1:2019"

    def parse(self, value: Any, ctx: ParseContext) -> Url:
        url = super().parse(value, ctx)
        if url.path not in ("/", "/config/", "/config"):
            raise Invalid(
                f"'{url.raw}' has a path: the check reads /config/ and /reverse_proxy/upstreams itself",
                f"write the admin address only: http://{url.host_header}",
            )
        return url

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^http://[^/]+(/|/config/?)?$"}


class UpstreamKind(Text):
    hint = "@id, host, /path or host/path"

    def parse(self, value: Any, ctx: ParseContext) -> Selector:  # type: ignore[override]  # written as text, read as a route
        if isinstance(value, (bool, list, dict)) or value is None:
            raise Invalid(f"expected a route, got {describe(value)}", f"write {self.hint}")
        return caddy_conf.parse_selector(str(value))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^(@\S+|/\S*|[A-Za-z0-9*_.-]+(/\S*)?)$"}


@dataclass(frozen=True)
class CaddyOptions:
    upstream: Selector | None = option(
        UpstreamKind(),
        None,
        "The route whose reverse_proxy to inspect: @id (of the route or handler), a host or path matcher, or "
        "host/path (default: the reverse_proxy whose upstreams best match the declared backends).",
    )
    backends: str | None = option(
        LayerRef(role="backend"), None, "Layer whose checks are the declared backends (default: every backend layer)."
    )


def _unknown(kind: ErrorKind, detail: str, key_fact: str) -> ProbeFailure:
    return ProbeFailure(kind, detail, key_fact=key_fact, status=Status.UNKNOWN)


async def get_json(url: Url, ip: str, path: str, deadline: Deadline) -> Any:
    """GET one admin path and parse it; every way it can go wrong is an UNKNOWN that says what answered."""
    where = f"Caddy admin API {url.host}:{url.port}"
    try:
        response = await fetch(
            ip,
            url.port,
            deadline=deadline,
            target=path,
            host_header=url.host_header,
            headers=[("Accept", "application/json")],
            body_cap=REPLY_CAP,
            where=where,
        )
    except ProbeFailure as failure:
        failure.status = Status.UNKNOWN
        failure.detail = f"cannot read the pool: {failure.detail}"
        raise
    if response.status == 403:
        raise _unknown(
            ErrorKind.AUTH,
            f"{where} refused GET {path} (403: {_said(response)}): the admin endpoint accepts only the hosts "
            "in its origins; point the check at the address in `admin` (or add this host to admin.origins)",
            "403",
        )
    if response.status != 200:
        raise _unknown(
            ErrorKind.HTTP_STATUS,
            f"{where} answered {response.status_text} to GET {path}, not JSON: {_said(response)}",
            str(response.status),
        )
    if response.truncated:
        raise _unknown(
            ErrorKind.PROTOCOL,
            f"{where} sent more than {REPLY_CAP // 1024} KiB for GET {path}; read no further",
            "too big",
        )
    body = response.body.lstrip()
    if "html" in (response.header("content-type") or "").lower() or body[:1] == b"<":
        raise _unknown(
            ErrorKind.PROTOCOL,
            f"{where} answered an HTML page to GET {path}, not JSON: is this Caddy's admin endpoint "
            "(the `admin` global option)?",
            "not json",
        )
    try:  # up to 4 MiB: off the probes' loop
        return await asyncio.to_thread(lambda: loads(response.body, max_bytes=REPLY_CAP))
    except NotJson as exc:
        raise _unknown(
            ErrorKind.PROTOCOL,
            f"{where} sent invalid JSON for GET {path} ({printable(exc.reason.encode(), 80)}): it sent "
            f"'{printable(response.body)}'",
            "not json",
        ) from None
    except JsonRefused as exc:
        raise _unknown(
            ErrorKind.PROTOCOL, f"{where} sent JSON that cannot be read for GET {path}: {exc.reason}", "not json"
        ) from None


def safe_text(text: str) -> str:
    """Text from Caddy's config as it may be shown: control characters replaced, the
    probe's secrets masked, nothing cut (a dial address is matched whole)."""
    data = text.encode("utf-8", "replace")
    return printable(data, limit=len(data))


def _said(response: HttpResponse) -> str:
    return f"'{printable(response.body.strip())}'" if response.body.strip() else "an empty body"


@dataclass(frozen=True)
class _Counters:
    requests: int
    fails: int


def counters_of(data: Any) -> dict[str, _Counters]:
    """/reverse_proxy/upstreams: [{address, num_requests, fails}] (null when there are none)."""
    if data is None:
        return {}
    if not isinstance(data, list):
        raise ShapeError(f"GET /reverse_proxy/upstreams gave {kind_of(data)}, not a list of upstreams")
    out = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ShapeError(f"upstream [{i}] is {kind_of(item)}, not an object")
        address, requests, fails = item.get("address"), item.get("num_requests", 0), item.get("fails", 0)
        if not isinstance(address, str):
            raise ShapeError(f"upstream [{i}] has no address")
        for name, value in (("num_requests", requests), ("fails", fails)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ShapeError(f"upstream [{i}] {name} is {kind_of(value)}, not a count")
        out[address] = _Counters(requests, fails)
    return out


@dataclass(frozen=True)
class _How:
    """How one member is probed directly."""

    what: str  # "active GET /health", "GET /health", "TCP connect"
    path: str | None = None
    port: int | None = None
    host_header: str | None = None
    expect: tuple[int, ...] = ()  # accepted codes; empty: 2xx or 3xx
    is_active: bool = False


async def _direct(ip: str, port: int, how: _How, deadline: Deadline) -> tuple[bool, str]:
    """(answered as expected, what happened), within `deadline`."""
    where = f"{ip}:{port}"
    if how.path is None:
        try:
            async with timeout_scope(deadline.remaining()):
                _, writer = await asyncio.open_connection(ip, port)
            writer.transport.abort()
            return True, "TCP connect ok"
        except TimeoutError:
            return False, f"TCP connect: no answer within {deadline.text}"
        except OSError as exc:
            return (
                False,
                f"TCP connect: {'refused' if isinstance(exc, ConnectionRefusedError) else exc.strerror or exc}",
            )
    port = how.port or port
    try:
        response = await fetch(
            ip,
            port,
            deadline=deadline,
            target=how.path,
            host_header=how.host_header or (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"),
            body_cap=MEMBER_CAP,
            where=where,
        )
    except ProbeFailure as failure:
        return False, f"{how.what}: {failure.key_fact}"
    ok = response.status in how.expect if how.expect else 200 <= response.status < 400
    return ok, f"{how.what} {response.status}"


def _how(proxy: caddy_conf.Proxy, address: str | None, backend_urls: dict[str, tuple[Url, tuple[int, ...]]]) -> _How:
    if proxy.tls:
        return _How("TCP connect")  # the members speak TLS to Caddy: a plain GET says nothing
    if proxy.active is not None:
        expect = (proxy.active.expect_status,) if proxy.active.expect_status else tuple(range(200, 300))
        return _How(f"active GET {proxy.active.uri}", proxy.active.uri, proxy.active.port, None, expect, True)
    if address in backend_urls and backend_urls[address][0].scheme == "http":
        url, expect = backend_urls[address]
        return _How(f"GET {url.path}", url.path, None, url.host_header, expect)
    return _How("TCP connect")


def _backend_urls(ctx, layer: str | None, declared) -> dict[str, tuple[Url, tuple[int, ...]]]:
    """The http check of each declared backend, by the address it resolved to."""
    if ctx.layout is None:
        return {}
    by_label = {d.label: d.address for d in declared if d.address}
    out = {}
    for check, _ in ctx.layout.declared_backends(layer):
        if check.type == "http" and check.name in by_label:
            out[by_label[check.name]] = (check.address, tuple(getattr(check.options, "expect_status", ()) or ()))
    return out


async def _members(pool: Pool, proxy: caddy_conf.Proxy, counters, hows, deadline: Deadline) -> Pool:
    """The pool with each member's live state: Caddy's counters and a direct probe."""
    budget = Deadline(max(0.05, deadline.remaining() * MEMBER_SHARE))
    gate = asyncio.Semaphore(MAX_MEMBERS_AT_ONCE)

    async def one(server):
        if server.address is None:
            return None
        host, _, port = server.address.rpartition(":")
        async with gate:
            return await _direct(host.strip("[]"), int(port), hows[server.name], budget)

    answers = await asyncio.gather(*(one(s) for s in pool.servers))
    passive = proxy.passive if proxy.passive is not None and proxy.passive.counting else None
    servers, notes, warnings = [], [], []
    for server, answer in zip(pool.servers, answers):
        count = counters.get(server.name)
        fails = count.fails if count else None
        how = hows[server.name]
        parts = []
        if fails:
            limit = f" of max_fails {passive.max_fails}" if passive else ""
            parts.append(f"{fails} fail{'s' if fails != 1 else ''}{limit} through Caddy")
        if answer is not None:
            parts.append(f"direct {answer[1]}")
        check = "; ".join(parts) or server.check
        # fails are kept per address for every handler; only this handler's passive policy takes a member out
        out_by_fails = bool(fails and passive is not None and fails >= passive.max_fails)
        answered = answer is not None and answer[0]
        if out_by_fails or (how.is_active and answer is not None and not answered):
            state, service, receives, serving = "DOWN", DOWN_BY_CHECK, False, False
        elif answer is not None and not answered:
            # Caddy still sends it requests: nothing it publishes has taken it out
            state, service, receives, serving = "FAILING", IN, True, False
        else:
            state, service, receives, serving = ("UP" if answer is not None else "in rotation"), IN, True, True
        if fails and not out_by_fails:
            times = "once" if fails == 1 else f"{fails} times"
            policy = f"max_fails {passive.max_fails}" if passive else "counted by another handler's passive checks"
            warnings.append(f"{server.name} failed {times} through Caddy ({policy})")
        if count is None and server.address is not None:
            notes.append(f"{server.name} is not in /reverse_proxy/upstreams (a config change in flight?)")
        servers.append(
            replace(
                server,
                state=state,
                service=service,
                receives_traffic=receives,
                serving=serving,
                check=check,
                sessions=count.requests if count else None,
                errors=fails,
            )
        )
    extra = dict(pool.extra)
    if warnings:
        extra["warnings"] = warnings
    if notes:
        extra["notes"] = notes
    return replace(pool, servers=tuple(servers), extra=extra, from_config=False)


async def _resolve_dials(ctx, candidates, deadline: Deadline) -> tuple[dict[str, str], list[str]]:
    """The host names in the candidates' dial addresses, through the layout's resolver (as
    Caddy's own resolver would answer, if it is the same), while time and MAX_NAMES last."""
    names = sorted(set().union(*(caddy_conf.hosts_to_resolve(p) for p in candidates)) if candidates else set())
    resolved: dict[str, str] = {}
    unresolved: list[str] = []
    for index, host in enumerate(names):
        if index >= MAX_NAMES or deadline.remaining() <= 0:
            unresolved.append(f"{len(names) - index} more host names not resolved (time or the limit of {MAX_NAMES})")
            break
        try:
            resolved[host] = (await ctx.resolve(host, max(0.05, deadline.remaining()))).ip
        except ResolveError as exc:
            unresolved.append(str(exc))
    return resolved, unresolved


async def probe(check, ctx) -> Result:
    options: CaddyOptions = check.options
    deadline = Deadline(check.timeout)
    url: Url = check.address
    ip, _ = await resolve_host(ctx, url.host, deadline)
    config = await get_json(url, ip, "/config/", deadline)
    if config is None:  # `caddy run` with no config, or after a DELETE of /config/
        raise _unknown(ErrorKind.CONFIG, f"Caddy at {url.raw} runs no config (GET /config/ answered null)", "no config")
    counters_json = await get_json(url, ip, "/reverse_proxy/upstreams", deadline)
    try:
        found = await asyncio.to_thread(caddy_conf.proxies, config, None, safe_text)  # a big config takes a while
        counters = {safe_text(address): count for address, count in counters_of(counters_json).items()}
    except ShapeError as exc:
        raise _unknown(
            ErrorKind.PROTOCOL, f"cannot read the pool from {url.raw}: {safe_text(str(exc))}", "unreadable"
        ) from None
    declared = await resolve_declared(ctx, options.backends, max(0.05, deadline.remaining()))
    wanted = {d.address for d in declared if d.address}
    try:
        # a named route needs no names resolved to be found: resolve only its members' names
        candidates = [caddy_conf.select(found, options.upstream, set(), {})[0]] if options.upstream else found
        resolved, unresolved = await _resolve_dials(ctx, candidates, deadline)
        proxy, why = caddy_conf.select(found, options.upstream, wanted, resolved)
    except SelectError as exc:
        if exc.no_overlap:
            raise ProbeFailure(
                ErrorKind.POOL,
                f"Caddy routes the declared backends nowhere: {exc}",
                key_fact="misrouted",
                facts={"caddy": {"routes": [p.label for p in found[:50]]}},
            ) from None
        raise _unknown(ErrorKind.CONFIG, f"Caddy at {url.raw}: {exc}", "no upstream") from None
    if len(proxy.upstreams) > MAX_MEMBERS:
        raise _unknown(
            ErrorKind.CONFIG,
            f"pool {proxy.label} has {len(proxy.upstreams)} members; the check probes at most {MAX_MEMBERS}",
            "too many members",
        )
    source = f"admin API {url.raw.rstrip('/')}/config/ ({proxy.where})"
    pool = caddy_conf.pool_of(proxy, resolved, LAYOUT_RESOLVER_FAILED, source=source, extra={"selected": why})
    backend_urls = _backend_urls(ctx, options.backends, declared)
    hows = {s.name: _how(proxy, s.address, backend_urls) for s in pool.servers}
    pool = await _members(pool, proxy, counters, hows, deadline)
    judged = judge_pool(pool, declared)
    status, detail, kind = judged.status, judged.detail, judged.kind
    warnings = pool.extra.get("warnings", [])  # failures Caddy counted below max_fails: it still uses them
    if warnings and status is Status.OK:
        status, kind, detail = Status.WARN, ErrorKind.MEMBERS_DOWN, f"{detail}; {warnings[0]}"
    if unresolved:
        judged.facts["pool"]["notes"] = pool.extra.get("notes", []) + unresolved
    return pool_result(check, judged, deadline, status=status, detail=detail, kind=kind)


SPEC = CheckSpec(
    key="caddy",
    doc="Read a Caddy reverse_proxy's pool from the admin API (GET only), probe each member, and compare it "
    "with the declared backends.",
    target=AdminUrlKind(),
    options=CaddyOptions,
    probe=probe,
    example="- caddy: http://127.0.0.1:2019\n  upstream: '@auth'",
)
