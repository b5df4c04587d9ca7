"""`stackscope export`'s metrics, `stackscope rules`, the prometheus check's validation and
judging, and the vantage-point headline: from hand-built snapshots, no server."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from stackscope.diagnosis import assess
from stackscope.export import ExportedLayout, ExportError, StackscopeCollector, parse_listen
from stackscope.layout import LayoutError, parse_layout
from stackscope.model import ErrorKind, Result, SeriesEvidence, Snapshot, Status
from stackscope.promrules import (
    ALERT,
    ALERTMANAGER_HEAD,
    RULES_HEAD,
    alertmanager,
    alertmanager_config,
    am_matcher,
    expands_to_itself,
    for_duration,
    go_quote,
    inhibitions,
    rule_file,
    rules,
    webhook_problem,
)
from stackscope.redact import Redactor
from tests.conftest import ROOT

SHOP = """\
name: shop
interval: 3s
timeout: 1s
layers:
  - name: DNS
    role: dns
    checks:
      - {dns: shop.example.test, name: dns, expect: [127.0.0.1]}
  - name: Load balancer
    role: lb
    checks:
      - {http: "http://shop.example.test:18080/", name: lb}
  - name: Backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:19001/", name: app-1}
      - {tcp: "127.0.0.1:19002", name: app-2}
  - name: Database
    role: db
    checks:
      - {tcp: "127.0.0.1:15432", name: db}
  - name: Cache
    role: cache
    checks:
      - {tcp: "127.0.0.1:16379", name: cache}
"""
LAYOUT = parse_layout(SHOP, "shop.yaml")
PHASES = {"dns": 0.5, "connect": 0.2, "ttfb": 1.5, "total": 2.0}


class _FakeEngine:
    def __init__(self, secrets=()) -> None:
        self.redactor = Redactor(secrets)


def _results(failing: dict[str, Result] | None = None) -> dict[str, Result]:
    out = {}
    for check in LAYOUT.checks():
        facts = {"status_code": 200, "phases": dict(PHASES)} if check.type == "http" else {}
        out[check.id] = Result(check.id, Status.OK, "ok", 2.0, "ok", facts, started_at=100.0)
    out.update(failing or {})
    return out


def _exposition(results: dict[str, Result], layout=LAYOUT, secrets=()) -> dict[str, list]:
    exported = ExportedLayout(layout, _FakeEngine(secrets))
    exported.observe(Snapshot(layout, results, taken_at=100.5, round=7))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StackscopeCollector([exported]))
    text = generate_latest(registry).decode()
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    return families


def _db_down() -> dict[str, Result]:
    return _results(
        {
            "Database/db": Result("Database/db", Status.CRIT, "refused", None, "refused", error_kind=ErrorKind.REFUSED),
            "Backends/app-1": Result(
                "Backends/app-1", Status.CRIT, "500", 3.0, "500", {"status_code": 500}, ErrorKind.HTTP_STATUS
            ),
        }
    )


def test_every_check_has_up_status_and_duration_with_its_labels():
    families = _exposition(_results())
    status = families["stackscope_check_status"]
    assert len(status) == 6
    assert {s.labels["check"] for s in status} == {"dns", "lb", "app-1", "app-2", "db", "cache"}
    assert all(set(s.labels) == {"layout", "layer", "role", "check", "type"} for s in status)
    assert all(s.value == 0 for s in status)
    assert all(s.value == 1 for s in families["stackscope_check_up"])
    assert {s.value for s in families["stackscope_check_duration_seconds"]} == {0.002}
    phases = families["stackscope_check_phase_seconds"]
    assert {(s.labels["check"], s.labels["phase"]) for s in phases} == {(c, p) for c in ("lb", "app-1") for p in PHASES}
    assert next(s.value for s in phases if s.labels["phase"] == "ttfb") == 0.0015
    assert families["stackscope_rounds"][0].value == 7
    assert families["stackscope_round_duration_seconds"][0].value == 0.5
    assert families["stackscope_build_info"][0].labels["version"]


def test_healthy_layout_has_no_verdict_series():
    families = _exposition(_results())
    assert families["stackscope_verdict"] == []
    assert {s.value for s in families["stackscope_layer_status"]} == {0}


def test_a_broken_layer_is_the_verdict_and_statuses_are_codes():
    families = _exposition(_db_down())
    verdict = families["stackscope_verdict"]
    assert [(s.labels["layer"], s.labels["role"], s.labels["confirmed"], s.value) for s in verdict] == [
        ("Database", "db", "true", 1)
    ]
    layers = {s.labels["layer"]: s.value for s in families["stackscope_layer_status"]}
    assert layers == {"DNS": 0, "Load balancer": 0, "Backends": 1, "Database": 2, "Cache": 0}
    up = {s.labels["check"]: s.value for s in families["stackscope_check_up"]}
    assert up["db"] == 0 and up["app-1"] == 0 and up["app-2"] == 1
    assert not any(s.labels["check"] == "db" for s in families["stackscope_check_duration_seconds"])


def test_an_unknown_check_is_status_3_and_down():
    unknown = {"Cache/cache": Result("Cache/cache", Status.UNKNOWN, "cannot tell", None, "?")}
    families = _exposition(_results(unknown))
    status = {s.labels["check"]: s.value for s in families["stackscope_check_status"]}
    up = {s.labels["check"]: s.value for s in families["stackscope_check_up"]}
    assert status["cache"] == 3 and up["cache"] == 0


def test_label_values_pass_through_the_redactor():
    layout = parse_layout(SHOP.replace("name: db}", "name: db-hunter2pw}"), "shop.yaml")
    results = {r.check_id.replace("/db", "/db-hunter2pw"): r for r in _results().values()}
    families = _exposition(results, layout=layout, secrets=["hunter2pw"])
    text = repr(families)
    assert "hunter2pw" not in text
    assert any("db-" in s.labels["check"] for s in families["stackscope_check_status"])


def test_no_series_before_the_first_round():
    exported = ExportedLayout(LAYOUT, _FakeEngine())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StackscopeCollector([exported]))
    text = generate_latest(registry).decode()
    assert "stackscope_build_info" in text
    assert "stackscope_check_status{" not in text


def test_openmetrics_exposition_is_produced_by_the_library():
    exported = ExportedLayout(LAYOUT, _FakeEngine())
    exported.observe(Snapshot(LAYOUT, _db_down(), taken_at=100.5, round=2))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StackscopeCollector([exported]))
    text = generate_openmetrics(registry).decode()
    assert text.endswith("# EOF\n")
    assert 'stackscope_rounds_total{layout="shop"} 2.0' in text


@pytest.mark.parametrize(
    ("listen", "allow", "expected"),
    [
        ("127.0.0.1:9464", False, ("127.0.0.1", 9464)),
        ("[::1]:9464", False, ("::1", 9464)),
        ("localhost:1", False, ("127.0.0.1", 1)),
        ("0.0.0.0:9464", True, ("0.0.0.0", 9464)),
    ],
)
def test_listen_addresses(listen, allow, expected):
    assert parse_listen(listen, allow_remote=allow) == expected


@pytest.mark.parametrize(
    ("listen", "needle"),
    [
        ("0.0.0.0:9464", "--allow-remote"),
        ("10.1.2.3:9464", "not a loopback"),
        ("9464", "HOST:PORT"),
        ("127.0.0.1:x", "not a number"),
        ("127.0.0.1:70000", "out of range"),
        ("example.com:9464", "not an IP address"),
    ],
)
def test_bad_or_remote_listen_addresses_are_refused(listen, needle):
    with pytest.raises(ExportError, match=needle.replace("-", "\\-")):
        parse_listen(listen)


def test_export_refuses_a_remote_listen_address_before_probing(tmp_path):
    from tests.conftest import run_cli, write_layout

    path = write_layout(tmp_path, SHOP)
    done = run_cli("export", str(path), "--listen", "0.0.0.0:9464")
    assert done.returncode == 3
    assert "--allow-remote" in done.stderr


def test_check_does_not_import_prometheus_client():
    code = (
        "import sys, stackscope.cli, stackscope.engine, stackscope.diagnosis\n"
        "from stackscope.probes import all_specs; all_specs()\n"
        "print('prometheus_client' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/bin"}
    )
    assert done.stdout.strip() == "False", done.stderr


# --------------------------------------------------------------------------- rules


def test_one_alert_per_layer_with_layout_on_every_alert():
    group = rules(LAYOUT)["groups"][0]
    assert [r["labels"]["layer"] for r in group["rules"]] == [layer.name for layer in LAYOUT.layers]
    for rule in group["rules"]:
        assert rule["alert"] == ALERT
        assert rule["labels"]["layout"] == "shop"
        assert rule["labels"]["severity"] == "critical"
        assert rule["for"] == "30s"  # two scrapes of 15 s (longer than two rounds of 3 s)
        assert 'layout="shop"' in rule["expr"]
        assert {"summary", "evidence"} <= set(rule["annotations"])


def test_for_is_at_least_two_scrapes_and_two_rounds():
    """Issue 21: `for: 4s` with the README's 15 s scrape interval was met by one sample."""
    fast = parse_layout(SHOP.replace("interval: 3s", "interval: 0.2s").replace("timeout: 1s", "timeout: 0.1s"))
    assert for_duration(fast, 0.2) == "1s"
    assert for_duration(fast) == "30s"
    slow = parse_layout(SHOP.replace("interval: 3s", "interval: 1m"))
    assert for_duration(slow) == "120s" and for_duration(LAYOUT, 60) == "120s"


def test_rules_scrape_interval_option(tmp_path):
    from tests.conftest import run_cli

    layout = tmp_path / "shop.yaml"
    layout.write_text(SHOP)
    assert "for: 30s" in run_cli("rules", str(layout)).stdout
    assert "for: 60s" in run_cli("rules", str(layout), "--scrape-interval", "30s").stdout
    bad = run_cli("rules", str(layout), "--scrape-interval", "30")
    assert bad.returncode == 3 and "--scrape-interval: '30' is not a duration" in bad.stderr, bad.stderr


def test_inhibitions_follow_the_dependency_order():
    pairs = set(inhibitions(LAYOUT))
    assert ("Database", "Backends") in pairs and ("Database", "Load balancer") in pairs
    assert ("Cache", "Backends") in pairs and ("Backends", "Load balancer") in pairs
    assert ("DNS", "Load balancer") in pairs  # the LB check uses a host name
    assert ("DNS", "Backends") not in pairs  # the backends are addressed by IP
    assert ("Database", "Cache") not in pairs and ("Cache", "Database") not in pairs  # siblings
    assert not any(target == "Database" for _, target in pairs if _ != "DNS")
    assert ("Load balancer", "Database") not in pairs


def test_every_inhibit_rule_is_scoped_to_its_layout():
    config = alertmanager([LAYOUT], webhook="http://127.0.0.1:1/hook")
    assert config["inhibit_rules"]
    for rule in config["inhibit_rules"]:
        assert rule["equal"] == ["layout"]
        assert 'layout="shop"' in rule["source_matchers"] and 'layout="shop"' in rule["target_matchers"]
    assert config["receivers"][0]["webhook_configs"][0]["send_resolved"] is True
    assert "webhook_configs" not in alertmanager([LAYOUT])["receivers"][0]


def test_names_with_quotes_stay_valid_yaml_and_promql_strings():
    odd = parse_layout(SHOP.replace("name: Backends", 'name: "App \\"blue\\" tier"'), "odd.yaml")
    text = yaml.safe_dump(rules(odd))
    loaded = yaml.safe_load(text)
    exprs = [r["expr"] for r in loaded["groups"][0]["rules"]]
    assert 'layer="App \\"blue\\" tier"' in " ".join(exprs)


HOSTILE_NAMES = [
    'DB {{ printf "%s" "x" }}',
    '{{ query "up" }}',
    "}} {{",
    '{{- $labels.layer -}} "q" \\ \\" \\n',
    "tab\there\nnewline\u2028ls\u2029ps\x85nel\x00nul\ufeffbom\u00a0nbsp",
    "Süd 🚀 $value",
]


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_go_quote_is_one_printable_line_that_reads_back_as_the_value(value):
    """Go's string literal grammar (strconv.Unquote; PromQL's lexer takes the same escapes)
    is a subset of Python's for what go_quote writes: \\\\ \\" \\t \\n \\uXXXX \\UXXXXXXXX."""
    literal = go_quote(value)
    assert literal.isprintable() and literal[0] == literal[-1] == '"'
    assert ast.literal_eval(literal) == value


def test_go_quote_escapes():
    assert go_quote('a"b\\c\n\t\u2028\x85\x00🚀') == '"a\\"b\\\\c\\n\\t\\u2028\\u0085\\u0000🚀"'
    assert go_quote("\U000e0001") == '"\\U000e0001"'  # not printable, beyond the BMP


def _alertmanager_value(raw: str) -> str:
    """Alertmanager 0.25's ParseMatcher unescaping of a quoted value (pkg/labels/parse.go):
    \\n, \\" and \\\\ are escapes, any other backslash is literal; a bare quote is an error."""
    assert raw[0] == raw[-1] == '"'
    out, chars, escaped = [], raw[1:-1], False
    for char in chars:
        if escaped:
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            assert char != '"', f"unescaped quote in {raw!r}"
            out.append(char)
    return "".join(out) + ("\\" if escaped else "")


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_alertmanager_matchers_read_back_as_the_value(value):
    label, _, raw = am_matcher("layer", value).partition("=")
    assert label == "layer" and _alertmanager_value(raw) == value


def test_alertmanager_matchers_escape_only_what_alertmanager_unescapes():
    # \\u2028 would be six characters to Alertmanager: Go's escapes are not its grammar
    assert am_matcher("layer", 'a"b\\c\nd\u2028') == 'layer="a\\"b\\\\c\\nd\u2028"'


@pytest.mark.parametrize("value", HOSTILE_NAMES)
def test_rule_label_values_are_one_string_action_when_they_hold_an_action(value):
    """Prometheus expands rule labels as Go templates; text without `{{` is printed as it is,
    and `{{ "literal" }}` prints the literal (checked with a real Prometheus in
    tests/real/test_rules_hostile_names.py)."""
    written = expands_to_itself(value)
    if "{{" not in value:
        assert written == value
    else:
        assert written.startswith("{{ ") and written.endswith(" }}")
        assert ast.literal_eval(written[3:-3]) == value


def test_plain_names_stay_readable_in_the_rules():
    labels = rules(LAYOUT)["groups"][0]["rules"][0]["labels"]
    assert labels == {"layout": "shop", "layer": "DNS", "role": "dns", "severity": "critical"}
    assert expands_to_itself("price $5 }} {") == "price $5 }} {"


def test_the_headers_are_fixed_text_and_a_hand_built_name_holds_no_line_break_in_the_files():
    """The loader replaces U+2028 and the like; a Layout built in code is cleaned again."""
    hostile = dataclasses.replace(LAYOUT, name="shop\u2028groups: [] #\u2029global: {} #\x85x")
    rules_text, am_text = rule_file(hostile), alertmanager_config([hostile])
    assert rules_text.startswith(RULES_HEAD) and am_text.startswith(ALERTMANAGER_HEAD)
    assert "shop" not in RULES_HEAD + ALERTMANAGER_HEAD
    for text, keys in ((rules_text, ["groups"]), (am_text, ["route", "receivers", "inhibit_rules"])):
        assert not any(char in text for char in "\x85\u2028\u2029"), text
        assert list(yaml.safe_load(text)) == keys
    assert yaml.safe_load(rules_text)["groups"][0]["name"] == "stackscope shop·groups: [] #·global: {} #·x"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://127.0.0.1:5001/hook", ""),
        ("https://hooks.example.test/a?b=c", ""),
        ("ftp://hooks.example.test/", "http:// or https://"),
        ("http:///path", "with a host"),
        ("http://x/\u2028global: {}", "control character"),
        ("http://x/ a", "space"),
    ],
)
def test_webhook_urls(url, needle):
    problem = webhook_problem(url)
    assert (needle in problem and problem) if needle else problem == ""


def test_a_bad_webhook_is_refused_by_the_cli(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "stackscope", "rules", str(ROOT / "layouts" / "example.yaml"), "--alertmanager"]
        + ["--webhook", "http://x/\nglobal: {}"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/bin"},
    )
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr == "stackscope: --webhook holds a space or a control character; give the URL without them\n"


# --------------------------------------------------------------------------- prometheus check


PROM = """\
name: p
layers:
  - name: LB
    role: lb
    checks:
      - prometheus: http://127.0.0.1:9090
{extra}
"""


def _problems(extra: str) -> list[str]:
    with pytest.raises(LayoutError) as info:
        parse_layout(PROM.format(extra=extra), "p.yaml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("        expect: 1", "query"),
        ("        query: up", "expect: or warn:/crit:"),
        ("        query: up\n        expect: 1\n        per: 'zone-name'", "label name"),
        ("        query: up\n        expect: 1\n        vantage: true", "needs per:"),
        ("        query: up\n        expect: 1\n        warn: 2", "judge the same values twice"),
        ('        query: "up\\0"\n        expect: 1', "control character U+0000"),
        ("        query: " + "x" * 5000 + "\n        expect: 1", "more than 4096"),
        ("        query: up\n        expect: one", "expected a number"),
    ],
)
def test_prometheus_check_values_are_validated_with_a_location(extra, needle):
    problems = _problems(extra)
    assert any(needle in p and "p.yaml:" in p for p in problems), problems


def test_a_valid_prometheus_check_loads():
    layout = parse_layout(PROM.format(extra="        query: probe_success\n        expect: 1\n        per: zone"))
    check = next(layout.checks())
    assert check.options.per == "zone" and check.options.expect == 1


@pytest.mark.parametrize(
    ("warn", "crit", "value", "status"),
    [
        (100, 200, 50, Status.OK),
        (100, 200, 150, Status.WARN),
        (100, 200, 250, Status.CRIT),
        (0.5, 0.2, 0.9, Status.OK),  # crit below warn: low is bad
        (0.5, 0.2, 0.4, Status.WARN),
        (0.5, 0.2, 0.1, Status.CRIT),
        (None, 200, 250, Status.CRIT),
        (100, 200, float("nan"), Status.UNKNOWN),
    ],
)
def test_thresholds(warn, crit, value, status):
    from stackscope.probes.prometheus import PrometheusOptions, judge_value

    options = PrometheusOptions(query="x", warn=warn, crit=crit)
    assert judge_value(options, value)[0] is status


# --------------------------------------------------------------------------- vantage points

VANTAGE = """\
name: v
layers:
  - name: Load balancer
    role: lb
    checks:
      - {prometheus: "http://127.0.0.1:9090", name: blackbox, query: probe_success, expect: 1, per: zone,
         vantage: true}
  - name: Backends
    role: backend
    checks:
      - {http: "http://127.0.0.1:19001/", name: app-1}
"""


def _vantage_snapshot(statuses: dict[str, str]) -> Snapshot:
    layout = parse_layout(VANTAGE, "v.yaml")
    series = [
        {"key": k, "labels": {"zone": k}, "value": 1.0 if s == "ok" else 0.0, "status": s} for k, s in statuses.items()
    ]
    failing = [k for k, s in statuses.items() if s != "ok"]
    status = Status.CRIT if failing else Status.OK
    facts = {"per": "zone", "vantage": True, "series": series, "series_total": len(series), "failing": failing}
    facts["series_detail"] = "value 0, expected 1"
    results = {
        "Load balancer/blackbox": Result(
            "Load balancer/blackbox",
            status,
            "fails",
            1.0,
            "x",
            facts,
            ErrorKind.CONTENT if failing else None,
            evidence=SeriesEvidence(tuple(statuses), tuple(failing), vantage=True, why="value 0, expected 1"),
        ),
        "Backends/app-1": Result("Backends/app-1", Status.OK, "200 OK", 1.0, "200", {"status_code": 200}),
    }
    return Snapshot(layout, results, 1.0)


def test_the_verdict_names_the_failing_vantage_point():
    verdict = assess(_vantage_snapshot({"zone-a": "ok", "zone-b": "crit", "zone-c": "ok"})).verdict
    assert verdict.layer == "Load balancer"
    assert verdict.headline == "Load balancer: fails from 1 of 3 vantage points (zone-b): value 0, expected 1"


def test_failing_from_every_vantage_point_keeps_the_check_detail():
    verdict = assess(_vantage_snapshot({"zone-a": "crit", "zone-b": "crit"})).verdict
    assert verdict.headline == "Load balancer: fails"


def test_series_table_on_the_detail_screen():
    from rich.console import Console

    from stackscope.tui.facts import sections

    snapshot = _vantage_snapshot({"zone-a": "ok", "zone-b": "crit"})
    check = snapshot.layout.check("Load balancer/blackbox")
    out = dict(sections(check, snapshot.results[check.id]))
    title = next(t for t in out if t.startswith("Series per zone"))
    assert "1 of 2 failing" in title
    console = Console(width=100, record=True, color_system=None)
    console.print(out[title])
    text = console.export_text()
    assert "zone-b" in text and "CRIT" in text and "zone=zone-a" in text


def test_scrapes_of_one_round_are_encoded_once_and_a_new_round_replaces_them():
    import gzip
    import urllib.request

    from stackscope.export import Exporter
    from tests.servers.base import free_port

    exporter = Exporter([LAYOUT], f"127.0.0.1:{free_port()}")
    exporter.start_server()
    try:
        exported = exporter.layouts[0]

        def scrape(headers=None):
            request = urllib.request.Request(f"{exporter.url}/metrics", headers=headers or {})
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.headers, response.read()

        exported.observe(Snapshot(LAYOUT, _results(), taken_at=100.5, round=1))
        _, first = scrape()
        assert scrape()[1] == first
        assert exporter._cache_versions == (1,)
        headers, zipped = scrape({"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped) == first
        headers, om = scrape({"Accept": "application/openmetrics-text; version=1.0.0"})
        assert headers["Content-Type"].startswith("application/openmetrics-text") and om.endswith(b"# EOF\n")
        exported.observe(Snapshot(LAYOUT, _db_down(), taken_at=101.5, round=2))
        _, second = scrape()
        assert b'stackscope_verdict{confirmed="true",layer="Database"' in second
        assert b"stackscope_verdict{" not in first
        with urllib.request.urlopen(f"{exporter.url}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        exporter.close()


def test_healthz_is_503_before_the_first_round_and_when_rounds_stall():
    from stackscope.export import Exporter
    from tests.servers.base import free_port

    exporter = Exporter([LAYOUT], f"127.0.0.1:{free_port()}")
    try:
        assert exporter.health() == (False, "shop: no round finished yet")
        exporter.layouts[0].observe(Snapshot(LAYOUT, _results(), taken_at=100.5, round=1))
        assert exporter.health()[0]
        ok, text = exporter.health(now=exporter.layouts[0].latest.finished_at + 60)
        assert not ok and "last round finished 60s ago" in text
    finally:
        exporter.close()


def test_two_layouts_with_one_name_are_refused():
    from stackscope.export import Exporter

    with pytest.raises(ExportError, match="several layouts are named shop"):
        Exporter([LAYOUT, LAYOUT], "127.0.0.1:9464")


def test_several_layouts_share_one_endpoint_each_with_its_own_layout_label():
    other = parse_layout(SHOP.replace("name: shop", "name: shop-eu"), "eu.yaml")
    first, second = ExportedLayout(LAYOUT, _FakeEngine()), ExportedLayout(other, _FakeEngine())
    first.observe(Snapshot(LAYOUT, _db_down(), taken_at=100.5, round=3))
    second.observe(Snapshot(other, _results(), taken_at=100.5, round=5))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StackscopeCollector([first, second]))
    families = {f.name: f.samples for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert {s.labels["layout"]: s.value for s in families["stackscope_rounds"]} == {"shop": 3, "shop-eu": 5}
    assert [s.labels["layout"] for s in families["stackscope_verdict"]] == ["shop"]
    assert len(families["stackscope_check_status"]) == 12


def test_connections_beyond_the_cap_evict_the_oldest_idle_one_and_threads_stay_few():
    import socket
    import threading
    import urllib.error
    import urllib.request

    from stackscope.export import Exporter
    from tests.servers.base import free_port

    exporter = Exporter([LAYOUT], f"127.0.0.1:{free_port()}")
    exporter.server.max_connections = 8  # instance knobs: a small cap, and a deadline far beyond this test
    exporter.server.timeout_seconds = 120
    threads_before = threading.active_count()
    exporter.start_server()
    idle = [socket.create_connection(("127.0.0.1", exporter.port), timeout=10) for _ in range(8)]
    try:
        try:  # the ninth connection, a real request: it gets in, the oldest idle one goes
            urllib.request.urlopen(f"{exporter.url}/healthz", timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code == 503  # no round yet: an answer all the same
        assert idle[0].recv(1) == b"", "the oldest idle connection was not evicted"
        assert threading.active_count() <= threads_before + 1 + 4  # the serve loop and its workers
        head = b"GET / HTTP/1.0\r\nX-Big: " + b"a" * 20_000
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=10) as big:
            big.sendall(head)
            assert big.recv(100).startswith(b"HTTP/1.0 431 ")
    finally:
        for sock in idle:
            sock.close()
        exporter.close()
