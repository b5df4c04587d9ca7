"""Nagios/Icinga plugin output: one status line, perfdata, then one line per layer.

Perfdata labels are `layer/check`, with characters Nagios cannot take in a label
replaced, and latency in ms with the check's warn_ms as the warning threshold.
"""

from __future__ import annotations

import re

from stackscope.diagnosis import Diagnosis
from stackscope.model import Status
from stackscope.safetext import terminal_safe
from stackscope.words import plural

_WORD = {Status.OK: "OK", Status.WARN: "WARNING", Status.CRIT: "CRITICAL", Status.UNKNOWN: "UNKNOWN"}


def _label(text: str) -> str:
    return "'" + re.sub(r"['=]", "_", terminal_safe(text)) + "'"


def _line(text: str) -> str:
    """Data on one plugin output line: no control characters, no '|' (it starts perfdata)."""
    return terminal_safe(text).replace("|", "/")


def render_nagios(diagnosis: Diagnosis) -> str:
    status = diagnosis.status
    layout = diagnosis.snapshot.layout
    if diagnosis.verdict is None:
        total = sum(len(layer.checks) for layer in diagnosis.layers)
        count = len(diagnosis.layers)
        layers = "1 layer" if count == 1 else f"all {count} layers"
        message = f"{layers} healthy ({plural(total, 'check')})"
    else:
        message = _line(diagnosis.verdict.summary)
    perf = []
    for layer in diagnosis.layers:
        for state in layer.checks:
            latency = state.result.latency_ms
            if latency is None:
                continue
            warn = "" if state.check.warn_ms is None else f"{state.check.warn_ms:g}"
            crit = f"{state.check.timeout * 1000:g}"
            perf.append(f"{_label(state.check.id)}={latency:.2f}ms;{warn};{crit};0;")
    lines = [f"STACKSCOPE {_WORD[status]} - {_line(layout.name)}: {message}" + (" | " + " ".join(perf) if perf else "")]
    for layer in diagnosis.layers:
        lines.append(f"[{_WORD[layer.status]}] {_line(layer.name)} ({layer.layer.role}): {_line(layer.summary)}")
        for state in layer.checks:
            if state.status is not Status.OK:
                lines.append(f"  [{_WORD[state.status]}] {_line(state.check.name)}: {_line(state.result.detail)}")
    return "\n".join(lines)
