"""`stackscope rules`: Prometheus alerting rules and an Alertmanager config for a layout.

One alert per layer, on the `stackscope_layer_status` series that `stackscope export`
serves. The Alertmanager config's inhibit_rules follow the same dependency order the
diagnosis uses (`dependency_groups`, `layers_below`): a firing alert of a layer mutes the
alerts of the layers above it in the same layout (a database down mutes the backends and
the load balancer that fail because of it), and a failing dns layer mutes every layer
whose checks address a host by name. Every rule sets `layout` itself and every inhibit
rule has `equal: [layout]`: an `equal` label missing on both sides counts as equal, so
without it a database down in one layout would mute the load balancers of all of them.

Both files are data dumped by yaml.safe_dump under a fixed comment: a layout or layer name
is never formatted into YAML text. Each name goes through the escaping of the grammar that
reads it — PromQL and Go-template string literals (`go_quote`), Alertmanager matcher
values (`am_matcher`), and rule label values, which Prometheus expands as Go templates
(`expands_to_itself`) — so the labels Prometheus attaches are the names exactly and the
inhibit matchers match them.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Sequence

import yaml

from stackscope.diagnosis import dependency_groups, layers_below
from stackscope.model import Layout, is_terminal_safe, safe_value

ALERT = "StackscopeLayerCritical"
CRIT = 2


_GO_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _go_char(char: str) -> str:
    if char in _GO_ESCAPES:
        return _GO_ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:  # no Unicode scalar value: Go has no escape for it
        return "\\ufffd"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def go_quote(value: str) -> str:
    """A double-quoted Go string literal (strconv.Unquote's grammar), which is also what a
    PromQL string and a string argument in a Go template are: backslash and quote escaped,
    every character that is not printable written as an escape (\\n, \\u2028, \\U000e0001),
    so the literal is one line and reads back as `value`."""
    return '"' + "".join(_go_char(char) for char in value) + '"'


def expands_to_itself(value: str) -> str:
    """A rule label value that Prometheus's Go-template expansion turns back into `value`.

    Prometheus expands every rule label as a template: a layer named `DB {{ printf "%s" "x" }}`
    would be labelled `DB x` (and no inhibit rule would match it), `{{ query "..." }}` would
    run a query, an unbalanced `}} {{` would make Prometheus refuse the file. Text without
    `{{` is not an action; with one, the whole value becomes one action printing a string
    literal: `{{ "DB {{ printf ..." }}`."""
    return value if "{{" not in value else "{{ " + go_quote(value) + " }}"


def am_matcher(label: str, value: str) -> str:
    """An Alertmanager equality matcher `label="value"`. Its value grammar is not Go's:
    only \\" \\\\ and \\n are escapes (any other backslash is a literal one), so a Go literal
    would not do (`\\u2028` would be matched as six characters)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{label}="{escaped}"'


# The scrape interval `rules` assumes unless told (--scrape-interval): the README's
# Prometheus job scrapes every 15 s.
SCRAPE_INTERVAL_S = 15.0


def for_duration(layout: Layout, scrape_interval: float = SCRAPE_INTERVAL_S) -> str:
    """`for:` of each alert: two rounds and two scrapes, so neither one failed round nor
    one scrape that caught it pages (a `for:` shorter than two scrapes is met by a single
    sample: Prometheus sees the series only at scrapes)."""
    return f"{max(1, math.ceil(2 * layout.interval), math.ceil(2 * scrape_interval))}s"


def selector(layout: Layout, layer: str, metric: str = "stackscope_layer_status") -> str:
    return f"{metric}{{layout={go_quote(layout.name)},layer={go_quote(layer)}}}"


def rules(layout: Layout, scrape_interval: float = SCRAPE_INTERVAL_S) -> dict:
    """The rule file as data: one group per layout, one alert per layer."""
    items = []
    for layer in layout.layers:
        failing_checks = f"{selector(layout, layer.name, 'stackscope_check_status')} >= {CRIT}"
        labels = {"layout": layout.name, "layer": layer.name, "role": layer.role, "severity": "critical"}
        items.append(
            {
                "alert": ALERT,
                # == 2, not >= 2: an UNKNOWN layer (3, a check that cannot tell, such as a
                # Prometheus it cannot query) is no page about that layer
                "expr": f"{selector(layout, layer.name)} == {CRIT}",
                "for": for_duration(layout, scrape_interval),
                "labels": {name: expands_to_itself(value) for name, value in labels.items()},
                # $labels are the series' labels (the names as exported); what a template
                # prints is not expanded again
                "annotations": {
                    "summary": "{{ $labels.layer }} ({{ $labels.role }}) of {{ $labels.layout }} is CRITICAL",
                    "evidence": (
                        "failing checks:{{ range query "
                        + go_quote(failing_checks)
                        + " }} {{ .Labels.check }} ({{ .Labels.type }}, status {{ .Value }});{{ end }}"
                    ),
                    "description": (
                        "stackscope_layer_status is {{ $value }} (2: critical). The verdict: "
                        # %q is Go's quoting, a PromQL string literal whatever the name holds
                        'stackscope_verdict{layout={{ printf "%q" $labels.layout }}}; run `stackscope check` on the '
                        "layout for the evidence and what is ruled out."
                    ),
                },
            }
        )
    return {"groups": [{"name": f"stackscope {layout.name}", "rules": items}]}


def _dump(head: str, data: dict) -> str:
    """The fixed comment `head` and `data` as YAML. Every string passes the terminal-safe rule
    again (the loader applied it already; a Layout built by hand may not have), so none holds
    a line break YAML 1.1 knows (LF, CR, NEL, U+2028, U+2029) or another control character."""
    return head + yaml.safe_dump(safe_value(data), sort_keys=False, allow_unicode=True, width=1000)


RULES_HEAD = (
    "# Prometheus alerting rules for a stackscope layout (the group is named after it): one alert\n"
    "# per layer, on the series of `stackscope export`. Check with `promtool check rules FILE`.\n"
)


def rule_file(layout: Layout, scrape_interval: float = SCRAPE_INTERVAL_S) -> str:
    return _dump(RULES_HEAD, rules(layout, scrape_interval))


def _matchers(layout: Layout, layer: str) -> list[str]:
    return [am_matcher("alertname", ALERT), am_matcher("layout", layout.name), am_matcher("layer", layer)]


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


def webhook_problem(url: str) -> str:
    """Why `url` cannot be the receiver's webhook, or "". Checked rather than cleaned: the
    config's strings pass the terminal-safe rule, which would change the URL silently."""
    parts = urllib.parse.urlsplit(url)
    if not is_terminal_safe(url) or any(char.isspace() for char in url):
        return "holds a space or a control character; give the URL without them"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:5001/hook"
    return ""


ALERTMANAGER_HEAD = (
    "# Alertmanager config for stackscope layouts (named in the inhibit rules). The receiver is a\n"
    "# placeholder: give it your email/slack/pagerduty/webhook configs. An alert muted by an inhibit\n"
    "# rule is never notified, so its resolution is not notified either; if the muting alert\n"
    "# resolves first, a still-firing muted alert is notified at the next group flush.\n"
    "# Check with `amtool check-config FILE`.\n"
)


def alertmanager_config(layouts: Sequence[Layout], webhook: str | None = None) -> str:
    return _dump(ALERTMANAGER_HEAD, alertmanager(layouts, webhook))
