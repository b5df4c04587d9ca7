"""Read a Varnish VCL far enough to find the pools: backends, directors and their use.

A Varnish "pool" is a director made in `vcl_init` (`new NAME = directors.round_robin();`
then `NAME.add_backend(b1);`), whose members are `backend NAME { .host = ...; .port = ...; }`
blocks. Traffic reaches it only if a subroutine sets `req.backend_hint = NAME.backend();`
(or `bereq.backend`); with no such assignment anywhere Varnish sends everything to the
first backend declared.

Two sources, one parser: VCL files on disk (`lint --lb-config default.vcl`, includes
followed) and the output of the CLI's `vcl.show -v NAME`, which prints every source file of
the running VCL under a `// VCL.SHOW index length path` header. Nothing here touches a
socket. The tokenizer knows VCL's comments (`//`, `#`, `/* */`), strings (`"..."`,
`{"..."}`, `\"\"\"...\"\"\"`) and inline C (`C{ ... }C`), so a brace or a semicolon inside
any of them cannot bend the structure. Depth, file count and size are capped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from stackscope.files import read_bounded
from stackscope.kinds import Invalid, parse_address
from stackscope.lb import ConfigError, ConfigSources, readmit
from stackscope.lb.pool import (
    BACKUP,
    COMPARE_WITH_RESOLVE,
    DOWN_BY_CHECK,
    IN,
    MAINT,
    UNKNOWN,
    WEIGHT_0,
    Pool,
    PoolServer,
)
from stackscope.model import is_ip

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_FILES = 200
MAX_DEPTH = 16
MAX_NESTING = 16  # directors inside directors
DIRECTOR_TYPES = ("round_robin", "random", "fallback", "hash", "shard")
SERVICE_PORTS = {"http": 80, "https": 443}
DETECT = re.compile(r"^\s*vcl\s+4\.\d+\s*;", re.M)
_SHOW_HEADER_BYTES = re.compile(rb"^// VCL\.SHOW (\d+) (\d+) (.*)\n", re.M)

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>(?://|\#)[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<c_code>C\{.*?\}C)
  | (?P<long_string>\{".*?"\}|\"\"\".*?\"\"\")
  | (?P<string>"[^"\n]*")
  | (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.-]*)
  | (?P<number>[0-9][0-9.]*[a-z]*)
  | (?P<punct>==|!=|&&|\|\||\+=|-=|[^\s])
    """,
    re.S | re.X,
)


@dataclass(frozen=True)
class Token:
    kind: str  # ident, field, string, number, punct
    text: str  # a string's text without its quotes
    file: str
    line: int


def tokenize(text: str, file: str) -> list[Token]:
    tokens: list[Token] = []
    line = 1
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only an unterminated comment, string or C block gets here
            raise ConfigError(file, line, "unterminated comment, string or C{ }C block")
        kind = match.lastgroup or "punct"
        value = match.group()
        if kind == "punct" and value in ('"', "{") and _unterminated(text, pos):
            raise ConfigError(file, line, "unterminated string")
        if kind == "punct" and value == "/" and text.startswith("/*", pos):
            raise ConfigError(file, line, "unterminated /* comment")
        if kind == "long_string":
            tokens.append(Token("string", value[2:-2] if value.startswith("{") else value[3:-3], file, line))
        elif kind == "string":
            tokens.append(Token("string", value[1:-1], file, line))
        elif kind in ("ident", "field", "number", "punct"):
            tokens.append(Token(kind, value, file, line))
        line += value.count("\n")
        pos = match.end()
    return tokens


def _unterminated(text: str, pos: int) -> bool:
    if text.startswith('"""', pos):
        return '"""' not in text[pos + 3 :]
    if text.startswith('{"', pos):
        return '"}' not in text[pos + 2 :]
    if text[pos] == '"':
        end = text.find('"', pos + 1)
        newline = text.find("\n", pos + 1)
        return end < 0 or (0 <= newline < end)
    return False


# --------------------------------------------------------------------------- sources


class Sources(ConfigSources):
    """Where VCL text comes from: files on disk, or the sections of `vcl.show -v`."""

    dump_name = "the vcl.show output"
    what = "the VCL"
    max_files = MAX_FILES
    max_bytes = MAX_FILE_BYTES

    def find_include(self, name: str, including: str, main: str) -> str:
        """The file `include "name";` means: as Varnish does, `./x` next to the including
        file; otherwise vcl_path, which we approximate by the including file's and the main
        file's directories (a `vcl.show -v` dump names every file it holds)."""
        candidates = [name] if os.path.isabs(name) else []
        if not os.path.isabs(name):
            candidates.append(os.path.normpath(os.path.join(os.path.dirname(including), name)))
            if not name.startswith("./"):
                candidates.append(os.path.normpath(os.path.join(os.path.dirname(main), name)))
        if self.dump is not None:
            for candidate in candidates:
                if candidate in self.dump:
                    return candidate
            tail = "/" + os.path.normpath(name).lstrip("./")
            for path in self.dump:
                if path.endswith(tail):
                    return path
            raise ConfigError(including, 0, f'include "{name}": not in the vcl.show output')
        for candidate in candidates:
            if os.path.exists(candidate):
                return candidate
        return candidates[0]


def split_show(data: bytes | str) -> dict[str, str] | None:
    """The files of a `vcl.show -v` reply ({path: text}, main file first, the builtin
    VCL left out), or None when it has no VCL.SHOW headers. The header's length counts
    bytes, so the reply is cut as bytes and each file decoded on its own."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    files: dict[str, str] = {}
    pos = 0
    found = False
    while True:
        match = _SHOW_HEADER_BYTES.search(raw, pos)
        if match is None:
            break
        found = True
        length = int(match.group(2))
        body = raw[match.end() : match.end() + length]
        name = match.group(3).decode("utf-8", "replace")
        if name != "<builtin>":
            files.setdefault(name, body.decode("utf-8", "replace"))
        pos = match.end() + length
    return files if found else None


# --------------------------------------------------------------------------- the model


@dataclass
class Backend:
    name: str
    host: str | None
    port: int | None
    file: str
    line: int
    path: str | None = None  # a unix socket (.path)
    port_text: str = ""  # .port as written, when it is no number Varnish would take
    probe: str | None = None  # the probe's URL ("/health"), or the request line
    has_probe: bool = False
    none: bool = False  # `backend NAME none;`
    probe_fields: dict[str, str] = field(default_factory=dict)  # .interval, .threshold... of its probe


@dataclass
class Member:
    ref: str  # a backend name, or a director's name for `NAME.backend()`
    nested: bool  # `NAME.backend()`: a director inside this one
    weight: float | None
    file: str
    line: int


@dataclass
class Director:
    name: str
    type: str  # round_robin, random, fallback, hash, shard (or the vmod's word)
    module: str
    file: str
    line: int
    members: list[Member] = field(default_factory=list)


@dataclass
class Assignment:
    """`set req.backend_hint = X;` (or bereq.backend) in a subroutine."""

    sub: str
    target: str  # req.backend_hint
    refs: tuple[str, ...]  # backend names and director names the expression names
    text: str  # the expression as written, for "traffic goes to ..."
    file: str
    line: int

    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


@dataclass
class Vcl:
    main: str
    files: list[str]
    backends: dict[str, Backend]
    directors: dict[str, Director]
    assignments: list[Assignment]
    probes: dict[str, str | None]  # named probes: their URL
    probe_fields: dict[str, dict[str, str]] = field(default_factory=dict)  # named probes: their .fields

    def default_backend(self) -> str | None:
        return next(iter(self.backends), None)

    def routes(self) -> list[str]:
        if self.assignments:
            return [f"{a.sub} → {a.text} [{a.where()}]" for a in self.assignments]
        first = self.default_backend()
        return [f"the default backend {first} (no subroutine sets req.backend_hint)"] if first else []

    def users_of(self, name: str) -> list[str]:
        """Where traffic is sent to `name`: assignments naming it, or naming a director that
        holds it (at any depth); the first backend when nothing is assigned at all."""
        holders = {name}
        for _ in range(MAX_NESTING):  # each pass adds the directors holding one found so far
            more = {d.name for d in self.directors.values() for m in d.members if m.ref in holders} - holders
            if not more:
                break
            holders |= more
        used = [
            f"{a.sub} set {a.target} = {a.text} [{a.where()}]"
            for a in self.assignments
            if any(ref in holders for ref in a.refs)
        ]
        if not self.assignments and self.default_backend() in holders:
            used.append(f"the default backend {self.default_backend()} (no subroutine sets req.backend_hint)")
        return used


def load(path: str) -> Vcl:
    """Parse a VCL file or a saved `vcl.show -v` reply, following includes."""
    sources = Sources()
    text = sources.read(path)
    dump = None
    if _SHOW_HEADER_BYTES.search(text.encode("utf-8", "replace")):
        try:  # the headers count bytes: cut the bytes as saved
            dump = split_show(read_bounded(path, MAX_FILE_BYTES))
        except OSError as exc:  # it was read a moment ago: replaced since
            raise ConfigError(path, 0, f"cannot read: {exc.strerror or exc}") from None
    if dump is not None:
        if not dump:
            raise ConfigError(path, 0, "the vcl.show output holds no VCL but the builtin")
        return load_text(dump)
    return _build(path, text, sources)


def load_text(files: dict[str, str]) -> Vcl:
    """Parse the files of a `vcl.show -v` reply (main file first)."""
    main = next(iter(files))
    return _build(main, files[main], Sources(files))


def _build(main: str, text: str, sources: Sources) -> Vcl:
    seen = [main]
    tokens = _expand(tokenize(text, main), main, sources, seen, 0)
    vcl = Vcl(main=main, files=seen, backends={}, directors={}, assignments=[], probes={})
    _parse(tokens, vcl)
    return vcl


def _expand(tokens: list[Token], main: str, sources: Sources, seen: list[str], depth: int) -> list[Token]:
    """Tokens with every `include "file";` replaced by the tokens of the file."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "ident" and tok.text == "include":
            if i + 1 >= len(tokens) or tokens[i + 1].kind != "string":
                raise ConfigError(tok.file, tok.line, 'include needs a quoted file name: include "file.vcl";')
            name = tokens[i + 1].text
            if depth >= MAX_DEPTH:
                raise ConfigError(tok.file, tok.line, f"includes nested deeper than {MAX_DEPTH}")
            path = sources.find_include(name, tok.file, main)
            try:
                included = sources.read(path)
            except ConfigError as exc:
                raise ConfigError(tok.file, tok.line, f'include "{name}": {exc.message}') from None
            if path not in seen:
                seen.append(path)
            out.extend(_expand(tokenize(included, path), main, sources, seen, depth + 1))
            i += 2
            if i < len(tokens) and tokens[i].text == ";":
                i += 1
            continue
        out.append(tok)
        i += 1
    return out


def _block_end(tokens: list[Token], start: int) -> int:
    """Index just past the `}` matching the `{` at `start`."""
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i].kind == "punct":
            if tokens[i].text == "{":
                depth += 1
            elif tokens[i].text == "}":
                depth -= 1
                if depth == 0:
                    return i + 1
    tok = tokens[start]
    raise ConfigError(tok.file, tok.line, "a { that is never closed")


def _statement_end(tokens: list[Token], start: int) -> int:
    """Index of the `;` ending the statement that starts at `start` (parentheses balanced)."""
    depth = 0
    for i in range(start, len(tokens)):
        text = tokens[i].text if tokens[i].kind == "punct" else ""
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif text == ";" and depth <= 0:
            return i
        elif text in ("{", "}") and depth <= 0:
            break
    tok = tokens[start]
    raise ConfigError(tok.file, tok.line, "missing ; at the end of the statement")


def _expect_name(tokens: list[Token], i: int, what: str) -> str:
    if i >= len(tokens) or tokens[i].kind != "ident" or "." in tokens[i].text:
        tok = tokens[min(i, len(tokens) - 1)]
        raise ConfigError(tok.file, tok.line, f"{what} needs a name")
    return tokens[i].text


def _parse(tokens: list[Token], vcl: Vcl) -> None:
    modules: set[str] = set()
    subs: list[tuple[str, list[Token]]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        word = tok.text if tok.kind == "ident" else ""
        if word in ("vcl", "import"):
            end = _statement_end(tokens, i)
            if word == "import" and i + 1 < end:
                modules.add(tokens[i + 1].text)
            i = end + 1
        elif word == "backend":
            name = _expect_name(tokens, i + 1, "backend")
            if name in vcl.backends:
                raise ConfigError(tok.file, tok.line, f"backend {name} is defined twice")
            if i + 2 < len(tokens) and tokens[i + 2].text == "none":
                vcl.backends[name] = Backend(name, None, None, tok.file, tok.line, none=True)
                i = _statement_end(tokens, i) + 1
                continue
            if i + 2 >= len(tokens) or tokens[i + 2].text != "{":
                raise ConfigError(tok.file, tok.line, f"backend {name}: expected {{")
            end = _block_end(tokens, i + 2)
            vcl.backends[name] = _backend(name, tokens[i + 3 : end - 1], tok)
            i = end
        elif word == "probe":
            name = _expect_name(tokens, i + 1, "probe")
            if i + 2 >= len(tokens) or tokens[i + 2].text != "{":
                raise ConfigError(tok.file, tok.line, f"probe {name}: expected {{")
            end = _block_end(tokens, i + 2)
            vcl.probes[name] = _fields(tokens[i + 3 : end - 1]).get(".url") or _request_line(tokens[i + 3 : end - 1])
            vcl.probe_fields[name] = _fields(tokens[i + 3 : end - 1])
            i = end
        elif word in ("sub", "acl"):
            name = _expect_name(tokens, i + 1, word)
            j = i + 2
            while j < len(tokens) and tokens[j].text != "{":  # acl flags: acl NAME +log {
                j += 1
            if j >= len(tokens):
                raise ConfigError(tok.file, tok.line, f"{word} {name}: expected {{")
            end = _block_end(tokens, j)
            if word == "sub":
                subs.append((name, tokens[j + 1 : end - 1]))
            i = end
        else:
            raise ConfigError(tok.file, tok.line, f"unexpected '{tok.text}' at the top level of the VCL")
    for backend in vcl.backends.values():  # a named probe: its URL
        if backend.has_probe and backend.probe in vcl.probes:
            backend.probe_fields = vcl.probe_fields[backend.probe]
            backend.probe = vcl.probes[backend.probe]
    for name, body in subs:
        if name == "vcl_init":
            _init(body, vcl, modules)
    for name, body in subs:
        if name != "vcl_init":
            _uses(name, body, vcl)


def _fields(tokens: list[Token]) -> dict[str, str]:
    """`.name = value;` pairs of a backend or probe block (an inline block's value is "{...}")."""
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind != "field" or i + 1 >= len(tokens) or tokens[i + 1].text != "=":
            raise ConfigError(tok.file, tok.line, f"expected .field = value; got '{tok.text}'")
        if i + 2 < len(tokens) and tokens[i + 2].text == "{":
            end = _block_end(tokens, i + 2)
            out[tok.text] = "{" + (_fields(tokens[i + 3 : end - 1]).get(".url") or "") + "}"
            i = end
            if i < len(tokens) and tokens[i].text == ";":
                i += 1
            continue
        end = _statement_end(tokens, i)
        out[tok.text] = "".join(t.text for t in tokens[i + 2 : end])
        i = end + 1
    return out


def _request_line(tokens: list[Token]) -> str | None:
    """A probe's `.request = "GET /x HTTP/1.1" ...;`: its path."""
    for i, tok in enumerate(tokens):
        if tok.text == ".request" and i + 2 < len(tokens) and tokens[i + 2].kind == "string":
            parts = tokens[i + 2].text.split()
            return parts[1] if len(parts) > 1 else tokens[i + 2].text
    return None


def _backend(name: str, body: list[Token], at: Token) -> Backend:
    values = _fields(body)
    host = values.get(".host")
    port_text = values.get(".port", "")
    backend = Backend(name, None, None, at.file, at.line)
    if ".path" in values:
        backend.path = values[".path"]
        return backend
    if host is None:
        raise ConfigError(at.file, at.line, f"backend {name} has neither .host nor .path")
    if ":" in host and not host.startswith("[") and host.count(":") == 1:  # "127.0.0.1:8080"
        host, _, port_text = host.partition(":")
    backend.host = host.strip("[]")
    if port_text.isdigit() and 0 < int(port_text) < 65536:
        backend.port = int(port_text)
    elif not port_text:
        backend.port = 80
    elif port_text in SERVICE_PORTS:
        backend.port = SERVICE_PORTS[port_text]
    else:
        backend.port_text = port_text
    probe = values.get(".probe")
    if probe is not None:
        backend.has_probe = True
        backend.probe = probe[1:-1] or None if probe.startswith("{") else probe
        if probe.startswith("{"):
            backend.probe_fields = _inline_probe(body)
    return backend


def _inline_probe(body: list[Token]) -> dict[str, str]:
    """The fields of a backend's `.probe = { ... }` block."""
    for i, tok in enumerate(body):
        if tok.text == ".probe" and i + 2 < len(body) and body[i + 2].text == "{":
            return _fields(body[i + 3 : _block_end(body, i + 2) - 1])
    return {}


def readmit_of(backend: Backend) -> float | None:
    """The backend's re-admission window (readmit.varnish) from its probe's `.interval`,
    `.timeout` and `.threshold` (Varnish's defaults for those it leaves out); 0 for a
    backend without a probe (only an admin's `backend.set_health` takes it out); None
    when a setting is no value Varnish would take."""
    if not backend.has_probe:
        return 0.0
    fields = backend.probe_fields
    interval = readmit.vcl_duration(fields[".interval"]) if ".interval" in fields else readmit.VARNISH_INTERVAL_S
    timeout = readmit.vcl_duration(fields[".timeout"]) if ".timeout" in fields else readmit.VARNISH_TIMEOUT_S
    threshold = fields.get(".threshold", str(readmit.VARNISH_THRESHOLD))
    if interval is None or timeout is None or not threshold.isdigit():
        return None
    return readmit.varnish(interval, timeout, int(threshold))


def _init(body: list[Token], vcl: Vcl, modules: set[str]) -> None:
    """`new NAME = directors.TYPE(...);` and `NAME.add_backend(...)` / `remove_backend`."""
    i = 0
    while i < len(body):
        tok = body[i]
        if tok.kind == "ident" and tok.text == "new" and i + 3 < len(body):
            name, ctor = body[i + 1].text, body[i + 3].text
            module, _, kind = ctor.rpartition(".")
            if module in modules and module == "directors":
                vcl.directors[name] = Director(name, kind, module, tok.file, tok.line)
            i = _statement_end(body, i) + 1
            continue
        if tok.kind == "ident" and tok.text.endswith((".add_backend", ".remove_backend")):
            obj, _, method = tok.text.rpartition(".")
            director = vcl.directors.get(obj)
            end = _statement_end(body, i)
            if director is not None:
                args = body[i + 2 : end - 1] if i + 1 < end and body[i + 1].text == "(" else []
                member = _member(args, tok)
                if member is not None:
                    if method == "add_backend":
                        director.members.append(member)
                    else:
                        director.members = [m for m in director.members if m.ref != member.ref]
            i = end + 1
            continue
        i += 1


def _member(args: list[Token], at: Token) -> Member | None:
    """The member of `add_backend(ARGS)`: the backend (first positional or `backend=`) and
    the weight (second positional or `weight=`, for random and hash)."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for tok in args:  # split at the commas of depth 0
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        if tok.text == "," and depth == 0 and tok.kind == "punct":
            parts.append([])
        else:
            parts[-1].append(tok)
    named = {p[0].text: p[2:] for p in parts if len(p) > 2 and p[1].text == "=" and p[0].kind == "ident"}
    positional = [p for p in parts if p and not (len(p) > 2 and p[1].text == "=" and p[0].kind == "ident")]
    backend = named.get("backend") or (positional[0] if positional else None)
    if not backend:
        return None
    first = backend[0]
    nested = first.text.endswith(".backend") and len(backend) > 1 and backend[1].text == "("
    ref = first.text[: -len(".backend")] if nested else first.text
    weight_tokens = named.get("weight") or (positional[1] if len(positional) > 1 else None)
    weight = None
    if weight_tokens and len(weight_tokens) == 1 and weight_tokens[0].kind == "number":
        try:
            weight = float(weight_tokens[0].text)
        except ValueError:
            weight = None
    return Member(ref, nested, weight, first.file, first.line)


def _uses(sub: str, body: list[Token], vcl: Vcl) -> None:
    for i, tok in enumerate(body):
        if tok.kind == "ident" and tok.text == "set" and i + 2 < len(body):
            target = body[i + 1].text
            if target not in ("req.backend_hint", "bereq.backend") or body[i + 2].text != "=":
                continue
            end = _statement_end(body, i)
            expr = body[i + 3 : end]
            refs = tuple(
                t.text[: -len(".backend")] if t.text.endswith(".backend") else t.text
                for t in expr
                if t.kind == "ident"
                and (t.text in vcl.backends or t.text.endswith(".backend") and t.text[:-8] in vcl.directors)
            )
            text = "".join(t.text for t in expr)
            vcl.assignments.append(Assignment(sub, target, refs, text, tok.file, tok.line))


# --------------------------------------------------------------------------- the pool


@dataclass(frozen=True)
class Health:
    """One backend's state from `backend.list -j`."""

    admin: str  # probe/auto, healthy, sick (as backend.set_health left it)
    good: int | None  # probe_message[0]: good probes in the window
    window: int | None  # probe_message[1]
    word: str  # probe_message[2]: healthy or sick
    last_change: float | None = None


@dataclass(frozen=True)
class _Entry:
    backend: Backend
    member: Member
    standby: bool
    weight0: bool


def members_of(vcl: Vcl, name: str) -> list[_Entry]:
    """The backends behind director (or backend) `name`, nested directors flattened; a
    fallback director's members after the first are standbys."""
    if name in vcl.backends and name not in vcl.directors:
        backend = vcl.backends[name]
        return [_Entry(backend, Member(name, False, None, backend.file, backend.line), False, False)]
    out: list[_Entry] = []

    def walk(director: Director, standby: bool, path: tuple[str, ...]) -> None:
        if len(path) > MAX_NESTING or director.name in path:
            raise ConfigError(director.file, director.line, f"director {director.name} holds itself")
        for index, member in enumerate(director.members):
            spare = standby or (director.type == "fallback" and index > 0)
            zero = director.type in ("random", "hash") and member.weight == 0
            if member.nested and member.ref in vcl.directors:
                walk(vcl.directors[member.ref], spare, path + (director.name,))
            elif member.ref in vcl.backends:
                out.append(_Entry(vcl.backends[member.ref], member, spare, zero))
            else:
                raise ConfigError(member.file, member.line, f"{director.name}.add_backend: no backend {member.ref}")

    walk(vcl.directors[name], False, ())
    return out


READMIT_SOURCE = "each backend's probe in the VCL (.timeout + .threshold x .interval, Varnish's defaults if unset)"


def pool_of(
    vcl: Vcl,
    name: str,
    resolved: dict[str, str] | None = None,
    unresolved_note: str = COMPARE_WITH_RESOLVE,
    health: dict[str, Health] | None = None,
    source: str | None = None,
) -> Pool:
    """Director (or backend) `name` as a Pool. Without `health` it is read from a config
    (from_config: nothing is known of health); with it, from a running Varnish whose
    `backend.list -j` gave each backend's admin state and probe result."""
    servers = []
    for entry in members_of(vcl, name):
        backend, member = entry.backend, entry.member
        address, configured_as, note = None, None, ""
        if backend.path is not None:
            note = "a unix socket (.path), not an ip:port"
            configured_as = backend.path
        elif backend.none:
            note = "backend none: no address"
        elif backend.host is not None and backend.port is None:
            configured_as = f"{backend.host}:{backend.port_text}"
            note = f"port {backend.port_text!r} is no number"
        elif backend.host is not None:
            host = backend.host
            if is_ip(host):
                address = _address(host, backend.port)
            else:
                configured_as = f"{host}:{backend.port}"
                ip = (resolved or {}).get(host)
                address = _address(ip, backend.port) if ip else None
                note = "" if address else unresolved_note
        state, service, serving, check = _state(
            backend, entry, None if health is None else health.get(backend.name), live=health is not None
        )
        servers.append(
            PoolServer(
                name=backend.name,
                address=address,
                state=state,
                receives_traffic=service == IN,
                serving=serving,
                standby=entry.standby,
                service=service,
                weight=None if member.weight is None else int(member.weight),
                flags=("backup",) if entry.standby else (),
                configured_as=configured_as,
                check=check,
                line=member.line,
                file=member.file,
                address_note=note,
                readmit_s=readmit_of(backend),
            )
        )
    director = vcl.directors.get(name)
    defined = director or vcl.backends[name]
    extra = {
        "used_by": vcl.users_of(name),
        "defined_at": f"{defined.file}:{defined.line}",
        "director_type": director.type if director else "backend",
        "main": vcl.main,
        "readmit_from": READMIT_SOURCE,
    }
    if not extra["used_by"]:
        extra["routes"] = vcl.routes()
    return Pool(
        name=name,
        source=source or f"{os.path.basename(defined.file)}:{defined.line}",
        servers=tuple(servers),
        extra=extra,
        from_config=health is None,
    )


def gate_pool(vcl: Vcl, name: str, resolve, unresolved_note: str) -> Pool:
    """Director `name` for `lint --lb-config`: host names resolved with `resolve(host) ->
    ip | None` when given; a name the VCL does not define is a ConfigError."""
    if name not in vcl.directors and name not in vcl.backends:
        known = ", ".join(vcl.directors) or "none"
        raise ConfigError(vcl.main, 0, f"makes no director '{name}' in vcl_init (directors: {known})")
    hosts = {e.backend.host for e in members_of(vcl, name) if e.backend.host and not is_ip(e.backend.host)}
    resolved = {host: ip for host in hosts if resolve and (ip := resolve(host))}
    return pool_of(vcl, name, resolved, unresolved_note)


def _address(host: str, port: int | None) -> str | None:
    try:
        return str(parse_address(host, default_port=port))
    except Invalid:
        return None


def _probe_text(backend: Backend, health: Health | None) -> str:
    if not backend.has_probe:
        return "no probe"
    where = f"probe {backend.probe}" if backend.probe else "probe"
    if health is None or health.good is None or health.window is None:
        return where
    return f"{where} {health.good}/{health.window} good"


def _state(backend: Backend, entry: _Entry, health: Health | None, live: bool) -> tuple[str, str, bool, str]:
    """(state, service, serving, check) of one member.

    The admin state comes first: `backend.set_health NAME sick` takes a backend out
    whatever its probe says (MAINT); `healthy` forces it in. Otherwise (`auto`, shown
    as `probe` when the backend has one) the probe decides: sick is DOWN by check."""
    check = _probe_text(backend, health)
    if health is None and live:  # the running Varnish does not list it: its state is unknown
        return "not in backend.list", UNKNOWN, False, check
    if health is None:  # from a config: enabled, nothing known of health
        if entry.standby:
            return "backup", BACKUP, True, check
        if entry.weight0:
            return "weight 0", WEIGHT_0, True, check
        return "in rotation", IN, True, check
    admin = health.admin
    if admin == "sick":
        return "MAINT (set sick)", MAINT, False, check
    if admin == "healthy" or health.word == "healthy":
        state = "healthy (forced)" if admin == "healthy" and backend.has_probe and health.word != "healthy" else ""
        state = state or "healthy"
        if entry.standby:
            return f"{state}, backup", BACKUP, True, check
        if entry.weight0:
            return f"{state}, weight 0", WEIGHT_0, True, check
        return state, IN, True, check
    return "DOWN (sick)", DOWN_BY_CHECK, False, check
