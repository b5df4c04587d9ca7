"""`stackscope rules` with hostile layout and layer names, checked by the programs that read them.

Security round 3: a name is data in every generated file, never YAML or template text.

- A U+2028/U+2029/U+0085 in the layout name followed by `groups:`/`global:`/`templates:`
  adds no key to either file (Prometheus's and Alertmanager's YAML, like PyYAML, read
  those characters as line breaks, so a name in a comment could start a line);
  `promtool check rules` and `amtool check-config` accept both files.
- Names holding Go template actions (`{{ printf ... }}`, `{{ query "up" }}`, an unbalanced
  `}} {{`, `{{-`), quotes, backslashes and `$labels`: a real Prometheus evaluating the
  rules on a scrape of the real `stackscope export` attaches labels that are exactly the
  names, its evidence query finds the failing checks, and a real Alertmanager given the
  generated config inhibits the upper layers' alerts with those labels.

Every wait polls with a deadline.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

import tests.real.test_prometheus_real as prom_real
from tests.conftest import run_cli, write_layout
from tests.servers.base import require_binary
from tests.servers.prometheus import Alertmanager, Prometheus, get_json
from tests.servers.pyservers import responder

pytestmark = pytest.mark.timeout(180)

# What the loader shows instead of a line break YAML 1.1 knows (model.SHOWN_INSTEAD).
BREAKS = re.compile("[\x85\u2028\u2029]")

LAYOUT_NAME = (
    'shop "q" \\ {{ $labels.layer }} $value\u2028groups: [] #\u2029global: {resolve_timeout: 1h} #'
    "\x85templates: [/tmp/x] #"
)
LAYERS = {  # upstream first: the database's alert mutes the two above it
    "lb": 'LB {{ query "up" }} $labels.layer',
    "backend": 'App }} {{ "\\\\ {{- $labels.layer -}}',
    "db": 'DB {{ printf "%s" "x" }}\u00a0🚀',  # no-break space: a \u00a0 escape in Go literals
}
CHECKS = {"lb": "lb", "backend": "app {{ .Value }}", "db": "db"}


def quoted(name: str) -> str:
    """The Go (and PromQL) string literal of `name`: for these names, all printable, what
    Go's strconv.Quote writes is what JSON writes."""
    return json.dumps(name, ensure_ascii=False)


def shown(name: str) -> str:
    return BREAKS.sub("·", name)


def yaml_quoted(text: str) -> str:
    """A double-quoted YAML scalar with every character outside printable ASCII escaped:
    `\\u2028` and `\\x85` as an attacker writes them (they pass the YAML reader that way)."""

    def char(c: str) -> str:
        if c in '"\\':
            return "\\" + c
        if " " <= c <= "~":
            return c
        return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"

    return '"' + "".join(map(char, text)) + '"'


def hostile_layout(tmp_path: Path, ports: dict[str, int], name: str = LAYOUT_NAME) -> Path:
    layers = "".join(
        f"""\
  - name: {yaml_quoted(layer)}
    role: {role}
    checks:
      - {{http: "http://127.0.0.1:{ports[role]}/", name: {yaml_quoted(CHECKS[role])}}}
"""
        for role, layer in LAYERS.items()
    )
    return write_layout(tmp_path, f"name: {yaml_quoted(name)}\ninterval: 1s\ntimeout: 500ms\nlayers:\n{layers}")


def generated(layout: Path, *extra: str) -> str:
    done = run_cli("rules", str(layout), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout


def official_check(tmp_path: Path, name: str, text: str, *command: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def comments(text: str) -> list[str]:
    """The comment lines before the data, split at every line break YAML 1.1 knows."""
    lines = re.split("\r\n|[\r\n\x85\u2028\u2029]", text)
    return [line for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]]


INJECTIONS = [
    "shop\u2028groups: [] #",
    "shop\u2029groups: [{name: injected, rules: []}] #",
    "shop\u2028global: {resolve_timeout: 1h} #",
    "shop\u2029templates: [/tmp/x] #",
    "shop\x85templates: [/tmp/x] #",
    LAYOUT_NAME,
]


def assert_data_under_a_fixed_header(text: str, keys: list[str]) -> dict:
    # the header is fixed text: no name in it, each of its lines a comment
    assert all(line.startswith("#") and "shop" not in line for line in comments(text)), comments(text)
    assert not BREAKS.search(text)
    data = yaml.safe_load(text)  # PyYAML reads U+2028/U+2029/U+0085 as line breaks, as Go's YAML does
    assert list(data) == keys
    return data


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_line_break_in_a_name_injects_nothing_into_the_rules_and_promtool_accepts_them(tmp_path, name):
    text = generated(hostile_layout(tmp_path, {"lb": 1, "backend": 1, "db": 1}, name))
    found = official_check(tmp_path, "rules.yml", text, require_binary("promtool"), "check", "rules")
    assert "3 rules found" in found
    group = assert_data_under_a_fixed_header(text, ["groups"])["groups"][0]
    assert group["name"] == f"stackscope {shown(name)}"
    # each layer label is one action printing a string literal of the name (its
    # expansion by Prometheus is checked in the last test)
    labels = [rule["labels"]["layer"] for rule in group["rules"]]
    assert all(label.startswith("{{ ") and label.endswith(" }}") for label in labels), labels
    assert [ast.literal_eval(label[3:-3]) for label in labels] == list(LAYERS.values())


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_line_break_in_a_name_injects_nothing_into_the_alertmanager_config(tmp_path, name):
    text = generated(hostile_layout(tmp_path, {"lb": 1, "backend": 1, "db": 1}, name), "--alertmanager")
    found = official_check(tmp_path, "am.yml", text, require_binary("amtool"), "check-config")
    assert "3 inhibit rules" in found and "0 templates" in found, found
    config = assert_data_under_a_fixed_header(text, ["route", "receivers", "inhibit_rules"])
    assert {m for rule in config["inhibit_rules"] for m in rule["source_matchers"] if m.startswith("layout=")} == {
        "layout=" + quoted(shown(name))  # no newline in these names: the matcher's \" and \\ are JSON's
    }


def _post_alerts(alertmanager: Alertmanager, alerts: list[dict]) -> None:
    now = datetime.now(timezone.utc)
    body = [
        {
            "labels": alert["labels"],
            "annotations": alert["annotations"],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
        for alert in alerts
    ]
    request = urllib.request.Request(
        f"{alertmanager.url}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_prometheus_attaches_the_names_exactly_and_alertmanager_inhibits_by_them(tmp_path, pyservers):
    ports = {role: pyservers.tcp(responder(503, b"down\n")) for role in LAYERS}
    layout = hostile_layout(tmp_path, ports)
    name = shown(LAYOUT_NAME)
    (tmp_path / "export").mkdir()
    exporter = prom_real.Exporter(tmp_path / "export", layout).start()
    config = prom_real.scrape_config(exporter)
    prometheus = Prometheus(tmp_path / "prom", config, {"rules.yml": generated(layout)})
    alertmanager = Alertmanager(tmp_path / "am", generated(layout, "--alertmanager"))
    try:
        prometheus.start()

        def three_alerts():
            alerts = get_json(f"{prometheus.url}/api/v1/alerts")["data"]["alerts"]
            # the evidence is read by a query of its own: wait for it to name the check too
            return (
                alerts if len(alerts) == 3 and all("status 2" in a["annotations"]["evidence"] for a in alerts) else None
            )

        alerts = prom_real.poll(three_alerts, 60, "three alerts (pending or firing) in Prometheus")
        by_layer = {alert["labels"]["layer"]: alert for alert in alerts}
        assert set(by_layer) == set(LAYERS.values()), list(by_layer)
        for role, layer in LAYERS.items():
            alert = by_layer[layer]
            assert alert["labels"]["layout"] == name
            assert alert["labels"]["alertname"] == "StackscopeLayerCritical" and alert["labels"]["role"] == role
            annotations = alert["annotations"]
            assert annotations["summary"] == f"{layer} ({role}) of {name} is CRITICAL"
            assert annotations["evidence"] == f"failing checks: {CHECKS[role]} (http, status 2);"
            verdict = f"stackscope_verdict{{layout={quoted(name)}}}"
            assert verdict in annotations["description"]
            prometheus.query(verdict)  # the selector the description shows is valid PromQL

        alertmanager.start()
        _post_alerts(alertmanager, alerts)

        def inhibited():
            state = {a["labels"]["layer"]: a["status"] for a in alertmanager.alerts()}
            upper = (LAYERS["lb"], LAYERS["backend"])
            return state if len(state) == 3 and all(state[layer]["inhibitedBy"] for layer in upper) else None

        state = prom_real.poll(inhibited, 30, "the LB and backend alerts inhibited by the database's")
        assert state[LAYERS["db"]]["state"] == "active" and not state[LAYERS["db"]]["inhibitedBy"]
        assert all(state[LAYERS[role]]["state"] == "suppressed" for role in ("lb", "backend")), state
    finally:
        alertmanager.stop()
        prometheus.stop()
        exporter.stop()
