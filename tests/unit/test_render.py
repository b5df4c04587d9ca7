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
        shown = badge(status)
        assert shown.startswith(f"{status.glyph} {status.word} "), shown
    assert len({len(badge(status)) for status in Status}) == 1
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


def test_piped_text_has_no_trailing_padding_and_one_latency_per_row(monkeypatch):
    """Piped into a file or grep: no cell padded out with spaces at the end of a line, and
    an http row shows its latency once (the column), not again as "200 OK in 3 ms"."""
    monkeypatch.delenv("COLUMNS", raising=False)
    out = render(diagnosis({"lb": H503, "auth-2": SLOW}), "text")
    lines = out.split("\n")
    assert [line for line in lines if line != line.rstrip()] == []
    auth1 = next(line for line in lines if " auth-1 " in line)
    assert auth1.count(" ms") == 1, auth1


def test_text_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" in render(diagnosis({"lb": H503}), "text")
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in render(diagnosis({"lb": H503}), "text")


def test_text_does_not_use_rich():
    """The report is plain string formatting: Rich's table layout cost as much CPU as the
    probing at 1000 checks."""
    import subprocess
    import sys

    code = (
        "import sys; from tests.unit.test_render import diagnosis; from stackscope.render import render; "
        "render(diagnosis({}), 'text', color=True, width=80); "
        "print(any(m == 'rich' or m.startswith('rich.') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False", done.stdout + done.stderr


def test_an_unknown_verdict_is_worded_cannot_tell_never_the_broken_layer():
    """Issue 21: a check that cannot read its evidence (UNKNOWN) cannot make its layer
    "the broken layer"; a CRIT one still does."""
    out = render(
        diagnosis({"lb": F(Status.UNKNOWN, ErrorKind.CONFIG, "the stats page has no legends")}),
        "text",
        color=False,
        width=100,
    )
    head = out.splitlines()[0]
    assert head == "? UNKNOWN Load balancer (lb): cannot tell (its evidence cannot be read)", head
    assert "broken layer" not in out
    crit = render(diagnosis({"lb": H503}), "text", color=False, width=100).splitlines()[0]
    assert crit.endswith("Load balancer (lb) is the broken layer"), crit


def test_a_recovering_verdict_says_recovering_not_broken():
    from stackscope.diagnosis import assess
    from stackscope.render import render
    from tests.unit.test_diagnosis import H503, recovering_pool, two_layer_snapshot

    failures = {"pool": recovering_pool((1, 2, 3)), "front": H503}
    diagnosis = assess(two_layer_snapshot(failures, {"auth-1": 1, "auth-2": 1, "auth-3": 1}))
    text = render(diagnosis, "text", color=False)
    assert "Backends (backend) is recovering" in text and "is the broken layer" not in text
