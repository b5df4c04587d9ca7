"""Load balancer checks against real HAProxy 2.6 and nginx 1.22 on loopback.

The stack: nginx serves three auth backends (consecutive ports) and two decoys (another
service's servers, answering 200 too); several HAProxy instances put different pools in
front of them — healthy, misrouted to the decoys (the 2023-12-07 incident), pointing at
dead ports, with a wrong health-check path — and nginx itself is an LB with upstreams.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from stackscope.engine import Engine
from stackscope.lb import haproxy_cfg
from stackscope.model import ErrorKind, Status
from tests.conftest import run_cli, write_layout
from tests.servers.base import free_port, free_port_range, require_binary, wait_until
from tests.servers.haproxy import Haproxy
from tests.servers.nginx import Nginx
from tests.servers.pyservers import PyServers, garbage, hang_up, read_request


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """nginx: auth-1..3 on consecutive ports, decoy-1..2 on consecutive ports, an HTML
    page at a ;csv URL, stub_status, and an nginx LB with upstreams."""
    b = free_port_range(3)
    d = free_port_range(2)
    ports = {"b": [b, b + 1, b + 2], "d": [d, d + 1], "html": free_port(), "nginx_lb": free_port()}
    servers = "".join(
        f"""
    server {{
        listen 127.0.0.1:{port};
        location = /health {{ add_header X-Served-By auth-{i + 1} always; return 200 "ok\\n"; }}
        location = /wrong {{ return 404; }}
    }}"""
        for i, port in enumerate(ports["b"])
    )
    servers += "".join(
        f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{ add_header X-Served-By decoy-{i + 1} always; return 200 "ok\\n"; }}
    }}"""
        for i, port in enumerate(ports["d"])
    )
    block = f"""
    # the LB role of nginx: which servers each pool holds
    upstream auth_servers {{
        server 127.0.0.1:{b} weight=2 max_fails=3 fail_timeout=5s;
        server 127.0.0.1:{b + 1};
        server '127.0.0.1:{b + 2}';   # quoted, with a comment
    }}
    upstream billing_servers {{ server 127.0.0.1:{d}; server 127.0.0.1:{d + 1} backup; }}
    {servers}
    server {{
        listen 127.0.0.1:{ports["html"]};
        location / {{ default_type text/html; return 200 "<html><body>stats</body></html>"; }}
        location = /nginx_status {{ stub_status; }}
    }}
    server {{
        listen 127.0.0.1:{ports["nginx_lb"]};
        server_name auth.stackscope.test;
        location / {{ proxy_pass http://auth_servers; }}
        location /billing {{ proxy_pass http://billing_servers; }}
        location /var {{ set $x "a#b;{{}}"; return 200 $x; }}
    }}
    """
    workdir = tmp_path_factory.mktemp("lb-nginx")
    nginx = Nginx(workdir, block, ports["b"] + ports["d"] + [ports["html"], ports["nginx_lb"]]).start()
    ports["conf"] = str(nginx.conf)
    ports["nginx"] = nginx
    servers = PyServers()
    ports["db"] = servers.tcp(hang_up)
    yield ports
    servers.close()
    nginx.stop()


def haproxy_body(
    web: dict,
    servers: list[int],
    *,
    check_path: str = "/health",
    stats_extra: str = "",
    legends: bool = True,
    extra_servers: str = "",
) -> tuple[str, dict[str, int]]:
    ports = {"frontend": free_port(), "stats": free_port()}
    lines = "\n".join(
        f"    server s{i + 1} 127.0.0.1:{port} check inter 100ms fall 1 rise 1" for i, port in enumerate(servers)
    )
    body = f"""
frontend stats
    bind 127.0.0.1:{ports["stats"]}
    stats enable
    stats uri /stats
    {"stats show-legends" if legends else ""}
    {stats_extra}
frontend web
    bind 127.0.0.1:{ports["frontend"]}
    default_backend auth_servers
backend auth_servers
    option httpchk GET {check_path}
{lines}
{extra_servers}
"""
    return body, ports


def start_haproxy(tmp_path_factory, web, name: str, servers: list[int], expect: dict[str, str], **kwargs):
    body, ports = haproxy_body(web, servers, **kwargs)
    proxy = Haproxy(tmp_path_factory.mktemp(f"haproxy-{name}"), body, list(ports.values())).start()
    # health checks every 100 ms with rise/fall 1: poll until they agree with the scenario
    seen: list[dict[str, str]] = [{}]

    def settled() -> bool:
        try:
            seen[0] = proxy.server_states("auth_servers")
        except OSError:  # the admin socket may come up after the TCP ports: not yet
            return False
        return seen[0] == expect

    try:
        wait_until(settled, 10, f"haproxy {name} checks settle")
    except Exception as exc:  # say what the checks said, for a failure that is hard to reproduce
        proxy.stop()
        raise AssertionError(
            f"{exc}: expected {expect}, last seen {seen[0]}; ports {ports}, servers {servers}"
        ) from None
    proxy.ports_by_name = ports
    return proxy


@pytest.fixture(scope="module")
def haproxies(tmp_path_factory, web):
    b, d = web["b"], web["d"]
    dead = [free_port(), free_port()]
    up3 = {"s1": "UP", "s2": "UP", "s3": "UP"}
    instances = {
        "healthy": start_haproxy(tmp_path_factory, web, "healthy", b, up3),
        "misroute": start_haproxy(tmp_path_factory, web, "misroute", d, {"s1": "UP", "s2": "UP"}),
        "dead": start_haproxy(tmp_path_factory, web, "dead", dead, {"s1": "DOWN", "s2": "DOWN"}),
        "badcheck": start_haproxy(
            tmp_path_factory, web, "badcheck", b, {"s1": "DOWN", "s2": "DOWN", "s3": "DOWN"}, check_path="/wrong"
        ),
        "maint": start_haproxy(tmp_path_factory, web, "maint", b, up3),
        "auth": start_haproxy(tmp_path_factory, web, "auth", b, up3, stats_extra="stats auth monitor:Str0ng-stats-pw"),
        "nolegends": start_haproxy(tmp_path_factory, web, "nolegends", b, up3, legends=False),
        "allmaint": start_haproxy(tmp_path_factory, web, "allmaint", b, up3),
        "backup": start_haproxy(
            tmp_path_factory,
            web,
            "backup",
            b,
            {**up3, "spare": "UP"},
            extra_servers=f"    server spare 127.0.0.1:{d[0]} check backup inter 100ms fall 1 rise 1",
        ),
    }
    instances["maint"].admin("set server auth_servers/s2 state maint")
    wait_until(lambda: instances["maint"].server_states("auth_servers")["s2"] == "MAINT", 5, "s2 in MAINT")
    for name in ("s1", "s2", "s3"):
        instances["allmaint"].admin(f"set server auth_servers/{name} state maint")
    wait_until(
        lambda: set(instances["allmaint"].server_states("auth_servers").values()) == {"MAINT"},
        5,
        "every server in MAINT",
    )
    yield instances
    for proxy in instances.values():
        proxy.stop()


def layout_yaml(web, *, lb_checks: str, backends: list[int] | None = None) -> str:
    backends = backends or web["b"]
    rows = "\n".join(
        f'      - {{http: "http://127.0.0.1:{port}/health", name: auth-{i + 1}, identity_header: X-Served-By}}'
        for i, port in enumerate(backends)
    )
    return f"""\
name: lb-test
interval: 3s
timeout: 2s
layers:
  - name: Load balancer
    role: lb
    checks:
{lb_checks}
  - name: Auth backends
    role: backend
    checks:
{rows}
  - name: Database
    role: db
    checks:
      - tcp: 127.0.0.1:{web["db"]}
"""


def lb_checks(proxy, *, samples: int = 6, source: str | None = None, extra: str = "") -> str:
    ports = proxy.ports_by_name
    source = source or f"http://127.0.0.1:{ports['stats']}/stats;csv"
    return (
        f"      - http: http://127.0.0.1:{ports['frontend']}/health\n"
        f"        name: frontend\n        identity_header: X-Served-By\n        samples: {samples}\n"
        f"      - haproxy: {source}\n        name: pool\n        backend: auth_servers\n{extra}"
    )


async def run_layout(text: str, environ: dict | None = None):
    from stackscope.diagnosis import assess
    from stackscope.kinds import ParseContext
    from stackscope.layout import parse_layout

    layout = parse_layout(text, "<test>", ParseContext(environ=environ or {}, require_env=environ is not None))
    engine = Engine(layout, environ=environ or {})
    engine.confirm_retries = 0  # one round, one probe a check: what each sends is counted
    try:
        return assess(await engine.run_round())
    finally:
        await engine.aclose()


def pool_result(diagnosis):
    return next(c for layer in diagnosis.layers for c in layer.checks if c.check.type in ("haproxy", "nginx")).result


# ----------------------------------------------------------------------------- haproxy


async def test_healthy_pool_reads_the_same_from_csv_and_every_socket(web, haproxies):
    proxy = haproxies["healthy"]
    sources = [
        f"http://127.0.0.1:{proxy.ports_by_name['stats']}/stats;csv",
        f"unix:{proxy.admin_socket}",
        f"tcp:127.0.0.1:{proxy.operator_port}",
        f"tcp:127.0.0.1:{proxy.user_port}",
    ]
    seen = []
    for source in sources:
        diagnosis = await run_layout(layout_yaml(web, lb_checks=lb_checks(proxy, source=source)))
        result = pool_result(diagnosis)
        assert result.status is Status.OK, (source, result.detail)
        assert result.key_fact == "pool 3/3 UP"
        assert result.detail.startswith("pool auth_servers: 3/3 up, all declared backends present")
        pool = result.facts["pool"]
        seen.append(sorted((s["name"], s["address"], s["state"], s["declared"]) for s in pool["servers"]))
        assert pool["missing"] == [] and pool["unexpected"] == []
        assert diagnosis.verdict is None
    assert all(rows == seen[0] for rows in seen)
    assert [row[1] for row in seen[0]] == [f"127.0.0.1:{port}" for port in web["b"]]


async def test_readmit_windows_from_the_csv_and_from_the_config_haproxy_runs(web, haproxies):
    """The live check takes `rise` (1 here) from the CSV and, reading no haproxy.cfg,
    HAProxy's default intervals: downinter 2s + one check timeout (inter 2s). The gate
    reads the config the server runs: inter 100ms rise 1 -> 0.1s + a 0.1s check timeout."""
    proxy = haproxies["healthy"]
    assert "check inter 100ms fall 1 rise 1" in proxy.conf.read_text()
    result = pool_result(await run_layout(layout_yaml(web, lb_checks=lb_checks(proxy, samples=1))))
    assert [m.readmit_s for m in result.evidence.members] == [4.0] * 3
    assert "default intervals" in result.facts["pool"]["readmit_from"]
    config = haproxy_cfg.parse(str(proxy.conf))
    assert [s.readmit_s for s in haproxy_cfg.pool_of(config, "auth_servers").servers] == [0.2] * 3


def test_misroute_is_named_in_one_round_with_backends_ruled_out(web, haproxies, tmp_path):
    """The 2023-12-07 incident: the pool holds another service's servers; they answer 200,
    so the frontend looks fine, and the real auth servers are healthy."""
    proxy = haproxies["misroute"]
    layout = write_layout(tmp_path, layout_yaml(web, lb_checks=lb_checks(proxy)))
    done = run_cli("check", str(layout), "--format", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    verdict = report["verdict"]
    b, d = web["b"], web["d"]
    assert verdict["layer"] == "Load balancer" and verdict["status"] == "crit"
    assert verdict["summary"] == (
        f"Load balancer: pool auth_servers routes to 127.0.0.1:{d[0]}, 127.0.0.1:{d[1]} "
        f"— none is a declared backend; declared 127.0.0.1:{b[0]}-{b[2]} missing"
    )
    assert "Auth backends: 3/3 answer 200 directly" in verdict["ruled_out"]
    assert any(item.startswith("Database:") for item in verdict["ruled_out"])
    # the frontend answered 200 (wrong servers answer too), and the sampling caught them
    frontend = report["layers"][0]["checks"][0]
    assert frontend["status"] == "ok" and frontend["facts"]["status_code"] == 200
    assert set(frontend["facts"]["identities"]) == {"decoy-1", "decoy-2"}
    assert any("no declared backend answers as them" in item for item in verdict["evidence"])


async def test_pool_of_dead_ports_is_drift(web, haproxies):
    diagnosis = await run_layout(layout_yaml(web, lb_checks=lb_checks(haproxies["dead"])))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.POOL
    b = web["b"]
    holds = ", ".join(sorted(s["address"] for s in result.facts["pool"]["servers"]))
    assert result.detail == (
        f"none of the declared backends (127.0.0.1:{b[0]}-{b[2]}) is in pool auth_servers; "
        f"it holds {holds} (none taking traffic)"
    )
    assert diagnosis.verdict.layer == "Load balancer"
    frontend = diagnosis.layers[0].checks[0].result
    assert frontend.facts["status_code"] == 503


async def test_wrong_health_check_path_is_called_out(web, haproxies):
    diagnosis = await run_layout(layout_yaml(web, lb_checks=lb_checks(haproxies["badcheck"])))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.MEMBERS_DOWN
    assert "L7STS 404" in result.detail
    verdict = diagnosis.verdict
    assert verdict.layer == "Load balancer"
    assert verdict.summary.startswith(
        "Load balancer: health check fails on the LB but every backend answers 200 "
        "directly: the LB's health check is wrong (the LB's check says: L7STS 404"
    )
    assert "Auth backends: 3/3 answer 200 directly" in verdict.ruled_out


async def test_one_server_in_maintenance_is_a_warning(web, haproxies):
    diagnosis = await run_layout(layout_yaml(web, lb_checks=lb_checks(haproxies["maint"], samples=1)))
    result = pool_result(diagnosis)
    assert result.status is Status.WARN
    assert result.detail == "pool auth_servers: 2/3 up — s2 MAINT"
    assert result.key_fact == "pool 2/3 UP"
    assert diagnosis.verdict.layer == "Load balancer" and diagnosis.verdict.status is Status.WARN


async def test_every_declared_backend_in_maintenance_is_not_called_a_health_check_fault(web, haproxies):
    diagnosis = await run_layout(layout_yaml(web, lb_checks=lb_checks(haproxies["allmaint"], samples=2)))
    verdict = diagnosis.verdict
    assert verdict.layer == "Load balancer" and verdict.status is Status.CRIT
    assert verdict.summary == (
        "Load balancer: every declared backend is in maintenance (MAINT) on the LB while each answers 200 directly"
    )
    assert not any("health check is wrong" in item for item in verdict.evidence)
    # the frontend's 503 (HAProxy's own page, no identity header) convicts no server
    assert not any("without X-Served-By" in item for item in verdict.evidence)


async def test_undeclared_backup_is_a_warning_live_and_in_lint(web, haproxies, tmp_path):
    proxy = haproxies["backup"]
    d = web["d"]
    words = f"127.0.0.1:{d[0]} (spare, backup) is not a declared backend — it takes traffic when the primaries fail"
    for source in (f"http://127.0.0.1:{proxy.ports_by_name['stats']}/stats;csv", f"unix:{proxy.admin_socket}"):
        result = pool_result(await run_layout(layout_yaml(web, lb_checks=lb_checks(proxy, samples=1, source=source))))
        assert result.status is Status.WARN and words in result.detail, (source, result.detail)
    checks = "      - haproxy: unix:/nonexistent.sock\n        backend: auth_servers\n"
    layout = write_layout(tmp_path, layout_yaml(web, lb_checks=checks))
    lint = run_cli("lint", str(layout), "--lb-config", str(proxy.conf))
    assert lint.returncode == 1 and words in lint.stdout, lint.stdout + lint.stderr


async def test_stats_auth_variable_empty_or_without_a_colon(web, haproxies):
    proxy = haproxies["auth"]
    text = layout_yaml(web, lb_checks=lb_checks(proxy, samples=1, extra="        auth_env: STATS_AUTH\n"))
    for value, words in (("", "STATS_AUTH is empty"), ("monitor", "STATS_AUTH is not user:password")):
        result = pool_result(await run_layout(text, environ={"STATS_AUTH": value}))
        assert result.status is Status.UNKNOWN and result.error_kind is ErrorKind.AUTH
        assert words in result.detail and "Illegal header" not in result.detail
    wrong = pool_result(await run_layout(text, environ={"STATS_AUTH": "monitor:wrong"}))
    assert "asks for a login (401): check the credentials in STATS_AUTH" in wrong.detail


async def test_stats_behind_basic_auth(web, haproxies, tmp_path):
    proxy = haproxies["auth"]
    without = await run_layout(layout_yaml(web, lb_checks=lb_checks(proxy, samples=1)))
    refused = pool_result(without)
    assert refused.status is Status.UNKNOWN and refused.error_kind is ErrorKind.AUTH
    assert "asks for a login (401)" in refused.detail and "auth_env" in refused.detail
    text = layout_yaml(web, lb_checks=lb_checks(proxy, samples=1, extra="        auth_env: STATS_AUTH\n"))
    secret = "monitor:Str0ng-stats-pw"
    accepted = pool_result(await run_layout(text, environ={"STATS_AUTH": secret}))
    assert accepted.status is Status.OK, accepted.detail
    layout = write_layout(tmp_path, text)
    for fmt in ("text", "json", "junit", "nagios"):
        done = run_cli("check", str(layout), "--format", fmt, env={"STATS_AUTH": secret})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Str0ng-stats-pw" not in done.stdout + done.stderr


async def test_csv_without_show_legends_is_unknown_with_the_fix(web, haproxies):
    diagnosis = await run_layout(layout_yaml(web, lb_checks=lb_checks(haproxies["nolegends"], samples=1)))
    result = pool_result(diagnosis)
    assert result.status is Status.UNKNOWN
    assert "hides server addresses" in result.detail
    assert "stats show-legends" in result.detail
    # the same instance read over its socket has the addresses
    socket_source = f"unix:{haproxies['nolegends'].admin_socket}"
    via_socket = pool_result(
        await run_layout(layout_yaml(web, lb_checks=lb_checks(haproxies["nolegends"], samples=1, source=socket_source)))
    )
    assert via_socket.status is Status.OK


@pytest.mark.parametrize("case", ["refused", "html", "garbage", "no_backend", "no_socket", "silent"])
async def test_unreadable_pool_is_unknown_with_an_explanation(web, haproxies, pyservers, case):
    proxy = haproxies["healthy"]
    source = {
        "refused": f"http://127.0.0.1:{free_port()}/stats;csv",
        "html": f"http://127.0.0.1:{web['html']}/stats;csv",
        "garbage": f"tcp:127.0.0.1:{pyservers.tcp(garbage)}",
        "no_backend": f"unix:{proxy.admin_socket}",
        "no_socket": f"unix:{proxy.workdir}/nope.sock",
        "silent": f"tcp:127.0.0.1:{pyservers.tcp(_silent_reader)}",
    }[case]
    backend = "nope" if case == "no_backend" else "auth_servers"
    checks = f"      - haproxy: {source}\n        name: pool\n        backend: {backend}\n        timeout: 1s\n"
    result = pool_result(await run_layout(layout_yaml(web, lb_checks=checks)))
    assert result.status is Status.UNKNOWN, result.detail
    expected = {
        "refused": "refused the connection",
        "html": "an HTML page instead of a stats CSV",
        "garbage": "cannot read the pool",
        "no_backend": "no backend named 'nope'",
        "no_socket": "no socket at",
        "silent": "did not answer within 1s",
    }[case]
    assert expected in result.detail


STATS_HEADER = b"# pxname,svname,status,weight,bck,check_status,check_code,last_chk,type,addr,\n"
STATS_ROWS = [b"auth_servers,auth%d,UP,1,0,L7OK,200,,2,127.0.0.1:%d,\n" % (i, 19000 + i) for i in (1, 2, 3)]


def _stats_until_close(body: bytes):
    """A stats page of HTTP/1.1 with no Content-Length and no chunks: the body ends where
    the connection does, so HTTP cannot tell a CSV cut short from a whole one."""

    async def handle(reader, writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()

    return handle


@pytest.mark.parametrize(
    "body",
    [STATS_HEADER + b"".join(STATS_ROWS[:2]), STATS_HEADER + b"".join(STATS_ROWS[:2]) + STATS_ROWS[2][:17]],
    ids=["at a line", "inside a line"],
)
async def test_a_stats_csv_cut_short_is_unknown_not_a_smaller_pool(pyservers, body):
    from tests.probe_helpers import assert_unreadable, probe

    port = pyservers.tcp(_stats_until_close(body))
    result = await probe({"haproxy": f"http://127.0.0.1:{port}/stats;csv", "backend": "auth_servers"})
    assert_unreadable(result, "cannot read the pool")
    assert "the stats CSV ends before the BACKEND row of 'auth_servers'" in result.detail, result.detail


async def test_the_whole_stats_csv_of_the_cut_cases_is_a_pool_of_three(pyservers):
    from tests.probe_helpers import probe

    whole = STATS_HEADER + b"".join(STATS_ROWS) + b"auth_servers,BACKEND,UP,3,0,,,,1,,\n"
    port = pyservers.tcp(_stats_until_close(whole))
    result = await probe({"haproxy": f"http://127.0.0.1:{port}/stats;csv", "backend": "auth_servers"})
    assert len(result.facts["pool"]["servers"]) == 3, result.detail


async def _garbage_after_command(reader, writer):
    """Reads the Runtime API command, answers control bytes and escape sequences, hangs up."""
    import asyncio

    await asyncio.wait_for(reader.readline(), 10)
    writer.write(
        b"\x04z\x07\x1b]0;PWN\x07\x1b[2J\x00\xff\x9b31m\n"
        + bytes(range(256))
        + b"\n\n"
        + b"# be_id be_name srv_id srv_name srv_addr\n1 b 1 \x1b[31ms1 x\n"
    )
    await writer.drain()


async def test_garbage_runtime_api_socket_detail_has_no_control_characters(pyservers, tmp_path):
    """The detail (shown raw in JSON) quoted the socket's bytes as they came."""
    from tests.probe_helpers import probe

    path = pyservers.unix(_garbage_after_command, str(tmp_path / "admin.sock"))
    result = await probe({"haproxy": f"unix:{path}", "backend": "b", "timeout": "2s"})
    assert result.status is Status.UNKNOWN and result.error_kind is ErrorKind.PROTOCOL, result.detail
    assert "cannot read the pool" in result.detail
    assert not any(ord(ch) < 0x20 and ch not in "\n\t" for ch in result.detail), repr(result.detail)
    assert not any(0x7F <= ord(ch) < 0xA0 for ch in result.detail), repr(result.detail)
    shown = json.dumps(result.detail, ensure_ascii=False)
    assert "\\u001b" not in shown and "\\u0007" not in shown, shown


async def _silent_reader(reader, writer):
    """Reads the command and never answers (a hung Runtime API)."""
    import asyncio

    await asyncio.wait_for(reader.read(), 30)


# ----------------------------------------------------------------------------- nginx


def nginx_check(conf: str, upstream: str = "auth_servers", extra: str = "") -> str:
    return f"      - nginx: {conf}\n        name: pool\n        upstream: {upstream}\n{extra}"


async def test_nginx_pool_matches_the_declared_backends(web):
    status_url = f"        status_url: http://127.0.0.1:{web['html']}/nginx_status\n"
    diagnosis = await run_layout(layout_yaml(web, lb_checks=nginx_check(web["conf"], extra=status_url)))
    result = pool_result(diagnosis)
    assert result.status is Status.OK, result.detail
    pool = result.facts["pool"]
    assert [s["address"] for s in pool["servers"]] == [f"127.0.0.1:{p}" for p in web["b"]]
    assert pool["servers"][0]["weight"] == 2
    assert pool["servers"][0]["check"] == "max_fails=3 fail_timeout=5s"
    # fail_timeout 5s on the first server, nginx's default 10s on the others; + 1s (whole-second clock)
    assert [m.readmit_s for m in result.evidence.members] == [6.0, 11.0, 11.0]
    assert [s["readmit_s"] for s in pool["servers"]] == [6.0, 11.0, 11.0]
    assert any(
        f"server 127.0.0.1:{web['nginx_lb']} (auth.stackscope.test) location /" in use for use in pool["used_by"]
    )
    assert result.facts["stub_status"]["accepts"] >= 1 and result.facts["stub_status"]["active"] >= 1
    assert "active connections" not in result.detail  # stub_status numbers stay in the facts


async def test_nginx_upstream_drift(web):
    """billing_servers holds the decoys: declared auth backends are all missing."""
    result = pool_result(await run_layout(layout_yaml(web, lb_checks=nginx_check(web["conf"], "billing_servers"))))
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.POOL
    d, b = web["d"], web["b"]
    assert result.detail == (
        f"pool billing_servers routes to 127.0.0.1:{d[0]} — none is a declared backend; "
        f"declared 127.0.0.1:{b[0]}-{b[2]} missing"
    )
    states = {s["address"]: s["state"] for s in result.facts["pool"]["servers"]}
    assert states[f"127.0.0.1:{d[1]}"] == "backup"


async def test_nginx_dash_T_output_gives_the_same_pool(web, tmp_path):
    nginx = web["nginx"]
    dump = subprocess.run(
        [nginx.binary, "-T", "-p", str(nginx.workdir), "-c", web["conf"], "-e", str(nginx.workdir / "error.log")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    saved = tmp_path / "nginx-T.txt"
    saved.write_text(dump)
    from_file = pool_result(await run_layout(layout_yaml(web, lb_checks=nginx_check(web["conf"]))))
    from_dump = pool_result(await run_layout(layout_yaml(web, lb_checks=nginx_check(str(saved)))))
    assert from_dump.status is Status.OK, from_dump.detail
    assert from_dump.facts["pool"]["servers"] == from_file.facts["pool"]["servers"]


async def test_nginx_config_with_syntax_error(web, tmp_path):
    broken = tmp_path / "broken.conf"
    broken.write_text("http {\n  upstream auth_servers {\n    server 127.0.0.1:1\n  }\n}\n")
    result = pool_result(await run_layout(layout_yaml(web, lb_checks=nginx_check(str(broken)))))
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.CONFIG
    assert f'{broken}:4: unexpected "}}"' in result.detail
    assert "nginx would refuse to load it" in result.detail


async def test_nginx_unknown_upstream_and_missing_file(web, tmp_path):
    typo = pool_result(await run_layout(layout_yaml(web, lb_checks=nginx_check(web["conf"], "auth_server"))))
    assert typo.status is Status.CRIT and "did you mean 'auth_servers'?" in typo.detail
    missing = pool_result(await run_layout(layout_yaml(web, lb_checks=nginx_check(str(tmp_path / "nope.conf")))))
    assert missing.status is Status.UNKNOWN and "no such file" in missing.detail


async def test_nginx_stopped_is_crit_through_stub_status(tmp_path_factory, web):
    port = free_port()
    block = f"""
    upstream auth_servers {{ server 127.0.0.1:{web["b"][0]}; server 127.0.0.1:{web["b"][1]};
                             server 127.0.0.1:{web["b"][2]}; }}
    server {{ listen 127.0.0.1:{port}; location = /s {{ stub_status; }} location / {{ proxy_pass http://auth_servers; }} }}
    """
    nginx = Nginx(tmp_path_factory.mktemp("nginx-stop"), block, [port]).start()
    checks = nginx_check(str(nginx.conf), extra=f"        status_url: http://127.0.0.1:{port}/s\n")
    try:
        running = pool_result(await run_layout(layout_yaml(web, lb_checks=checks)))
        assert running.status is Status.OK, running.detail
    finally:
        nginx.stop()
    stopped = pool_result(await run_layout(layout_yaml(web, lb_checks=checks)))
    assert stopped.status is Status.CRIT and stopped.error_kind is ErrorKind.REFUSED
    assert stopped.detail.startswith("nginx is not answering: stub_status 127.0.0.1")


# ----------------------------------------------------------------------------- the pre-deploy gate


def test_lint_gate_on_the_configs_the_servers_run(web, haproxies, tmp_path):
    """`lint --lb-config` on the very haproxy.cfg and nginx.conf the running servers
    loaded (so they are valid configs), without probing anything."""
    checks = "      - haproxy: unix:/nonexistent.sock\n        backend: auth_servers\n"
    layout = write_layout(tmp_path, layout_yaml(web, lb_checks=checks))
    good = run_cli("lint", str(layout), "--lb-config", str(haproxies["healthy"].conf))
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("  = 127.0.0.1:") == 3
    # a config file says nothing of health: its members are enabled, never "up"
    assert "✔ OK: pool auth_servers: 3/3 enabled, all declared backends present" in good.stdout
    drifted = run_cli("lint", str(layout), "--lb-config", str(haproxies["misroute"].conf))
    assert drifted.returncode == 2
    d, b = web["d"], web["b"]
    assert f"  + 127.0.0.1:{d[0]}" in drifted.stdout and f"  - 127.0.0.1:{b[0]}" in drifted.stdout
    assert (
        f"✖ CRIT: pool auth_servers routes to 127.0.0.1:{d[0]}, 127.0.0.1:{d[1]} — none is a declared backend"
        in drifted.stdout
    )
    nginx_ok = run_cli("lint", str(layout), "--lb-config", web["conf"], "--pool", "auth_servers")
    assert nginx_ok.returncode == 0, nginx_ok.stdout + nginx_ok.stderr
    nginx_drift = run_cli("lint", str(layout), "--lb-config", web["conf"], "--pool", "billing_servers")
    assert nginx_drift.returncode == 2
    unknown = run_cli("lint", str(layout), "--lb-config", web["conf"], "--pool", "nope")
    assert unknown.returncode == 3 and "has no upstream 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def lint_layout(web, tmp_path, kind: str = "haproxy"):
    check = (
        "      - haproxy: unix:/nonexistent.sock\n        backend: auth_servers\n"
        if kind == "haproxy"
        else "      - nginx: /nonexistent.conf\n        upstream: auth_servers\n"
    )
    return write_layout(tmp_path, layout_yaml(web, lb_checks=check))


@pytest.mark.parametrize("case", ["template", "default-server", "no port", "offset", "env", "duplicate", "unrouted"])
def test_lint_agrees_with_haproxy_c(web, tmp_path, case):
    """Configs HAProxy itself accepts are judged, not refused; the one it refuses is an error."""
    b, d = web["b"], web["d"]
    third = {"no port": "127.0.0.1", "offset": "127.0.0.1:+1", "env": "${AUTH3}:%d" % b[2]}.get(
        case, f"127.0.0.1:{b[2]}"
    )
    backend = (
        f"backend auth_servers\n    server s1 127.0.0.1:{b[0]} check\n    server s2 127.0.0.1:{b[1]} check\n"
        f"    server s3 {third} check" + (f" port {b[2]}" if case in ("no port", "offset") else "") + "\n"
    )
    if case == "template":
        backend += f"    server-template srv 1-2 127.0.0.1:{d[0]} check\n"
    if case == "default-server":
        backend = (
            backend.replace("check\n", "check\n", 1)
            .replace("backend auth_servers\n", "backend auth_servers\n    default-server disabled\n")
            .replace(f"127.0.0.1:{b[0]} check", f"127.0.0.1:{b[0]} check enabled")
            .replace(f"127.0.0.1:{b[1]} check", f"127.0.0.1:{b[1]} check enabled")
        )
    if case == "duplicate":
        backend += f"backend auth_servers\n    server evil 127.0.0.1:{d[0]}\n"
    target = "other" if case == "unrouted" else "auth_servers"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
        f"frontend web\n    bind 127.0.0.1:{free_port()}\n    default_backend {target}\n"
        f"backend other\n    server o1 127.0.0.1:{d[1]}\n" + backend
    )
    env = {"AUTH3": "127.0.0.1"}
    haproxy = subprocess.run(
        [require_binary("haproxy", "/usr/sbin/haproxy"), "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    lint = run_cli("lint", str(lint_layout(web, tmp_path)), "--lb-config", str(cfg), env=env)
    out = lint.stdout + lint.stderr
    assert "Traceback" not in out
    if case == "duplicate":
        assert haproxy.returncode != 0
        # haproxy -c refuses it too (the gate says so on stdout): exit 2
        assert lint.returncode == 2 and "backend 'auth_servers' is already defined" in lint.stderr
        assert "haproxy -c: the LB refuses this config" in lint.stdout, lint.stdout
        return
    assert haproxy.returncode == 0, haproxy.stdout + haproxy.stderr
    expect = {
        # health-checked beside the declared backends: WARN until seen UP (as the live check)
        "template": (
            1,
            f"127.0.0.1:{d[0]} (srv1, in rotation) is not a declared backend — it takes traffic once its health check passes",
        ),
        "default-server": (1, "s3 disabled (config)"),
        "no port": (1, "the address of s3 is unknown (no port"),
        "offset": (1, "the address of s3 is unknown (port offset +1"),
        "env": (1, "the address of s3 is unknown (set from the environment (AUTH3)"),
        "unrouted": (2, "nothing routes to pool auth_servers"),
    }[case]
    assert lint.returncode == expect[0] and expect[1] in lint.stdout, out


@pytest.mark.parametrize(
    "upstream,server_block,line,words",
    [
        ("server 127.0.0.1:{b0}\n        server 127.0.0.1:{b1};", "", 3, 'invalid parameter "server"'),
        ("server 127.0.0.1:{b0} wieght=2;", "", 3, 'invalid parameter "wieght=2"'),
        ("server 127.0.0.1:{b0};\n        serverr 127.0.0.1:{b1};", "", 4, 'unknown directive "serverr"'),
        (
            "server 127.0.0.1:{b0};",
            "location /p {{ proxy_pass http://auth_servers:8080; }}",
            6,
            'upstream "auth_servers" may not have port 8080',
        ),
    ],
)
def test_lint_agrees_with_nginx_t(web, tmp_path, upstream, server_block, line, words):
    b = web["b"]
    body = (
        "events { }\nhttp {\n    upstream auth_servers {\n        "
        + upstream.format(b0=b[0], b1=b[1])
        + "\n    }\n"
        + f"    server {{ listen 127.0.0.1:{free_port()}; location / {{ proxy_pass http://auth_servers; }}\n"
        + "        "
        + server_block.format()
        + "\n    }\n}\n"
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\n" + body)
    line += 2  # the pid and events lines
    test = subprocess.run(
        [
            require_binary("nginx", "/usr/sbin/nginx"),
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
    )
    assert test.returncode != 0, test.stderr
    lint = run_cli("lint", str(lint_layout(web, tmp_path, "nginx")), "--lb-config", str(conf))
    assert lint.returncode == 2, lint.stdout + lint.stderr  # nginx -t refuses it too
    assert "nginx -t: the LB refuses this config" in lint.stdout
    assert f"{conf}:{line}: " in lint.stderr and words in lint.stderr and "Traceback" not in lint.stderr
    # nginx names the same line; for two merged server lines, the line where the merged one ends
    merged = words == 'invalid parameter "server"'
    assert f"nginx.conf:{line + 1 if merged else line}" in test.stderr, test.stderr


def test_lint_on_nginx_dash_T_shows_the_real_lines(web, tmp_path):
    nginx = web["nginx"]
    dump = subprocess.run(
        [nginx.binary, "-T", "-p", str(nginx.workdir), "-c", web["conf"], "-e", str(nginx.workdir / "error.log")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    saved = tmp_path / "nginx-T.txt"
    saved.write_text(dump)
    layout = str(lint_layout(web, tmp_path, "nginx"))
    from_file = run_cli("lint", layout, "--lb-config", web["conf"])
    from_dump = run_cli("lint", layout, "--lb-config", str(saved))
    assert from_file.returncode == from_dump.returncode == 0, from_file.stdout + from_dump.stdout
    rows = [line for line in from_file.stdout.splitlines() if line.startswith("  = ")]
    assert rows and rows == [line for line in from_dump.stdout.splitlines() if line.startswith("  = ")]
    first = next(
        n
        for n, text in enumerate(open(web["conf"]).read().splitlines(), 1)
        if f"server 127.0.0.1:{web['b'][0]}" in text
    )
    assert f"[nginx.conf:{first}]" in rows[0]
