"""The JSON Schema of the layout format (`stackscope schema`, docs/layout.schema.json),
built from the same kinds and options the loader validates with, so the two never drift.
"""

from __future__ import annotations

from typing import Any

from stackscope.kinds import AddressKind, Duration, Integer, Number, Text
from stackscope.model import MAX_SUSPECT_THRESHOLD, ROLES, SUSPECT_WINDOW
from stackscope.probes import all_specs


def json_schema() -> dict[str, Any]:
    """A JSON Schema of the layout format, for yaml-language-server and other editors."""
    common = {
        "name": {**Text().json_schema(), "description": "Display name (default: the target)."},
        "timeout": {**Duration().json_schema(), "description": "Per-check timeout (default: the layout's)."},
        "warn_ms": {
            **Number(minimum=0).json_schema(),
            "description": "Latency above this many milliseconds makes the check warn.",
        },
    }
    variants = []
    for spec in all_specs():
        props: dict[str, Any] = {spec.key: {**spec.target.json_schema(), "description": spec.doc}}
        props.update(common)
        for info in spec.option_infos():
            entry = dict(info.kind.json_schema())
            doc = info.doc
            if info.default not in (None, ()):
                doc += f" Default: {info.kind.show(info.default)}."
            entry["description"] = doc.strip()
            props[info.key] = entry
        required = [spec.key] + [i.key for i in spec.option_infos() if i.required]
        variants.append(
            {
                "type": "object",
                "title": f"{spec.key} check",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stackscope.dev/schema/layout.json",
        "title": "stackscope layout",
        "description": "The layers of a request path, upstream first, and the checks that probe each.",
        "type": "object",
        "required": ["name", "layers"],
        "additionalProperties": False,
        "properties": {
            "name": {**Text().json_schema(), "description": "The stack's name, e.g. auth-prod."},
            "description": Text().json_schema(),
            "interval": {**Duration().json_schema(), "description": "Probe period in watch mode. Default 5s."},
            "timeout": {**Duration().json_schema(), "description": "Default per-check timeout; <= interval."},
            "confirm": {
                "type": "object",
                "additionalProperties": False,
                "description": "Confirmation re-probes: a check whose status changed is probed again at once and "
                "then every `interval` until `retries` re-probes agree; until then the verdict reads "
                "'unconfirmed'. Default {retries: 2, interval: 250ms}.",
                "properties": {
                    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
                    "interval": Duration().json_schema(),
                },
            },
            "suspect": {
                "description": "Suspecting a probe that has not answered yet, before its timeout: a WARN "
                "'suspected' once an answer this late had a chance below 10^-threshold given the check's "
                "recent answers (log-normal, spread of ln latency at least min_spread), never before "
                "min_silence nor with fewer than min_samples answers. Default {threshold: 8, min_spread: 0.25, "
                "min_silence: 300ms, min_samples: 5}; off never suspects.",
                "oneOf": [
                    {"type": "boolean"},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "threshold": {"type": "number", "minimum": 1, "maximum": MAX_SUSPECT_THRESHOLD},
                            "min_spread": Number(minimum=0).json_schema(),
                            "min_silence": Duration().json_schema(),
                            "min_samples": Integer(minimum=2, maximum=SUSPECT_WINDOW).json_schema(),
                        },
                    },
                ],
            },
            "resolver": {
                **AddressKind(53).json_schema(),
                "description": "DNS server through which every name a check connects to (and the "
                "names in an LB pool) resolves; dns checks ask it unless they name "
                "a server.",
            },
            "layers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "role", "checks"],
                    "additionalProperties": False,
                    "properties": {
                        "name": Text().json_schema(),
                        "role": {"enum": list(ROLES)},
                        "checks": {"type": "array", "minItems": 1, "items": {"oneOf": variants}},
                    },
                },
            },
        },
    }
