"""JUnit XML: one testcase per check, so a CI deploy gate shows which check failed.

CRIT is a <failure>, UNKNOWN an <error> (the check could not tell), WARN passes with a
note in <system-out>: a gate that must also stop on warnings uses the exit code.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from stackscope.diagnosis import Diagnosis
from stackscope.model import Status


def render_junit(diagnosis: Diagnosis) -> str:
    layout = diagnosis.snapshot.layout
    all_checks = [c for layer in diagnosis.layers for c in layer.checks]
    root = ET.Element("testsuites", {
        "name": f"stackscope {layout.name}",
        "tests": str(len(all_checks)),
        "failures": str(sum(c.status is Status.CRIT for c in all_checks)),
        "errors": str(sum(c.status is Status.UNKNOWN for c in all_checks)),
    })
    verdict = diagnosis.verdict
    for layer in diagnosis.layers:
        suite = ET.SubElement(root, "testsuite", {
            "name": f"{layout.name}.{layer.name}",
            "tests": str(len(layer.checks)),
            "failures": str(sum(c.status is Status.CRIT for c in layer.checks)),
            "errors": str(sum(c.status is Status.UNKNOWN for c in layer.checks)),
        })
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", {"name": "role", "value": layer.layer.role})
        ET.SubElement(props, "property", {"name": "status", "value": str(layer.status)})
        if verdict is not None:
            ET.SubElement(props, "property", {"name": "verdict", "value": verdict.summary})
        for state in layer.checks:
            latency = state.result.latency_ms
            case = ET.SubElement(suite, "testcase", {
                "classname": f"{layout.name}.{layer.name}",
                "name": f"{state.check.name} ({state.check.type})",
                "time": f"{(latency or 0) / 1000:.3f}",
            })
            detail = state.result.detail
            if state.status is Status.CRIT:
                failure = ET.SubElement(case, "failure", {"message": detail, "type": "CRIT"})
                failure.text = _body(state, verdict)
            elif state.status is Status.UNKNOWN:
                error = ET.SubElement(case, "error", {"message": detail, "type": "UNKNOWN"})
                error.text = _body(state, verdict)
            elif state.status is Status.WARN:
                ET.SubElement(case, "system-out").text = f"WARN: {detail}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _body(state, verdict) -> str:
    lines = [f"target: {state.check.target}", f"detail: {state.result.detail}"]
    if state.result.error_kind is not None:
        lines.append(f"kind: {state.result.error_kind}")
    if verdict is not None:
        lines.append(f"verdict: {verdict.summary}")
    return "\n".join(lines)
