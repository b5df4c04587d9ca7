"""jsonbound: JSON from elsewhere is parsed within bounds, or refused with the reason in words.

The same table must hold on every Python the project supports (3.10 has no int
max_str_digits, 3.11+ does), so no case here depends on json.loads' own limits."""

from __future__ import annotations

import math

import pytest

from stackscope import jsonbound
from stackscope.jsonbound import MAX_DEPTH, JsonRefused, NotJson, WrongShape, loads, need, number
from tests.probe_helpers import PYTHON_NAMES

CAP = 4 * 1024 * 1024


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


READ = [
    ("at the depth limit", nested(MAX_DEPTH), None),
    ("objects at the depth limit", objects(MAX_DEPTH), None),
    ("brackets inside a string do not count", b'["' + b"[" * 1000 + b'{"]', ["[" * 1000 + "{"]),
    ("an escaped quote does not end the string", b'["\\"[[[[", 2]', ['"[[[[', 2]),
    ("an escaped backslash before the closing quote", b'["a\\\\", [1]]', ["a\\", [1]]),
    ("short numbers", b'{"i": -12, "f": 1.5e3, "z": 0}', {"i": -12, "f": 1500.0, "z": 0}),
    ("a number of 64 characters", b"1" * 64, int("1" * 64)),
    ("text", '{"é": "ü"}'.encode(), {"é": "ü"}),
]


@pytest.mark.parametrize("name, data, expected", READ, ids=[c[0] for c in READ])
def test_what_is_read(name, data, expected):
    value = loads(data, max_bytes=CAP)
    if expected is not None:
        assert value == expected


REFUSED = [
    ("one past the depth limit", nested(MAX_DEPTH + 1), "nested deeper than 64 levels"),
    ("objects one past the depth limit", objects(MAX_DEPTH + 1), "nested deeper than 64 levels"),
    ("500,000 deep", nested(500_000), "nested deeper than 64 levels"),
    ("500,000 opened, never closed", b"[" * 500_000, "nested deeper than 64 levels"),
    ("deep after a string with brackets", b'["]]]]",' + nested(MAX_DEPTH) + b"]", "nested deeper than 64 levels"),
    ("deep after siblings", b"[" + b"[]," * 1000 + nested(MAX_DEPTH) + b"]", "nested deeper than 64 levels"),
    ("a 4000-digit integer", b'{"v": ' + b"9" * 4000 + b"}", "a number with 4000 digits"),
    ("a 400-digit integer", b"[" + b"1" * 400 + b"]", "a number with 400 digits"),
    ("a long float", b"[0." + b"5" * 100 + b"]", "a number with 101 digits"),
    ("a float beyond range", b"[1e999]", "the number 1e999 is beyond the range of a float"),
    ("a negative float beyond range", b"[-1e999]", "the number -1e999 is beyond the range of a float"),
    ("a NaN literal", b'{"v": NaN}', "NaN, which is not a JSON value"),
    ("an Infinity literal", b"[Infinity]", "Infinity, which is not a JSON value"),
    ("a -Infinity literal", b"[-Infinity]", "-Infinity, which is not a JSON value"),
    ("a syntax error", b'{"a": }', "not valid JSON: Expecting value (line 1, column 7)"),
    ("an unterminated string of escaped quotes", b'"' + b'\\"' * 100_000, "not valid JSON: Unterminated string"),
    ("not UTF-8", b'["\xff"]', "not UTF-8 text (byte 2)"),
    ("more than the cap", b"[" + b"1," * 100 + b"1]", "203 bytes, more than the 200 bytes read"),
]


@pytest.mark.parametrize("name, data, words", REFUSED, ids=[c[0] for c in REFUSED])
def test_what_is_refused_and_why(name, data, words):
    with pytest.raises(JsonRefused) as caught:
        loads(data, max_bytes=200 if name == "more than the cap" else CAP)
    assert words in caught.value.reason, caught.value.reason
    assert not PYTHON_NAMES.search(caught.value.reason), caught.value.reason


def test_a_syntax_error_is_not_json_with_its_line():
    with pytest.raises(NotJson) as caught:
        loads(b'{\n"a":\n}', max_bytes=CAP)
    assert caught.value.line == 3


def test_text_is_held_to_the_same_bounds_as_bytes():
    with pytest.raises(JsonRefused, match="nested deeper than 64 levels"):
        loads("[" * 65 + "]" * 65, max_bytes=CAP)
    assert loads('["\u00e9[[["]', max_bytes=CAP) == ["é[[["]


@pytest.mark.parametrize("limit", [1, 3, 64])
def test_depth_over_is_exact_at_the_limit(limit):
    assert not jsonbound.depth_over(nested(limit), limit)
    assert jsonbound.depth_over(nested(limit + 1), limit)
    assert not jsonbound.depth_over(b"[" + b"[]," * 500 + b"[]]", 2)  # wide is not deep


def test_the_hooks_work_with_a_decoder_of_ones_own():
    with pytest.raises(JsonRefused, match="a number with 100 digits"):
        loads(b"[" + b"1" * 100 + b"]", max_bytes=CAP, using=jsonbound.decoder())


# ----------------------------------------------------------------------------- the walk

SHAPES = [
    ({"a": 1}, dict, "an object", None),
    ([1], list, "a list", None),
    ("x", str, "a string", None),
    (3, int, "a count", None),
    (True, int, "a count", "r is a boolean, not a count"),
    ("x", dict, "an object", "r is a string, not an object"),
    (None, list, "a list", "r is null, not a list"),
    ([1], dict, "an object", "r is a list, not an object"),
    (1.5, str, "a string", "r is a number, not a string"),
]


@pytest.mark.parametrize("value, kind, what, error", SHAPES)
def test_need_names_where_and_what(value, kind, what, error):
    if error is None:
        assert need(value, kind, "r", what) is value
    else:
        with pytest.raises(WrongShape) as caught:
            need(value, kind, "r", what)
        assert str(caught.value) == error


NUMBERS = [
    ("0.5", 0.5),
    ("-3", -3.0),
    ("1e3", 1000.0),
    (7, 7.0),
    (2.5, 2.5),
    ("+Inf", math.inf),
    ("-Inf", -math.inf),
    ("NaN", math.nan),
    ("1" * 4000, "data.result[0].value[1] is a number with 4000 digits"),
    ("1e999", "data.result[0].value[1] is 1e999, beyond the range of a float"),
    ("1_000", "data.result[0].value[1] is the text '1_000', not a number"),
    ("abc\x1b[2J", "data.result[0].value[1] is the text 'abc·[2J', not a number"),
    (True, "data.result[0].value[1] is a boolean, not a number"),
    ({"a": 1}, "data.result[0].value[1] is an object, not a number"),
]


@pytest.mark.parametrize("value, expected", NUMBERS, ids=[repr(v)[:20] for v, _ in NUMBERS])
def test_number_from_a_literal_or_text(value, expected):
    if isinstance(expected, str):
        with pytest.raises(WrongShape) as caught:
            number(value, "data.result[0].value[1]")
        assert expected in caught.value.reason
    elif math.isnan(expected):
        assert math.isnan(number(value, "v"))
    else:
        assert number(value, "v") == expected
