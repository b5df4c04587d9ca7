"""`stackscope rules`: Prometheus alerting rules and an Alertmanager config for a layout.

One alert per layer, on the `stackscope_layer_status` series that `stackscope export`
serves. The Alertmanager config's inhibit_rules follow the same dependency order the
diagnosis uses (`dependency_groups`, `layers_below`): a firing alert of a layer mutes the
alerts of the layers above it in the same layout (a database down mutes the backends and
the load balancer that fail because of it), and a failing dns layer mutes every layer
whose checks address a host by name. Every rule sets `layout` itself and every inhibit
rule has `equal: [layout]`: an `equal` label missing on both sides counts as equal, so
without it a database down in one layout would mute the load balancers of all of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import yaml

from stackscope.diagnosis import dependency_groups, layers_below
from stackscope.model import Layout

ALERT = "StackscopeLayerCritical"
CRIT = 2


def _q(value: str) -> str:
    """A double-quoted string literal, valid in PromQL and in Go templates."""
    return json.dumps(value, ensure_ascii=False)


def for_duration(layout: Layout) -> str:
    """`for:` of each alert: two rounds, so one failed round does not page."""
    return f"{max(1, math.ceil(2 * layout.interval))}s"


def selector(layout: Layout, layer: str) -> str:
    return f"stackscope_layer_status{{layout={_q(layout.name)},layer={_q(layer)}}}"


def rules(layout: Layout) -> dict:
    """The rule file as data: one group per layout, one alert per layer."""
    items = []
    for layer in layout.layers:
        failing_checks = f"stackscope_check_status{{layout={_q(layout.name)},layer={_q(layer.name)}}} >= {CRIT}"
        items.append(
            {
                "alert": ALERT,
                # == 2, not >= 2: an UNKNOWN layer (3, a check that cannot tell, such as a
                # Prometheus it cannot query) is no page about that layer
                "expr": f"{selector(layout, layer.name)} == {CRIT}",
                "for": for_duration(layout),
                "labels": {"layout": layout.name, "layer": layer.name, "role": layer.role, "severity": "critical"},
                "annotations": {
                    "summary": "{{ $labels.layer }} ({{ $labels.role }}) of {{ $labels.layout }} is CRITICAL",
                    "evidence": (
                        "failing checks:{{ range query "
                        + _q(failing_checks)
                        + " }} {{ .Labels.check }} ({{ .Labels.type }}, status {{ .Value }});{{ end }}"
                    ),
                    "description": (
                        "stackscope_layer_status is {{ $value }} (2: critical). The verdict: "
                        'stackscope_verdict{layout="{{ $labels.layout }}"}; run `stackscope check` on the layout '
                        "for the evidence and what is ruled out."
                    ),
                },
            }
        )
    return {"groups": [{"name": f"stackscope {layout.name}", "rules": items}]}


def rule_file(layout: Layout) -> str:
    head = (
        f"# Prometheus alerting rules for the stackscope layout {layout.name}: one alert per layer,\n"
        "# on the series of `stackscope export`. Check with `promtool check rules FILE`.\n"
    )
    return head + yaml.safe_dump(rules(layout), sort_keys=False, allow_unicode=True, width=1000)


def _matchers(layout: Layout, layer: str) -> list[str]:
    return [f"alertname={_q(ALERT)}", f"layout={_q(layout.name)}", f"layer={_q(layer)}"]


def inhibitions(layout: Layout) -> list[tuple[str, str]]:
    """(source layer, target layer) pairs: when the source's alert fires, the target's is
    muted. From the diagnosis's dependency order: each layer mutes every layer of the
    groups above it; a dns layer mutes the layers that address a host by name."""
    below = layers_below(layout)
    pairs: list[tuple[str, str]] = []
    for group in dependency_groups(layout):
        for source in group:
            for target in layout.layers:
                if any(source.name in names for names in below[target.name]):
                    pairs.append((source.name, target.name))
    for dns in layout.layers_with_role("dns"):
        for target in layout.layers:
            if target.role != "dns" and any(check.hostname for check in target.checks):
                pairs.append((dns.name, target.name))
    return pairs


def alertmanager(layouts: Sequence[Layout], webhook: str | None = None) -> dict:
    receiver: dict = {"name": "stackscope"}
    if webhook:
        receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True}]
    inhibit = [
        {
            "source_matchers": _matchers(layout, source),
            "target_matchers": _matchers(layout, target),
            "equal": ["layout"],
        }
        for layout in layouts
        for source, target in inhibitions(layout)
    ]
    return {
        "route": {
            "receiver": "stackscope",
            "group_by": ["alertname", "layout", "layer"],
            # inhibition is decided when a group is flushed: wait longer than a round or two,
            # so the database's alert is there before the LB alert it mutes goes out
            "group_wait": f"{max([30, *(math.ceil(3 * layout.interval) for layout in layouts)])}s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [receiver],
        "inhibit_rules": inhibit,
    }


def alertmanager_config(layouts: Sequence[Layout], webhook: str | None = None) -> str:
    names = ", ".join(layout.name for layout in layouts)
    head = (
        f"# Alertmanager config for the stackscope layout {names}. The receiver is a placeholder:\n"
        "# give it your email/slack/pagerduty/webhook configs. An alert muted by an inhibit rule\n"
        "# is never notified, so its resolution is not notified either; if the muting alert\n"
        "# resolves first, a still-firing muted alert is notified at the next group flush.\n"
        "# Check with `amtool check-config FILE`.\n"
    )
    return head + yaml.safe_dump(alertmanager(layouts, webhook), sort_keys=False, allow_unicode=True, width=1000)
