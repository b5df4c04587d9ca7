"""JUnit XML: one testcase per check, so a CI deploy gate shows which check failed.

CRIT is a <failure>, UNKNOWN an <error> (the check could not tell), WARN passes with a
note in <system-out>: a gate that must also stop on warnings uses the exit code.

Every attribute and text goes through xml_safe(): a NUL or an ESC a server sent (in a
header, a banner, a certificate name) is not escapable in XML 1.0 at all, and ElementTree
would write it as is, leaving CI with a report it cannot parse.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from stackscope.diagnosis import Diagnosis
from stackscope.model import Status
from stackscope.safetext import xml_safe


def _element(parent, tag: str, attrs: dict[str, str], text: str | None = None):
    element = ET.SubElement(parent, tag, {key: xml_safe(value) for key, value in attrs.items()})
    if text is not None:
        element.text = xml_safe(text)
    return element


def render_junit(diagnosis: Diagnosis) -> str:
    layout = diagnosis.snapshot.layout
    all_checks = [c for layer in diagnosis.layers for c in layer.checks]
    root = ET.Element(
        "testsuites",
        {
            "name": xml_safe(f"stackscope {layout.name}"),
            "tests": str(len(all_checks)),
            "failures": str(sum(c.status is Status.CRIT for c in all_checks)),
            "errors": str(sum(c.status is Status.UNKNOWN for c in all_checks)),
        },
    )
    verdict = diagnosis.verdict
    for layer in diagnosis.layers:
        suite = _element(
            root,
            "testsuite",
            {
                "name": f"{layout.name}.{layer.name}",
                "tests": str(len(layer.checks)),
                "failures": str(sum(c.status is Status.CRIT for c in layer.checks)),
                "errors": str(sum(c.status is Status.UNKNOWN for c in layer.checks)),
            },
        )
        props = ET.SubElement(suite, "properties")
        _element(props, "property", {"name": "role", "value": layer.layer.role})
        _element(props, "property", {"name": "status", "value": str(layer.status)})
        if verdict is not None:
            _element(props, "property", {"name": "verdict", "value": verdict.summary})
        for state in layer.checks:
            latency = state.result.latency_ms
            case = _element(
                suite,
                "testcase",
                {
                    "classname": f"{layout.name}.{layer.name}",
                    "name": f"{state.check.name} ({state.check.type})",
                    "time": f"{(latency or 0) / 1000:.3f}",
                },
            )
            detail = state.result.detail
            if state.status is Status.CRIT:
                _element(case, "failure", {"message": detail, "type": "CRIT"}, _body(state, verdict))
            elif state.status is Status.UNKNOWN:
                _element(case, "error", {"message": detail, "type": "UNKNOWN"}, _body(state, verdict))
            elif state.status is Status.WARN:
                _element(case, "system-out", {}, f"WARN: {detail}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _body(state, verdict) -> str:
    lines = [f"target: {state.check.target}", f"detail: {state.result.detail}"]
    if state.result.error_kind is not None:
        lines.append(f"kind: {state.result.error_kind}")
    if verdict is not None:
        lines.append(f"verdict: {verdict.summary}")
    return "\n".join(lines)
