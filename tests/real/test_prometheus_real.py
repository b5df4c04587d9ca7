"""Prometheus, Alertmanager and blackbox_exporter for real, on loopback.

- Prometheus scrapes `stackscope export`; the series are queryable; `promtool check
  metrics` accepts the exposition; SIGTERM ends the exporter with 0.
- `promtool check rules` and `amtool check-config` accept what `stackscope rules`
  prints; with Prometheus evaluating those rules and Alertmanager sending to a webhook
  in this test, a database fault gives exactly one notification (the database's), the
  backend and LB alerts inhibited.
- Two blackbox exporters probing from 127.0.0.2 and 127.0.0.3 are two vantage points on
  an nginx that denies 127.0.0.3; the layout's prometheus check with `per: zone` fails
  from zone-b only and the verdict says so.
- The prometheus check against a Prometheus API impostor: empty answers, query errors,
  an unreachable server and credentials.

Every wait polls with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from stackscope.model import Status
from tests.conftest import ROOT, run_cli, write_layout
from tests.probe_helpers import assert_unreadable, probe
from tests.servers.base import LOOPBACK, Process, free_port, require_binary, wait_until
from tests.servers.nginx import Nginx
from tests.servers.prometheus import Alertmanager, Blackbox, Prometheus
from tests.servers.pyservers import http_response, read_request, recorder, responder

pytestmark = pytest.mark.timeout(240)


def poll(predicate, timeout: float, what: str, interval: float = 0.2):
    """The value of `predicate()` once truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)  # polling pace, not synchronisation: the condition decides
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def http_get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except OSError:
        return 0, {}, b""


class Exporter:
    """`stackscope export` as a user runs it, in its own process."""

    def __init__(self, workdir: Path, *layouts: Path) -> None:
        self.port = free_port()
        self.process = Process("export", workdir)
        self.layouts = layouts

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Exporter:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        self.process.spawn(
            [
                sys.executable,
                "-m",
                "stackscope",
                "export",
                *map(str, self.layouts),
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            env=env,
        )
        wait_until(
            lambda: http_get(f"{self.url}/healthz")[0] == 200, 30, "stackscope export healthy", self.process.died
        )
        return self

    def stop(self) -> None:
        self.process.stop()


class Webhook:
    """A loopback webhook receiver that keeps every notification Alertmanager posts."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(min(length, 1 << 20))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def switchable(state: dict, key: str, bad_status: int):
    """An HTTP server answering 200 while state[key] is true, else `bad_status`."""

    async def handle(reader, writer) -> None:
        await read_request(reader)
        status = 200 if state[key] else bad_status
        writer.write(
            http_response(status, b"ok\n" if status == 200 else b"down\n", reason="OK" if status == 200 else "Error")
        )
        await writer.drain()

    return handle


def shop_layout(tmp_path: Path, lb: int, app: int, db: int) -> Path:
    return write_layout(
        tmp_path,
        f"""\
name: shop
interval: 1s
timeout: 500ms
layers:
  - name: Load balancer
    role: lb
    checks:
      - {{http: "http://127.0.0.1:{lb}/", name: lb}}
  - name: Backends
    role: backend
    checks:
      - {{http: "http://127.0.0.1:{app}/", name: app-1}}
  - name: Database
    role: db
    checks:
      - {{http: "http://127.0.0.1:{db}/", name: db}}
""",
        "shop.yaml",
    )


def scrape_config(exporter: Exporter) -> dict:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [{"job_name": "stackscope", "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}],
    }


@pytest.fixture
def shop(tmp_path, pyservers):
    state = {"db": True}
    ports = {
        "lb": pyservers.tcp(switchable(state, "db", 502)),
        "app": pyservers.tcp(switchable(state, "db", 500)),
        "db": pyservers.tcp(switchable(state, "db", 503)),
    }
    layout = shop_layout(tmp_path, ports["lb"], ports["app"], ports["db"])
    exporter = Exporter(tmp_path / "export", layout)
    (tmp_path / "export").mkdir()
    exporter.start()
    try:
        yield state, layout, exporter
    finally:
        exporter.stop()


# --------------------------------------------------------------------------- export


def test_prometheus_scrapes_export_and_promtool_accepts_the_exposition(tmp_path, shop):
    state, layout, exporter = shop

    def scraped():
        answer = http_get(f"{exporter.url}/metrics")
        return answer if b"stackscope_check_status{" in answer[2] else None

    status, headers, body = poll(scraped, 20, "check series on /metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    lint = subprocess.run([require_binary("promtool"), "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    _, om_headers, om_body = http_get(
        f"{exporter.url}/metrics", {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
    )
    assert om_headers["Content-Type"].startswith("application/openmetrics-text")
    assert om_body.endswith(b"# EOF\n")
    assert http_get(f"{exporter.url}/nope")[0] == 404

    prometheus = Prometheus(tmp_path / "prom", scrape_config(exporter)).start()
    try:
        series = poll(
            lambda: prometheus.query('stackscope_check_status{layout="shop"}'), 30, "check series in Prometheus"
        )
        assert {s["metric"]["check"] for s in series} == {"lb", "app-1", "db"}
        assert all(s["metric"]["job"] == "stackscope" and s["value"][1] == "0" for s in series)
        phases = prometheus.query('stackscope_check_phase_seconds{layout="shop",check="db"}')
        assert {"connect", "ttfb", "total"} <= {s["metric"]["phase"] for s in phases}
        assert prometheus.query("stackscope_build_info")
        assert prometheus.query('stackscope_verdict{layout="shop"}') == []
        state["db"] = False
        verdict = poll(lambda: prometheus.query('stackscope_verdict{layout="shop"}'), 30, "verdict series")
        assert [(v["metric"]["layer"], v["metric"]["role"]) for v in verdict] == [("Database", "db")]
    finally:
        prometheus.stop()

    exporter.process.proc.send_signal(signal.SIGTERM)
    assert exporter.process.proc.wait(10) == 0


def test_sighup_ends_export_cleanly(shop):
    _, _, exporter = shop
    exporter.process.proc.send_signal(signal.SIGHUP)
    assert exporter.process.proc.wait(10) == 0
    assert "Traceback" not in exporter.process.log()


IDLE_CONNECTIONS = 200
CUT_OFF_WITHIN = 30  # seconds: far above the exporter's documented 5 s request timeout


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (EOF or reset); False while it holds it."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_hold_no_threads_and_are_closed_after_the_timeout(shop):
    import psutil

    _, _, exporter = shop
    idle: list[socket.socket] = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            idle.append(socket.create_connection((LOOPBACK, exporter.port), timeout=CUT_OFF_WITHIN))

        def scraped():
            answer = http_get(f"{exporter.url}/metrics")
            return answer if answer[0] == 200 and b"stackscope_check_status{" in answer[2] else None

        poll(scraped, 20, f"a scrape while {IDLE_CONNECTIONS} idle connections are open")
        threads = psutil.Process(exporter.process.proc.pid).num_threads()
        assert threads < 32, f"{threads} threads for {IDLE_CONNECTIONS} idle connections"
        deadline = time.monotonic() + CUT_OFF_WITHIN
        for sock in idle:  # one deadline for all: the server closes them at about the same time
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            assert _closed_by_server(sock), f"an idle connection was still open after {CUT_OFF_WITHIN}s"
        assert http_get(f"{exporter.url}/healthz")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_a_slow_loris_client_is_cut_off_at_the_timeout(shop):
    _, _, exporter = shop
    with socket.create_connection((LOOPBACK, exporter.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sock.settimeout(1.0)  # the pace: one header byte a second while the server keeps the connection
        closed = False
        for _ in range(CUT_OFF_WITHIN):
            try:
                sock.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if _closed_by_server(sock):
                closed = True
                break
        assert closed, f"a client sending one header byte a second was still served after {CUT_OFF_WITHIN}s"
    assert http_get(f"{exporter.url}/healthz")[0] == 200


# --------------------------------------------------------------------------- rules and alerts


def test_generated_rules_and_alertmanager_config_pass_the_official_checkers(tmp_path):
    layout = ROOT / "layouts" / "example.yaml"
    rules = run_cli("rules", str(layout))
    assert rules.returncode == 0, rules.stderr
    (tmp_path / "rules.yml").write_text(rules.stdout)
    done = subprocess.run(
        [require_binary("promtool"), "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 rules found" in done.stdout
    am = run_cli("rules", str(layout), "--alertmanager")
    assert am.returncode == 0, am.stderr
    (tmp_path / "am.yml").write_text(am.stdout)
    done = subprocess.run(
        [require_binary("amtool"), "check-config", str(tmp_path / "am.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "inhibit rules" in done.stdout


def _alerts_by_layer(alertmanager: Alertmanager) -> dict[str, dict]:
    return {a["labels"].get("layer"): a for a in alertmanager.alerts()}


def test_db_fault_notifies_once_and_inhibits_backend_and_lb(tmp_path, shop):
    state, layout, exporter = shop
    rules = run_cli("rules", str(layout), "--scrape-interval", "1s")  # scrape_config's interval
    assert rules.returncode == 0, rules.stderr
    webhook = Webhook()
    am_text = run_cli("rules", str(layout), "--alertmanager", "--webhook", webhook.url).stdout
    (tmp_path / "am-generated.yml").write_text(am_text)
    check = subprocess.run(
        [require_binary("amtool"), "check-config", str(tmp_path / "am-generated.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(am_text)
    # the test's clock, not production's; group_wait spans more than a round, so an LB
    # alert that turned pending one round before the database's is still held when the
    # database's arrives (inhibition is decided when a group is flushed)
    config["route"].update(group_wait="3s", group_interval="1s")
    alertmanager = Alertmanager(tmp_path / "am", yaml.safe_dump(config)).start()
    prom_config = scrape_config(exporter)
    prom_config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]}
    prometheus = Prometheus(tmp_path / "prom", prom_config, {"stackscope.rules.yml": rules.stdout}).start()
    try:
        poll(
            lambda: len(prometheus.query('stackscope_layer_status{layout="shop"} == 0')) == 3,
            30,
            "every layer healthy in Prometheus",
        )
        assert webhook.received == []
        state["db"] = False

        def settled():
            alerts = _alerts_by_layer(alertmanager)
            if set(alerts) != {"Database", "Backends", "Load balancer"} or not webhook.received:
                return None
            return alerts

        alerts = poll(settled, 60, "three alerts in Alertmanager and a notification")
        assert alerts["Database"]["status"]["state"] == "active"
        for layer in ("Backends", "Load balancer"):
            assert alerts[layer]["status"]["state"] == "suppressed", alerts[layer]
            assert alerts[layer]["status"]["inhibitedBy"], alerts[layer]
            assert alerts[layer]["labels"]["layout"] == "shop"
        assert len(webhook.received) == 1, webhook.received
        notified = webhook.received[0]["alerts"]
        assert [(a["labels"]["layer"], a["status"]) for a in notified] == [("Database", "firing")]
        assert notified[0]["labels"]["severity"] == "critical"
        assert "db" in notified[0]["annotations"]["evidence"]
    finally:
        prometheus.stop()
        alertmanager.stop()
        webhook.close()


# --------------------------------------------------------------------------- vantage points


def test_two_vantage_points_and_the_verdict_names_the_failing_one(tmp_path):
    web = free_port()
    # deny acts in the access phase; `return` alone would answer before it (rewrite
    # phase), so the 200 comes from a named location that try_files falls back to
    nginx = Nginx(
        tmp_path / "nginx",
        f"""
    server {{
        listen 127.0.0.1:{web};
        location / {{ deny 127.0.0.3; allow all; try_files /nonexistent @ok; }}
        location @ok {{ return 200 "ok\\n"; }}
    }}
""",
        [web],
    ).start()
    zones = {"zone-a": Blackbox(tmp_path / "bb-a", "127.0.0.2"), "zone-b": Blackbox(tmp_path / "bb-b", "127.0.0.3")}
    prometheus = None
    try:
        for exporter in zones.values():
            exporter.start()
        target = f"127.0.0.1:{web}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {
                    "job_name": "blackbox",
                    "metrics_path": "/probe",
                    "params": {"module": ["http_2xx"]},
                    "static_configs": [
                        {"targets": [target], "labels": {"zone": zone, "__exporter": bb.address}}
                        for zone, bb in zones.items()
                    ],
                    "relabel_configs": [
                        {"source_labels": ["__address__"], "target_label": "__param_target"},
                        {"source_labels": ["__param_target"], "target_label": "instance"},
                        {"source_labels": ["__exporter"], "target_label": "__address__"},
                    ],
                }
            ],
        }
        prometheus = Prometheus(tmp_path / "prom", config).start()
        poll(lambda: len(prometheus.query('probe_success{job="blackbox"}')) == 2, 30, "both vantage points scraped")
        by_zone = {s["metric"]["zone"]: s["value"][1] for s in prometheus.query('probe_success{job="blackbox"}')}
        assert by_zone == {"zone-a": "1", "zone-b": "0"}

        layout = write_layout(
            tmp_path,
            f"""\
name: edge
interval: 2s
timeout: 1s
layers:
  - name: Load balancer
    role: lb
    checks:
      - prometheus: {prometheus.url}
        name: reachable
        query: probe_success{{job="blackbox"}}
        expect: 1
        per: zone
        vantage: true
  - name: Web
    role: backend
    checks:
      - {{http: "http://{target}/", name: web}}
""",
        )
        done = run_cli("check", str(layout), "--format", "json")
        report = json.loads(done.stdout)
        assert done.returncode == 2, done.stdout + done.stderr
        assert report["verdict"]["layer"] == "Load balancer"
        assert report["verdict"]["summary"].startswith(
            "Load balancer: fails from 1 of 2 vantage points (zone-b): value 0, expected 1"
        )
        check = report["layers"][0]["checks"][0]
        assert {row["key"]: row["status"] for row in check["facts"]["series"]} == {"zone-a": "ok", "zone-b": "crit"}
        assert check["facts"]["series"][0]["labels"]["instance"] == target
        assert any(line.startswith("Web:") for line in report["verdict"]["ruled_out"])
    finally:
        if prometheus is not None:
            prometheus.stop()
        for exporter in zones.values():
            exporter.stop()
        nginx.stop()


# --------------------------------------------------------------------------- the check against an impostor


def api(answer: dict | str, status: int = 200):
    body = answer if isinstance(answer, str) else json.dumps(answer)
    return responder(status, body.encode(), {"Content-Type": "application/json"})


def vector(*series: tuple[dict, str]) -> dict:
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


async def test_per_label_rows_worst_status_and_failing_named(pyservers):
    port = pyservers.tcp(
        api(vector(({"instance": "a:1"}, "1"), ({"instance": "b:1"}, "0"), ({"instance": "c:1"}, "1")))
    )
    result = await probe({"prometheus": f"http://127.0.0.1:{port}", "query": "up", "expect": 1, "per": "instance"})
    assert result.status is Status.CRIT
    assert result.detail == "fails for 1 of 3 instance values (b:1): value 0, expected 1"
    assert result.facts["failing"] == ["b:1"]
    assert [row["status"] for row in result.facts["series"]] == ["ok", "crit", "ok"]


async def test_all_series_ok(pyservers):
    port = pyservers.tcp(api(vector(({"job": "x", "instance": "a"}, "0.2"), ({"job": "x", "instance": "b"}, "0.3"))))
    result = await probe({"prometheus": f"http://127.0.0.1:{port}", "query": "lag", "warn": 1, "crit": 5})
    assert result.status is Status.OK, result.detail
    assert result.detail == "all 2 series ok"


async def test_empty_result_is_unknown(pyservers):
    port = pyservers.tcp(api(vector()))
    result = await probe({"prometheus": f"http://127.0.0.1:{port}", "query": "up", "expect": 1})
    assert result.status is Status.UNKNOWN
    assert result.detail == "the query matched no series"


async def test_query_error_is_unknown_and_terminal_safe(pyservers):
    error = {"status": "error", "errorType": "bad_data", "error": "parse error\x1b[31m at char 3"}
    port = pyservers.tcp(api(error, 400))
    result = await probe({"prometheus": f"http://127.0.0.1:{port}", "query": "up(", "expect": 1})
    assert result.status is Status.UNKNOWN
    assert "rejected the query (bad_data): parse error" in result.detail
    assert "\x1b" not in result.detail


async def test_unreachable_prometheus_is_unknown_not_the_layers_fault():
    port = free_port()  # nothing listens
    result = await probe({"prometheus": f"http://127.0.0.1:{port}", "query": "up", "expect": 1})
    assert result.status is Status.UNKNOWN
    assert result.detail.startswith(f"cannot query Prometheus at 127.0.0.1:{port}:")


async def test_bearer_token_is_sent_and_masked(pyservers):
    heads: list[bytes] = []
    port = pyservers.tcp(recorder(heads, 401, b"unauthorized: token s3cr3t-t0ken-xyz rejected"))
    result = await probe(
        {
            "prometheus": f"http://127.0.0.1:{port}/prom/",
            "query": 'up{job="a b"}',
            "expect": 1,
            "auth_env": "PROM_TOKEN",
        },
        environ={"PROM_TOKEN": "s3cr3t-t0ken-xyz"},
    )
    assert b"Authorization: Bearer s3cr3t-t0ken-xyz" in heads[0]
    assert heads[0].startswith(b"GET /prom/api/v1/query?query=up%7Bjob%3D%22a%20b%22%7D HTTP/1.1")
    assert result.status is Status.UNKNOWN
    assert "s3cr3t" not in repr(result)


async def test_scalar_and_range_results(pyservers):
    scalar = pyservers.tcp(api({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "7"]}}))
    result = await probe({"prometheus": f"http://127.0.0.1:{scalar}", "query": "scalar(up)", "crit": 5})
    assert result.status is Status.CRIT and result.detail == "value 7 ≥ crit 5"
    matrix = pyservers.tcp(api({"status": "success", "data": {"resultType": "matrix", "result": []}}))
    result = await probe({"prometheus": f"http://127.0.0.1:{matrix}", "query": "up[5m]", "expect": 1})
    assert result.status is Status.UNKNOWN and "not an instant vector" in result.detail


def _raw_api(body: bytes):
    return responder(200, body, {"Content-Type": "application/json"})


def _vector_text(result: str) -> bytes:
    return ('{"status":"success","data":{"resultType":"vector","result":' + result + "}}").encode()


HOSTILE_ANSWERS = {
    "500,000 deep": (
        _vector_text("[" * 500_000 + "]" * 500_000),
        "answered JSON that cannot be read: nested deeper than 64 levels",
    ),
    "4000-digit value": (
        _vector_text('[{"metric":{},"value":[1700000000,' + "7" * 4000 + "]}]"),
        "answered JSON that cannot be read: a number with 4000 digits",
    ),
    "4000-digit value as text": (
        _vector_text('[{"metric":{},"value":[1700000000,"' + "7" * 4000 + '"]}]'),
        "data.result[0].value[1] is a number with 4000 digits",
    ),
    "1e999": (_vector_text('[{"metric":{},"value":[1700000000,1e999]}]'), "the number 1e999 is beyond the range"),
    "1e999 as text": (
        _vector_text('[{"metric":{},"value":[1700000000,"1e999"]}]'),
        "data.result[0].value[1] is 1e999, beyond the range of a float",
    ),
    "NaN literal": (_vector_text('[{"metric":{},"value":[1700000000,NaN]}]'), "NaN, which is not a JSON value"),
    "item not an object": (_vector_text('["up", 1]'), "data.result[0] is a string, not an object"),
    "metric not an object": (
        _vector_text('[{"metric":[1,2],"value":[1,"1"]}]'),
        "data.result[0].metric is a list, not an object",
    ),
    "value not a pair": (_vector_text('[{"metric":{},"value":7}]'), "data.result[0].value is a number, not a [time"),
    "scalar not a pair": (
        b'{"status":"success","data":{"resultType":"scalar","result":{"a":1}}}',
        "data.result is an object, not a [time, value] pair",
    ),
    "data not an object": (b'{"status":"success","data":[1]}', "data is a list, not an object"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ANSWERS))
async def test_hostile_answers_are_unknown_with_the_reason(pyservers, case):
    """A Prometheus impostor's answer that is too deep, has numbers no float holds, or has
    the wrong shape: UNKNOWN saying why, never a crash reported as `internal`."""
    body, words = HOSTILE_ANSWERS[case]
    port = pyservers.tcp(_raw_api(body))
    result = await probe({"prometheus": f"http://127.0.0.1:{port}", "query": "up", "expect": 1, "timeout": "5s"})
    assert_unreadable(result, words)


def test_the_token_never_reaches_any_output_or_the_metrics(tmp_path, pyservers):
    secret = "tok-9f8e7d6c5b4a"
    echoing = pyservers.tcp(api(vector(({"instance": f"a:{secret}", "zone": f"z-{secret}"}, "0"))))
    erroring = pyservers.tcp(api({"status": "error", "errorType": "bad_data", "error": f"bad token {secret}"}, 400))
    layout = write_layout(
        tmp_path,
        f"""\
name: secretive
interval: 1s
timeout: 500ms
layers:
  - name: LB
    role: lb
    checks:
      - {{prometheus: "http://127.0.0.1:{echoing}", name: echo, query: up, expect: 1, per: zone, vantage: true,
         auth_env: PROM_TOKEN}}
      - {{prometheus: "http://127.0.0.1:{erroring}", name: error, query: up, expect: 1, auth_env: PROM_TOKEN}}
""",
    )
    env = {"PROM_TOKEN": secret}
    for fmt in ("text", "json", "junit", "nagios"):
        done = run_cli("check", str(layout), "--format", fmt, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        if fmt == "json":  # the series' labels are in the facts, the token masked in them
            assert '"zone": "z-\u00abredacted\u00bb"' in done.stdout or '"zone": "z-«redacted»"' in done.stdout
        assert secret not in done.stdout + done.stderr, fmt
    port = free_port()
    process = Process("export-secret", tmp_path)
    process.spawn(
        [sys.executable, "-m", "stackscope", "export", str(layout), "--listen", f"127.0.0.1:{port}"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )
    try:
        metrics = poll(
            lambda: (
                (body := http_get(f"http://127.0.0.1:{port}/metrics")[2])
                and b"stackscope_check_status{" in body
                and body
            ),
            20,
            "metrics",
        )
        assert b'check="echo"' in metrics and b"stackscope_verdict{" in metrics
        assert secret.encode() not in metrics
    finally:
        process.stop()
    assert secret not in process.log()
