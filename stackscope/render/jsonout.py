"""The JSON report. Its shape is a contract with other tools: change it only additively
inside `facts`, never at the top level."""

from __future__ import annotations

import json
from typing import Any

from stackscope.diagnosis import Diagnosis


def report_dict(diagnosis: Diagnosis) -> dict[str, Any]:
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
                        "facts": dict(state.result.facts),
                    }
                    for state in layer.checks
                ],
            }
            for layer in diagnosis.layers
        ],
    }


def render_json(diagnosis: Diagnosis) -> str:
    return json.dumps(report_dict(diagnosis), indent=2, ensure_ascii=False, default=str)
