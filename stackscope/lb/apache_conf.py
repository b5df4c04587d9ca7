"""Read an Apache httpd 2.4 configuration far enough to find mod_proxy_balancer's pools.

A pool is `<Proxy "balancer://NAME">` holding `BalancerMember URL [key=value…]` lines (or
`BalancerMember balancer://NAME URL …` outside the section), tuned by `ProxySet`, and
used by `ProxyPass PATH balancer://NAME/` (or the one-argument form inside `<Location>`,
`ProxyPassMatch`, or a `RewriteRule … balancer://NAME… [P]`). The reader follows
httpd's own rules where they matter for the structure: one directive per line, a
trailing backslash continues it, `#` starts a comment only as the first word, words may
be quoted with " or ' (a backslash escapes the quote), `<Section args>` … `</Section>`
nest, `Define` variables expand as `${NAME}`, and `Include`/`IncludeOptional` take globs
(and directories) relative to ServerRoot (the main file's directory when the config sets
none, as on Debian's /etc/apache2/apache2.conf). Files are read through one bounded
reader, with limits on depth, file count and size, so a hostile or looping config cannot
run away. Every member keeps its file and line.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from stackscope.kinds import parse_address
from stackscope.lb import ConfigError, read_config, readmit
from stackscope.lb.pool import (
    BACKUP,
    COMPARE_WITH_RESOLVE,
    DOWN_BY_CHECK,
    DRAIN,
    IN,
    MAINT,
    Pool,
    PoolServer,
)
from stackscope.model import is_ip

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 500
MAX_DEPTH = 16
MAX_LINE_BYTES = 64 * 1024

# The worker parameters httpd 2.4 knows (mod_proxy's set_worker_param, mod_proxy_hcheck's
# set_worker_hc_param); any other makes it refuse the config ("unknown Worker parameter").
WORKER_PARAMS = frozenset(
    """
    loadfactor route redirect status lbset retry timeout connectiontimeout ping ttl max min smax acquire
    keepalive disablereuse enablereuse flushpackets flushwait iobuffersize receivebuffersize secret upgrade
    mapping responsefieldsize addressttl hcmethod hcexpr hcinterval hcpasses hcfails hcuri hctemplate
    """.split()
)
# status=+X letters: I ignore errors, N drain, D disabled, S stopped, E in error, H hot
# standby, R hot spare, C health check failed.
STATUS_LETTERS = "INDSEHRC"
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "h2c": 80, "h2": 443, "ajp": 8009}
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


# --------------------------------------------------------------------------- reading


# --------------------------------------------------------------------------- parsing


@dataclass
class Directive:
    name: str  # as written; compare with .key
    args: list[str]
    file: str
    line: int
    block: list[Directive] | None = None  # for <Section …> … </Section>

    @property
    def key(self) -> str:
        return self.name.lower()

    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


def split_words(text: str, file: str, line: int) -> list[str]:
    """httpd's ap_getword_conf: words split on white space; ' or " quote a word and a
    backslash before the quote character keeps it in the word."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch in "\"'":
            quote, i = ch, i + 1
            out = []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n and text[i + 1] == quote:
                    out.append(quote)
                    i += 2
                    continue
                out.append(text[i])
                i += 1
            if i >= n:
                raise ConfigError(file, line, f"unterminated {quote} quote")
            i += 1
            words.append("".join(out))
            continue
        start = i
        while i < n and text[i] not in " \t\r\n":
            i += 1
        words.append(text[start:i])
    return words


def _logical_lines(text: str, file: str):
    """(first line number, text) for each directive line, continuations joined."""
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.split("\n"), 1):
        raw = raw.rstrip("\r")
        if not pending:
            first = number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        joined = "".join(pending)
        pending = []
        if len(joined) > MAX_LINE_BYTES:
            raise ConfigError(file, first, "line too long")
        yield first, joined
    if pending:
        yield first, "".join(pending)


def parse(text: str, file: str, defines: dict[str, str] | None = None) -> list[Directive]:
    """The directives of one file, sections nested; `defines` collects `Define NAME VALUE`
    as they come (httpd defines in reading order) and expands `${NAME}` in arguments."""
    defines = defines if defines is not None else {}
    root: list[Directive] = []
    stack: list[tuple[Directive | None, list[Directive]]] = [(None, root)]
    for number, line in _logical_lines(text, file):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("</"):
            name = stripped[2:].rstrip(">").strip()
            opener = stack[-1][0]
            if opener is None:
                raise ConfigError(file, number, f"</{name}> without matching <{name}> section")
            if opener.key != name.lower():
                raise ConfigError(file, number, f"</{name}> closes <{opener.name}> (opened at line {opener.line})")
            stack.pop()
            continue
        if stripped.startswith("<"):
            if not stripped.endswith(">"):
                tag = (stripped[1:].split() or [""])[0]
                raise ConfigError(file, number, f"<{tag} directive missing closing '>'")
            words = split_words(_expand(stripped[1:-1], defines, file, number), file, number)
            if not words:
                raise ConfigError(file, number, "empty section tag")
            if len(stack) > 64:
                raise ConfigError(file, number, "sections nested too deeply")
            section = Directive(words[0], words[1:], file, number, [])
            stack[-1][1].append(section)
            stack.append((section, section.block))  # type: ignore[arg-type]
            continue
        words = split_words(_expand(stripped, defines, file, number), file, number)
        directive = Directive(words[0], words[1:], file, number)
        if directive.key == "define" and directive.args:
            defines[directive.args[0]] = directive.args[1] if len(directive.args) > 1 else ""
        stack[-1][1].append(directive)
    if len(stack) > 1:
        opener = stack[-1][0]
        assert opener is not None
        raise ConfigError(file, opener.line, f"<{opener.name}> section is never closed (no </{opener.name}>)")
    return root


_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _expand(text: str, defines: dict[str, str], file: str, line: int) -> str:
    """${NAME} from Define; an undefined one stays as written (httpd takes it from the
    environment at start-up, which the gate does not know)."""
    return _VAR.sub(lambda m: defines.get(m.group(1), m.group(0)), text)


# --------------------------------------------------------------------------- loading


@dataclass
class Config:
    main: str
    directives: list[Directive]
    server_root: str
    files: list[str] = field(default_factory=list)


def load(path: str) -> Config:
    """Parse a config file, following Include/IncludeOptional."""
    text = read_config(path, MAX_FILE_BYTES, "the Apache config")
    defines: dict[str, str] = {}
    directives = parse(text, path, defines)
    root = next((d.args[0] for d in directives if d.key == "serverroot" and d.args), None)
    server_root = os.path.abspath(root) if root else os.path.dirname(os.path.abspath(path))
    files = [path]
    expanded = _includes(directives, server_root, files, defines, 0)
    return Config(main=path, directives=expanded, server_root=server_root, files=files)


def _include_paths(directive: Directive, pattern: str, server_root: str) -> list[str]:
    optional = directive.key == "includeoptional"
    if not os.path.isabs(pattern):
        pattern = os.path.join(server_root, pattern)
    if glob.has_magic(pattern):
        parent = os.path.dirname(pattern)
        if not glob.has_magic(parent) and not os.path.isdir(parent) and not optional:
            raise ConfigError(
                directive.file, directive.line, f"Include: cannot open directory {parent} — Apache would refuse this"
            )
        matches = sorted(p for p in glob.glob(pattern) if not os.path.isdir(p))
        if not matches and not optional:
            raise ConfigError(
                directive.file,
                directive.line,
                f"Include: no file matches the wildcard {pattern} — Apache would refuse this (IncludeOptional allows it)",
            )
        return matches
    if os.path.isdir(pattern):  # a directory: every file in it, in order
        return sorted(
            os.path.join(pattern, name) for name in os.listdir(pattern) if os.path.isfile(os.path.join(pattern, name))
        )
    if not os.path.exists(pattern):
        if optional:
            return []
        raise ConfigError(
            directive.file, directive.line, f"Include: {pattern} does not exist — Apache would refuse this"
        )
    return [pattern]


def _includes(
    directives: list[Directive], server_root: str, files: list[str], defines: dict[str, str], depth: int
) -> list[Directive]:
    out: list[Directive] = []
    for directive in directives:
        if directive.key in ("include", "includeoptional") and directive.block is None:
            if len(directive.args) != 1:
                raise ConfigError(directive.file, directive.line, f"{directive.name} takes one path")
            if depth >= MAX_DEPTH:
                raise ConfigError(directive.file, directive.line, "includes nested too deeply (a loop?)")
            for path in _include_paths(directive, directive.args[0], server_root):
                files.append(path)
                if len(files) > MAX_FILES:
                    raise ConfigError(path, 0, f"more than {MAX_FILES} included files")
                out.extend(
                    _includes(
                        parse(read_config(path, MAX_FILE_BYTES, "the Apache config"), path, defines),
                        server_root,
                        files,
                        defines,
                        depth + 1,
                    )
                )
            continue
        if directive.block is not None:
            directive.block = _includes(directive.block, server_root, files, defines, depth)
        out.append(directive)
    return out


def walk(directives: list[Directive], path: tuple[Directive, ...] = ()):
    for directive in directives:
        yield directive, path
        if directive.block is not None:
            yield from walk(directive.block, path + (directive,))


# --------------------------------------------------------------------------- balancers


@dataclass(frozen=True)
class Member:
    url: str  # as written
    host: str | None  # None for unix sockets
    port: int | None
    params: dict[str, str]
    status: str  # the status letters set: "D", "H", "" …
    file: str
    line: int
    address_note: str = ""  # why host/port cannot give an address


@dataclass(frozen=True)
class Balancer:
    name: str
    members: tuple[Member, ...]
    settings: dict[str, str]  # ProxySet lbmethod=…, stickysession=…
    file: str
    line: int
    used_by: tuple[str, ...]  # "ProxyPass / [httpd.conf:40]" for each use


def balancer_name(url: str) -> str | None:
    """'balancer://auth_servers/x' -> 'auth_servers'; anything else -> None."""
    if not url.lower().startswith("balancer://"):
        return None
    match = NAME_RE.match(url[len("balancer://") :])  # balancer://billing$1 (a RewriteRule) -> billing
    return match.group(0) if match else None


def _refuse(directive: Directive, message: str) -> ConfigError:
    return ConfigError(directive.file, directive.line, f"{message} — Apache would refuse this config")


def _status(directive: Directive, value: str) -> str:
    """status=+D-H…: the letters left set (httpd starts every worker with none)."""
    letters: set[str] = set()
    sign = "+"
    for ch in value:
        if ch in "+-":
            sign = ch
            continue
        if ch.upper() not in STATUS_LETTERS:
            raise _refuse(directive, f"BalancerMember: unknown status flag '{ch}' in status={value}")
        (letters.add if sign == "+" else letters.discard)(ch.upper())
    return "".join(sorted(letters, key=STATUS_LETTERS.index))


def _member(directive: Directive, url: str, params: list[str]) -> Member:
    parsed: dict[str, str] = {}
    for arg in params:
        key, equals, value = arg.partition("=")
        if not equals:
            raise _refuse(
                directive,
                f"BalancerMember {url}: '{arg}' is not key=value (a second name after the URL is taken as "
                "a balancer name, which a member inside <Proxy balancer://…> may not have)",
            )
        if key.lower() not in WORKER_PARAMS:
            raise _refuse(directive, f"BalancerMember {url}: unknown worker parameter '{key}'")
        parsed[key.lower()] = value
    factor = parsed.get("loadfactor")
    if factor is not None:
        try:
            number = float(factor)
        except ValueError:
            number = 0
        if not 1 <= number <= 100:
            raise _refuse(directive, f"BalancerMember {url}: loadfactor must be a number between 1..100")
    status = _status(directive, parsed["status"]) if "status" in parsed else ""
    try:
        host, port, note = split_worker_url(url)
    except ValueError as exc:
        raise _refuse(directive, f"BalancerMember: {exc}") from None
    return Member(url, host, port, parsed, status, directive.file, directive.line, note)


def split_worker_url(url: str) -> tuple[str | None, int | None, str]:
    """(host, port, note) of a worker URL; note says why there is no ip:port to compare.
    ValueError for text that is no worker URL at all."""
    if url.lower().startswith("unix:"):
        return None, None, "a unix socket, not an ip:port"
    if "${" in url:
        return None, None, f"set from the environment ({', '.join(_VAR.findall(url))}) when Apache starts"
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ValueError(f"bad worker URL '{url}'") from None
    scheme = parts.scheme.lower()
    if not scheme or not host:
        raise ValueError(f"'{url}' is not a worker URL (scheme://host[:port])")
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
        if port is None:
            return host, None, f"no port, and {scheme}:// has no default"
    return host, port, ""


def balancers(config: Config) -> dict[str, Balancer]:
    """Every balancer the config defines, with its members in order (a balancer defined in
    several places gathers them all, as httpd does)."""
    found: dict[str, dict] = {}

    def entry(name: str, directive: Directive) -> dict:
        key = name.lower()
        if key not in found:
            found[key] = {
                "name": name,
                "members": [],
                "settings": {},
                "file": directive.file,
                "line": directive.line,
                "used_by": [],
            }
        return found[key]

    for directive, path in walk(config.directives):
        # the nearest enclosing <Proxy balancer://NAME>, through <IfModule>/<IfDefine> inside it
        section = next((p for p in reversed(path) if p.key in ("proxy", "proxymatch")), None)
        inside = balancer_name(section.args[0]) if section is not None and section.args else None
        if directive.key == "proxy" and directive.block is not None and directive.args:
            name = balancer_name(directive.args[0])
            if name is not None:
                entry(name, directive)
        elif directive.key == "balancermember":
            if not directive.args:
                raise _refuse(directive, "BalancerMember needs a worker URL")
            if section is not None:
                if balancer_name(directive.args[0]):
                    raise _refuse(directive, "BalancerMember can not have a balancer name when defined in a location")
                if inside is None:
                    continue  # a member of a <Proxy> that is no balancer: httpd ignores it for pools
                entry(inside, section)["members"].append(_member(directive, directive.args[0], directive.args[1:]))
                continue
            name = balancer_name(directive.args[0])
            if len(directive.args) < 2 or not name:
                raise _refuse(directive, "BalancerMember outside <Proxy balancer://…> needs balancer://NAME URL")
            entry(name, directive)["members"].append(_member(directive, directive.args[1], directive.args[2:]))
        elif directive.key == "proxyset" and directive.args:
            name = balancer_name(directive.args[0])
            if name:
                entry(name, directive)["settings"].update(a.split("=", 1) for a in directive.args[1:] if "=" in a)
            elif inside and section is not None:  # inside is only set within a section
                entry(inside, section)["settings"].update(a.split("=", 1) for a in directive.args if "=" in a)
    for directive, path in walk(config.directives):
        target = _route_target(directive, path)
        if target is None:
            continue
        name = balancer_name(target)
        if name and name.lower() in found:
            found[name.lower()]["used_by"].append(_describe_use(directive, path))
    return {
        item["name"]: Balancer(
            item["name"],
            tuple(item["members"]),
            item["settings"],
            item["file"],
            item["line"],
            tuple(item["used_by"]),
        )
        for item in found.values()
    }


def routes(config: Config) -> list[str]:
    """Where every ProxyPass-like directive sends traffic, for a balancer nothing uses."""
    out = []
    for directive, path in walk(config.directives):
        target = _route_target(directive, path)
        if target is not None and target != "!":
            out.append(f"{directive.name} {target} [{directive.where()}]")
    return out


def _route_target(directive: Directive, path: tuple[Directive, ...]) -> str | None:
    """The backend URL a ProxyPass/ProxyPassMatch/RewriteRule [P] sends requests to."""
    if directive.key in ("proxypass", "proxypassmatch"):
        positional = [a for a in directive.args if "://" in a or "=" not in a]
        inside_location = any(p.key in ("location", "locationmatch") for p in path)
        if len(positional) == 1 and inside_location:
            return positional[0]
        return positional[1] if len(positional) >= 2 else None
    if directive.key == "rewriterule" and len(directive.args) >= 3:
        flags = directive.args[2].strip("[]").split(",")
        if any(f.strip().upper() in ("P", "PROXY") for f in flags):
            return directive.args[1]
    return None


def _describe_use(directive: Directive, path: tuple[Directive, ...]) -> str:
    parts = []
    for ancestor in path:
        if ancestor.key == "virtualhost":
            parts.append("VirtualHost " + " ".join(ancestor.args))
        elif ancestor.key in ("location", "locationmatch"):
            parts.append(f"<{ancestor.name} {' '.join(ancestor.args)}>")
    positional = [a for a in directive.args if "://" in a or "=" not in a]
    source = positional[0] if len(positional) >= 2 or directive.key == "rewriterule" else ""
    parts.append(f"{directive.name} {source}".rstrip())
    return " ".join(parts) + f" [{directive.where()}]"


# --------------------------------------------------------------------------- pool


def config_service(status: str) -> tuple[str, str, bool, bool, bool]:
    """(state, service, receives traffic, serving, standby) for status letters from a config."""
    if "D" in status or "S" in status:
        return ("Dis" if "D" in status else "Stop") + " (config)", MAINT, False, False, False
    if "E" in status or "C" in status:
        return ("Err" if "E" in status else "HcFl") + " (config)", DOWN_BY_CHECK, False, False, False
    if "N" in status:
        return "Drn (config)", DRAIN, False, False, False
    if "H" in status or "R" in status:
        return ("Stby" if "H" in status else "Spar") + " (config)", BACKUP, False, True, True
    return "enabled", IN, True, True, False


def _hc_text(params: dict[str, str]) -> str:
    method = params.get("hcmethod", "")
    if not method or method.upper() == "NONE":
        return ""
    parts = [f"hcmethod={method}"]
    for key in ("hcuri", "hcexpr", "hcinterval", "hcfails", "hcpasses"):
        if key in params:
            parts.append(f"{key}={params[key]}")
    return " ".join(parts)


def readmit_of(params: dict[str, str]) -> float | None:
    """A member's re-admission window from its BalancerMember parameters: with an active
    check (hcmethod other than NONE) mod_proxy_hcheck's passes bring it back
    (readmit.apache_hcheck), else `retry` (readmit.apache_retry); None for a time httpd
    would not take."""
    method = params.get("hcmethod", "")
    if method and method.upper() != "NONE":
        interval = _time_or(params.get("hcinterval"), readmit.APACHE_HCINTERVAL_S)
        passes = params.get("hcpasses", str(readmit.APACHE_HCPASSES))
        if interval is None or not passes.isdigit():
            return None
        return readmit.apache_hcheck(interval, int(passes))
    retry = _time_or(params.get("retry"), readmit.APACHE_RETRY_S)
    return None if retry is None else readmit.apache_retry(retry)


def _time_or(written: str | None, default: float) -> float | None:
    return default if written is None else readmit.apache_time(written)


def pool_of(
    balancer: Balancer,
    resolved: dict[str, str] | None = None,
    config: Config | None = None,
    unresolved_note: str = COMPARE_WITH_RESOLVE,
) -> Pool:
    """The balancer as a Pool; `resolved` maps host names to the IP they resolve to."""
    servers = []
    for member in balancer.members:
        address = None
        configured_as = None
        note = member.address_note
        if member.host is not None and member.port is not None and not note:
            if is_ip(member.host):
                address = str(parse_address(member.host, default_port=member.port))
            else:
                configured_as = f"{member.host}:{member.port}"
                ip = (resolved or {}).get(member.host)
                if ip:
                    address = str(parse_address(ip, default_port=member.port))
                else:
                    note = unresolved_note
        state, service, receives, serving, standby = config_service(member.status)
        factor = member.params.get("loadfactor")
        servers.append(
            PoolServer(
                name=member.params.get("route") or member.url,
                address=address,
                state=state,
                receives_traffic=receives,
                serving=serving,
                standby=standby,
                service=service,
                weight=round(float(factor)) if factor else 1,
                flags=tuple(f"status=+{ch}" for ch in member.status),
                configured_as=configured_as or (member.url if not address and member.host is None else None),
                check=_hc_text(member.params),
                readmit_s=readmit_of(member.params),
                line=member.line,
                file=member.file,
                address_note="" if address else note,
            )
        )
    extra = {
        "used_by": list(balancer.used_by),
        "defined_at": f"{balancer.file}:{balancer.line}",
        "settings": dict(balancer.settings),
        "main": config.main if config else None,
        "readmit_from": "each member's hcinterval x hcpasses + 0.1s with an hcmethod, else its retry (60s if unset)",
    }
    if not balancer.used_by:
        extra["routes"] = routes(config) if config else []
    return Pool(
        name=balancer.name,
        source=f"{balancer.file}:{balancer.line}",
        servers=tuple(servers),
        extra=extra,
        from_config=True,
    )
