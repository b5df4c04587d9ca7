"""Caddy 2.6: the reverse_proxy pools in its JSON config, for the live check and the gate.

The live `caddy` check reads the config Caddy runs (`GET /config/` on the admin API);
`lint --lb-config` reads a JSON config file (with the line of each `dial`) or a
Caddyfile, which `caddy adapt` turns into that same JSON (each member on the line of its
`reverse_proxy` directive). Both walk it here, the same way: every
`apps.http.servers.*.routes[].handle[]` with `"handler": "reverse_proxy"`, also inside
`subroute` handlers, with the host and path matchers and `@id`s of the routes around it,
which is how a layout names the pool to inspect (`upstream: @auth`, `auth.example.com`,
`/api/*`, `auth.example.com/api/*`).

A config is data from elsewhere: every step of the walk checks the shape it finds, and a
wrong one is a `ShapeError` naming the JSON path, never a crash.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from stackscope.jsonbound import JsonRefused, WrongShape, decoder, loads, need
from stackscope.kinds import Invalid, parse_address, valid_hostname
from stackscope.lb import ConfigError, read_config, readmit
from stackscope.lb.pool import COMPARE_WITH_RESOLVE, IN, Pool, PoolServer
from stackscope.model import is_ip
from stackscope.safetext import terminal_safe

MAX_DEPTH = 16  # subroutes nested deeper than this are refused (a hostile config, not a real one)
FILE_CAP = 16 * 1024 * 1024
ADAPT_TIMEOUT = 20.0
NS = 1_000_000_000


# The config is valid JSON but not the shape Caddy gives it; the message names where.
ShapeError = WrongShape


class SelectError(ValueError):
    """No single reverse_proxy fits the selector; `no_overlap` when the declared backends
    are in none of several pools (the LB routes them nowhere: a drift, not a typo)."""

    def __init__(self, message: str, no_overlap: bool = False) -> None:
        super().__init__(message)
        self.no_overlap = no_overlap


# --------------------------------------------------------------------------- the walk


@dataclass(frozen=True)
class Upstream:
    dial: str
    line: int | None = None


@dataclass(frozen=True)
class Active:
    uri: str
    port: int | None
    interval_s: float | None
    expect_status: int | None
    timeout_s: float = readmit.CADDY_HEALTH_TIMEOUT_S


@dataclass(frozen=True)
class Passive:
    fail_duration_s: float
    max_fails: int
    unhealthy_status: tuple[int, ...]

    @property
    def counting(self) -> bool:
        """Caddy counts failures only when fail_duration is set."""
        return self.fail_duration_s > 0


@dataclass(frozen=True)
class Proxy:
    """One reverse_proxy handler and the routes around it."""

    server: str  # the key under apps.http.servers
    listen: tuple[str, ...]
    hosts: tuple[str, ...]
    paths: tuple[str, ...]
    ids: tuple[str, ...]  # @id of the handler and of every route/handler around it
    where: str  # JSON path: apps.http.servers.srv0.routes[0].handle[0]
    upstreams: tuple[Upstream, ...]
    dynamic: str = ""  # dynamic_upstreams source (a, srv): members come from DNS at run time
    active: Active | None = None
    passive: Passive | None = None
    tls: bool = False  # the transport speaks TLS to the members
    line: int | None = None

    @property
    def label(self) -> str:
        if self.ids:
            return "@" + self.ids[-1]
        base = ",".join(self.hosts) if self.hosts else ",".join(self.listen) or self.server
        return base + ",".join(self.paths)

    def health_text(self) -> str:
        """Caddy's health settings for the pool, the way the pool table shows a check."""
        parts = []
        if self.active is not None:
            every = f" every {self.active.interval_s:g}s" if self.active.interval_s else ""
            port = f" port {self.active.port}" if self.active.port else ""
            parts.append(f"active GET {self.active.uri}{port}{every}")
        if self.passive is not None and self.passive.counting:
            statuses = f" unhealthy_status={','.join(map(str, self.passive.unhealthy_status))}"
            parts.append(
                f"passive max_fails={self.passive.max_fails} fail_duration={self.passive.fail_duration_s:g}s"
                + (statuses if self.passive.unhealthy_status else "")
            )
        return "; ".join(parts) or "no health checks"

    @property
    def readmit_s(self) -> float:
        """readmit.caddy for this handler's health checks (the same for every member)."""
        passive = self.passive.fail_duration_s if self.passive is not None and self.passive.counting else None
        active = self.active
        return readmit.caddy(active.interval_s if active else None, active.timeout_s if active else None, passive)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = need(value, list, where, "a list of strings")
    for i, item in enumerate(items):
        need(item, str, f"{where}[{i}]", "a string")
    return tuple(items)


_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _seconds(value: Any, where: str) -> float:
    """A caddy.Duration: nanoseconds as a number, or Go duration text ("30s", "1m30s")."""
    if value is None:
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / NS
    if isinstance(value, str):
        total, rest = 0.0, value.strip()
        for match in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)", rest):
            total += float(match.group(1)) * _UNIT[match.group(2)]
        if re.fullmatch(r"((\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d))+", rest):
            return total
    raise ShapeError(f"{where} is not a duration (nanoseconds, or text such as 30s)")


def _health(handler: dict, where: str) -> tuple[Active | None, Passive | None]:
    checks = handler.get("health_checks")
    if checks is None:
        return None, None
    checks = need(checks, dict, f"{where}.health_checks", "an object")
    active = passive = None
    if checks.get("active") is not None:
        a = need(checks["active"], dict, f"{where}.health_checks.active", "an object")
        uri = a.get("uri") or a.get("path")
        if uri is not None:
            uri = need(uri, str, f"{where}.health_checks.active.uri", "a string")
            if not re.fullmatch(r"/?[\x21-\x7e]*", uri):  # it is sent to every member: printable ASCII only
                raise ShapeError(f"{where}.health_checks.active.uri is not a URI path")
            port = a.get("port")
            if port is not None:
                port = need(port, int, f"{where}.health_checks.active.port", "a port number")
                if not 0 <= port < 65536:  # 0: the member's own port, as in Caddy
                    raise ShapeError(f"{where}.health_checks.active.port is not a port number")
            status = a.get("expect_status")
            if status is not None:
                status = need(status, int, f"{where}.health_checks.active.expect_status", "a status code")
            interval = (
                _seconds(a.get("interval"), f"{where}.health_checks.active.interval") or readmit.CADDY_HEALTH_INTERVAL_S
            )
            timeout = (
                _seconds(a.get("timeout"), f"{where}.health_checks.active.timeout") or readmit.CADDY_HEALTH_TIMEOUT_S
            )
            active = Active(uri if uri.startswith("/") else "/" + uri, port or None, interval, status or None, timeout)
    if checks.get("passive") is not None:
        p = need(checks["passive"], dict, f"{where}.health_checks.passive", "an object")
        max_fails = p.get("max_fails", 1)
        max_fails = max(1, need(max_fails, int, f"{where}.health_checks.passive.max_fails", "a number"))
        unhealthy = p.get("unhealthy_status") or []
        codes = need(unhealthy, list, f"{where}.health_checks.passive.unhealthy_status", "a list of status codes")
        for i, code in enumerate(codes):
            need(code, int, f"{where}.health_checks.passive.unhealthy_status[{i}]", "a status code")
        duration = _seconds(p.get("fail_duration"), f"{where}.health_checks.passive.fail_duration")
        passive = Passive(duration, max_fails, tuple(codes))
    return active, passive


@dataclass(frozen=True)
class _Scope:
    server: str
    listen: tuple[str, ...]
    hosts: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()


def _with_id(scope: _Scope, obj: dict, where: str) -> _Scope:
    ident = obj.get("@id")
    if ident is None:
        return scope
    ident = need(ident, str, f"{where}.@id", "a string")
    return _Scope(scope.server, scope.listen, scope.hosts, scope.paths, scope.ids + (ident,))


def proxies(
    config: Any, line_of: Callable[[Any, str], int | None] | None = None, clean: Callable[[str], str] = terminal_safe
) -> list[Proxy]:
    """Every reverse_proxy handler in a Caddy JSON config, in document order.
    `line_of(obj, key)` gives the line of `key` in a dict of the parsed document (files);
    `clean` makes every text taken from the config safe to show (it came from elsewhere)."""
    return [_cleaned(p, clean) for p in _proxies(config, line_of)]


def _cleaned(proxy: Proxy, clean: Callable[[str], str]) -> Proxy:
    def each(items: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(clean(item) for item in items)

    return replace(
        proxy,
        server=clean(proxy.server),
        listen=each(proxy.listen),
        hosts=each(proxy.hosts),
        paths=each(proxy.paths),
        ids=each(proxy.ids),
        where=clean(proxy.where),
        upstreams=tuple(Upstream(clean(u.dial), u.line) for u in proxy.upstreams),
        dynamic=clean(proxy.dynamic),
    )


def _proxies(config: Any, line_of: Callable[[Any, str], int | None] | None) -> list[Proxy]:
    line_of = line_of or (lambda obj, key: None)
    config = need(config, dict, "the config", "an object")
    apps = config.get("apps")
    if apps is None:
        return []
    apps = need(apps, dict, "apps", "an object")
    http = apps.get("http")
    if http is None:
        return []
    http = need(http, dict, "apps.http", "an object")
    servers = http.get("servers")
    if servers is None:
        return []
    servers = need(servers, dict, "apps.http.servers", "an object")
    found: list[Proxy] = []
    for name, server in servers.items():
        where = f"apps.http.servers.{name}"
        server = need(server, dict, where, "an object")
        listen = _strings(server.get("listen") or [], f"{where}.listen")
        scope = _Scope(name, listen)
        _walk_routes(server.get("routes"), f"{where}.routes", scope, found, 0, line_of)
        errors = server.get("errors")
        if errors is not None:
            errors = need(errors, dict, f"{where}.errors", "an object")
            _walk_routes(errors.get("routes"), f"{where}.errors.routes", scope, found, 0, line_of)
    return found


def _walk_routes(routes: Any, where: str, scope: _Scope, found: list[Proxy], depth: int, line_of) -> None:
    if routes is None:
        return
    if depth > MAX_DEPTH:
        raise ShapeError(f"{where}: subroutes nested more than {MAX_DEPTH} deep")
    for i, route in enumerate(need(routes, list, where, "a list of routes")):
        at = f"{where}[{i}]"
        route = need(route, dict, at, "an object")
        inner = _with_id(scope, route, at)
        hosts, paths = list(inner.hosts), list(inner.paths)
        if route.get("match") is not None:
            for j, matcher in enumerate(need(route["match"], list, f"{at}.match", "a list of matcher sets")):
                matcher = need(matcher, dict, f"{at}.match[{j}]", "an object")
                if matcher.get("host") is not None:
                    hosts += [h for h in _strings(matcher["host"], f"{at}.match[{j}].host") if h not in hosts]
                if matcher.get("path") is not None:
                    paths += [p for p in _strings(matcher["path"], f"{at}.match[{j}].path") if p not in paths]
        inner = _Scope(inner.server, inner.listen, tuple(hosts), tuple(paths), inner.ids)
        handlers = route.get("handle")
        if handlers is None:
            continue
        for k, handler in enumerate(need(handlers, list, f"{at}.handle", "a list of handlers")):
            here = f"{at}.handle[{k}]"
            handler = need(handler, dict, here, "an object")
            kind = handler.get("handler")
            if kind == "subroute":
                _walk_routes(
                    handler.get("routes"), f"{here}.routes", _with_id(inner, handler, here), found, depth + 1, line_of
                )
            elif kind == "reverse_proxy":
                found.append(_proxy(handler, here, _with_id(inner, handler, here), line_of))


def _proxy(handler: dict, where: str, scope: _Scope, line_of) -> Proxy:
    upstreams = []
    raw = handler.get("upstreams")
    for i, item in enumerate(need(raw, list, f"{where}.upstreams", "a list") if raw is not None else []):
        item = need(item, dict, f"{where}.upstreams[{i}]", "an object")
        dial = need(item.get("dial"), str, f"{where}.upstreams[{i}].dial", "a dial address (text)")
        upstreams.append(Upstream(dial, line_of(item, "dial")))
    dynamic = ""
    if handler.get("dynamic_upstreams") is not None:
        source = need(handler["dynamic_upstreams"], dict, f"{where}.dynamic_upstreams", "an object")
        dynamic = str(source.get("source", "dynamic"))
    transport = handler.get("transport")
    tls = isinstance(transport, dict) and transport.get("tls") is not None
    active, passive = _health(handler, where)
    return Proxy(
        server=scope.server,
        listen=scope.listen,
        hosts=scope.hosts,
        paths=scope.paths,
        ids=scope.ids,
        where=where,
        upstreams=tuple(upstreams),
        dynamic=dynamic,
        active=active,
        passive=passive,
        tls=tls,
        line=line_of(handler, "handler"),
    )


# --------------------------------------------------------------------------- dial addresses

PLACEHOLDER = "a placeholder Caddy fills in per request"
UNIX = "a unix socket, not an ip:port"


def split_dial(dial: str) -> tuple[str, int] | str:
    """(host, port) of a dial address, or why it has none."""
    text = dial.strip()
    if "{" in text:
        return PLACEHOLDER
    network = ""
    if "/" in text:
        network, _, text = text.partition("/")
    if network.startswith("unix"):
        return UNIX
    if network and not network.startswith(("tcp", "ip")):
        return f"network {network}, not TCP"
    try:
        address = parse_address(text)
    except Invalid:
        if re.search(r":\d+-\d+$", text):
            return "a port range: Caddy takes one socket per upstream"
        return "not host:port"
    if address.port is None or not 0 < address.port < 65536:
        return "no port"
    return address.host, address.port


def _address(host: str, port: int) -> str:
    return str(parse_address(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"))


def address_of(dial: str, resolved: dict[str, str]) -> str | None:
    """The ip:port a dial address reaches, names looked up in `resolved`."""
    parts = split_dial(dial)
    if isinstance(parts, str):
        return None
    host, port = parts
    if is_ip(host):
        return _address(host, port)
    ip = resolved.get(host)
    return _address(ip, port) if ip else None


def hosts_to_resolve(proxy: Proxy) -> set[str]:
    out = set()
    for upstream in proxy.upstreams:
        parts = split_dial(upstream.dial)
        if not isinstance(parts, str) and not is_ip(parts[0]):
            out.add(parts[0])
    return out


# --------------------------------------------------------------------------- choosing the pool


@dataclass(frozen=True)
class Selector:
    """How a layout names a reverse_proxy: `@id`, `host`, `/path` or `host/path`."""

    raw: str
    ident: str = ""
    host: str = ""
    path: str = ""

    def __str__(self) -> str:
        return self.raw

    def matches(self, proxy: Proxy) -> bool:
        if self.ident:
            return self.ident in proxy.ids
        if self.host and self.host.lower() not in (h.lower() for h in proxy.hosts):
            return False
        return not self.path or self.path in proxy.paths


def parse_selector(value: str) -> Selector:
    text = value.strip()
    if not text or any(ord(ch) < 32 or ord(ch) == 127 or ch.isspace() for ch in text):
        raise Invalid(f"'{value}' is not a route", "write @id, host, /path or host/path (no spaces)")
    if text.startswith("@"):
        if len(text) == 1:
            raise Invalid("'@' names no id", "write the route's or handler's @id, e.g. @auth_proxy")
        return Selector(text, ident=text[1:])
    if text.startswith("/"):
        return Selector(text, path=text)
    host, slash, path = text.partition("/")
    bare = host[2:] if host.startswith("*.") else host
    if not valid_hostname(bare):
        raise Invalid(f"'{host}' in '{text}' is not a host name", "write @id, host, /path or host/path")
    return Selector(text, host=host, path="/" + path if path else "")  # host/ is the host


def select(
    found: list[Proxy], selector: Selector | str | None, declared: set[str], resolved: dict[str, str]
) -> tuple[Proxy, str]:
    """The reverse_proxy to judge, and how it was chosen. With a selector: the one it
    names (two or more is an error that lists them). Without: the one holding the most
    declared backends (then the fewest others); when the declared backends are in none of
    several pools, a SelectError with no_overlap."""
    if not found:
        raise SelectError("the config has no reverse_proxy handler")
    labels = ", ".join(p.label for p in found[:8]) + (f" (+{len(found) - 8})" if len(found) > 8 else "")
    if selector is not None:
        if isinstance(selector, str):
            selector = parse_selector(selector)
        chosen = [p for p in found if selector.matches(p)]
        if not chosen:
            raise SelectError(f"no reverse_proxy under route '{selector}' (reverse_proxy handlers: {labels})")
        if len(chosen) > 1 and len({frozenset(u.dial for u in p.upstreams) for p in chosen}) > 1:
            names = ", ".join(p.label for p in chosen)
            raise SelectError(
                f"route '{selector}' holds {len(chosen)} reverse_proxy handlers ({names}): "
                "name one with its path (host/path) or @id"
            )
        return chosen[0], f"upstream: {selector}"
    if len(found) == 1:
        return found[0], "the only reverse_proxy"

    def score(proxy: Proxy) -> tuple[int, int]:
        addresses = {address_of(u.dial, resolved) for u in proxy.upstreams}
        hits = len(addresses & declared)
        return hits, -len(addresses - declared)

    ranked = sorted(found, key=score, reverse=True)  # stable: document order among equals
    best = score(ranked[0])
    if not declared:
        raise SelectError(
            f"{len(found)} reverse_proxy handlers ({labels}) and no declared backends: name one with upstream:"
        )
    if best[0] == 0:
        raise SelectError(
            f"none of the {len(found)} reverse_proxy handlers ({labels}) holds a declared backend",
            no_overlap=True,
        )
    tied = [p for p in ranked if score(p) == best]
    if len({frozenset(u.dial for u in p.upstreams) for p in tied}) > 1:
        names = ", ".join(p.label for p in tied)
        raise SelectError(
            f"reverse_proxy handlers {names} match the declared backends equally: name one with upstream:"
        )
    return ranked[0], f"holds {best[0]} of the {len(declared)} declared backends"


# --------------------------------------------------------------------------- the pool


READMIT_SOURCE = "the handler's health_checks: active interval + timeout (30s and 5s if unset), passive fail_duration"


def pool_of(
    proxy: Proxy,
    resolved: dict[str, str],
    unresolved_note: str = COMPARE_WITH_RESOLVE,
    *,
    source: str,
    file: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Pool:
    """The reverse_proxy as a Pool read from a config: every member in rotation (Caddy has
    no per-member admin state such as MAINT, DRAIN or a weight of 0 in a plain pool)."""
    servers = []
    health = proxy.health_text()
    for upstream in proxy.upstreams:
        parts = split_dial(upstream.dial)
        address = address_of(upstream.dial, resolved)
        note = ""
        if address is None:
            note = parts if isinstance(parts, str) else unresolved_note
        configured = None if not isinstance(parts, str) and is_ip(parts[0]) else upstream.dial
        servers.append(
            PoolServer(
                name=upstream.dial,
                address=address,
                state="in rotation",
                receives_traffic=True,
                serving=True,
                service=IN,
                check=health,
                configured_as=configured,
                line=upstream.line,
                file=file,
                address_note=note,
                readmit_s=proxy.readmit_s,
            )
        )
    facts: dict[str, Any] = {
        "route": proxy.label,
        "caddy_server": proxy.server,
        "json_path": proxy.where,
        **({"hosts": list(proxy.hosts)} if proxy.hosts else {}),
        **({"paths": list(proxy.paths)} if proxy.paths else {}),
        "readmit_from": READMIT_SOURCE,
        **(extra or {}),
    }
    if proxy.dynamic:
        facts["dynamic"] = [f"dynamic_upstreams ({proxy.dynamic})"]
    return Pool(name=proxy.label, source=source, servers=tuple(servers), extra=facts, from_config=True)


# --------------------------------------------------------------------------- files


class _Located(dict):
    """A JSON object that knows where it starts in the text."""

    offset = 0


def _located_decoder() -> json.JSONDecoder:
    """A decoder whose objects remember their offset (json's pure-Python scanner, whose
    parse_object can be wrapped; the C scanner cannot)."""
    bounded = decoder()

    def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None, **kw):
        string, end = s_and_end
        obj, new_end = json.decoder.JSONObject(  # type: ignore[attr-defined]  # not in the stubs
            s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo
        )
        located = _Located(obj)
        located.offset = end - 1
        return located, new_end

    # Not in the typeshed stubs: attributes of the pure-Python JSONDecoder and json.scanner.
    bounded.parse_object = parse_object  # type: ignore[attr-defined]
    bounded.scan_once = json.scanner.py_make_scanner(bounded)  # type: ignore[attr-defined]
    return bounded


def parse_located(text: str) -> tuple[Any, Callable[[Any, str], int | None]]:
    """Parse JSON text within jsonbound's bounds (JsonRefused, with the line of a syntax
    error); also a `line_of(obj, key)` for the line of a key in one of its objects."""
    data = loads(text, max_bytes=FILE_CAP, using=_located_decoder())
    starts = [0] + [m.end() for m in re.finditer("\n", text)]  # offset of each line's first character

    def line_of(obj: Any, key: str) -> int | None:
        if not isinstance(obj, _Located):
            return None
        found = text.find(f'"{key}"', obj.offset)  # the object's own key: those before it cannot hold it
        return bisect.bisect_right(starts, found) if found >= 0 else None

    return data, line_of


@dataclass(frozen=True)
class Config:
    path: str
    kind: str  # json | caddyfile
    proxies: tuple[Proxy, ...]


def looks_like(path: str, head: str) -> bool:
    """A Caddy JSON config or a Caddyfile, by name or contents."""
    name = os.path.basename(path).lower()
    if name.startswith("caddyfile") or name.endswith((".caddyfile", ".caddy")):
        return True
    if head.lstrip().startswith("{") and re.search(r'"(apps|handler|admin)"\s*:', head):
        return True
    return bool(re.search(r"^\s*reverse_proxy(\s|$)", head, re.M))


def _read(path: str) -> str:
    try:
        return read_config(path, FILE_CAP, "the Caddy config")
    except ConfigError as exc:
        if exc.message.startswith("larger than"):
            raise ConfigError(path, 0, f"larger than {FILE_CAP // (1024 * 1024)} MiB: not a Caddy config") from None
        raise


def _is_json(path: str, text: str) -> bool:
    if path.lower().endswith(".json"):
        return True
    if not text.lstrip().startswith("{"):
        return False
    try:
        loads(text, max_bytes=FILE_CAP)
    except JsonRefused:
        return False  # a Caddyfile's global options block starts with { too
    return True


def load(path: str) -> Config:
    """A Caddy JSON config or Caddyfile from disk, as its reverse_proxy handlers."""
    text = _read(path)
    if _is_json(path, text):
        try:
            data, line_of = parse_located(text)
        except JsonRefused as exc:
            raise ConfigError(path, exc.line, exc.reason) from None
        try:
            return Config(path, "json", tuple(proxies(data, line_of)))
        except ShapeError as exc:
            raise ConfigError(path, 0, f"not a Caddy config: {exc}") from None
    adapted = adapt(path)
    try:
        data = loads(adapted, max_bytes=4 * FILE_CAP)  # what Caddy makes of a file of at most FILE_CAP
        found = proxies(data)
    except JsonRefused as exc:
        raise ConfigError(path, 0, f"`caddy adapt` gave JSON that cannot be read: {exc}") from None
    lines = directive_lines(text)
    return Config(path, "caddyfile", tuple(_place(p, lines) for p in found))


def adapt(path: str, binary: str | None = None, timeout: float = ADAPT_TIMEOUT) -> str:
    """`caddy adapt --config PATH --adapter caddyfile`: the JSON Caddy would run. Read-only."""
    binary = binary or shutil.which("caddy")
    if not binary:
        raise ConfigError(
            path,
            0,
            "a Caddyfile, and no caddy binary on PATH to adapt it: install caddy here, or run "
            "`caddy adapt --config Caddyfile > caddy.json` where it is installed and lint the JSON",
        )
    try:
        done = subprocess.run(
            [binary, "adapt", "--config", path, "--adapter", "caddyfile"],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(path, 0, f"`caddy adapt` did not finish within {timeout:g}s") from None
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot run {binary}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        message = (done.stderr.strip().splitlines() or ["failed"])[-1]
        message = re.sub(r"^Error:\s*", "", message)[:400]
        match = re.search(re.escape(os.path.basename(path)) + r":(\d+)", message)
        raise ConfigError(path, int(match.group(1)) if match else 0, f"caddy adapt: {message}")
    return done.stdout


def _tokens(line: str) -> list[str]:
    """The words of a Caddyfile line, comments dropped (a # starting a word)."""
    out = []
    for word in re.findall(r'"[^"]*"|`[^`]*`|\S+', line):
        if word.startswith("#"):
            break
        out.append(word.strip('"`'))
    return out


def _dial_of(token: str) -> str | None:
    """A Caddyfile upstream as the dial address `caddy adapt` writes for it."""
    match = re.match(r"^(?:(https?|h2c)://)?(\[[^\]]+\]|[^:/\s]*)(?::(\d+))?(/.*)?$", token)
    if not match or not match.group(2):
        return None
    scheme, host, port = match.group(1), match.group(2), match.group(3)
    return f"{host}:{port or ('443' if scheme == 'https' else '80')}"


def directive_lines(text: str) -> list[tuple[int, frozenset[str]]]:
    """(line, dial addresses) of every reverse_proxy directive in a Caddyfile, `to`
    lines of its block included."""
    lines = text.splitlines()
    out = []
    for index, line in enumerate(lines):
        words = _tokens(line)
        if not words or words[0] != "reverse_proxy":
            continue
        args = [w for w in words[1:] if w != "{"]
        if args and (args[0].startswith(("@", "/")) or args[0] == "*"):
            args = args[1:]  # a matcher
        dials = {d for w in args if (d := _dial_of(w))}
        if words[-1] == "{":
            depth = 1
            for follow in lines[index + 1 :]:
                inner = _tokens(follow)
                if inner and inner[0] == "to" and depth == 1:
                    dials.update(d for w in inner[1:] if w != "{" and (d := _dial_of(w)))
                depth += inner.count("{") - inner.count("}")
                if depth <= 0:
                    break
        out.append((index + 1, frozenset(dials)))
    return out


def _place(proxy: Proxy, lines: list[tuple[int, frozenset[str]]]) -> Proxy:
    """The proxy with every member on the line of the reverse_proxy directive that names
    the same upstreams (the most of them); None when none does (an import, a {$VAR})."""
    dials = {u.dial for u in proxy.upstreams}
    best = max(lines, key=lambda item: (len(item[1] & dials), -len(item[1] ^ dials)), default=None)
    if best is None or not best[1] & dials:
        return proxy
    line = best[0]
    upstreams = tuple(Upstream(u.dial, line) for u in proxy.upstreams)
    return replace(proxy, upstreams=upstreams, line=line)


def gate_pool(config: Config, selector: str | None, declared: list, resolve, unresolved_note: str) -> Pool:
    """The pool the gate judges: the reverse_proxy `selector` names in the file (or the
    one holding the most declared backends), names resolved with `resolve` when given."""
    hosts = set().union(*(hosts_to_resolve(p) for p in config.proxies)) if config.proxies else set()
    resolved = {h: ip for h in sorted(hosts) if resolve and (ip := resolve(h))}
    wanted = {d.address for d in declared if d.address}
    try:
        proxy, why = select(list(config.proxies), selector, wanted, resolved)
    except (SelectError, Invalid) as exc:
        raise ConfigError(config.path, 0, str(exc)) from None
    name = os.path.basename(config.path)
    source = f"{name}:{proxy.line}" if proxy.line else name
    extra = {"selected": why, "main": config.path}
    return pool_of(proxy, resolved, unresolved_note, source=source, file=config.path, extra=extra)
