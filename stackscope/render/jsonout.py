"""The JSON report. Its shape is a contract with other tools: change it only additively
inside `facts`, never at the top level.

So that a tool can tell failures apart without parsing the sentence in `detail`, a check
that has an error kind carries it as `facts.error_kind` (the ErrorKind values: refused,
timeout, http_status, …), and a failing check whose target is a host and port also names
the `address` it probed and the `ip` when known, even when the probe failed before it learnt anything else.

One top-level key is optional: `round_overran`, present only when the round took longer
than the layout's interval ({"seconds": 33.0, "interval": 10.0, "note": "this round took
33s, longer than the 10s interval"}); a tool that does not know it loses nothing."""

from __future__ import annotations

import json
from typing import Any

from stackscope.diagnosis import Diagnosis
from stackscope.model import Address, is_ip


def report_dict(diagnosis: Diagnosis) -> dict[str, Any]:
    report = _report(diagnosis)
    snapshot = diagnosis.snapshot
    if snapshot.overran:
        report["round_overran"] = {
            "seconds": round(snapshot.duration, 3),
            "interval": snapshot.layout.interval,
            "note": snapshot.overran,
        }
    return report


def _report(diagnosis: Diagnosis) -> dict[str, Any]:
    layout = diagnosis.snapshot.layout
    return {
        "layout": layout.name,
        "status": str(diagnosis.status),
        "verdict": diagnosis.verdict.to_dict() if diagnosis.verdict else None,
        "layers": [
            {
                "name": layer.name,
                "role": layer.layer.role,
                "status": str(layer.status),
                "checks": [
                    {
                        "name": state.check.name,
                        "type": state.check.type,
                        "target": state.check.target,
                        "status": str(state.status),
                        "latency_ms": None if state.result.latency_ms is None else round(state.result.latency_ms, 2),
                        "detail": state.result.detail,
                        "facts": check_facts(state),
                    }
                    for state in layer.checks
                ],
            }
            for layer in diagnosis.layers
        ],
    }


def check_facts(state) -> dict[str, Any]:
    """A check's facts plus what makes a failure machine-readable (see the module doc)."""
    result = state.result
    facts = dict(result.facts)
    if result.error_kind is not None:
        facts.setdefault("error_kind", str(result.error_kind))
    if result.ok:
        return facts
    target = state.check.address
    if hasattr(target, "host") and hasattr(target, "port") and not isinstance(target, str):
        facts.setdefault("address", str(Address(target.host, target.port)))
        resolved = facts.get("resolved")
        if is_ip(target.host):
            facts.setdefault("ip", target.host)
        elif isinstance(resolved, dict) and resolved.get("address"):
            facts.setdefault("ip", resolved["address"])
    return facts


def render_json(diagnosis: Diagnosis) -> str:
    return json.dumps(report_dict(diagnosis), indent=2, ensure_ascii=False, default=str)
