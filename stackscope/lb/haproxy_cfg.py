"""Read an haproxy.cfg far enough to know each backend's servers and who uses them.

For the pre-deploy gate: the config about to ship, not the running process. Sections,
`server` lines with the `default-server` params of the defaults section and the backend
before them (a server's own `enabled`, `no-backup`... override them, as in HAProxy),
`server-template` (expanded when its address is an IP literal — HAProxy gives every
member that address — and reported as dynamic when it is a name served by DNS), and the
frontends' `default_backend`/`use_backend` so a pool nobody routes to can be told apart.
Addresses HAProxy only settles at run time (no port, a port offset, an environment
variable) are kept with a note saying why they cannot be compared; they never fail the
whole config.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

from stackscope.kinds import Invalid, parse_address
from stackscope.lb import ConfigError, read_config, readmit
from stackscope.lb.pool import BACKUP, COMPARE_WITH_RESOLVE, IN, MAINT, WEIGHT_0, Pool, PoolServer
from stackscope.model import is_ip

SECTIONS = (
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "crt-store",
    "traces",
)
MAX_BYTES = 8 * 1024 * 1024


@dataclass
class CfgServer:
    name: str
    written: str
    host: str | None
    port: int | None
    params: list[str]  # default-server params first, then the server's own: the last word wins
    line: int
    note: str = ""  # why host/port are not a comparable address (left to run time, a socket)


@dataclass
class Backend:
    name: str
    line: int
    servers: list[CfgServer] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    used_by: list[str] = field(default_factory=list)
    timeouts: dict[str, str] = field(default_factory=dict)  # `timeout check 1s` lines, defaults' first
    check_path: str | None = None  # `option httpchk [METH] URI` / `http-check send uri URI`: what the LB asks members
    check_line: int = 0


@dataclass
class Frontend:
    """A frontend or listen section's own side, for `stackscope init`: where users connect."""

    name: str
    line: int
    binds: list[tuple[str, int, bool, int]] = field(default_factory=list)  # (host, port, tls, line)
    hosts: list[tuple[str, int]] = field(default_factory=list)  # names a `hdr(host)` acl matches, and its line
    stats_uri: tuple[str, int] | None = None  # `stats uri /stats` served on this section's binds
    default_backend: tuple[str, int] | None = None


@dataclass
class Config:
    file: str
    backends: dict[str, Backend]  # backend and listen sections by name
    routes: list[str]  # every default_backend/use_backend of the config, for "traffic goes to"
    spread_checks: str = "0"  # global `spread-checks` (a percentage)
    frontends: list[Frontend] = field(default_factory=list)  # frontend and listen sections, in order
    stats_socket: tuple[str, int] | None = None  # global `stats socket /path` (a unix path) and its line


# (on, off) pairs: the later of the two words on a line (or default-server) decides.
_TOGGLES = {"disabled": "enabled", "backup": "no-backup", "check": "no-check"}


def has_flag(params: list[str], flag: str) -> bool:
    """Whether `flag` is in force: the last of it and its negation wins."""
    off = _TOGGLES.get(flag)
    state = False
    for word in params:
        if word == flag:
            state = True
        elif word == off:
            state = False
    return state


def _param(params: list[str], name: str) -> str | None:
    value = None
    for index, word in enumerate(params[:-1]):
        if word == name:
            value = params[index + 1]
    return value


def _words(text: str, file: str, number: int) -> list[str]:
    try:
        lexer = shlex.shlex(text, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return list(lexer)
    except ValueError as exc:
        raise ConfigError(file, number, f"cannot split the line: {exc}") from None


def _address(written: str, file: str, number: int) -> tuple[str | None, int | None, str]:
    """(host, port, note): note says why the address cannot be compared as written."""
    text = written
    for prefix in ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if text.startswith(("unix@", "abns@", "/", "fd@", "sockpair@")):
        return None, None, "a unix socket, not an ip:port"
    if "$" in text:
        names = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text)
        return None, None, f"set from the environment ({', '.join(names) or text}) when HAProxy starts"
    if text.count(":") > 1 and not text.startswith("["):  # haproxy writes IPv6 as addr:port unbracketed
        host, _, port = text.rpartition(":")
        text = f"[{host}]:{port}"
    host_part, colon, port_text = text.rpartition(":") if not text.endswith("]") else ("", "", "")
    if not colon:
        host_part = text
    if not colon or not port_text:
        return host_part.strip("[]") or None, None, "no port: HAProxy connects to the port the client connected to"
    if port_text[0] in "+-":
        return (
            host_part.strip("[]") or None,
            None,
            f"port offset {port_text}: the port the client connected to "
            f"{'plus' if port_text[0] == '+' else 'minus'} {port_text[1:]}",
        )
    try:
        address = parse_address(text)
    except Invalid as exc:
        raise ConfigError(file, number, f"server address '{written}': {exc.message}") from None
    return address.host, address.port, ""


# HAProxy caps the servers of a backend far below this; a template of more is a typo
# (1-99999999), and expanding it would take minutes and gigabytes.
MAX_TEMPLATE_SERVERS = 10_000


def _template_numbers(text: str, file: str, number: int) -> range:
    """The member numbers of a server-template, checked before anything is expanded."""
    first, dash, last = text.partition("-")
    if not first.isascii() or not first.isdigit() or (dash and not (last.isascii() and last.isdigit())):
        raise ConfigError(file, number, f"server-template: '{text}' is neither a count nor a range like 1-3")
    start, end = (int(first), int(last)) if dash else (1, int(first))
    if end - start + 1 > MAX_TEMPLATE_SERVERS:  # len() of a range this large would overflow
        raise ConfigError(
            file,
            number,
            f"server-template range {text} is over {MAX_TEMPLATE_SERVERS} servers "
            "(HAProxy limits the servers of a backend); write the number of servers you run",
        )
    return range(start, end + 1)


def parse(path: str) -> Config:
    lines = read_config(path, MAX_BYTES, "the haproxy config").splitlines()
    backends: dict[str, Backend] = {}
    routes: list[tuple[str, str, int]] = []  # (frontend, backend, line)
    listens: set[str] = set()
    section, name = None, None
    defaults_params: list[str] = []  # default-server of the last defaults section
    section_params: list[str] = []  # ... plus the current backend's own default-server lines
    defaults_timeouts: dict[str, str] = {}  # `timeout` lines of the last defaults section
    section_timeouts: dict[str, str] = {}
    spread_checks = "0"
    frontends: dict[str, Frontend] = {}
    stats_socket: tuple[str, int] | None = None
    base = os.path.basename(path)
    for number, raw in enumerate(lines, 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        words = _words(raw, path, number)
        if not words:
            continue
        keyword = words[0]
        if keyword in SECTIONS:
            section, name = keyword, (words[1] if len(words) > 1 else None)
            if section == "defaults":
                defaults_params = []
            section_params = list(defaults_params)
            if section == "defaults":
                defaults_timeouts = {}
            section_timeouts = dict(defaults_timeouts)
            if section in ("backend", "listen"):
                if not name:
                    raise ConfigError(path, number, f"'{section}' needs a name")
                if name in backends:
                    raise ConfigError(
                        path,
                        number,
                        f"{section} '{name}' is already defined at line "
                        f"{backends[name].line}: haproxy refuses duplicate backend names",
                    )
                backends[name] = Backend(name, number, timeouts=section_timeouts)
                if section == "listen":
                    listens.add(name)
            if section in ("frontend", "listen") and name:
                frontends.setdefault(name, Frontend(name, number))
            continue
        if section == "global" and keyword == "stats" and len(words) > 2 and words[1] == "socket":
            if words[2].startswith(("/", "unix@")):
                stats_socket = (words[2].removeprefix("unix@"), number)
            continue
        if section in ("frontend", "listen") and name in frontends:
            _frontend_line(frontends[name], words, path, number)
        if section in ("backend", "listen") and name in backends:
            _check_path_line(backends[name], words, number)
        if keyword == "default-server" and section in ("defaults", "backend", "listen"):
            section_params.extend(words[1:])
            if section == "defaults":
                defaults_params = list(section_params)
            continue
        if keyword == "timeout" and len(words) > 2 and section in ("defaults", "backend", "listen"):
            section_timeouts[words[1]] = words[2]
            if section == "defaults":
                defaults_timeouts = dict(section_timeouts)
            continue
        if keyword == "spread-checks" and section == "global" and len(words) > 1:
            spread_checks = words[1]
            continue
        if (
            section in ("frontend", "listen", "defaults")
            and keyword in ("default_backend", "use_backend")
            and len(words) > 1
        ):
            routes.append(("defaults" if section == "defaults" else f"{section} {name or '?'}", words[1], number))
        if section not in ("backend", "listen"):
            continue
        backend = backends[name]  # type: ignore[index]
        if keyword == "server":
            if len(words) < 3:
                raise ConfigError(path, number, "'server' needs a name and an address")
            host, port, note = _address(words[2], path, number)
            backend.servers.append(CfgServer(words[1], words[2], host, port, section_params + words[3:], number, note))
        elif keyword == "server-template" and len(words) >= 4:
            host, port, note = _address(words[3], path, number)
            numbers = _template_numbers(words[2], path, number)  # a range object: nothing expanded yet
            if host and is_ip(host) and not note:  # an IP literal: every member gets that address
                for index in numbers:
                    backend.servers.append(
                        CfgServer(f"{words[1]}{index}", words[3], host, port, section_params + words[4:], number)
                    )
            else:
                backend.templates.append(f"{words[1]}{words[2]} → {words[3]} (line {number})")
    if section is None and lines:
        raise ConfigError(path, 1, "no haproxy sections (global, defaults, frontend, backend, listen)")
    described = [f"{who} → {target} [{base}:{number}]" for who, target, number in routes]
    for who, target, number in routes:
        if target in backends:
            backends[target].used_by.append(f"{who} [{base}:{number}]")
        elif "%[" in target:  # a backend name computed per request: it may be any of them
            for backend in backends.values():
                backend.used_by.append(f"{who} [{base}:{number}] (dynamic use_backend {target}: may route here)")
    for name in listens:  # a listen section takes traffic on its own bind
        backends[name].used_by.append(f"listen {name} (its own bind)")
    return Config(path, backends, described, spread_checks, list(frontends.values()), stats_socket)


def _frontend_line(frontend: Frontend, words: list[str], path: str, number: int) -> None:
    keyword = words[0]
    if keyword == "bind" and len(words) > 1:
        for written in words[1].split(","):
            every, _, port = written.rpartition(":")  # `:80`, `*:80`, `0.0.0.0:80`: every address
            if port.isdigit() and every in ("", "*", "0.0.0.0", "::", "[::]"):
                frontend.binds.append(("", int(port), "ssl" in words[2:], number))
                continue
            host, port_number, note = _address(written, path, number)
            if port_number is not None and not note:
                frontend.binds.append((host or "", port_number, "ssl" in words[2:], number))
    elif keyword == "stats" and len(words) > 2 and words[1] == "uri":
        frontend.stats_uri = (words[2], number)
    elif keyword == "default_backend" and len(words) > 1:
        frontend.default_backend = (words[1], number)
    elif keyword == "acl" and any(w.startswith(("hdr(host)", "hdr_dom(host)", "req.hdr(host)")) for w in words[2:3]):
        frontend.hosts.extend((w, number) for w in words[3:] if not w.startswith("-"))


def _check_path_line(backend: Backend, words: list[str], number: int) -> None:
    """The URI the LB's http check asks for: `option httpchk GET /health`, `option httpchk
    /health` or `http-check send meth GET uri /health`."""
    if words[:2] == ["option", "httpchk"]:
        rest = words[2:]
        uri = rest[1] if len(rest) > 1 else (rest[0] if rest else "/")
        backend.check_path, backend.check_line = uri, number
    elif words[:2] == ["http-check", "send"] and "uri" in words[2:-1]:
        backend.check_path, backend.check_line = words[words.index("uri") + 1], number


def readmit_of(server: CfgServer, backend: Backend, config: Config) -> float | None:
    """The server's re-admission window (readmit.haproxy) from its own and its
    default-server params, the backend's `timeout check`/`timeout connect` and the global
    `spread-checks`; 0 for a server without `check` (HAProxy never holds it out for its
    health); None when a setting is no time HAProxy would take."""
    if not has_flag(server.params, "check"):
        return 0.0
    times = {}
    for name in ("inter", "fastinter", "downinter"):
        written = _param(server.params, name)
        times[name] = None if written is None else readmit.haproxy_time(written)
        if written is not None and times[name] is None:
            return None
    timeouts = {}
    for name in ("check", "connect"):
        written = backend.timeouts.get(name)
        timeouts[name] = None if written is None else readmit.haproxy_time(written)
        if written is not None and timeouts[name] is None:
            return None
    rise = _param(server.params, "rise") or str(readmit.HAPROXY_RISE)
    if not rise.isdigit() or not config.spread_checks.isdigit():
        return None
    return readmit.haproxy(
        int(rise),
        times["inter"] if times["inter"] is not None else readmit.HAPROXY_INTER_S,
        times["fastinter"],
        times["downinter"],
        timeouts["check"],
        timeouts["connect"],
        float(config.spread_checks),
    )


def pool_of(
    config: Config, name: str, resolved: dict[str, str] | None = None, unresolved_note: str = COMPARE_WITH_RESOLVE
) -> Pool:
    """Backend `name` as a Pool; `resolved` maps host names to the IP they resolve to, and
    `unresolved_note` says why a name missing from it has no address."""
    backend, file = config.backends[name], config.file
    servers = []
    for server in backend.servers:
        address, configured_as, note = None, None, server.note
        if note:
            configured_as = server.written
        elif server.host is not None and server.port is not None:
            if is_ip(server.host):
                address = str(parse_address(server.host, default_port=server.port))
            else:
                configured_as = f"{server.host}:{server.port}"
                ip = (resolved or {}).get(server.host)
                if ip:
                    address = str(parse_address(ip, default_port=server.port))
                else:
                    note = unresolved_note
        disabled = has_flag(server.params, "disabled")
        backup = has_flag(server.params, "backup")
        weightless = _param(server.params, "weight") == "0"
        if disabled:  # HAProxy starts a `disabled` server in maintenance
            state, service = "disabled (config)", MAINT
        elif backup:
            state, service = "backup", BACKUP
        elif weightless:
            state, service = "weight 0 (no traffic)", WEIGHT_0
        else:
            state, service = "in rotation", IN
        servers.append(
            PoolServer(
                name=server.name,
                address=address,
                state=state,
                receives_traffic=service == IN,
                serving=not disabled,
                standby=backup,
                service=service,
                flags=tuple(p for p, on in (("backup", backup), ("disabled", disabled)) if on),
                configured_as=configured_as,
                line=server.line,
                file=file,
                address_note=note,
                readmit_s=readmit_of(server, backend, config),
                health_checked=has_flag(server.params, "check"),
            )
        )
    extra: dict = {
        "used_by": backend.used_by,
        "defined_at": f"{file}:{backend.line}",
        "main": file,
        "readmit_from": "each server's inter/fastinter/downinter and rise, the backend's timeout check/connect "
        "and spread-checks, from the config (HAProxy's defaults if unset)",
    }
    if not backend.used_by:
        extra["routes"] = config.routes
    if backend.templates:
        extra["dynamic"] = backend.templates
    return Pool(
        name=backend.name, source=f"{file}:{backend.line}", servers=tuple(servers), extra=extra, from_config=True
    )
