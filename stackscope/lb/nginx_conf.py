"""Read an nginx configuration (or the output of `nginx -T`) far enough to find the pools.

Open-source nginx has no API for upstream members, so the config is the source of truth.
The tokenizer follows nginx's own rules where they matter for getting the structure
right: `#` starts a comment only where a token could start, quotes (single or double,
with backslash escapes) may hold any character, `${var}` braces belong to the word, and
a directive may span lines. Includes are followed (globs too, relative paths from the
main file's directory), with limits on depth, file count and size so a hostile or
looping config cannot run away.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from dataclasses import dataclass, field

from stackscope.kinds import Invalid, parse_address
from stackscope.lb import ConfigError, ConfigSources, readmit
from stackscope.lb.pool import BACKUP, COMPARE_WITH_RESOLVE, DISABLED, IN, Pool, PoolServer
from stackscope.model import is_ip

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 500
MAX_DEPTH = 16
_DUMP_MARKER = re.compile(r"^# configuration file (.+?):[ \t\r]*$", re.M)
# Directives that send a request to an upstream group (the name is the host part).
PASS_DIRECTIVES = ("proxy_pass", "grpc_pass", "fastcgi_pass", "uwsgi_pass", "scgi_pass", "memcached_pass")
# What nginx accepts inside upstream{} (open source and Plus); anything else makes it refuse the config.
UPSTREAM_DIRECTIVES = (
    "server",
    "zone",
    "hash",
    "ip_hash",
    "least_conn",
    "random",
    "keepalive",
    "keepalive_requests",
    "keepalive_time",
    "keepalive_timeout",
    "ntlm",
    "least_time",
    "queue",
    "resolver",
    "resolver_timeout",
    "sticky",
    "state",
)
SERVER_FLAGS = ("backup", "down", "resolve", "drain")
SERVER_PARAMS = ("weight", "max_fails", "fail_timeout", "max_conns", "service", "slow_start", "route")


@dataclass
class Directive:
    name: str
    args: list[str]
    file: str
    line: int
    block: list[Directive] | None = None

    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


@dataclass(frozen=True)
class _Token:
    text: str
    line: int
    quoted: bool = False


def tokenize(text: str, file: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in ";{}":
            tokens.append(_Token(ch, line))
            i += 1
        elif ch in "\"'":
            start_line, quote, i = line, ch, i + 1
            out = []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n:
                    out.append(text[i + 1])
                    i += 2
                    continue
                if text[i] == "\n":
                    line += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise ConfigError(file, start_line, f"unterminated {quote} quote")
            i += 1
            tokens.append(_Token("".join(out), start_line, quoted=True))
        else:
            start = i
            while i < n and text[i] not in " \t\r\n;\"'":
                if text[i] == "{":
                    if i > start and text[i - 1] == "$":  # ${var}: the braces belong to the word
                        close = text.find("}", i)
                        if close < 0:
                            raise ConfigError(file, line, "unterminated ${ variable")
                        i = close + 1
                        continue
                    break
                if text[i] == "}":
                    break
                if text[i] == "\\" and i + 1 < n:
                    i += 2
                    continue
                i += 1
            tokens.append(_Token(text[start:i], line))
    return tokens


def parse(text: str, file: str) -> list[Directive]:
    tokens = tokenize(text, file)
    pos = 0

    def block(depth: int, opened_at: int) -> list[Directive]:
        nonlocal pos
        out: list[Directive] = []
        words: list[_Token] = []
        while pos < len(tokens):
            token = tokens[pos]
            pos += 1
            if not token.quoted and token.text == ";":
                if not words:
                    raise ConfigError(file, token.line, 'unexpected ";"')
                out.append(Directive(words[0].text, [w.text for w in words[1:]], file, words[0].line))
                words = []
            elif not token.quoted and token.text == "{":
                if not words:
                    raise ConfigError(file, token.line, 'unexpected "{"')
                if depth > 64:
                    raise ConfigError(file, token.line, "blocks nested too deeply")
                directive = Directive(words[0].text, [w.text for w in words[1:]], file, words[0].line)
                words = []
                directive.block = block(depth + 1, token.line)
                out.append(directive)
            elif not token.quoted and token.text == "}":
                if words:
                    raise ConfigError(
                        file, token.line, f'unexpected "}}" (directive "{words[0].text}" is not terminated by ";")'
                    )
                if depth == 0:
                    raise ConfigError(file, token.line, 'unexpected "}"')
                return out
            else:
                words.append(token)
        if words:
            raise ConfigError(
                file, words[0].line, f'unexpected end of file, expecting ";" or "}}" after "{words[0].text}"'
            )
        if depth > 0:
            raise ConfigError(file, opened_at, 'unexpected end of file, expecting "}" for the block opened here')
        return out

    return block(0, 0)


# --------------------------------------------------------------------------- sources


class _Files(ConfigSources):
    """Where config text comes from: the filesystem, or the sections of an `nginx -T` dump."""

    dump_name = "the nginx -T output"
    what = "the nginx config"
    max_files = MAX_FILES
    max_bytes = MAX_FILE_BYTES

    def glob(self, pattern: str) -> list[str]:
        if self.dump is not None:
            return sorted(path for path in self.dump if fnmatch.fnmatch(path, pattern))
        if glob.has_magic(pattern):
            return sorted(glob.glob(pattern))
        return [pattern]


def split_dump(text: str) -> dict[str, str] | None:
    """The files of an `nginx -T` dump ({path: text}, main file first), or None."""
    marks = list(_DUMP_MARKER.finditer(text))
    if not marks:
        return None
    files: dict[str, str] = {}
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        start = mark.end() + 1  # past the marker's newline: line 1 of the section is line 1 of the file
        files.setdefault(mark.group(1), text[start:end])
    return files


@dataclass
class Config:
    main: str
    directives: list[Directive]
    files: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)  # where the *_pass directives send traffic, all of them


def load(path: str) -> Config:
    """Parse a config file or a saved `nginx -T` output, following includes."""
    files = _Files()
    text = files.read(path)
    dump = split_dump(text)
    if dump is not None:
        files = _Files(dump)
        main = next(iter(dump))
        text = dump[main]
    else:
        main = path
    seen: list[str] = [main]
    directives = _expand(
        parse(text, main),
        os.path.dirname(os.path.abspath(main)) if dump is None else os.path.dirname(main),
        files,
        seen,
        0,
    )
    routes = [
        f"{d.name} {d.args[0]} [{d.where()}]" for d, _ in _walk(directives) if d.name in PASS_DIRECTIVES and d.args
    ]
    return Config(main=main, directives=directives, files=seen, routes=routes)


def _expand(directives: list[Directive], base: str, files: _Files, seen: list[str], depth: int) -> list[Directive]:
    out: list[Directive] = []
    for directive in directives:
        if directive.name == "include" and directive.block is None:
            if len(directive.args) != 1:
                raise ConfigError(directive.file, directive.line, "include takes one path")
            if depth >= MAX_DEPTH:
                raise ConfigError(directive.file, directive.line, "includes nested too deeply (a loop?)")
            pattern = directive.args[0]
            if not os.path.isabs(pattern):
                pattern = os.path.join(base, pattern)
            for path in files.glob(pattern):
                seen.append(path)
                out.extend(_expand(parse(files.read(path), path), base, files, seen, depth + 1))
            continue
        if directive.block is not None:
            directive.block = _expand(directive.block, base, files, seen, depth)
        out.append(directive)
    return out


# --------------------------------------------------------------------------- upstreams


@dataclass(frozen=True)
class UpstreamServer:
    written: str  # the address as written: host:port, host, unix:/path
    host: str | None  # None for unix sockets
    port: int | None
    flags: tuple[str, ...]  # backup, down, drain
    params: dict[str, str]  # weight, max_fails, fail_timeout, max_conns, ...
    file: str
    line: int


@dataclass(frozen=True)
class Upstream:
    name: str
    context: str  # http | stream
    servers: tuple[UpstreamServer, ...]
    file: str
    line: int
    used_by: tuple[str, ...]  # "server 127.0.0.1:18080 location /" for each proxy_pass to it


def _walk(directives: list[Directive], path: tuple[Directive, ...] = ()):
    for directive in directives:
        yield directive, path
        if directive.block is not None:
            yield from _walk(directive.block, path + (directive,))


def _pass_target(directive: Directive) -> tuple[str, int | None]:
    """The upstream-group candidate of a *_pass directive and its port, if written:
    `http://auth:8080/x` -> ("auth", 8080); `unix:/run/x.sock` -> ("unix:/run/x.sock", None)."""
    target = re.sub(r"^[a-z]+://", "", directive.args[0]).split("/")[0]
    if target.startswith("unix:") or target.startswith("["):
        return target, None
    host, colon, port = target.rpartition(":")
    if colon and port.isdigit():
        return host, int(port)
    return target, None


def upstreams(config: Config) -> dict[str, Upstream]:
    found: dict[str, tuple[Directive, str]] = {}
    for directive, path in _walk(config.directives):
        if directive.name == "upstream" and directive.block is not None and directive.args:
            context = path[-1].name if path else "main"
            found.setdefault(directive.args[0], (directive, context))
    users: dict[str, list[str]] = {name: [] for name in found}
    for directive, path in _walk(config.directives):
        if directive.name not in PASS_DIRECTIVES or not directive.args:
            continue
        target, port = _pass_target(directive)
        if target in users:
            if port is not None:  # nginx: upstream "NAME" may not have port N
                raise ConfigError(
                    directive.file,
                    directive.line,
                    f'upstream "{target}" may not have port {port} ({directive.name} '
                    f"{directive.args[0]}) — nginx would refuse this config",
                )
            users[target].append(_describe_use(path, directive))
    return {
        name: Upstream(name, context, tuple(_servers(directive)), directive.file, directive.line, tuple(users[name]))
        for name, (directive, context) in found.items()
    }


def _describe_use(path: tuple[Directive, ...], directive: Directive) -> str:
    parts = []
    for ancestor in path:
        if ancestor.name == "server" and ancestor.block is not None:
            listens = [" ".join(d.args[:1]) for d in ancestor.block if d.name == "listen" and d.args]
            names = [" ".join(d.args) for d in ancestor.block if d.name == "server_name" and d.args]
            parts.append(
                "server " + (listens[0] if listens else "(default listen)") + (f" ({names[0]})" if names else "")
            )
        elif ancestor.name == "location":
            parts.append("location " + " ".join(ancestor.args))
    return " ".join(parts) + f" [{directive.where()}]"


def _refuse(directive: Directive, message: str) -> ConfigError:
    return ConfigError(directive.file, directive.line, f"{message} — nginx would refuse this config")


def _check_server_args(directive: Directive) -> None:
    """Only the parameters nginx knows: a typo (`wieght=2`) or a missing `;` that merges
    two server lines would stop nginx from loading the config."""
    for arg in directive.args[1:]:
        key, equals, value = arg.partition("=")
        if not equals and key in SERVER_FLAGS:
            continue
        if equals and key in SERVER_PARAMS:
            if (
                key in ("weight", "max_fails", "max_conns")
                and not value.isdigit()
                or key == "weight"
                and value.isdigit()
                and int(value) == 0
            ):
                raise _refuse(directive, f'invalid parameter "{arg}" in server {directive.args[0]}')
            continue
        if arg == "server" or (not equals and ":" in arg or re.fullmatch(r"[\d.]+", arg)):
            raise _refuse(
                directive,
                f'invalid parameter "{arg}" in server {directive.args[0]} (is the ";" '
                f"missing at the end of line {directive.line}?)",
            )
        raise _refuse(
            directive,
            f'invalid parameter "{arg}" in server {directive.args[0]} (known: '
            f"{', '.join(SERVER_PARAMS)}=…, {', '.join(SERVER_FLAGS)})",
        )


def _servers(upstream: Directive) -> list[UpstreamServer]:
    out = []
    for directive in upstream.block or []:
        if directive.name not in UPSTREAM_DIRECTIVES or directive.block is not None:
            raise _refuse(
                directive,
                f'unknown directive "{directive.name}" in upstream {upstream.args[0] if upstream.args else ""}',
            )
        if directive.name != "server":
            continue
        if not directive.args:
            raise _refuse(directive, "server needs an address")
        _check_server_args(directive)
        written = directive.args[0]
        flags = tuple(a for a in directive.args[1:] if "=" not in a)
        params = dict(a.split("=", 1) for a in directive.args[1:] if "=" in a)
        if written.startswith("unix:"):
            out.append(UpstreamServer(written, None, None, flags, params, directive.file, directive.line))
            continue
        try:
            address = parse_address(written, default_port=80)
        except Invalid as exc:
            raise ConfigError(
                directive.file, directive.line, f"bad server address '{written}': {exc.message}"
            ) from None
        out.append(UpstreamServer(written, address.host, address.port, flags, params, directive.file, directive.line))
    return out


def pool_of(
    upstream: Upstream,
    resolved: dict[str, str] | None = None,
    config: Config | None = None,
    unresolved_note: str = COMPARE_WITH_RESOLVE,
) -> Pool:
    """The upstream as a Pool; `resolved` maps host names to the IP they resolve to (and
    `unresolved_note` says why a name missing from it has no address), `config` is the
    config it comes from (servers from includes are shown with their own file)."""
    servers = []
    for server in upstream.servers:
        address = None
        configured_as = None
        if server.host is not None:
            if is_ip(server.host):
                address = str(parse_address(f"{server.host}", default_port=server.port))
            else:
                configured_as = f"{server.host}:{server.port}"
                ip = (resolved or {}).get(server.host)
                if ip:
                    address = str(parse_address(ip, default_port=server.port))
        down = "down" in server.flags
        backup = "backup" in server.flags
        if down:
            state, service = "down (config)", DISABLED
        elif backup:
            state, service = "backup", BACKUP
        else:
            state, service = "in rotation", IN
        servers.append(
            PoolServer(
                name=server.written,
                address=address,
                state=state,
                receives_traffic=service == IN,
                serving=not down,
                standby=backup,
                service=service,
                weight=int(server.params["weight"]) if server.params.get("weight", "").isdigit() else 1,
                flags=server.flags,
                configured_as=configured_as,
                check=_passive(server),
                readmit_s=readmit_of(server),
                line=server.line,
                file=server.file,
                address_note=""
                if address
                else "a unix socket, not an ip:port"
                if server.host is None
                else unresolved_note,
            )
        )
    extra = {
        "used_by": list(upstream.used_by),
        "defined_at": f"{upstream.file}:{upstream.line}",
        "context": upstream.context,
        "main": config.main if config else None,
        "readmit_from": "each server's fail_timeout (10s if unset) + 1s, from the config",
    }
    if not upstream.used_by:
        extra["routes"] = list(config.routes) if config else []
    return Pool(
        name=upstream.name,
        source=f"{upstream.file}:{upstream.line}",
        servers=tuple(servers),
        extra=extra,
        from_config=True,
    )


def _passive(server: UpstreamServer) -> str:
    """nginx's passive health settings, which decide when it skips a server."""
    fails = server.params.get("max_fails", "1")
    timeout = server.params.get("fail_timeout", "10s")
    return "passive checks off" if fails == "0" else f"max_fails={fails} fail_timeout={timeout}"


def readmit_of(server: UpstreamServer) -> float | None:
    """The server's re-admission window (readmit.nginx) from its `max_fails` and
    `fail_timeout`; None for a time nginx would not take."""
    fails = server.params.get("max_fails", "1")
    timeout = server.params.get("fail_timeout")
    seconds = readmit.NGINX_FAIL_TIMEOUT_S if timeout is None else readmit.nginx_time(timeout)
    if seconds is None or not fails.isdigit():
        return None
    return readmit.nginx(seconds, int(fails))
