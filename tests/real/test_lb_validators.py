"""The gate runs each LB's own validator (stackscope/lb/validate.py) on the file it
judges: against the real haproxy, nginx, apache2, caddy and varnishd binaries, on a good
config and on broken ones (issue 21: `server … chek` passed `lint --lb-config` with
exit 0 while `haproxy -c` said "unknown keyword")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stackscope.lb import validate as validator
from stackscope.lb.validate import ENVIRONMENT, validate
from tests.conftest import ROOT, run_cli
from tests.servers.apache import MODULES

HAPROXY = """\
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend web
    bind 127.0.0.1:1
    default_backend app
backend app
    server a1 127.0.0.1:19001 check
    server a2 127.0.0.1:19002 check
"""
NGINX = """\
events {}
http {
    upstream app {
        server 127.0.0.1:19001;
        server 127.0.0.1:19002;
    }
    server { listen 127.0.0.1:1; location / { proxy_pass http://app; } }
}
"""
APACHE = (
    "ServerName 127.0.0.1\nListen 127.0.0.1:1\n"
    + "".join(
        f"LoadModule {name}_module {MODULES}/mod_{name}.so\n"
        for name in ("mpm_event", "proxy", "proxy_http", "proxy_balancer", "slotmem_shm", "lbmethod_byrequests")
    )
    + '<Proxy "balancer://app">\n'
    + '    BalancerMember "http://127.0.0.1:19001"\n'
    + '    BalancerMember "http://127.0.0.1:19002"\n'
    + "</Proxy>\n"
    + 'ProxyPass "/" "balancer://app/"\n'
)
CADDYFILE = """\
:1 {
\tbind 127.0.0.1
\treverse_proxy 127.0.0.1:19001 127.0.0.1:19002 {
\t\tlb_policy round_robin
\t}
}
"""
VCL = """\
vcl 4.1;
backend a1 { .host = "127.0.0.1"; .port = "19001"; }
sub vcl_recv { set req.backend_hint = a1; }
"""

# kind, file name, good text, (broken text, line the validator names, its words)
CASES = [
    ("haproxy", "haproxy.cfg", HAPROXY, HAPROXY.replace("19001 check", "19001 chek"), 10, "unknown keyword 'chek'"),
    ("nginx", "nginx.conf", NGINX, NGINX.replace("19001;", "19001"), 5, 'invalid parameter "server"'),
    (
        "nginx",
        "nginx.conf",
        NGINX,
        NGINX.replace("    server 127.0.0.1:19002;", "    servr x;"),
        5,
        "unknown directive",
    ),
    (
        "apache",
        "httpd.conf",
        APACHE,
        APACHE.replace('BalancerMember "http://127.0.0.1:19002', 'BalancerMemer "x'),
        11,
        "Invalid command 'BalancerMemer'",
    ),
    (
        "caddy",
        "Caddyfile",
        CADDYFILE,
        CADDYFILE.replace("lb_policy", "lb_polcy"),
        4,
        "unrecognized subdirective lb_polcy",
    ),
    ("varnish", "default.vcl", VCL, VCL.replace('"19001"; }', '"19001" }'), 2, "Expected ';' got '}'"),
]


@pytest.mark.parametrize(
    "kind,name,good,broken,line,words", CASES, ids=[f"{case[0]}-{n}" for n, case in enumerate(CASES)]
)
def test_the_lbs_own_validator_on_good_and_broken_configs(tmp_path, kind, name, good, broken, line, words):
    path = tmp_path / name
    path.write_text(good)
    passed = validate(kind, str(path))
    assert passed.ran and passed.errors == (), passed
    path.write_text(broken)
    refused = validate(kind, str(path))
    assert refused.ran and refused.errors, refused
    assert any(f.where == f"{name}:{line}" and words in f.words for f in refused.errors), refused
    assert os.listdir(tmp_path) == [name]  # it wrote nothing beside the config


def test_an_nginx_conf_d_fragment_is_tested_inside_http(tmp_path):
    path = tmp_path / "upstreams.conf"
    path.write_text("upstream app { server 127.0.0.1:19001; }\n")
    assert validate("nginx", str(path)).errors == ()
    path.write_text("upstream app { server 127.0.0.1:19001 }\n")
    assert validate("nginx", str(path)).errors


def test_a_file_the_config_names_that_cannot_be_opened_here_is_a_note_not_a_refusal(tmp_path):
    path = tmp_path / "nginx.conf"
    path.write_text(NGINX.replace("http {", "http {\n    access_log /nonexistent-dir/access.log;"))
    done = validate("nginx", str(path))
    assert done.errors == () and [f.severity for f in done.findings] == [ENVIRONMENT], done


def test_without_the_binary_the_gate_says_so_and_goes_on(tmp_path, monkeypatch):
    path = tmp_path / "haproxy.cfg"
    path.write_text(HAPROXY)
    monkeypatch.setattr(validator, "find_binary", lambda names: None)
    done = validate("haproxy", str(path))
    assert not done.ran and "haproxy is not installed here" in done.note
    assert validator.report_lines(done) == [
        "haproxy -c: not run (haproxy is not installed here); stackscope's own checks only"
    ]


def test_a_validator_that_hangs_is_stopped_at_its_timeout(tmp_path, monkeypatch):
    path = tmp_path / "haproxy.cfg"
    path.write_text(HAPROXY)
    sleeper = tmp_path / "bin" / "haproxy"
    sleeper.parent.mkdir()
    sleeper.write_text("#!/bin/sh\nexec sleep 60\n")
    sleeper.chmod(0o755)
    monkeypatch.setattr(validator, "find_binary", lambda names: str(sleeper))
    done = validate("haproxy", str(path), timeout=0.5)
    assert not done.ran and "did not finish within 0.5 s" in done.note


def _layout(tmp_path):
    layout = tmp_path / "layout.yaml"
    layout.write_text(
        "name: t\nlayers:\n"
        "  - name: LB\n    role: lb\n    checks:\n"
        '      - {haproxy: "http://127.0.0.1:1/stats;csv", backend: app, name: lb}\n'
        "  - name: App servers\n    role: backend\n    checks:\n"
        '      - {http: "http://127.0.0.1:19001/", name: a1}\n'
        '      - {http: "http://127.0.0.1:19002/", name: a2}\n'
    )
    return layout


def test_lint_fails_a_config_haproxy_refuses_and_prints_the_layouts_ok_line_first(tmp_path):
    """The issue's case: `chek` was ✔ OK, exit 0. Output order: stdout and stderr joined
    (as a terminal or `2>&1` shows them), the layout's ok line comes before the gate."""
    layout = _layout(tmp_path)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(HAPROXY.replace("19001 check", "19001 chek"))
    done = run_cli("lint", str(layout), "--lb-config", str(cfg))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "✖ haproxy.cfg:10: 'server app/a1' : unknown keyword 'chek'" in done.stdout
    assert "✖ CRIT: haproxy -c refuses haproxy.cfg" in done.stdout
    cfg.write_text(HAPROXY)
    assert run_cli("lint", str(layout), "--lb-config", str(cfg)).returncode == 0
    joined = subprocess.run(
        [sys.executable, "-m", "stackscope", "lint", str(layout), "--lb-config", str(cfg), "--pool", "nope"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    lines = joined.stdout.splitlines()
    assert joined.returncode == 3 and lines[0].startswith(f"{layout}: ok"), joined.stdout
    assert "has no backend 'nope'" in lines[-1], joined.stdout
