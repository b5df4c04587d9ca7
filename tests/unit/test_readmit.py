"""Each LB reader's re-admission window (PoolServer.readmit_s): the formulas of
lb/readmit.py, each LB's way of writing a time, and every reader with and without the
settings (the LB's defaults then)."""

from __future__ import annotations

import pytest

from stackscope.lb import (
    apache_conf,
    apache_manager,
    caddy_conf,
    haproxy_cfg,
    haproxy_stats,
    nginx_conf,
    readmit,
    varnish_vcl,
)
from stackscope.lb.pool import Declared, judge_pool


@pytest.mark.parametrize(
    "parse, text, seconds",
    [
        (readmit.haproxy_time, "2000", 2.0),  # HAProxy: bare is ms
        (readmit.haproxy_time, "250ms", 0.25),
        (readmit.haproxy_time, "3s", 3.0),
        (readmit.haproxy_time, "1m", 60.0),
        (readmit.haproxy_time, "3 s", None),
        (readmit.haproxy_time, "3x", None),
        (readmit.vcl_duration, "100ms", 0.1),
        (readmit.vcl_duration, "1.5m", 90.0),
        (readmit.vcl_duration, "5", None),  # VCL needs a unit
        (readmit.nginx_time, "30", 30.0),  # nginx: bare is seconds
        (readmit.nginx_time, "5s", 5.0),
        (readmit.nginx_time, "1m30s", 90.0),
        (readmit.nginx_time, "1q", None),
        (readmit.apache_time, "5", 5.0),  # Apache: bare is seconds
        (readmit.apache_time, "500ms", 0.5),
        (readmit.apache_time, "2mi", 120.0),
        (readmit.apache_time, "1000ms", 1.0),
        (readmit.apache_time, "-1", None),
    ],
)
def test_each_lb_writes_its_times_its_own_way(parse, text, seconds):
    assert parse(text) == seconds


def test_formulas_with_the_lbs_defaults_and_settings():
    # HAProxy defaults: downinter 2 + (2-1) x fastinter 2 + one check timeout (inter 2)
    assert readmit.haproxy() == 6.0
    # protocols.md §3d: downinter 3s, fastinter 250ms, rise 3 (+ inter 1s as the check timeout)
    assert readmit.haproxy(3, inter=1.0, fastinter=0.25, downinter=3.0) == 4.5
    # timeout check: min(timeout connect, inter) + timeout check bounds a check
    assert readmit.haproxy(1, inter=2.0, timeout_check=0.5, timeout_connect=1.0) == 3.5
    assert readmit.haproxy(2, inter=1.0, spread_checks=50) == 4.0  # intervals 2s, up to 50% longer
    assert readmit.varnish() == 17.0  # 2 + 3 x 5
    assert readmit.varnish(interval=1.0, timeout=0.5, threshold=3) == 3.5
    assert readmit.apache_hcheck() == 30.1
    assert readmit.apache_hcheck(1.0, 3) == 3.1
    assert readmit.apache_retry() == 60.0
    assert readmit.caddy(None, None, None) == 0.0  # no checks: never held out
    assert readmit.caddy(2.0, 1.0, None) == 3.0
    assert readmit.caddy(2.0, None, 30.0) == 30.0  # both: the later
    assert readmit.nginx() == 11.0
    assert readmit.nginx(3.0, 0) == 0.0  # max_fails=0: never skipped


def _haproxy(tmp_path, body: str) -> dict[str, float | None]:
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(body)
    config = haproxy_cfg.parse(str(conf))
    return {s.name: s.readmit_s for s in haproxy_cfg.pool_of(config, "be").servers}


def test_haproxy_config_windows_from_server_defaults_and_section_settings(tmp_path):
    windows = _haproxy(
        tmp_path,
        "global\n    spread-checks 10\n"
        "defaults\n    timeout connect 1s\n    default-server inter 1s rise 3\n"
        "backend be\n    timeout check 500ms\n"
        "    server plain 127.0.0.1:1 check inter 3000\n"
        "    server own 127.0.0.1:2 check fastinter 250ms downinter 3s\n"
        "    server nocheck 127.0.0.1:3\n"
        "    server typo 127.0.0.1:4 check inter 3q\n",
    )
    # (downinter + 2 x fastinter) x 1.1 (spread) + min(connect 1s, inter) + timeout check 0.5s
    assert windows == {"plain": 11.4, "own": 5.35, "nocheck": 0.0, "typo": None}


def test_haproxy_config_without_settings_is_haproxys_defaults(tmp_path):
    windows = _haproxy(tmp_path, "backend be\n    server s1 127.0.0.1:1 check\n")
    assert windows == {"s1": 6.0}


CSV = (
    "# pxname,svname,status,check_status,check_rise,check_fall,addr,type\n"
    "be,s1,UP,L7OK,3,3,127.0.0.1:1,2\n"
    "be,s2,DOWN,L4CON,1,1,127.0.0.1:2,2\n"
    "be,s3,no check,,,,127.0.0.1:3,2\n"
    "be,BACKEND,UP,,,,,1\n"
)


def test_haproxy_stats_rise_from_the_csv_with_default_intervals():
    pool = haproxy_stats.pool_from_csv(haproxy_stats.parse_csv(CSV), "be", "stats")
    assert [s.readmit_s for s in pool.servers] == [8.0, 4.0, 0.0]  # 2 + (rise-1) x 2 + 2
    assert "default intervals" in pool.extra["readmit_from"]
    states = haproxy_stats.pool_from_states(
        [haproxy_stats.ServerState("s1", "127.0.0.1:1", 2, 0, 5)], "be", "socket"
    )  # no CSV: no rise known
    assert states.servers[0].readmit_s is None


def test_the_window_is_in_the_member_fact_and_the_evidence():
    pool = haproxy_stats.pool_from_csv(haproxy_stats.parse_csv(CSV), "be", "stats")
    judged = judge_pool(pool, [Declared("127.0.0.1:1", "auth-1", "127.0.0.1:1")])
    assert [s.get("readmit_s") for s in judged.facts["pool"]["servers"]] == [8.0, 4.0, 0.0]
    assert [m.readmit_s for m in judged.facts["pool"].evidence.members] == [8.0, 4.0, 0.0]


def test_varnish_windows_from_named_inline_and_absent_probes():
    vcl = varnish_vcl.load_text(
        {
            "main.vcl": "vcl 4.1;\nimport directors;\n"
            'probe hc { .url = "/h"; .interval = 100ms; .timeout = 1s; .window = 3; .threshold = 2; }\n'
            'probe bare { .url = "/b"; }\n'
            'backend a { .host = "127.0.0.1"; .port = "1"; .probe = hc; }\n'
            'backend b { .host = "127.0.0.1"; .port = "2"; .probe = { .url = "/x"; .interval = 2s; }; }\n'
            'backend c { .host = "127.0.0.1"; .port = "3"; .probe = bare; }\n'
            'backend d { .host = "127.0.0.1"; .port = "4"; }\n'
            'backend e { .host = "127.0.0.1"; .port = "5"; .probe = { .interval = 5; }; }\n'
            "sub vcl_init { new p = directors.round_robin();\n"
            + "".join(f"  p.add_backend({n});\n" for n in "abcde")
            + "}\n"
        }
    )
    pool = varnish_vcl.pool_of(vcl, "p")
    # a: 1 + 2 x 0.1; b: 2 + 3 x 2; c: Varnish's defaults 2 + 3 x 5; d: no probe; e: 5 is no VCL duration
    assert [s.readmit_s for s in pool.servers] == [1.2, 8.0, 17.0, 0.0, None]


MANAGER = apache_manager.parse_page(
    "<h3>LoadBalancer Status for <a>balancer://b</a> [p]</h3>"
    "<table><tr><th>Worker URL</th><th>Route</th><th>Status</th><th>HC Method</th><th>HC Interval</th>"
    "<th>Passes</th></tr>"
    "<tr><td>http://127.0.0.1:1</td><td>a1</td><td>Init HcFl</td><td>GET</td><td>1000ms</td><td>3 (1)</td></tr>"
    "<tr><td>http://127.0.0.1:2</td><td>a2</td><td>Init Err</td><td>NONE</td><td>30000ms</td><td>1 (0)</td></tr>"
    "<tr><td>http://127.0.0.1:3</td><td>a3</td><td>Init Ok</td><td>GET</td><td>soon</td><td>1 (0)</td></tr>"
    "</table>"
    "<h3>LoadBalancer Status for <a>balancer://nohc</a> [q]</h3>"
    "<table><tr><th>Worker URL</th><th>Route</th><th>Status</th></tr>"
    "<tr><td>http://127.0.0.1:4</td><td>a4</td><td>Init Err</td></tr></table>"
)


def test_apache_manager_windows_from_the_hc_columns_or_the_default_retry():
    with_hc, without = (apache_manager.pool_of(b, "page") for b in MANAGER)
    assert [s.readmit_s for s in with_hc.servers] == [3.1, 60.0, None]
    assert [s.readmit_s for s in without.servers] == [60.0]  # no hcheck loaded: retry's default
    assert "retry" in with_hc.extra["readmit_from"]


def test_apache_config_windows_from_hcheck_or_retry(tmp_path):
    conf = tmp_path / "httpd.conf"
    conf.write_text(
        "<Proxy balancer://b>\n"
        "  BalancerMember http://127.0.0.1:1 route=a1 hcmethod=GET hcinterval=2 hcpasses=2\n"
        "  BalancerMember http://127.0.0.1:2 route=a2 hcmethod=HEAD\n"
        "  BalancerMember http://127.0.0.1:3 route=a3 retry=5\n"
        "  BalancerMember http://127.0.0.1:4 route=a4\n"
        "  BalancerMember http://127.0.0.1:5 route=a5 hcmethod=NONE retry=0\n"
        "  BalancerMember http://127.0.0.1:6 route=a6 hcmethod=GET hcinterval=500ms\n"
        "</Proxy>\n"
    )
    config = apache_conf.load(str(conf))
    pool = apache_conf.pool_of(apache_conf.balancers(config)["b"], {}, config)
    assert [s.readmit_s for s in pool.servers] == [4.1, 30.1, 5.0, 60.0, 0.0, 0.6]


def _caddy(checks: dict | None) -> list[float | None]:
    handler: dict = {"handler": "reverse_proxy", "upstreams": [{"dial": "127.0.0.1:1"}]}
    if checks is not None:
        handler["health_checks"] = checks
    config = {"apps": {"http": {"servers": {"s": {"listen": [":1"], "routes": [{"handle": [handler]}]}}}}}
    (proxy,) = caddy_conf.proxies(config)
    return [s.readmit_s for s in caddy_conf.pool_of(proxy, {}, source="test").servers]


@pytest.mark.parametrize(
    "checks, window",
    [
        (None, 0.0),
        ({"active": {"uri": "/h"}}, 35.0),  # Caddy's defaults: interval 30s + timeout 5s
        ({"active": {"uri": "/h", "interval": "2s", "timeout": 1_000_000_000}}, 3.0),
        ({"passive": {"fail_duration": "3s"}}, 3.0),
        ({"passive": {"max_fails": 2}}, 0.0),  # no fail_duration: passive checks are off
        ({"active": {"uri": "/h", "interval": "2s", "timeout": "1s"}, "passive": {"fail_duration": "10s"}}, 10.0),
    ],
)
def test_caddy_windows_from_the_handlers_health_checks(checks, window):
    assert _caddy(checks) == [window]


def test_nginx_windows_from_fail_timeout_and_max_fails(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "http { upstream u {\n"
        "  server 127.0.0.1:1;\n"
        "  server 127.0.0.1:2 fail_timeout=3s;\n"
        "  server 127.0.0.1:3 max_fails=0 fail_timeout=3s;\n"
        "  server 127.0.0.1:4 fail_timeout=1m30s;\n"
        "  server 127.0.0.1:5 fail_timeout=3q;\n"
        "} }\n"
    )
    upstream = nginx_conf.upstreams(nginx_conf.load(str(conf)))["u"]
    assert [s.readmit_s for s in nginx_conf.pool_of(upstream).servers] == [11.0, 4.0, 0.0, 91.0, None]
