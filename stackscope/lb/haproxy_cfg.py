"""Read an haproxy.cfg far enough to know each backend's servers and who uses them.

For the pre-deploy gate: the config about to ship, not the running process. Sections,
`server` lines (with `disabled`, `backup` and `default-server`), `server-template`
(reported as dynamic: its members come from DNS at run time), and the frontends'
`default_backend`/`use_backend` so a pool nobody routes to can be told apart.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from stackscope.lb import ConfigError
from stackscope.lb.pool import Pool, PoolServer
from stackscope.schema import Invalid, is_ip, parse_address

SECTIONS = ("global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers", "mailers",
            "program", "http-errors", "ring", "cache", "crt-store", "traces")
MAX_BYTES = 8 * 1024 * 1024


@dataclass
class CfgServer:
    name: str
    written: str
    host: str | None
    port: int | None
    params: list[str]
    line: int


@dataclass
class Backend:
    name: str
    line: int
    servers: list[CfgServer] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    used_by: list[str] = field(default_factory=list)


def _words(text: str, file: str, number: int) -> list[str]:
    try:
        lexer = shlex.shlex(text, posix=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        return list(lexer)
    except ValueError as exc:
        raise ConfigError(file, number, f"cannot split the line: {exc}") from None


def _address(written: str, file: str, number: int) -> tuple[str | None, int | None]:
    text = written
    for prefix in ("ipv4@", "ipv6@", "tcp@", "tcp4@", "tcp6@"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    if text.startswith(("unix@", "abns@", "/", "fd@", "sockpair@")):
        return None, None
    if text.count(":") > 1 and not text.startswith("["):  # haproxy writes IPv6 as addr:port unbracketed
        host, _, port = text.rpartition(":")
        text = f"[{host}]:{port}"
    try:
        address = parse_address(text)
    except Invalid as exc:
        raise ConfigError(file, number, f"server address '{written}': {exc.message}") from None
    return address.host, address.port


def parse(path: str) -> dict[str, Backend]:
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise ConfigError(path, 0, "larger than 8 MiB")
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise ConfigError(path, 0, "no such file") from None
    except OSError as exc:
        raise ConfigError(path, 0, f"cannot read: {exc.strerror or exc}") from None
    backends: dict[str, Backend] = {}
    routes: list[tuple[str, str, int]] = []  # (frontend, backend, line)
    listens: set[str] = set()
    section, name = None, None
    for number, raw in enumerate(lines, 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        words = _words(raw, path, number)
        if not words:
            continue
        keyword = words[0]
        if keyword in SECTIONS:
            section, name = keyword, (words[1] if len(words) > 1 else None)
            if section in ("backend", "listen"):
                if not name:
                    raise ConfigError(path, number, f"'{section}' needs a name")
                backends.setdefault(name, Backend(name, number))
                if section == "listen":
                    listens.add(name)
            continue
        if section in ("frontend", "listen") and keyword in ("default_backend", "use_backend") and len(words) > 1:
            routes.append((name or "?", words[1], number))
        if section not in ("backend", "listen"):
            continue
        backend = backends[name]  # type: ignore[index]
        if keyword == "server":
            if len(words) < 3:
                raise ConfigError(path, number, "'server' needs a name and an address")
            host, port = _address(words[2], path, number)
            backend.servers.append(CfgServer(words[1], words[2], host, port, words[3:], number))
        elif keyword == "server-template" and len(words) >= 4:
            backend.templates.append(f"{words[1]}{words[2]} → {words[3]} (line {number})")
    if section is None and lines:
        raise ConfigError(path, 1, "no haproxy sections (global, defaults, frontend, backend, listen)")
    for frontend, target, number in routes:
        if target in backends:
            backends[target].used_by.append(f"frontend {frontend} [{os.path.basename(path)}:{number}]")
    for name in listens:  # a listen section takes traffic on its own bind
        backends[name].used_by.append(f"listen {name} (its own bind)")
    return backends


def pool_of(backend: Backend, file: str, resolved: dict[str, str] | None = None) -> Pool:
    servers = []
    for server in backend.servers:
        address, configured_as = None, None
        if server.host is not None and server.port is not None:
            if is_ip(server.host):
                address = str(parse_address(server.host, default_port=server.port))
            else:
                configured_as = f"{server.host}:{server.port}"
                ip = (resolved or {}).get(server.host)
                if ip:
                    address = str(parse_address(ip, default_port=server.port))
        disabled = "disabled" in server.params
        backup = "backup" in server.params
        state = "disabled (config)" if disabled else "backup" if backup else "in rotation"
        servers.append(PoolServer(name=server.name, address=address, state=state,
                                  receives_traffic=not disabled and not backup, serving=not disabled,
                                  flags=tuple(p for p in ("backup", "disabled") if p in server.params),
                                  configured_as=configured_as, line=server.line))
    extra = {"used_by": backend.used_by, "defined_at": f"{file}:{backend.line}"}
    if backend.templates:
        extra["dynamic"] = backend.templates
    return Pool(name=backend.name, source=f"{file}:{backend.line}", servers=tuple(servers), extra=extra)
