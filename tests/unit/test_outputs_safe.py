"""What servers send cannot drive the terminal or break a report: text, Nagios, JUnit and
JSON on hostile bytes, from a real hostile server on 127.0.0.1 and from hand-built
results (the renderers' own last line of defence)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from stackscope.diagnosis import assess
from stackscope.engine import Engine
from stackscope.model import ErrorKind, Result, Snapshot, Status
from stackscope.render import render
from tests.probe_helpers import layout_of, one_check
from tests.servers.pyservers import raw_head

CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x9b"]


async def _diagnosis(layout):
    engine = Engine(layout, environ={})
    try:
        return assess(await engine.run_round())
    finally:
        await engine.aclose()


def _assert_safe(diagnosis) -> None:
    text = render(diagnosis, "text", color=False, width=200)
    nagios = render(diagnosis, "nagios")
    for out in (text, nagios):
        lines = out.split("\n")
        assert not [line for line in lines if any(c in line for c in CONTROL)], out
    root = ET.fromstring(render(diagnosis, "junit"))  # well-formed XML
    assert root.tag == "testsuites"
    json.loads(render(diagnosis, "json"))


HOSTILE = b"HTTP/1.1 200 OK\x1b[2J\r\nX-Served-By: a\x1b[31mb\x07\x9bc\r\nLocation: /next\x1b]0;owned\x07"


async def test_hostile_header_bytes_reach_no_output_raw(pyservers):
    port = pyservers.tcp(raw_head(HOSTILE))
    layout = layout_of(
        [
            {
                "name": "Web",
                "role": "backend",
                "checks": [
                    {"http": f"http://127.0.0.1:{port}/", "name": "identity", "identity_header": "X-Served-By"},
                    {"http": f"http://127.0.0.1:{port}/", "name": "expect", "expect_header": {"X-Served-By": "web-1"}},
                ],
            }
        ]
    )
    diagnosis = await _diagnosis(layout)
    states = {s.check.name: s for layer in diagnosis.layers for s in layer.checks}
    identity, expect = states["identity"].result, states["expect"].result
    assert identity.status is Status.OK and expect.status is Status.CRIT, (identity.detail, expect.detail)
    assert identity.facts["identity"] == "a·[31mb··c"  # shown whole, control bytes replaced
    assert "a·[31mb" in expect.detail and identity.facts["reason"] == "OK·[2J"
    assert identity.facts["headers"]["location"] == "/next·]0;owned·"
    _assert_safe(diagnosis)


async def test_nul_in_a_header_is_a_named_protocol_failure_and_reports_stay_well_formed(pyservers):
    port = pyservers.tcp(raw_head(b"HTTP/1.1 200 OK\r\nX-Served-By: a\x00\x1bb"))
    diagnosis = await _diagnosis(one_check({"http": f"http://127.0.0.1:{port}/", "identity_header": "X-Served-By"}))
    result = diagnosis.layers[0].checks[0].result
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL
    _assert_safe(diagnosis)


def _hand_built(detail: str, key_fact: str = "", facts: dict | None = None, status: Status = Status.CRIT):
    layout = one_check({"tcp": "127.0.0.1:1", "name": "db"})
    check = next(layout.checks())
    result = Result(
        check.id,
        status,
        detail,
        key_fact=key_fact,
        facts=facts or {},
        error_kind=ErrorKind.PROTOCOL if status is not Status.OK else None,
    )
    return assess(Snapshot(layout, {check.id: result}, 0.0))


@pytest.mark.parametrize("status", [Status.CRIT, Status.UNKNOWN, Status.WARN])
def test_renderers_neutralise_control_characters_from_any_probe(status):
    diagnosis = _hand_built(
        "banner 'a\x00b\x1b[31m\x1b]8;;x\x07' \ufffe\ud800",
        key_fact="\x1b[5m!",
        facts={"banner": "\x00\x1b"},
        status=status,
    )
    _assert_safe(diagnosis)
    junit = ET.fromstring(render(diagnosis, "junit"))
    messages = [e.get("message") for e in junit.iter() if e.get("message")]
    assert status is Status.WARN or "banner 'a·b·[31m·]8;;x·' ··" in messages


def test_json_failed_check_carries_error_kind_address_and_ip():
    layout = one_check({"tcp": "127.0.0.1:1", "name": "db"})
    check = next(layout.checks())
    result = Result(
        check.id, Status.CRIT, "127.0.0.1:1 refused the connection", key_fact="refused", error_kind=ErrorKind.REFUSED
    )
    doc = json.loads(render(assess(Snapshot(layout, {check.id: result}, 0.0)), "json"))
    facts = doc["layers"][0]["checks"][0]["facts"]
    assert facts == {"error_kind": "refused", "address": "127.0.0.1:1", "ip": "127.0.0.1"}
    assert set(doc) == {"layout", "status", "verdict", "layers"}  # the shape is unchanged


async def test_json_real_refused_and_resolved_failures_are_machine_readable(pyservers):
    from tests.servers.base import free_port

    doc = json.loads(render(await _diagnosis(one_check({"http": f"http://127.0.0.1:{free_port()}/"})), "json"))
    facts = doc["layers"][0]["checks"][0]["facts"]
    assert facts["error_kind"] == "refused" and facts["ip"] == "127.0.0.1"


def test_json_ok_check_has_no_error_kind():
    diagnosis = _hand_built("open", status=Status.OK)
    facts = json.loads(render(diagnosis, "json"))["layers"][0]["checks"][0]["facts"]
    assert "error_kind" not in facts


def test_one_check_is_singular():
    diagnosis = _hand_built("open", status=Status.OK)
    text = render(diagnosis, "text", color=False, width=100)
    assert text.splitlines()[0].endswith("All layers healthy (1 check)")
    assert "1 layer · 1 check ·" in text
    assert render(diagnosis, "nagios").startswith("STACKSCOPE OK - test: 1 layer healthy (1 check)")


def test_piped_text_keeps_each_verdict_line_whole(monkeypatch):
    """Off a terminal (pytest captures stdout) the verdict is never hard-wrapped, so grep
    finds the whole summary; COLUMNS widens the table of checks."""
    summary = (
        "pool auth_servers routes to 127.0.0.1:19101, 127.0.0.1:19102 — none is a declared backend; "
        "declared 127.0.0.1:19001-19003 missing"
    )
    diagnosis = _hand_built(summary)
    monkeypatch.delenv("COLUMNS", raising=False)
    text = render(diagnosis, "text", color=False)
    assert any(summary in line for line in text.split("\n")), text
    monkeypatch.setenv("COLUMNS", "240")
    from stackscope.render.text import _width

    assert _width() == 240


def test_xml_safe_replaces_exactly_what_xml_1_0_cannot_hold():
    """xml_safe's character class is the complement of XML 1.0's Char production, written
    as the ranges it leaves out (cheap to compile): every code point is checked against
    the production itself."""
    from stackscope.safetext import SHOWN_INSTEAD, xml_safe

    def xml_char(code: int) -> bool:  # XML 1.0 §2.2, as written there
        return (
            code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
        )

    everything = "".join(chr(code) for code in range(0x110000))
    expected = "".join(ch if xml_char(ord(ch)) else SHOWN_INSTEAD for ch in everything)
    assert xml_safe(everything) == expected
