"""The layout file: the declared truth about a stack, loaded and validated.

This is the only module that reads YAML. It composes the document into nodes (not plain
values) so that every problem can name the file, the line and the key, and it collects
all problems before failing, so a broken layout is fixed in one pass, not ten.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import yaml

from stackscope.files import FileRefused, read_bounded, read_text
from stackscope.kinds import (
    AddressKind,
    Choice,
    Duration,
    Integer,
    Invalid,
    Kind,
    LayerRef,
    Number,
    OptionInfo,
    ParseContext,
    SecretFile,
    Text,
    describe,
    did_you_mean,
    format_duration,
)
from stackscope.model import (
    CONFIRM_INTERVAL,
    CONFIRM_RETRIES,
    DEFAULT_INTERVAL,
    DEFAULT_TIMEOUT,
    MAX_SUSPECT_THRESHOLD,
    MIN_TIMEOUT,
    ROLES,
    SUSPECT_WINDOW,
    Check,
    Layer,
    Layout,
    SuspectSettings,
)
from stackscope.probes import CHECK_TYPES, SECRET_ENV_KEYS, SECRET_FILE_KEYS, spec_for
from stackscope.redact import Redactor, file_secret_forms, header_secrets, sensitive_header
from stackscope.safetext import safe_value, terminal_safe

# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a layout: where, which key, what, and how to fix it."""

    file: str
    line: int
    where: str
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        """A problem quotes what the layout says, which may hold an escape sequence or a
        NUL (a double-quoted "\\x1b"): every text of it is made terminal-safe here, where
        every problem is made, so lint and every error message print it harmlessly."""
        for name in ("file", "where", "message", "fix"):
            object.__setattr__(self, name, safe_value(getattr(self, name)))

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        fix = f" — {self.fix}" if self.fix else ""
        line = f":{self.line}" if self.line else ""  # 0: about the file as a whole
        return f"{self.file}{line}: {where}{self.message}{fix}"


class LayoutError(Exception):
    """A layout that cannot be used, with every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --------------------------------------------------------------------------- located nodes


class _Unreadable:
    """The value of a node whose problem was already recorded (a bad tag, a value its tag
    cannot hold): the builder skips it instead of reporting it a second time as missing."""

    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE = _Unreadable()


_NO_KEYS: Mapping[str, int] = MappingProxyType({})


class Node:
    """A YAML value with the line it starts on (1-based) and, for mappings, key lines.
    Slotted, and a scalar or list shares one empty key_lines: a 10,000-check layout
    makes some 65,000 of them."""

    __slots__ = ("value", "line", "key_lines")

    def __init__(self, value: Any, line: int, key_lines: Mapping[str, int] = _NO_KEYS) -> None:
        self.value = value  # dict[str, Node] | list[Node] | scalar
        self.line = line
        self.key_lines = key_lines

    def __repr__(self) -> str:
        return f"Node({self.value!r}, {self.line})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return (self.value, self.line, dict(self.key_lines)) == (other.value, other.line, dict(other.key_lines))

    __hash__ = None  # type: ignore[assignment]  # mutable: no set member or dict key

    def plain(self) -> Any:
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


# A layout is a few hundred values; a large generated one a few ten thousand. Aliases
# can make a 400-byte file stand for a hundred million ("billion laughs"), so the values
# aliases add (the expanded size minus the values written out) are counted, without
# expanding, before anything is built from it. Values written out are bounded by the
# file size and, separately, by the number of checks.
MAX_VALUES = 200_000  # values reached through aliases
MAX_CHECKS = 100_000
# A layout file is refused unread above this size: a 10 MB, 180,000-check file took 9-13 s
# and 637 MB before MAX_CHECKS refused it. 4 MiB is still some 40,000 checks.
MAX_LAYOUT_BYTES = 4 * 1024 * 1024

_YAML_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _YAML_TAG + "merge"
# The tags plain YAML resolves to by itself; any other tag is refused with a located
# problem (custom tags mean nothing to stackscope; !!binary is no value a layout holds).
_STR_TAG = _YAML_TAG + "str"
_ALLOWED_TAGS = {
    _YAML_TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp", "map", "seq", "merge")
}


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _oversized(root: yaml.Node, limit: int = MAX_VALUES) -> tuple[yaml.Node, str] | None:
    """(node, why) when the document refers to itself through an alias, or its aliases add
    more than `limit` values to it (the size with aliases expanded minus the nodes written
    in the file); None when it is of a sane size. A large file with no aliases is never
    "too large" here. Linear in the composed graph (each node's size is counted once,
    however many aliases point at it)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in _children(node))
            # len(size) bounds the distinct nodes below this one, so this never fires
            # early; at the root it is exactly the values the aliases add
            if size[key] - len(size) > limit:
                return node, "too large"
            continue
        if key in size:
            continue
        if key in on_path:
            return node, "refers to itself"
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    return None


class _Reader:
    """Turns a composed YAML node tree into `Node`s, reporting duplicate keys, tags that
    mean nothing in a layout and values their tag cannot hold, each at its line."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        self._constructor = yaml.SafeLoader("")

    def _add(self, problem: Problem) -> None:
        if problem not in self.problems:  # a node behind several aliases is reported once
            self.problems.append(problem)

    def _scalar(self, node: yaml.Node, where: str, key: str | None) -> Any:
        """The value of a scalar node, or None after recording why it has none."""
        if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):  # most: what construct_object makes of it
            return node.value
        named = f"'{key}': " if key is not None else ""
        line = node.start_mark.line + 1
        if node.tag not in _ALLOWED_TAGS:
            tag = _tag_name(node.tag)
            if tag == "!!binary":
                self._add(
                    Problem(
                        self.file,
                        line,
                        where,
                        f"{named}YAML tag '{tag}' is not allowed: a layout has no binary values",
                        "remove the tag and write text",
                    )
                )
            else:
                self._add(Problem(self.file, line, where, f"{named}unknown YAML tag '{tag}'", "remove it"))
            return None
        if not isinstance(node, yaml.ScalarNode):
            return None
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            self._add(
                Problem(
                    self.file,
                    line,
                    where,
                    f"{named}'{node.value}' is not a valid {_tag_name(node.tag)}",
                    f"remove the tag ({_tag_name(node.tag)}) or write a value of that type",
                )
            )
            return None
        return value

    def _complex_key(self, key_node: yaml.Node, where: str) -> Problem:
        """A key that is a mapping or a list (`? {a: 1}` or `[a, b]: x`): keys name options."""
        what = "a mapping" if isinstance(key_node, yaml.MappingNode) else "a list"
        return Problem(
            self.file,
            key_node.start_mark.line + 1,
            where,
            f"a key is {what}: keys must be plain words",
            "write the key as a word, like name: or checks: (no '?', brackets or braces around it)",
        )

    def _duplicate(self, key: str, line: int, first: int) -> Problem:
        return Problem(
            self.file,
            line,
            "",
            f"key '{key}' appears twice in the same mapping",
            f"remove one (the other is on line {first})",
        )

    def _read_merged(self, node: yaml.MappingNode, inner: str, line: int) -> Node:
        """A mapping with `<<: *anchor` keys. Duplicates are an error among the keys written
        here; keys merged in come first and are overridden by them, as YAML intends."""
        own_lines: dict[str, int] = {}
        own_keys: dict[int, str] = {}
        duplicates: set[int] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                duplicates.add(id(key_node))  # skipped below, like a duplicate
                self._add(self._complex_key(key_node, inner))
                continue
            key = own_keys[id(key_node)] = str(self._scalar(key_node, inner, None))
            key_line = key_node.start_mark.line + 1
            if key in own_lines:
                duplicates.add(id(key_node))
                self.problems.append(self._duplicate(key, key_line, own_lines[key]))
            else:
                own_lines[key] = key_line
        self._constructor.flatten_mapping(node)
        out: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:  # merged keys first, own keys last
            if id(key_node) in duplicates:
                continue
            key = own_keys[id(key_node)] if id(key_node) in own_keys else str(self._scalar(key_node, inner, None))
            out[key] = self.read(value_node, inner, key)
            key_lines[key] = key_node.start_mark.line + 1
        return Node(out, line, key_lines)

    def read(self, node: yaml.Node, where: str = "", key: str | None = None) -> Node:
        line = node.start_mark.line + 1
        tag = node.tag
        if tag == _STR_TAG and isinstance(node, yaml.ScalarNode):  # most values: no path to build
            return Node(node.value, line)
        if tag not in _ALLOWED_TAGS:
            self._scalar(node, where, key)  # records the tag problem
            return Node(UNREADABLE, line)
        inner = f"{where}.{key}" if where and key is not None else (key or where)
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    return self._read_merged(node, inner, line)
            # Duplicates are an error: the first is kept.
            out: dict[str, Node] = {}
            key_lines: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._add(self._complex_key(key_node, inner))
                    continue
                key = key_node.value if key_node.tag == _STR_TAG else str(self._scalar(key_node, inner, None))
                key_line = key_node.start_mark.line + 1
                if key in key_lines:
                    self.problems.append(self._duplicate(key, key_line, key_lines[key]))
                    continue
                key_lines[key] = key_line
                if value_node.tag == _STR_TAG and type(value_node) is yaml.ScalarNode:  # read(), inlined: most values
                    out[key] = Node(value_node.value, value_node.start_mark.line + 1)
                else:
                    out[key] = self.read(value_node, inner, key)
            return Node(out, line, key_lines)
        if isinstance(node, yaml.SequenceNode):
            return Node([self.read(item, f"{inner}[{index}]") for index, item in enumerate(node.value)], line)
        value = self._scalar(node, where, key)
        return Node(UNREADABLE if value is None and node.tag != _YAML_TAG + "null" else value, line)


# --------------------------------------------------------------------------- loading

_LAYOUT_KEYS = ("name", "description", "interval", "timeout", "resolver", "confirm", "suspect", "layers")
_CONFIRM_KEYS = ("retries", "interval")
_SUSPECT_KEYS = ("threshold", "min_spread", "min_silence", "min_samples")
_LAYER_KEYS = ("name", "role", "checks")
_COMMON_CHECK_KEYS = ("name", "timeout", "warn_ms")


def read_yaml(path: str) -> Node:
    """Any stackscope YAML file (layouts, walkthroughs) as located nodes, so its own
    validator can name lines; raises LayoutError for unreadable or malformed files."""
    text, display = _read_text(path)
    problems: list[Problem] = []
    node = _compose(text, display, problems)
    if problems:
        raise LayoutError(problems)
    return node


def layout_text(path: str) -> str:
    """The layout file's text, read as load_layout reads it: what a recording keeps
    (masked) so that the replay builds the same layout through this loader."""
    return _read_text(path)[0]


def _read_text(path: str) -> tuple[str, str]:
    """The file's text and the name to show in problems."""
    display = terminal_safe(os.path.relpath(path) if not os.path.isabs(path) else path)
    try:
        return read_text(path, MAX_LAYOUT_BYTES), display
    except FileRefused as exc:
        raise LayoutError([Problem(display, 0, "", exc.problem, _refused_fix(exc))]) from None
    except FileNotFoundError:
        raise LayoutError(
            [Problem(display, 0, "", "file not found", "check the path; examples live in layouts/")]
        ) from None
    except IsADirectoryError:
        raise LayoutError(
            [Problem(display, 0, "", "is a directory", "pass a layout file (examples live in layouts/)")]
        ) from None
    except UnicodeDecodeError as exc:
        raise LayoutError(
            [
                Problem(
                    display,
                    0,
                    "",
                    f"not a text file (byte {exc.start} is not UTF-8)",
                    "pass a layout file (YAML text, UTF-8)",
                )
            ]
        ) from None
    except OSError as exc:
        raise LayoutError(
            [
                Problem(
                    display,
                    0,
                    "",
                    f"cannot read the file: {exc.strerror or exc}",
                    "check the path and that you may read it",
                )
            ]
        ) from None


def _refused_fix(exc: FileRefused) -> str:
    if exc.problem.startswith("larger than"):
        return (
            f"a layout is at most {MAX_LAYOUT_BYTES // 1024 // 1024} MiB (a few thousand checks); "
            "split a larger one into several layouts"
        )
    return "pass the layout file itself (a regular YAML file), not a device, pipe or socket"


def _codepoint(character: Any) -> str:
    code = character if isinstance(character, int) else ord(str(character)[:1] or "\0")
    return f"U+{code:04X}"


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    """A YAML syntax error at the line a person must fix, with the parser's whole reason.

    An unclosed quote or bracket is only noticed at the end of the stream; that mark is
    past the last line and says nothing, so the context mark (where the quoted scalar or
    the flow collection started) is used instead, and its "while scanning …" is kept."""
    mark, context = exc.problem_mark, exc.context_mark
    at_end = mark is not None and (mark.index >= len(text) or "end of stream" in (exc.problem or ""))
    if context is not None and (mark is None or at_end):
        mark = context
    line = min(mark.line + 1, max(1, text.count("\n") + (not text.endswith("\n")))) if mark else 1
    reason = "; ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
    if "quoted scalar" in (exc.context or ""):
        fix = "close the quote that starts on this line"
    elif "flow" in (exc.context or ""):
        fix = "close the bracket or brace that starts on this line"
    else:
        fix = "check the indentation and quoting on this line or the one above"
    return Problem(file, line, "", f"YAML syntax error: {reason}", fix)


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAX_TAGS_KEPT = 4096


class _Loader(_BaseLoader):
    """The safe loader (libyaml's when installed) with a shortcut in the one step the C
    parser calls back into Python for every value: resolving a scalar's implicit tag.
    A quoted scalar, or a plain one whose first character starts none of the implicit
    patterns (bool, int, float, null, timestamp, merge…), is text, as the full resolver
    would find after trying them; a mapping or a list is what the resolver would answer
    too (no path resolvers); anything else goes to it. A 10,000-check layout has some
    50,000 scalars and 15,000 mappings."""

    _starts = frozenset(key for key in _BaseLoader.yaml_implicit_resolvers if key)
    _exact = None not in _BaseLoader.yaml_implicit_resolvers and not _BaseLoader.yaml_path_resolvers

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        # a plain scalar's tag depends on its text alone (no path resolvers): keys like
        # name: and tcp: and values like 200 are resolved once per file, not per check.
        # This loader's own: it holds the file's text only while the file is read
        self._tags: dict[str, str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if self._exact:
            if kind is yaml.ScalarNode:
                if not implicit[0] or (value and value[0] not in self._starts):
                    return _STR_TAG
                tag = self._tags.get(value)
                if tag is None:
                    tag = super().resolve(kind, value, implicit)
                    if len(self._tags) < _MAX_TAGS_KEPT:
                        self._tags[value] = tag
                return tag
            if kind is yaml.MappingNode:  # what the full resolver answers without path resolvers
                return self.DEFAULT_MAPPING_TAG
            if kind is yaml.SequenceNode:
                return self.DEFAULT_SEQUENCE_TAG
        return super().resolve(kind, value, implicit)


def _compose(text: str, file: str, problems: list[Problem]) -> Node:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise LayoutError([_syntax_problem(exc, text, file)]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, most controls)
        line = text.count("\n", 0, exc.position) + 1
        raise LayoutError(
            [
                Problem(
                    file,
                    line,
                    "",
                    f"not a text file: it holds the character {_codepoint(exc.character)}, which YAML does not allow",
                    "pass a layout file (YAML text); remove the character if it is one",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise LayoutError(
            [
                Problem(
                    file,
                    1,
                    "",
                    f"YAML error: {exc}",
                    "check the file is a YAML layout (stackscope schema shows every key)",
                )
            ]
        ) from None
    if root is None:
        raise LayoutError(
            [
                Problem(
                    file,
                    1,
                    "",
                    "the file is empty",
                    "start from an example in layouts/ (stackscope schema shows every key)",
                )
            ]
        )
    # An alias needs its '*' indicator: a file without one (most) has nothing to expand.
    oversized = _oversized(root) if "*" in text else None
    if oversized is not None:
        node, why = oversized
        line = node.start_mark.line + 1
        if why == "refers to itself":
            problem = Problem(
                file,
                line,
                "",
                "this value refers to itself through a YAML alias",
                "write the value out instead of the alias (*name) that points back into it",
            )
        else:
            problem = Problem(
                file,
                line,
                "",
                f"its aliases expand to more than {MAX_VALUES} values beyond "
                "those written in the file (nested aliases: a 'billion laughs' file?)",
                "write the layout out without aliases that repeat other aliases",
            )
        raise LayoutError([problem])
    return _Reader(file, problems).read(root)


def load_layout(path: str, *, environ: Mapping[str, str] | None = None, require_env: bool = True) -> Layout:
    """Read and validate a layout file; raise LayoutError listing every problem."""
    text, display = _read_text(path)
    base_dir = os.path.dirname(os.path.abspath(path))
    ctx = ParseContext(base_dir=base_dir, environ=os.environ if environ is None else environ, require_env=require_env)
    return parse_layout(text, display, ctx)


def parse_layout(text: str, file: str = "<layout>", ctx: ParseContext | None = None) -> Layout:
    """Build the layout from its text; every text it shows, and every problem, has the
    secrets its `*_env` keys name and its secret files hold masked (a password pasted into
    a check's name, or given to password_env in place of the variable's name, is never
    printed)."""
    with _collector_paused():
        return _parse_layout(text, file, ctx or ParseContext())


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a layout is read: a 10,000-check layout makes
    some 300,000 objects that all live until it is built (no garbage to find), and the
    collector's passes over them cost a fifth of the load. It is switched back on (if it
    was on) however the load ends; what it would have freed is freed then."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_layout(text: str, file: str, ctx: ParseContext) -> Layout:
    problems: list[Problem] = []
    node = _compose(text, file, problems)
    secrets, suspects, files = _secrets_referenced(node, ctx)
    secrets += [form for data in files.values() if isinstance(data, bytes) for form in file_secret_forms(data)]
    literal, warnings = _literal_credentials(node, file)
    redactor = Redactor([*secrets, *literal], whole_only=suspects)
    builder = _Builder(file, ctx, problems, files)
    try:
        layout = builder.layout(node)
    finally:
        problems[:] = [_redacted(problem, redactor) for problem in problems]
    if problems or layout is None:
        problems.sort(key=lambda p: p.line)
        raise LayoutError(problems)
    return dataclasses.replace(redactor.layout(layout), warnings=tuple(redactor.text(w) for w in warnings))


def _literal_credentials(root: Node, file: str) -> tuple[list[str], list[str]]:
    """(secrets, warnings) for the credentials written literally in the `headers:` of the
    layout's checks (Authorization, Cookie, X-Api-Key and each check's sensitive_headers):
    the secrets are masked like those of `*_env` variables; each warning names the file,
    line, check and header, never the value, and says how to keep it out of the file."""
    secrets: list[str] = []
    warnings: list[str] = []
    layers = root.value.get("layers") if isinstance(root.value, dict) else None
    for layer in layers.value if layers is not None and isinstance(layers.value, list) else []:
        if not isinstance(layer.value, dict):
            continue
        checks = layer.value.get("checks")
        for check in checks.value if checks is not None and isinstance(checks.value, list) else []:
            headers = check.value.get("headers") if isinstance(check.value, dict) else None
            if headers is None or not isinstance(headers.value, dict):
                continue
            extra_node = check.value.get("sensitive_headers")
            extra = (
                [str(n.value) for n in extra_node.value] if extra_node and isinstance(extra_node.value, list) else []
            )
            pairs = [(str(k), str(v.value)) for k, v in headers.value.items() if isinstance(v.value, (str, int, float))]
            found = header_secrets(pairs, extra)
            if not found:
                continue
            secrets += found
            layer_name = layer.value.get("name")
            check_name = check.value.get("name")
            where = (
                f"layer '{layer_name.value if layer_name else '?'}', check '{check_name.value if check_name else '?'}'"
            )
            for name, value in pairs:
                if value and sensitive_header(name, extra):
                    problem = Problem(
                        file,
                        headers.key_lines.get(name, headers.line),
                        where,
                        f"headers.{name} holds a credential written in the layout (it is masked in every output)",
                        f"keep it out of the file: export it in a variable and write headers_env: {{{name}: VARIABLE}}",
                    )
                    warnings.append(str(problem))
    return secrets, warnings


# What an environment variable's name conventionally looks like. The value of a *_env key
# that does not look like one may be the secret itself, pasted by mistake: it is masked.
_ENV_NAME_CONVENTION = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _secrets_referenced(root: Node, ctx: ParseContext) -> tuple[list[str], list[str], dict[str, bytes | OSError]]:
    """(secrets, suspects, files) the layout refers to, found before it is validated (a
    layout with problems still names them, and no name or problem may show a secret):

    - secrets: the values of the variables its *_env keys name;
    - suspects: the value of such a key itself when it does not look like a variable's
      name (it may be the secret, pasted in place of the name);
    - files: {path: its bytes, or why it cannot be read} of every secret file
      (`SecretFile` option) it names, each read once with files.py's rules (a regular
      file of at most `SecretFile.cap` bytes: a FIFO or a device is refused without
      blocking). The builder reports what could not be read at the check that names it.

    One walk for all three: a 10,000-check layout has some 65,000 nodes. What a *_env key
    holds is a variable's name (or a map of them), never an option: it is not walked."""
    env_keys, file_keys, environ, kind = SECRET_ENV_KEYS, SECRET_FILE_KEYS, ctx.environ, SecretFile()
    found: list[str] = []
    suspects: list[str] = []
    files: dict[str, bytes | OSError] = {}
    stack = [root]
    while stack:  # each node is popped once: the tree is finite (aliases were bounded)
        node = stack.pop()
        value = node.value
        if isinstance(value, list):
            stack.extend(child for child in value if isinstance(child.value, (list, dict)))
            continue
        if not isinstance(value, dict):
            continue
        for key, child in value.items():
            if key in env_keys:
                # headers_env: {Header-Name: VARIABLE}
                named = list(child.value.values()) if isinstance(child.value, dict) else [child]
                for each in named:
                    if not isinstance(each.value, str):
                        continue
                    name = each.value
                    if environ.get(name):
                        found.append(environ[name])
                    if not _ENV_NAME_CONVENTION.match(name):
                        suspects.append(name)
            elif key in file_keys and isinstance(child.value, str):
                try:
                    path = kind.parse(child.value, ctx)
                except Invalid:
                    continue  # the builder reports it
                if path not in files:
                    try:
                        files[path] = read_bounded(path, kind.cap)
                    except OSError as exc:  # FileRefused too
                        files[path] = exc
            elif isinstance(child.value, (list, dict)):
                stack.append(child)
    return found, suspects, files


# A secret file that is not there, or that this user may not read, is what `lint` meets on
# a machine that does not hold the secret: accepted there (lint notes it), as an unset
# *_env variable is; anything else (a device, a 5 MB file, an empty one) is a mistake.
_ABSENT_HERE = (FileNotFoundError, PermissionError)


def _secret_file_problem(path: str, outcome: bytes | OSError, require: bool) -> tuple[str, str] | None:
    """(message, fix) when the secret file at `path` cannot serve, else None."""
    if isinstance(outcome, bytes):
        if outcome:
            return None
        return f"the secret file {path} is empty", "point it at the file varnishd was started with (-S)"
    if isinstance(outcome, _ABSENT_HERE) and not require:
        return None
    fix = "point it at the file varnishd was started with (-S): a small regular file, e.g. /etc/varnish/secret"
    if isinstance(outcome, FileRefused):
        return f"the secret file {outcome}", fix
    if isinstance(outcome, FileNotFoundError):
        return f"no secret file at {path}", "fix the path (relative paths start at the layout file)"
    if isinstance(outcome, PermissionError):
        return f"may not read the secret file {path}", "run stackscope as a user that may read it"
    if isinstance(outcome, IsADirectoryError):
        return f"the secret file {path} is a directory", fix
    return f"cannot read the secret file {path}: {outcome.strerror or outcome}", fix


def _redacted(problem: Problem, redactor: Redactor) -> Problem:
    if not redactor:
        return problem
    return dataclasses.replace(
        problem,
        where=redactor.text(problem.where),
        message=redactor.text(problem.message),
        fix=redactor.text(problem.fix),
    )


def shown(text: str) -> str:
    """Layout text that is shown (the layout's name and description, layer and check names,
    targets as written), made terminal-safe where the loader builds the layout, as server
    text is where a Result is built. Values a probe sends (a query, a header, a user) keep
    their characters, for their check type to accept or refuse with a located problem;
    every problem is terminal-safe itself (Problem.__post_init__)."""
    return terminal_safe(text)


def _check_count(layers_node: Node) -> int:
    """How many checks the layers list, as written (before any is validated)."""
    total = 0
    for layer_node in layers_node.value:
        checks_node = layer_node.value.get("checks") if isinstance(layer_node.value, dict) else None
        if checks_node is not None and isinstance(checks_node.value, list):
            total += len(checks_node.value)
    return total


def _check_type(type_key: str) -> tuple[Any, dict[str, OptionInfo], tuple[str, ...], tuple[str, ...]]:
    """(spec, its options by key, the keys a check of the type may have, the required
    ones), asked per check."""
    spec = spec_for(type_key)
    cached = _TYPE_INFO.get(type_key)
    if cached is None or cached[0] is not spec:
        infos = {info.key: info for info in spec.option_infos()}
        required = tuple(key for key, info in infos.items() if info.required)
        cached = _TYPE_INFO[type_key] = (spec, infos, (type_key, *_COMMON_CHECK_KEYS, *infos), required)
    return cached


_TYPE_INFO: dict[str, tuple[Any, dict[str, OptionInfo], tuple[str, ...], tuple[str, ...]]] = {}


def _fields_of_kind(options: type, kind: type) -> tuple[tuple[str, Any], ...]:
    """(name, kind) of the fields of an options dataclass whose kind is a `kind` (asked
    per check: looked up once per options class and kind)."""
    found = _FIELDS_OF_KIND.get((options, kind))
    if found is None:
        found = _FIELDS_OF_KIND[(options, kind)] = tuple(
            (f.name, f.metadata["kind"])
            for f in dataclasses.fields(options)
            if isinstance(f.metadata.get("kind"), kind)
        )
    return found


_FIELDS_OF_KIND: dict[tuple[type, type], tuple[tuple[str, Any], ...]] = {}


class Validator:
    """Collects the problems of a document read by read_yaml(), each with its file, line,
    key and fix: the one wording for layouts and walkthrough files alike."""

    def __init__(self, file: str, problems: list[Problem] | None = None) -> None:
        self.file = file
        self.problems: list[Problem] = [] if problems is None else problems

    def problem(self, line: int, where: str, message: str, fix: str = "") -> None:
        self.problems.append(Problem(self.file, line, where, message, fix))

    def unknown_keys(self, node: Node, allowed: tuple[str, ...], where: str, what: str = "") -> None:
        """A problem for each key of the mapping `node` that is not `allowed` (`what`
        names the mapping in the fix: "layer keys are: …")."""
        listed = f"{what} keys are: " if what else "keys are: "
        for key in node.value:
            if key not in allowed:
                hint = did_you_mean(key, allowed) or listed + ", ".join(allowed)
                self.problem(node.key_lines[key], where, f"unknown key '{key}'", hint)


class _Builder(Validator):
    def __init__(
        self, file: str, ctx: ParseContext, problems: list[Problem], secret_files: dict[str, bytes | OSError]
    ) -> None:
        super().__init__(file, problems)
        self.ctx = ctx
        self.secret_files = secret_files  # read by _secrets_referenced()
        self.file_secrets: dict[str, bytes] = {}  # those the layout's checks use

    def check_secret_files(self, node: Node, where: str, options: Any) -> None:
        """Each secret file the check names was read when the layout loaded; one that
        cannot serve is a problem at its key (one that is absent here only when the
        layout is loaded to be run: see _ABSENT_HERE)."""
        for name, _ in _fields_of_kind(type(options), SecretFile):
            path = getattr(options, name)
            if not path:
                continue
            outcome = self.secret_files.get(path)
            if outcome is None:  # not read: the path was refused (reported by parse())
                continue
            trouble = _secret_file_problem(path, outcome, self.ctx.require_env)
            if trouble is not None:
                self.problem(node.key_lines.get(name, node.line), where, f"'{name}': {trouble[0]}", trouble[1])
            elif isinstance(outcome, bytes):
                self.file_secrets[path] = outcome

    def check_timeout(
        self, node: Node, where: str, timeout: float, interval: float, it: str, whose_interval: str
    ) -> None:
        """A timeout written in `node` (the layout's or a check's) is neither too short to
        measure anything nor longer than the interval it must fit in."""
        if timeout < MIN_TIMEOUT:
            self.problem(
                node.key_lines["timeout"],
                where,
                f"timeout {format_duration(timeout)} is too short",
                f"use {format_duration(MIN_TIMEOUT)} or more (no server answers sooner)",
            )
        if timeout > interval:
            self.problem(
                node.key_lines["timeout"],
                where,
                f"timeout {format_duration(timeout)} is longer than interval {format_duration(interval)}",
                f"lower {it} to {format_duration(interval)} or less, or raise {whose_interval}",
            )

    def parse(
        self,
        node: Node,
        key: str,
        kind: Kind,
        where: str,
        *,
        required: bool = False,
        default: Any = None,
        fix_missing: str = "",
    ) -> Any:
        """Parse node.value[key] with `kind`, recording a problem and returning default."""
        child = node.value.get(key)
        if child is None:
            if required:
                self.problem(
                    node.line, where, f"missing required key '{key}'", fix_missing or f"add {key}: ({kind.hint})"
                )
            return default
        if child.value is UNREADABLE:
            return default
        if child.value is None:
            self.problem(
                node.key_lines[key], where, f"'{key}' is empty", f"give it a value ({kind.hint}) or remove the key"
            )
            return default
        value = child.value
        try:
            return kind.parse(child.plain() if isinstance(value, (dict, list)) else value, self.ctx)
        except Invalid as exc:
            self.problem(node.key_lines[key], where, f"'{key}': {exc.message}", exc.fix)
            return default

    def layout(self, node: Node) -> Layout | None:
        if node.value is UNREADABLE:
            return None
        if not isinstance(node.value, dict):
            self.problem(
                node.line,
                "",
                f"the file holds {describe(node.plain())}, not a layout",
                "a layout is a mapping with name: and layers: at the top level",
            )
            return None
        self.unknown_keys(node, _LAYOUT_KEYS, "", "top-level")
        name = self.parse(
            node,
            "name",
            Text(),
            "",
            required=True,
            fix_missing="add name: (a short name for this stack, e.g. auth-prod)",
        )
        description = self.parse(node, "description", Text(), "", default="")
        interval = self.parse(node, "interval", Duration(), "", default=DEFAULT_INTERVAL)
        timeout_given = "timeout" in node.value
        timeout = self.parse(node, "timeout", Duration(), "", default=min(DEFAULT_TIMEOUT, interval))
        resolver = self.parse(node, "resolver", AddressKind(default_port=53), "")
        if interval < 0.1:
            self.problem(
                node.key_lines["interval"],
                "",
                f"interval {format_duration(interval)} is too short",
                "use 100ms or more",
            )
        if timeout_given:
            self.check_timeout(node, "", timeout, interval, "timeout", "interval")
        retries, confirm_interval = self.confirm(node, interval)
        suspect = self.suspect(node)

        layers_node = node.value.get("layers")
        layers: list[Layer] = []
        if layers_node is None:
            self.problem(
                node.line,
                "",
                "missing required key 'layers'",
                "add layers: — the request path, upstream first (dns, lb, backend, db)",
            )
        elif isinstance(layers_node.value, dict):
            self.problem(
                node.key_lines["layers"],
                "",
                "layers must be a list, got a mapping",
                "start each layer with '- ', like '  - name: DNS'",
            )
        elif not isinstance(layers_node.value, list) or not layers_node.value:
            self.problem(
                node.key_lines["layers"],
                "",
                "'layers' must be a non-empty list",
                "list the layers of the request path, each starting with '- name:'",
            )
        elif (total := _check_count(layers_node)) > MAX_CHECKS:
            self.problem(
                node.key_lines["layers"],
                "",
                f"a layout of {total} checks is over the limit of {MAX_CHECKS}",
                "split it into several layouts (one per stack or region)",
            )
        else:
            seen: dict[str, int] = {}
            for index, layer_node in enumerate(layers_node.value):
                layer = self.layer(layer_node, index, interval, timeout)
                name_node = layer_node.value.get("name") if isinstance(layer_node.value, dict) else None
                # compared as the layout will hold them: "A\u2028" and "A\u2029" are both "A·"
                layer_name = (
                    shown(name_node.value) if name_node is not None and isinstance(name_node.value, str) else None
                )
                if name_node is not None and isinstance(layer_name, str) and layer_name in seen:
                    self.problem(
                        name_node.line,
                        f"layers[{index}]",
                        f"layer name '{layer_name}' is used twice",
                        f"rename one (the other is on line {seen[layer_name]})",
                    )
                    continue
                if name_node is not None and isinstance(layer_name, str):
                    seen[layer_name] = name_node.line
                if layer is not None:
                    layers.append(layer)
        self.check_layer_refs(layers)
        if name is None:
            return None
        return Layout(
            name=shown(name),
            description=shown(description),
            interval=interval,
            timeout=timeout,
            resolver=resolver,
            layers=tuple(layers),
            path=self.file,
            confirm_retries=retries,
            confirm_interval=confirm_interval,
            file_secrets=tuple(sorted(self.file_secrets.items())),
            suspect=suspect,
        )

    def confirm(self, node: Node, interval: float) -> tuple[int, float]:
        """`confirm: {retries: 2, interval: 250ms}`: how many re-probes confirm a check's
        new status, and how far apart (0 retries: every change is confirmed at once)."""
        child = node.value.get("confirm")
        if child is None or child.value is UNREADABLE:
            return CONFIRM_RETRIES, CONFIRM_INTERVAL
        if not isinstance(child.value, dict):
            self.problem(
                node.key_lines["confirm"],
                "",
                f"'confirm' must be a mapping, got {describe(child.plain())}",
                "write confirm: {retries: 2, interval: 250ms}",
            )
            return CONFIRM_RETRIES, CONFIRM_INTERVAL
        self.unknown_keys(child, _CONFIRM_KEYS, "confirm", "confirm")
        retries = self.parse(child, "retries", Integer(minimum=0, maximum=10), "confirm", default=None)
        every = self.parse(child, "interval", Duration(), "confirm", default=CONFIRM_INTERVAL)
        if every > interval:
            self.problem(
                child.key_lines["interval"],
                "confirm",
                f"confirm interval {format_duration(every)} is longer than the layout's interval "
                f"{format_duration(interval)}",
                "confirmations must fit in one interval: lower it",
            )
            every = CONFIRM_INTERVAL
        return (CONFIRM_RETRIES if retries is None else int(retries)), every

    def suspect(self, node: Node) -> SuspectSettings | None:
        """`suspect: {threshold: 8, min_spread: 0.25, min_silence: 300ms, min_samples: 5}`:
        when a probe still silent is suspected before its timeout (suspicion.py); `suspect:
        off` never suspects."""
        child = node.value.get("suspect")
        fix = "write suspect: {threshold: 8, min_silence: 300ms}, or suspect: off"
        if child is None or child.value is UNREADABLE or child.value is True:
            return SuspectSettings()
        if child.value is False:
            return None
        if not isinstance(child.value, dict):
            self.problem(
                node.key_lines["suspect"], "", f"'suspect' must be a mapping or off, got {describe(child.plain())}", fix
            )
            return SuspectSettings()
        self.unknown_keys(child, _SUSPECT_KEYS, "suspect", "suspect")
        default = SuspectSettings()
        threshold = self.parse(child, "threshold", Number(minimum=1), "suspect", default=default.threshold)
        if threshold > MAX_SUSPECT_THRESHOLD:
            self.problem(
                child.key_lines["threshold"],
                "suspect",
                f"suspect threshold {threshold:g} is above the maximum {MAX_SUSPECT_THRESHOLD:g}",
                f"use {MAX_SUSPECT_THRESHOLD:g} or less (a chance of 10^-{MAX_SUSPECT_THRESHOLD:g}), or suspect: off",
            )
            threshold = default.threshold
        return SuspectSettings(
            threshold=threshold,
            min_spread=self.parse(child, "min_spread", Number(minimum=0), "suspect", default=default.min_spread),
            min_silence=self.parse(child, "min_silence", Duration(), "suspect", default=default.min_silence),
            min_samples=self.parse(
                child, "min_samples", Integer(minimum=2, maximum=SUSPECT_WINDOW), "suspect", default=default.min_samples
            ),
        )

    def check_layer_refs(self, layers: list[Layer]) -> None:
        """Options that name another layer must name one that exists (with the right role)."""
        roles = {layer.name: layer.role for layer in layers}
        for layer in layers:
            for check in layer.checks:
                for name, kind in _fields_of_kind(type(check.options), LayerRef):
                    value = getattr(check.options, name)
                    if value is None:
                        continue
                    where = f"layer '{layer.name}', check '{check.name}'"
                    if value not in roles:
                        self.problem(
                            check.line,
                            where,
                            f"'{name}': no layer named '{value}'",
                            did_you_mean(value, tuple(roles)) or "layers are: " + ", ".join(roles),
                        )
                    elif kind.role and roles[value] != kind.role:
                        self.problem(
                            check.line,
                            where,
                            f"'{name}': layer '{value}' has role {roles[value]}",
                            f"name a layer with role {kind.role}",
                        )

    def layer(self, node: Node, index: int, interval: float, timeout: float) -> Layer | None:
        where = f"layers[{index}]"
        if node.value is UNREADABLE:
            return None
        if not isinstance(node.value, dict):
            self.problem(
                node.line,
                where,
                f"a layer must be a mapping, got {describe(node.plain())}",
                "write '- name: ...' with role: and checks: under it",
            )
            return None
        name = self.parse(
            node, "name", Text(), where, required=True, fix_missing="add name: (shown on the panel, e.g. Load balancer)"
        )
        if name is not None:
            name = shown(name)
            where = f"layer '{name}'"
        self.unknown_keys(node, _LAYER_KEYS, where, "layer")
        role = self.parse(
            node,
            "role",
            Choice(*ROLES),
            where,
            required=True,
            fix_missing="add role: (one of " + ", ".join(ROLES) + ")",
        )
        checks_node = node.value.get("checks")
        checks: list[Check] = []
        if checks_node is None:
            self.problem(
                node.line,
                where,
                "missing required key 'checks'",
                "add checks: with at least one check, e.g. '- tcp: 127.0.0.1:5432'",
            )
        elif isinstance(checks_node.value, dict):
            self.problem(
                node.key_lines["checks"],
                where,
                "checks must be a list, got a mapping",
                "start each check with '- ', like '      - tcp: 127.0.0.1:5432'",
            )
        elif (
            checks_node.value is not UNREADABLE
            and checks_node.value is not None
            and not isinstance(checks_node.value, list)
        ):
            self.problem(
                node.key_lines["checks"],
                where,
                f"checks must be a list of checks, got {describe(checks_node.value)}",
                "write each check on its own line under checks:, starting with '- ', like "
                "'checks:' then '      - tcp: 127.0.0.1:5432'",
            )
        elif not isinstance(checks_node.value, list) or not checks_node.value:
            self.problem(
                node.key_lines["checks"],
                where,
                "layer has no checks",
                "add at least one check, e.g. '- tcp: 127.0.0.1:5432', or remove the layer",
            )
        else:
            seen: dict[str, int] = {}
            for check_index, check_node in enumerate(checks_node.value):
                check = self.check(check_node, f"{where}, checks[{check_index}]", name or "?", interval, timeout)
                if check is None:
                    continue
                if check.name in seen:
                    self.problem(
                        check.line,
                        f"{where}, checks[{check_index}]",
                        f"two checks are named '{check.name}'",
                        f"give one a different name: (the other is on line {seen[check.name]})",
                    )
                    continue
                seen[check.name] = check.line
                checks.append(check)
        if name is None or role is None:
            return None
        return Layer(name=name, role=role, checks=tuple(checks), line=node.line)

    def check(self, node: Node, where: str, layer: str, interval: float, default_timeout: float) -> Check | None:
        if node.value is UNREADABLE:
            return None
        if not isinstance(node.value, dict):
            self.problem(
                node.line,
                where,
                f"a check must be a mapping, got {describe(node.plain())}",
                "write it like '- tcp: 127.0.0.1:5432'",
            )
            return None
        type_keys = [key for key in node.value if key in CHECK_TYPES]
        if not type_keys:
            guesses = [did_you_mean(key, tuple(CHECK_TYPES)) for key in node.value]
            guess = next((g for g in guesses if g), "")
            self.problem(
                node.line, where, "check has no type key", guess or "start it with one of: " + ", ".join(CHECK_TYPES)
            )
            return None
        if len(type_keys) > 1:
            self.problem(
                node.line,
                where,
                f"check has several type keys ({', '.join(type_keys)})",
                "split it into one check per type",
            )
            return None
        type_key = type_keys[0]
        spec, infos, allowed, required = _check_type(type_key)
        where = f"{where} ({type_key})"
        self.unknown_keys(node, allowed, where, f"{type_key} check")

        before = len(self.problems)
        target = self.parse(node, type_key, spec.target, where, required=True)
        name = self.parse(node, "name", Text(), where)
        timeout = self.parse(node, "timeout", Duration(), where, default=default_timeout)
        warn_ms = self.parse(node, "warn_ms", Number(minimum=0), where)
        if "timeout" in node.value:
            self.check_timeout(node, where, timeout, interval, "it", "the layout's interval")
        values = {}
        given = node.value
        # an option not given takes its default (the options dataclass's own), unless required
        for key in (*(key for key in given if key in infos), *(key for key in required if key not in given)):
            info = infos[key]
            values[key] = self.parse(node, key, info.kind, where, required=info.required, default=info.default)
        if len(self.problems) > before or target is None:
            return None
        options = spec.options(**values)
        if spec.validate is not None:
            for key, message, fix in spec.validate(target, options):
                line = node.key_lines.get(key, node.line)
                self.problem(line, where, message, fix)
            if len(self.problems) > before:
                return None
        self.check_secret_files(node, where, options)
        if len(self.problems) > before:
            return None
        raw_target = node.value[type_key].value
        return Check(
            type=type_key,
            target=shown(str(raw_target)),
            name=shown(name or str(raw_target)),
            layer=layer,
            timeout=timeout,
            warn_ms=warn_ms,
            options=options,
            address=target,
            line=node.line,
        )
