"""Value kinds and check-type specs: what a layout may say, and how to read it.

A check type declares its target and options here as plain data (a frozen dataclass whose
fields carry a `Kind`). The loader in layout.py validates YAML against those
declarations, and schema.py (`stackscope schema`) turns the same declarations into a JSON Schema, so
the documentation, the validation and the editor completion can never disagree.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from stackscope.model import Address, Url, is_ip

if TYPE_CHECKING:
    from stackscope.model import Check, Result
    from stackscope.probes.context import ProbeContext


class Invalid(Exception):
    """A value that does not fit its kind: what is wrong, and how to fix it."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass(frozen=True)
class ParseContext:
    """What a kind may need besides the value: where relative paths start, the env."""

    base_dir: str = "."
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    require_env: bool = True


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """The closest choice as a hint, or "" when nothing is close."""
    import difflib  # only when there is a typo to name

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def describe(value: Any) -> str:
    """A YAML-ish name for the type of a value, for error messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a number ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"the text '{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


# --------------------------------------------------------------------------- values


_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$"
)


def valid_hostname(host: str) -> bool:
    return bool(_HOSTNAME_RE.match(host)) or is_ip(host)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)\s*$")


# The longest duration a layout may give (an interval, a timeout, a lag): one day. Longer
# is a typo (99999999999999999999m was once accepted, and overflowed the scheduler).
MAX_DURATION = 24 * 60 * 60.0


def parse_duration(value: Any) -> float:
    """'500ms', '2s', '1.5m' -> seconds, at most MAX_DURATION. Bare numbers are refused:
    2 could mean 2 ms."""
    if isinstance(value, float) and not math.isfinite(value):  # YAML's .nan, .inf
        raise Invalid(
            f"'{_yaml_float(value)}' is not a duration: a duration is a finite length of time",
            "write it like 500ms, 2s or 1m",
        )
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid(f"expected a duration, got {describe(value)}", "write it like 500ms, 2s or 1m")
    if isinstance(value, (int, float)):
        raise Invalid(f"the number {value} has no unit", f"write {value}s or {value}ms")
    match = _DURATION_RE.match(value)
    if not match:
        raise Invalid(f"'{value}' is not a duration", "write it like 500ms, 2s or 1m")
    amount, unit = float(match.group(1)), match.group(2)
    seconds = amount * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]
    if seconds <= 0:
        raise Invalid(f"'{value}' is zero", "use a positive duration such as 2s")
    if seconds > MAX_DURATION:
        raise Invalid(
            f"'{value}' is longer than a day, the longest duration stackscope takes",
            f"write {format_duration(MAX_DURATION)} or less",
        )
    return seconds


def _yaml_float(value: float) -> str:
    """How YAML writes a float that is no number: .nan, .inf, -.inf."""
    return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")


def format_duration(seconds: float) -> str:
    """Whole milliseconds at most: a remaining budget of 1.99999 s reads '2s', not noise."""
    seconds = round(seconds, 3)
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


# 'javascript:alert(1)', 'mailto:x', 'file:/etc': a scheme, then something that is no port
# (what follows the colon holds a character no host or port has, like '(', '/' or '@')
_SCHEME_NOT_PORT_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?!\d+(?:/|$))(?=.*[^A-Za-z0-9.-])")


def _other_scheme(text: str) -> str | None:
    """The scheme of a URL written without '//' ('javascript:alert(1)'), or None for text
    that reads as host:port ('db:5432')."""
    match = _SCHEME_NOT_PORT_RE.match(text)
    return match.group(1) if match and "[" not in text else None


def parse_address(value: Any, default_port: int | None = None) -> Address:
    """'127.0.0.1:5353', '[::1]:53', 'db.internal:5432', or a bare host with a default port."""
    example = "127.0.0.1:5432" if default_port is None else f"127.0.0.1:{default_port}"
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected host:port, got {describe(value)}", f"write it like {example}")
    text = value.strip()
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise Invalid(f"'{text}' has an unclosed '['", "write IPv6 as [::1]:5432")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise Invalid(f"'{text}' is not host:port", "write IPv6 as [::1]:5432")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        if is_ip(text) and default_port is not None:
            host = text
        else:
            raise Invalid(f"'{text}' is ambiguous", "write an IPv6 address in brackets: [::1]:5432")
    if "://" in text or "/" in host:
        raise Invalid(f"'{text}' looks like a URL, not host:port", f"write it like {example}")
    if (scheme := _other_scheme(text)) and not (port_text or "").isdigit():
        raise Invalid(
            f"'{text}' is a URL with the scheme '{scheme}:', not host:port (it is no host name)",
            f"write it like {example}",
        )
    if not host or not valid_hostname(host):
        raise Invalid(f"'{host}' is not a valid host name or IP address", f"write it like {example}")
    if port_text is None:
        if default_port is None:
            raise Invalid(f"'{text}' has no port", f"add one: {text}:PORT (for example {example})")
        return Address(host, default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise Invalid(f"port '{port_text}' in '{text}' is not a number from 1 to 65535", f"write it like {example}")
    return Address(host, int(port_text))


def _bad_brackets(text: str) -> Invalid:
    """Why urlsplit refused `text` (its host brackets) and the URL that was meant."""
    scheme, _, rest = text.partition("://")
    netloc, slash, path = rest.partition("/")
    path = slash + path or "/"
    host = netloc.rpartition("@")[2]
    if "[" in host and "]" not in host:
        inner = host[host.index("[") + 1 :]
        address, colon, port = inner.rpartition(":")
        if colon and port.isdigit() and _is_ipv6(address):  # [::1:80 is most likely [::1]:80
            fix = f"write {scheme}://[{address}]:{port}{path}"
        elif _is_ipv6(inner):
            fix = f"write {scheme}://[{inner}]{path}"
        else:
            fix = f"write it like {scheme}://[::1]:8080/health"
        return Invalid(f"bad URL '{text}': unclosed '[' in the IPv6 address", fix)
    if "]" in host and "[" not in host:
        return Invalid(
            f"bad URL '{text}': ']' without '[' in the host",
            f"write an IPv6 address in brackets, like {scheme}://[::1]:8080/health",
        )
    inner = host[host.find("[") + 1 : host.find("]")]
    return Invalid(
        f"bad URL '{text}': '{inner}' in brackets is not an IPv6 address",
        f"write it like {scheme}://[::1]:8080/health, or drop the brackets around a name",
    )


def _brackets_hold_ipv6(url: str) -> bool:
    """Whether the URL's host is either free of brackets or one bracketed IPv6 address.

    Checked here rather than left to urlsplit, which checks bracketed hosts only from
    Python 3.11 on: on 3.10 'http://[db]:80/' would pass as the host 'db'.
    """
    netloc = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = netloc.rpartition("@")[2]
    if "[" not in host and "]" not in host:
        return True
    match = re.fullmatch(r"\[([^\[\]]*)\](:[^\[\]]*)?", host)
    return match is not None and _is_ipv6(match.group(1))


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


_UNSENDABLE_IN_URL = re.compile(r"[^\x21-\x7e]")


def _refuse_unsendable_url(text: str) -> None:
    """A URL goes into the request line as it is: a space or line break would end it and
    start a header of the layout's making (Python's urlsplit silently drops tabs and line
    breaks instead, so the URL sent would not be the one written), and HTTP/1.1 carries
    only ASCII there."""
    found = _UNSENDABLE_IN_URL.search(text)
    if found is not None:
        bad = found.group()
        shown = text.encode("unicode_escape").decode("ascii")
        raise Invalid(
            f"'{shown}' has {_char_name(bad)} in it, which an HTTP request line cannot carry",
            "percent-encode it (%20 for a space); a URL is printable ASCII on one line",
        )


def parse_url(value: Any, schemes: tuple[str, ...] = ("http", "https")) -> Url:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"expected a URL, got {describe(value)}", "write it like http://127.0.0.1:8080/health")
    text = value.strip()
    if "://" not in text and (scheme := _other_scheme(text)):
        raise Invalid(
            f"'{text}' is a URL with the scheme '{scheme}:', which this check does not speak (it is no host name)",
            f"use {' or '.join(s + '://' for s in schemes)}, like http://127.0.0.1:8080/health",
        )
    if "://" not in text:
        raise Invalid(f"'{text}' has no scheme", f"write http://{text}")
    _refuse_unsendable_url(text)
    if not _brackets_hold_ipv6(text):
        raise _bad_brackets(text)
    try:
        parts = urlsplit(text)
    except ValueError:  # anything else urlsplit refuses in the host
        raise _bad_brackets(text) from None
    if parts.scheme not in schemes:
        raise Invalid(
            f"scheme '{parts.scheme}' in '{text}' is not supported", f"use {' or '.join(s + '://' for s in schemes)}"
        )
    try:
        port = parts.port
    except ValueError:
        raise Invalid(
            f"the port in '{text}' is not a number from 1 to 65535", "write it like http://127.0.0.1:8080/health"
        ) from None
    host = parts.hostname or ""
    if not host or not valid_hostname(host):
        raise Invalid(f"'{text}' has no valid host", "write it like http://127.0.0.1:8080/health")
    if parts.username or parts.password:
        raise Invalid(
            "credentials in a URL would end up in every report",
            "remove them and name an environment variable with auth_env",
        )
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Url(raw=text, scheme=parts.scheme, host=host, port=port, path=path)


# --------------------------------------------------------------------------- kinds


class Kind:
    """How one option's YAML value is checked, converted and described in JSON Schema."""

    hint = ""
    names_a_secret = False  # True for EnvName: the value names a secret's variable

    def parse(self, value: Any, ctx: ParseContext) -> Any:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def show(self, value: Any) -> str:
        """A default value as a layout would write it (schema descriptions, docs)."""
        return str(value)


class Text(Kind):
    hint = "text"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise Invalid(f"expected text, got {describe(value)}", "write a plain string (quote it if needed)")
        text = str(value)
        if not text.strip():
            raise Invalid("is empty", "write a non-empty value or remove the key")
        return text

    def json_schema(self) -> dict[str, Any]:
        # numbers too, as parse() takes them (`name: 2024` is the text "2024"); minLength
        # applies to strings only
        return {"type": ["string", "number"], "minLength": 1}


def _number_fix(value: Any, what: str) -> str:
    """'without quotes' only when the text is a number in quotes: '5x' needs another fix."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return f"write {what}, with no letters or units"
        return "write the number without quotes"
    return f"write {what}"


class Integer(Kind):
    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.hint = "a whole number"

    def parse(self, value: Any, ctx: ParseContext) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected a whole number, got {describe(value)}", _number_fix(value, "a whole number"))
        if self.minimum is not None and value < self.minimum:
            raise Invalid(f"{value} is below the minimum {self.minimum}", f"use {self.minimum} or more")
        if self.maximum is not None and value > self.maximum:
            raise Invalid(f"{value} is above the maximum {self.maximum}", f"use {self.maximum} or less")
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        return schema


class Number(Kind):
    def __init__(self, minimum: float | None = None) -> None:
        self.minimum = minimum
        self.hint = "a number"

    def parse(self, value: Any, ctx: ParseContext) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"expected a number, got {describe(value)}", _number_fix(value, "a number"))
        if self.minimum is not None and value < self.minimum:
            raise Invalid(f"{value} is below the minimum {self.minimum:g}", f"use {self.minimum:g} or more")
        return float(value)

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "number"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        return schema


class Boolean(Kind):
    hint = "true or false"

    def parse(self, value: Any, ctx: ParseContext) -> bool:
        if not isinstance(value, bool):
            quoted = isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off")
            raise Invalid(
                f"expected true or false, got {describe(value)}",
                "write true or false without quotes" if quoted else "write true or false",
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Duration(Kind):
    hint = "a duration such as 500ms, 2s or 1m"

    def parse(self, value: Any, ctx: ParseContext) -> float:
        return parse_duration(value)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m)\s*$", "examples": ["500ms", "2s", "1m"]}

    def show(self, value: Any) -> str:
        return format_duration(value)


class AddressKind(Kind):
    def __init__(self, default_port: int | None = None) -> None:
        self.default_port = default_port
        self.hint = "host:port" if default_port is None else f"host[:port] (default port {default_port})"

    def parse(self, value: Any, ctx: ParseContext) -> Address:
        return parse_address(value, self.default_port)

    def json_schema(self) -> dict[str, Any]:
        port = self.default_port or 8080
        return {"type": "string", "minLength": 1, "examples": [f"127.0.0.1:{port}"]}


class UrlKind(Kind):
    def __init__(self, schemes: tuple[str, ...] = ("http", "https")) -> None:
        self.schemes = schemes
        self.hint = "a URL (" + ", ".join(s + "://" for s in schemes) + ")"

    def parse(self, value: Any, ctx: ParseContext) -> Url:
        return parse_url(value, self.schemes)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^(" + "|".join(self.schemes) + ")://"}


class GrpcTargetKind(Kind):
    """A gRPC server: host:port (cleartext HTTP/2), or grpc://, grpcs://, http://, https://
    URLs (the `s` forms speak TLS). Parsed to a Url whose scheme is http or https."""

    hint = "host:port, or grpc:// / grpcs:// HOST:PORT"

    def parse(self, value: Any, ctx: ParseContext) -> Url:
        if isinstance(value, str) and "://" in value:
            url = parse_url(value, ("grpc", "grpcs", "http", "https"))
            if url.path not in ("", "/"):
                raise Invalid(f"'{url.raw}' has a path; gRPC names the method itself", "write just grpc://HOST:PORT")
            scheme = "https" if url.scheme in ("grpcs", "https") else "http"
            if urlsplit(url.raw).port is None:  # parse_url gave it 80 or 443; gRPC has no default
                raise Invalid(f"'{url.raw}' has no port", "add one: grpc://HOST:PORT")
            return Url(raw=url.raw, scheme=scheme, host=url.host, port=url.port, path="/")
        address = parse_address(value)
        return Url(raw=str(address), scheme="http", host=address.host, port=address.port, path="/")

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "examples": ["127.0.0.1:50051", "grpcs://api.example.test:443"]}


class HostnameKind(Kind):
    hint = "a DNS name"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"expected a DNS name, got {describe(value)}", "write it like auth.example.test")
        name = value.strip()
        if "://" in name or "/" in name or not valid_hostname(name):
            raise Invalid(f"'{name}' is not a DNS name", "write just the name, like auth.example.test")
        return name

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1}


class Choice(Kind):
    def __init__(self, *choices: str, case_insensitive: bool = False) -> None:
        self.choices = choices
        self.case_insensitive = case_insensitive
        self.hint = "one of " + ", ".join(choices)

    def parse(self, value: Any, ctx: ParseContext) -> str:
        text = value if isinstance(value, str) else None
        if text is not None and self.case_insensitive:
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice
        if text not in self.choices:
            hint = did_you_mean(str(value), self.choices) if text else ""
            raise Invalid(f"{describe(value)} is not allowed", hint or "use one of: " + ", ".join(self.choices))
        return text

    def json_schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


class TextList(Kind):
    """A list of strings; a single string is accepted as a list of one."""

    def __init__(self, item: Kind | None = None) -> None:
        self.item = item or Text()
        self.hint = "a list"

    def parse(self, value: Any, ctx: ParseContext) -> tuple[Any, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise Invalid("is an empty list", "list at least one value or remove the key")
        out = []
        for index, item in enumerate(items):
            try:
                out.append(self.item.parse(item, ctx))
            except Invalid as exc:
                raise Invalid(f"item {index + 1}: {exc.message}", exc.fix) from None
        return tuple(out)

    def json_schema(self) -> dict[str, Any]:
        item = self.item.json_schema()
        return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]}


class StatusCodes(Kind):
    hint = "an HTTP status code or a list of them"

    def parse(self, value: Any, ctx: ParseContext) -> tuple[int, ...]:
        items = value if isinstance(value, list) else [value]
        codes = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
                raise Invalid(
                    f"{describe(item)} is not an HTTP status code",
                    "write a number from 100 to 599, or a list like [200, 204]",
                )
            codes.append(item)
        if not codes:
            raise Invalid("is an empty list", "list at least one status code or remove the key")
        return tuple(codes)

    def json_schema(self) -> dict[str, Any]:
        code = {"type": "integer", "minimum": 100, "maximum": 599}
        return {"anyOf": [code, {"type": "array", "items": code, "minItems": 1}]}


class TextMap(Kind):
    """A mapping of names to text (HTTP headers); kept as a tuple of pairs to stay frozen."""

    hint = "a mapping of name: value"

    def parse(self, value: Any, ctx: ParseContext) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            raise Invalid(f"expected a mapping, got {describe(value)}", "write it as name: value lines")
        pairs = []
        for key, item in value.items():
            if isinstance(item, (list, dict)) or item is None:
                raise Invalid(f"'{key}' has {describe(item)}", "give each name a single text value")
            pairs.append((str(key), str(item).lower() if isinstance(item, bool) else str(item)))
        return tuple(pairs)

    def json_schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}


_TOKEN_RE = re.compile(r"^[-!#$%&'*+.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE_RE = re.compile(r"^([\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?)?$")
# The probe frames its own request (one request, then close): a layout that set these
# would make the request malformed, or ask the server to keep a connection no one uses.
_FRAMING_HEADERS = ("connection", "content-length", "transfer-encoding")


class HeaderMap(TextMap):
    """HTTP header names and values, checked here so that a header HTTP cannot carry is a
    layout error at lint time, never a failed check blamed on the target.

    `request=True` for headers the probe sends (values must be sendable); for expected
    response headers only the names are checked (a value there is a substring to find).
    """

    hint = "a mapping of Header-Name: value"

    def __init__(self, request: bool = True) -> None:
        self.request = request

    def parse(self, value: Any, ctx: ParseContext) -> tuple[tuple[str, str], ...]:
        pairs = super().parse(value, ctx)
        seen: dict[str, str] = {}
        for name, item in pairs:
            if not _TOKEN_RE.match(name):
                raise Invalid(
                    f"'{name}' is not a valid HTTP header name",
                    "use letters, digits and '-' only, like X-Request-Id (no spaces or colons)",
                )
            if name.lower() in seen:
                raise Invalid(
                    f"header '{name}' is given twice (also as '{seen[name.lower()]}')",
                    "header names are case-insensitive: keep one",
                )
            seen[name.lower()] = name
            if not self.request:
                continue
            if name.lower() in _FRAMING_HEADERS:
                raise Invalid(f"header '{name}' is set by the probe itself", "remove it")
            if not _HEADER_VALUE_RE.match(item):
                shown = item.encode("unicode_escape").decode("ascii")
                raise Invalid(
                    f"the value of header '{name}' ('{shown}') cannot be sent in HTTP",
                    "use printable ASCII on one line, with no line breaks, control characters "
                    "or leading/trailing spaces",
                )
        return pairs

    def json_schema(self) -> dict[str, Any]:
        values: dict[str, Any] = {"type": ["string", "number", "boolean"]}
        if self.request:
            values = {
                "anyOf": [{"type": "string", "pattern": _HEADER_VALUE_RE.pattern}, {"type": ["number", "boolean"]}]
            }
        return {"type": "object", "propertyNames": {"pattern": _TOKEN_RE.pattern}, "additionalProperties": values}


class WireText(Text):
    """Text a probe puts on a wire protocol as it is: the protocol's grammar, not ours,
    decides what it may hold. A character the protocol uses as a separator (HAProxy's
    `;` and newline between commands, PostgreSQL's NUL between startup parameters, a
    RESP line break) would let a layout value smuggle in more than the probe means to
    send, so it is a layout error at lint time, located, never something sent.

    `allowed` is a full-match pattern of the characters the protocol allows; `rule` says
    in words what they are, for the fix; `max_bytes` bounds the UTF-8 length.
    """

    def __init__(self, what: str, allowed: str, rule: str, why: str, max_bytes: int, example: str) -> None:
        self.what, self.rule, self.why, self.example = what, rule, why, example
        self.allowed = re.compile(allowed)
        self.whole = re.compile(allowed + "*")  # `allowed` is one character class: one match for the whole
        self.max_bytes = max_bytes
        self.hint = f"{what} ({rule}, at most {max_bytes} bytes)"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        text = super().parse(value, ctx)
        shown = text.encode("unicode_escape").decode("ascii") if not text.isascii() or not text.isprintable() else text
        if not self.whole.fullmatch(text):
            bad = next(ch for ch in text if not self.allowed.fullmatch(ch))
            raise Invalid(
                f"'{shown}' is not a valid {self.what}: {_char_name(bad)} is not allowed ({self.why})",
                f"use {self.rule}, like {self.example}",
            )
        size = len(text.encode("utf-8"))
        if size > self.max_bytes:
            raise Invalid(
                f"'{shown[:40]}…' is {size} bytes, longer than a {self.what} may be ({self.max_bytes})",
                f"use the real name, at most {self.max_bytes} bytes",
            )
        return text

    def json_schema(self) -> dict[str, Any]:
        item = self.allowed.pattern
        return {"type": "string", "minLength": 1, "maxLength": self.max_bytes, "pattern": f"^(?:{item})+$"}


def _char_name(ch: str) -> str:
    names = {"\x00": "a NUL byte", "\n": "a line break", "\r": "a carriage return", ";": "';'", " ": "a space"}
    return names.get(ch, f"'{ch}'" if ch.isprintable() else f"the control character U+{ord(ch):04X}")


def haproxy_name(what: str = "HAProxy proxy name") -> WireText:
    """A backend/frontend/server name as HAProxy itself allows it (cfgparse `invalid_char`):
    the Runtime API separates commands with `;` and lines, and words with spaces."""
    why = (
        "HAProxy allows no other characters in names, and on the Runtime API ';' or a line break starts another command"
    )
    return WireText(what, r"[A-Za-z0-9_.:-]", "letters, digits and _ . : - only", why, 255, "auth_servers")


_PRINTABLE = r"[^\x00-\x1f\x7f]"


def postgres_name(what: str) -> WireText:
    """A role or database name for the v3 StartupMessage, whose parameters are
    NUL-terminated: a NUL inside would start another parameter (options, replication…).
    PostgreSQL keeps 63 bytes of a name (NAMEDATALEN - 1) and cuts the rest."""
    why = "the startup message ends a value at a NUL, and what follows would be read as more parameters"
    return WireText(what, _PRINTABLE, "printable text, no NUL or control characters", why, 63, "app")


def mysql_user() -> WireText:
    """A user name for the handshake response, NUL-terminated there; MariaDB allows 80
    characters (MySQL 32: the server refuses a longer one itself)."""
    why = "the handshake ends the user name at a NUL"
    return WireText("MySQL user name", _PRINTABLE, "printable text, no NUL or control characters", why, 80, "app")


def redis_user() -> WireText:
    """An ACL user name: Redis refuses names with spaces or control characters, and a
    line break is RESP's own separator."""
    why = "Redis ACL user names have no spaces or control characters"
    return WireText("Redis ACL user name", r"[^\s\x00-\x1f\x7f]", "printable text without spaces", why, 256, "monitor")


class HeaderName(Text):
    """One HTTP header name (a token: letters, digits and !#$%&'*+-.^_`|~)."""

    hint = "an HTTP header name"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        name = super().parse(value, ctx)
        if not _TOKEN_RE.match(name):
            raise Invalid(
                f"'{name}' is not a valid HTTP header name",
                "use letters, digits and '-' only, like X-Api-Key (no spaces or colons)",
            )
        return name

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": _TOKEN_RE.pattern}


class LayerRef(Text):
    """The name of another layer of the same layout; checked once all layers are read."""

    def __init__(self, role: str | None = None) -> None:
        self.role = role
        self.hint = "the name of a layer" + (f" with role {role}" if role else "")


class EnvName(Kind):
    """The name of an environment variable that holds a secret.

    The layout only ever holds the variable's name; the value is read when a probe needs
    it and is registered for redaction, so it cannot leak into any output.
    """

    hint = "the name of an environment variable"
    names_a_secret = True  # Layout.secret_env_names() collects these values

    def parse(self, value: Any, ctx: ParseContext) -> str:
        if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            # the value is not quoted: a value that is no variable name may be the secret itself
            raise Invalid(
                "is not an environment variable name (the value is not shown: it may be the secret itself)",
                "write the variable's name, like PGPASSWORD (never the secret itself)",
            )
        if ctx.require_env and value not in ctx.environ:
            raise Invalid(
                f"environment variable {value} is not set",
                f"export {value}=... before running stackscope, or remove the key",
            )
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}


class EnvHeaderMap(HeaderMap):
    """HTTP header names, each with the environment variable holding its value (an API key,
    a bearer token): the layout holds the names only, as with every `*_env` key."""

    hint = "a mapping of Header-Name: ENV_VARIABLE"
    names_a_secret = True  # Layout.secret_env_names() collects the variables' names

    def __init__(self) -> None:
        super().__init__(request=False)

    def parse(self, value: Any, ctx: ParseContext) -> tuple[tuple[str, str], ...]:
        pairs = super().parse(value, ctx)
        for name, env in pairs:
            if name.lower() in _FRAMING_HEADERS:
                raise Invalid(f"header '{name}' is set by the probe itself", "remove it")
            try:
                EnvName().parse(env, ctx)
            except Invalid as exc:
                raise Invalid(f"header '{name}': {exc.message}", exc.fix) from None
        return pairs

    def json_schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": EnvName().json_schema()}


def sendable_header_value(value: str) -> bool:
    """Whether HTTP can carry `value` as a header value (printable ASCII on one line)."""
    return bool(_HEADER_VALUE_RE.match(value))


class FilePath(Kind):
    """A file path; relative paths are relative to the layout file, not the shell."""

    def __init__(self, must_exist: bool = False) -> None:
        self.must_exist = must_exist
        self.hint = "a file path"

    def parse(self, value: Any, ctx: ParseContext) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"expected a file path, got {describe(value)}", "write a path such as /etc/nginx/nginx.conf")
        path = os.path.expanduser(value.strip())
        if not os.path.isabs(path):
            path = os.path.normpath(os.path.join(ctx.base_dir, path))
        if self.must_exist and not os.path.exists(path):
            raise Invalid(f"file {path} does not exist", "fix the path (relative paths start at the layout file)")
        return path

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1}


class SecretFile(FilePath):
    """The path of a small file holding a secret (the Varnish CLI's `varnishd -S` file).

    The loader reads it when the layout loads (files.py's rules: a regular file, at most
    `cap` bytes), so its value is masked in every text the layout shows and in every
    problem, like the value of an `EnvName` variable; the probe uses the value read then."""

    reads_a_secret = True  # layout.py reads these files; Layout.secret_file_paths() lists them
    cap = 4096  # varnishd's own secrets are 37 bytes; a larger "secret" is the wrong file

    def __init__(self) -> None:
        super().__init__()
        self.hint = "the path of a secret file"


# --------------------------------------------------------------------------- options


def option(kind: Kind, default: Any = None, doc: str = "", required: bool = False) -> Any:
    """A field of a check type's options dataclass, carrying its kind and documentation."""
    metadata = {"kind": kind, "doc": doc, "required": required}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for defaults so options stay frozen")
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class OptionInfo:
    key: str
    kind: Kind
    default: Any
    doc: str
    required: bool


def options_of(cls: type) -> list[OptionInfo]:
    return list(_options_of(cls))


@functools.cache
def _options_of(cls: type) -> tuple[OptionInfo, ...]:
    """The options of a check type's dataclass (cached: a large layout asks per check)."""
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if "kind" not in meta:
            continue
        default = None if f.default is dataclasses.MISSING else f.default
        out.append(OptionInfo(f.name, meta["kind"], default, meta["doc"], meta["required"]))
    return tuple(out)


ProbeFn = Callable[["Check", "ProbeContext"], Awaitable["Result"]]


@dataclass(frozen=True)
class CheckSpec:
    """One check type: its key in the layout, its target, its options and its probe."""

    key: str
    doc: str
    target: Kind
    options: type
    probe: ProbeFn
    example: str = ""
    # Cross-field rules: gets the parsed options, returns (key, message, fix) problems.
    validate: Callable[[Any, Any], list[tuple[str, str, str]]] | None = None
    # One-time set-up (imports, TLS contexts, clients) run before the first round, so
    # that its cost is never counted as the latency of the first probe.
    warm_up: Callable[[Check, ProbeContext], None] | None = None

    def option_infos(self) -> list[OptionInfo]:
        return options_of(self.options)
