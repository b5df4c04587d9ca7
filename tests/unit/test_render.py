"""Renderers on hand-built diagnoses: every status readable without colour."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from stackscope.diagnosis import assess
from stackscope.model import ErrorKind, Status
from stackscope.render import render
from tests.unit.test_diagnosis import H503, LAYOUT, REFUSED, SLOW, F, snapshot


def diagnosis(failures):
    return assess(snapshot(LAYOUT, failures))


def test_text_without_colour_has_no_escape_codes_but_glyph_and_word():
    out = render(
        diagnosis({"lb": H503, "auth-2": SLOW, "cache": F(Status.UNKNOWN, ErrorKind.INTERNAL, "probe error")}),
        "text",
        color=False,
        width=100,
    )
    assert "\x1b[" not in out
    assert "✖ CRIT" in out and "▲ WARN" in out and "? UNKNOWN" in out and "✔ OK" in out
    assert out.splitlines()[0].startswith("✖ CRIT")  # the verdict comes first
    assert "ruled out:" in out


def test_text_with_colour_uses_ansi():
    out = render(diagnosis({"lb": H503}), "text", color=True, width=100)
    assert "\x1b[" in out


def test_text_healthy():
    out = render(diagnosis({}), "text", color=False, width=100)
    assert out.splitlines()[0] == "✔ OK      All layers healthy (7 checks)"


def test_every_status_word_is_followed_by_a_space_and_names_line_up():
    """UNKNOWN is the longest word: it used to run into the layer name ("UNKNOWND (dns)")."""
    from stackscope.render.text import badge

    for status in Status:
        shown = badge(status).plain
        assert shown.startswith(f"{status.glyph} {status.word} "), shown
    assert len({len(badge(status).plain) for status in Status}) == 1
    out = render(
        diagnosis({"dns": F(Status.UNKNOWN, ErrorKind.INTERNAL, "probe error")}), "text", color=False, width=100
    )
    assert "? UNKNOWN DNS" in out.splitlines()[0], out.splitlines()[0]


def test_junit_maps_warn_to_pass_and_unknown_to_error():
    out = render(diagnosis({"auth-2": SLOW, "cache": F(Status.UNKNOWN, ErrorKind.INTERNAL, "probe error")}), "junit")
    root = ET.fromstring(out.split("\n", 1)[1])
    assert root.get("failures") == "0" and root.get("errors") == "1"
    outs = [e.text for e in root.iter("system-out")]
    assert any(text.startswith("WARN: slow") for text in outs)


def test_nagios_labels_are_safe_and_status_words_are_nagios():
    out = render(diagnosis({"db": REFUSED}), "nagios")
    first = out.splitlines()[0]
    assert first.startswith("STACKSCOPE CRITICAL - auth: Database: refused the connection")
    assert "[OK] DNS (dns): 1/1 ok" in out
    assert "'Database/db'" not in first  # no latency for a failed check


def test_json_verdict_null_exactly_when_all_ok():
    assert json.loads(render(diagnosis({}), "json"))["verdict"] is None
    assert json.loads(render(diagnosis({"auth-2": SLOW}), "json"))["verdict"]["status"] == "warn"
