"""JSON from a server or a file, parsed within bounds, and the typed checks that walk it.

Python's json module trusts its input more than a probe may: nesting 500,000 deep
raises RecursionError (after a long, deep walk of the C stack), a 4000-digit integer
parses on 3.10, is refused with a ValueError on 3.11+ past 4300 digits, and then raises
OverflowError wherever it meets float(); `1e999` quietly becomes inf, and `NaN` and
`Infinity` literals, which JSON does not have, are accepted. So every probe that reads
JSON from elsewhere parses it with `loads` here, which refuses all of that the same way
on every Python the project supports, before or while json.loads runs:

- the size, against the cap the caller read with (the reader already cut it; this checks);
- the depth, by a linear pre-scan of the text with strings blanked out (no recursion, so
  a bracket bomb costs one pass in C, never a deep call stack);
- each number literal's length and range, in json's parse_int/parse_float hooks (they see
  the literal text before int() or float() does);
- the non-JSON literals NaN, Infinity and -Infinity.

Every refusal is a `JsonRefused` whose message is the reason in words for the operator
("nested deeper than 64 levels", "a number with 4000 digits"), never a Python exception
name. The walk that follows uses `need` and `number`, which say "result[0] is a string,
not an object" instead of letting an AttributeError or KeyError escape.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any, TypeVar

MAX_DEPTH = 64  # arrays and objects inside each other; real answers nest a dozen deep
MAX_NUMBER = 64  # characters of one number literal: a float64 or an int64 needs at most 24

T = TypeVar("T")


class JsonRefused(ValueError):
    """JSON that is not read: `reason` says why, in words; `line` is where, when known (0: unknown)."""

    def __init__(self, reason: str, line: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


class NotJson(JsonRefused):
    """Not JSON at all (a syntax error, or not UTF-8): the caller may quote what was sent."""


class WrongShape(JsonRefused):
    """Valid JSON, but not the shape the reader expects; the message names the JSON path."""


# A string whole, or to the end of the text when it is never closed (so a lone quote costs
# one scan, not one per escaped quote after it); a trailing lone backslash is taken too.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*\\?(?:"|\Z)', re.S)
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INF_WORDS = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


def depth_over(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when arrays and objects open more than `limit` deep at any point. Linear in the
    size and never recursive: strings are blanked out (a bracket inside one is text), the
    brackets left become +1 and -1, and the deepest point is the largest running sum (all
    in C: re.sub, bytes.translate, itertools.accumulate, max). Brackets that do not match
    are json.loads' to refuse; up to where they stop matching, the running sum is the
    depth it would recurse to."""
    steps = _STRING.sub(b"", data).translate(_STEPS, _NOT_BRACKETS)
    if len(steps) <= limit:
        return False
    if b"\x01" * (limit + 1) in steps:  # the usual bomb, found without the sums
        return True
    return max(accumulate(array("b", steps))) > limit


def _too_long(text: str) -> JsonRefused:
    digits = sum(ch.isdigit() for ch in text)
    return JsonRefused(f"a number with {digits} digits (at most {MAX_NUMBER} characters are read)")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER:
        raise _too_long(text)
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER:
        raise _too_long(text)
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonRefused(f"the number {text} is beyond the range of a float")
    return value


def _constant(text: str) -> Any:
    raise JsonRefused(f"{text}, which is not a JSON value")


def loads(
    data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH, using: json.JSONDecoder | None = None
) -> Any:
    """Parse JSON from elsewhere within the bounds above; JsonRefused says why it was not.
    `using`: a decoder made by `decoder()` with more to it (the Caddy config's, which keeps
    where each object starts)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JsonRefused(f"{len(raw)} bytes, more than the {_size(max_bytes)} read")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotJson(f"not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    if depth_over(raw, max_depth):
        raise JsonRefused(f"nested deeper than {max_depth} levels")
    try:
        return (using or decoder()).decode(text)
    except JsonRefused:
        raise
    except json.JSONDecodeError as exc:
        raise NotJson(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", exc.lineno) from None
    except RecursionError:  # unreachable after the pre-scan; kept so no exception name can leak
        raise JsonRefused(f"nested deeper than {max_depth} levels") from None


def decoder(**kwargs: Any) -> json.JSONDecoder:
    """A JSONDecoder with the bounded number and constant hooks (for a reader that needs its
    own decoder, like the Caddy config parser that keeps each object's line). Call
    `depth_over` on the text first: the decoder itself does not bound the depth."""
    return json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant, **kwargs)


def _size(cap: int) -> str:
    if cap >= 1024 * 1024 and cap % (1024 * 1024) == 0:
        return f"{cap // (1024 * 1024)} MiB"
    if cap >= 1024 and cap % 1024 == 0:
        return f"{cap // 1024} KiB"
    return f"{cap} bytes"


# --------------------------------------------------------------------------- the walk


def kind_of(value: Any) -> str:
    """What a JSON value is, in words: "an object", "a list", "a string", …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def need(value: Any, kind: type[T], where: str, what: str) -> T:
    """`value` when it is a `kind` (a bool is not an int), else WrongShape: "WHERE is a
    string, not WHAT"."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise WrongShape(f"{where} is {kind_of(value)}, not {what}")
    return value


def number(value: Any, where: str) -> float:
    """A number sent as a JSON number or as text (as Prometheus sends sample values: "0.5",
    "NaN", "+Inf"), as a float. Text is held to the same bounds as a literal: at most
    MAX_NUMBER characters, and a decimal that overflows a float is refused, while the words
    for infinity stay infinite."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)  # a literal parsed by `loads`: bounded and finite already
    if not isinstance(value, str):
        raise WrongShape(f"{where} is {kind_of(value)}, not a number")
    text = value.strip()
    if len(text) > MAX_NUMBER:
        raise WrongShape(f"{where} is {_too_long(text).reason}")
    if text.lower() == "nan":
        return float("nan")
    if text.lower() in _INF_WORDS:
        return float(text)
    if not _NUMBER_TEXT.fullmatch(text):
        shown = "".join(ch if ch.isprintable() else "·" for ch in text[:40])
        raise WrongShape(f"{where} is the text '{shown}', not a number")
    result = float(text)
    if result in (float("inf"), float("-inf")):
        raise WrongShape(f"{where} is {text}, beyond the range of a float")
    return result
