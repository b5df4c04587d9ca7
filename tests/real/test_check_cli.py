"""`stackscope check` end to end, as a user runs it, against a real loopback stack:
dnsmasq for names, nginx as the load balancer and as three auth backends."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import run_cli, write_layout
from tests.servers.base import free_port
from tests.servers.dnsmasq import Dnsmasq
from tests.servers.nginx import Nginx
from tests.servers.pyservers import PyServers, hang_up


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    ports = {name: free_port() for name in ("lb", "lb_wrong", "lb_auth", "b1", "b2", "b3", "decoy")}
    dead = free_port()
    backends = "\n".join(
        f"""
    server {{
        listen 127.0.0.1:{ports[f"b{i}"]};
        location /health {{ add_header X-Served-By auth-{i} always; return 200 "ok\\n"; }}
    }}"""
        for i in (1, 2, 3)
    )
    block = f"""
    upstream auth_servers {{
        server 127.0.0.1:{ports["b1"]};
        server 127.0.0.1:{ports["b2"]};
        server 127.0.0.1:{ports["b3"]};
    }}
    upstream wrong_servers {{ server 127.0.0.1:{dead}; }}
    {backends}
    server {{
        listen 127.0.0.1:{ports["lb"]};
        location / {{ proxy_pass http://auth_servers; }}
    }}
    server {{
        listen 127.0.0.1:{ports["lb_wrong"]};
        location / {{ proxy_pass http://wrong_servers; }}
    }}
    server {{
        listen 127.0.0.1:{ports["lb_auth"]};
        location / {{ return 401 "denied for $http_authorization\\n"; }}
    }}
    """
    nginx = Nginx(
        tmp_path_factory.mktemp("stack-nginx"),
        block,
        [ports[k] for k in ("lb", "lb_wrong", "lb_auth", "b1", "b2", "b3")],
    ).start()
    dns = Dnsmasq(
        tmp_path_factory.mktemp("stack-dns"),
        {"auth.stackscope.test": "127.0.0.1", "wrong.stackscope.test": "127.0.0.9"},
    ).start()
    db = PyServers()
    ports["db"] = db.tcp(hang_up)
    ports["dns"] = dns.port
    yield ports
    db.close()
    dns.stop()
    nginx.stop()


def stack_layout(
    ports,
    *,
    lb_port_key="lb",
    lb_host="auth.stackscope.test",
    dns_expect="127.0.0.1",
    extra_backend: str = "",
    lb_extra: str = "",
) -> str:
    return f"""\
name: auth-e2e
interval: 2s
timeout: 1s
resolver: 127.0.0.1:{ports["dns"]}
layers:
  - name: DNS
    role: dns
    checks:
      - dns: {lb_host}
        expect: [{dns_expect}]
  - name: Load balancer
    role: lb
    checks:
      - http: http://{lb_host}:{ports[lb_port_key]}/health
        expect_status: 200
{lb_extra}
  - name: Auth backends
    role: backend
    checks:
      - {{http: "http://127.0.0.1:{ports["b1"]}/health", name: auth-1}}
      - {{http: "http://127.0.0.1:{ports["b2"]}/health", name: auth-2}}
      - {{http: "http://127.0.0.1:{ports["b3"]}/health", name: auth-3}}
{extra_backend}
  - name: Database
    role: db
    checks:
      - tcp: 127.0.0.1:{ports["db"]}
"""


def test_healthy_stack_exits_0(stack, tmp_path):
    layout = write_layout(tmp_path, stack_layout(stack))
    done = run_cli("check", str(layout))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All layers healthy (6 checks)" in done.stdout
    assert "Load balancer" in done.stdout and "Database" in done.stdout


def test_misrouted_lb_is_named_with_backends_ruled_out(stack, tmp_path):
    layout = write_layout(tmp_path, stack_layout(stack, lb_port_key="lb_wrong"))
    done = run_cli("check", str(layout), "--format", "json")
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "crit"
    verdict = report["verdict"]
    assert verdict["layer"] == "Load balancer" and verdict["role"] == "lb"
    assert verdict["summary"].startswith("Load balancer: 502 Bad Gateway (expected 200)")
    assert "Auth backends: 3/3 answer 200 directly" in verdict["ruled_out"]
    assert any(item.startswith("DNS: auth.stackscope.test → 127.0.0.1") for item in verdict["ruled_out"])
    assert any(item.startswith("Database:") for item in verdict["ruled_out"])
    assert verdict["also_failing"] == []


def test_wrong_dns_answer_is_blamed_on_dns_not_the_lb(stack, tmp_path):
    layout = write_layout(tmp_path, stack_layout(stack, lb_host="wrong.stackscope.test"))
    done = run_cli("check", str(layout), "--format", "json")
    assert done.returncode == 2
    verdict = json.loads(done.stdout)["verdict"]
    assert verdict["layer"] == "DNS"
    assert "127.0.0.9" in verdict["summary"] and "expected 127.0.0.1" in verdict["summary"]
    assert any("explained by DNS" in item for item in verdict["also_failing"])


def test_one_backend_down_is_a_warning_exit_1(stack, tmp_path):
    extra = f'      - {{tcp: "127.0.0.1:{free_port()}", name: auth-4}}'
    layout = write_layout(tmp_path, stack_layout(stack, extra_backend=extra))
    done = run_cli("check", str(layout), "--format", "json")
    assert done.returncode == 1, done.stdout
    verdict = json.loads(done.stdout)["verdict"]
    assert verdict["layer"] == "Auth backends" and verdict["status"] == "warn"
    assert verdict["summary"].startswith("Auth backends: 1 of 4 down — auth-4:")


def test_json_shape_is_exact(stack, tmp_path):
    layout = write_layout(tmp_path, stack_layout(stack, lb_port_key="lb_wrong"))
    report = json.loads(run_cli("check", str(layout), "-f", "json").stdout)
    assert set(report) == {"layout", "status", "verdict", "layers"}
    assert set(report["verdict"]) == {
        "layer",
        "role",
        "status",
        "summary",
        "evidence",
        "ruled_out",
        "also_failing",
        "confirmed",
        "recovering",
    }
    assert report["verdict"]["confirmed"] is True  # `check` waits for the confirmation re-probes
    for layer in report["layers"]:
        assert set(layer) == {"name", "role", "status", "checks"}
        for check in layer["checks"]:
            assert set(check) == {"name", "type", "target", "status", "latency_ms", "detail", "facts"}
            assert check["status"] in ("ok", "warn", "crit", "unknown")
            assert check["latency_ms"] is None or isinstance(check["latency_ms"], float)
    healthy = json.loads(
        run_cli("check", str(write_layout(tmp_path, stack_layout(stack), "ok.yaml")), "-f", "json").stdout
    )
    assert healthy["verdict"] is None and healthy["status"] == "ok"


def test_junit_has_one_testcase_per_check_and_failures(stack, tmp_path):
    layout = write_layout(tmp_path, stack_layout(stack, lb_port_key="lb_wrong"))
    done = run_cli("check", str(layout), "--format", "junit")
    assert done.returncode == 2
    root = ET.fromstring(done.stdout)
    cases = root.findall(".//testcase")
    assert len(cases) == 6
    failures = root.findall(".//failure")
    assert len(failures) == 1
    assert failures[0].get("message").startswith("502 Bad Gateway")
    assert root.get("failures") == "1" and root.get("tests") == "6"


def test_nagios_status_line_and_perfdata(stack, tmp_path):
    layout = write_layout(tmp_path, stack_layout(stack, lb_port_key="lb_wrong"))
    done = run_cli("check", str(layout), "--format", "nagios")
    assert done.returncode == 2
    first = done.stdout.splitlines()[0]
    assert first.startswith("STACKSCOPE CRITICAL - auth-e2e: Load balancer: 502 Bad Gateway")
    status, perf = first.split(" | ")
    assert "'Auth backends/auth-1'=" in perf and perf.count("ms;;1000;0;") == 6


def test_watch_json_prints_one_line_per_round(stack, tmp_path):
    layout = write_layout(tmp_path, stack_layout(stack).replace("interval: 2s", "interval: 1s"))
    done = run_cli("check", str(layout), "--watch", "--rounds", "2", "--format", "json")
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2
    assert [json.loads(line)["status"] for line in lines] == ["ok", "ok"]


def test_secret_never_appears_in_any_format(stack, tmp_path):
    """The server echoes the credentials back; no output may show them."""
    secret = "stackscope-user:pa55-word-xyz"
    extra = "      - http: http://127.0.0.1:{port}/\n        name: stats\n        auth_env: LB_AUTH\n".format(
        port=stack["lb_auth"]
    )
    layout = write_layout(tmp_path, stack_layout(stack, lb_extra=extra))
    import base64

    encoded = base64.b64encode(secret.encode()).decode()
    for fmt in ("text", "json", "junit", "nagios"):
        done = run_cli("check", str(layout), "--format", fmt, env={"LB_AUTH": secret})
        assert done.returncode == 2, (fmt, done.stdout, done.stderr)
        everything = done.stdout + done.stderr
        assert "pa55-word-xyz" not in everything, fmt
        assert encoded not in everything, fmt
        assert "«redacted»" in everything, fmt  # the echo was there, and was masked


def test_named_but_unset_secret_is_a_layout_error(stack, tmp_path):
    extra = "      - http: http://127.0.0.1:1/\n        name: stats\n        auth_env: LB_AUTH_UNSET\n"
    layout = write_layout(tmp_path, stack_layout(stack, lb_extra=extra))
    done = run_cli("check", str(layout))
    assert done.returncode == 3
    assert "environment variable LB_AUTH_UNSET is not set" in done.stderr
    assert "Traceback" not in done.stderr
    linted = run_cli("lint", str(layout))
    assert linted.returncode == 0 and "LB_AUTH_UNSET not set here" in linted.stdout


def test_check_does_not_import_textual(stack, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    layout = write_layout(tmp_path, stack_layout(stack))
    code = (
        "import sys; from stackscope.cli import main; rc = main(['check', sys.argv[1], '-f', 'json']); "
        "print('TEXTUAL' if 'textual' in sys.modules else 'LEAN', file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(layout)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.stderr.strip().endswith("LEAN"), done.stderr
