"""The apache check and `lint --lb-config` against real Apache httpd 2.4 (mod_proxy_balancer).

The stack: three auth backends and two decoys (another service's servers, answering 200
too), small loopback HTTP servers that name themselves in X-Served-By; several httpd
instances, each with a balancer `auth_servers` in front of them — healthy, misrouted to
the decoys under the auth routes (the 2023-12-07 incident), pointing at dead ports, with a
health check on a path that 404s, and one member disabled by `status=+D`. Each instance's
health checks (mod_proxy_hcheck, every second) are polled on the manager page until they
agree with the scenario before any test reads it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from stackscope.engine import Engine
from stackscope.lb import apache_conf
from stackscope.model import ErrorKind, Status
from tests.conftest import run_cli, write_layout
from tests.servers.apache import Apache, apache_binary, preamble
from tests.servers.base import free_port, wait_until
from tests.servers.pyservers import (
    PyServers,
    endless_body,
    garbage,
    http_response,
    read_request,
    responder,
)

HC = "hcmethod=GET hcinterval=1 hcpasses=1 hcfails=1"


def identity(name: str):
    """A backend that names itself; /wrong is a 404 (the wrong health-check path)."""

    async def handle(reader, writer) -> None:
        head = await read_request(reader)
        path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
        status, reason = (404, "Not Found") if path == b"/wrong" else (200, "OK")
        writer.write(http_response(status, b"ok\n", {"X-Served-By": name}, reason))
        await writer.drain()

    return handle


@pytest.fixture(scope="module")
def backends():
    servers = PyServers()
    ports = {
        "b": [servers.tcp(identity(f"auth-{i + 1}")) for i in range(3)],
        "d": [servers.tcp(identity(f"decoy-{i + 1}")) for i in range(2)],
        "db": servers.tcp(responder()),
        "servers": servers,
    }
    yield ports
    servers.close()


def balancer(members: list[tuple[int, str]], *, hcuri: str = "/health", name: str = "auth_servers") -> str:
    lines = "\n".join(
        f'    BalancerMember "http://127.0.0.1:{port}" route=auth{i + 1} {HC} hcuri={hcuri}{" " + extra if extra else ""}'
        for i, (port, extra) in enumerate(members)
    )
    return f'<Proxy "balancer://{name}">\n{lines}\n    ProxySet lbmethod=byrequests\n</Proxy>\nProxyPass "/" "balancer://{name}/"\n'


def start(name: str, members: list[tuple[int, str]], expect: dict[int, str], **kwargs) -> Apache:
    apache = Apache(balancer(members, **kwargs), name).start()
    want = {f"http://127.0.0.1:{port}": status for port, status in expect.items()}
    seen: list[dict[str, str]] = [{}]

    def settled() -> bool:
        seen[0] = apache.worker_status()
        return seen[0] == want

    try:
        wait_until(settled, 20, f"apache {name} health checks settle")
    except Exception as exc:
        apache.stop()
        raise AssertionError(f"{exc}: expected {want}, last seen {seen[0]}") from None
    return apache


@pytest.fixture(scope="module")
def apaches(backends):
    b, d = backends["b"], backends["d"]
    dead = [free_port(), free_port()]
    ok3 = {port: "Init Ok" for port in b}
    made: dict[str, Apache] = {}
    try:
        made["healthy"] = start("healthy", [(p, "") for p in b], ok3)
        made["misroute"] = start("misroute", [(p, "") for p in d], {p: "Init Ok" for p in d})
        made["dead"] = start("dead", [(p, "") for p in dead], {p: "Init HcFl" for p in dead})
        made["badcheck"] = start("badcheck", [(p, "") for p in b], {p: "Init HcFl" for p in b}, hcuri="/wrong")
        made["disabled"] = start(
            "disabled",
            [(b[0], ""), (b[1], "status=+D"), (b[2], "")],
            {b[0]: "Init Ok", b[1]: "Init Dis", b[2]: "Init Ok"},
        )
        yield made
    finally:
        for apache in made.values():
            apache.stop()


def layout_yaml(backends, *, lb_checks: str) -> str:
    rows = "\n".join(
        f'      - {{http: "http://127.0.0.1:{port}/health", name: auth-{i + 1}, identity_header: X-Served-By}}'
        for i, port in enumerate(backends["b"])
    )
    return f"""\
name: lb-apache-test
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
      - tcp: 127.0.0.1:{backends["db"]}
"""


def lb_checks(apache: Apache, *, samples: int = 6, extra: str = "") -> str:
    return (
        f"      - http: http://127.0.0.1:{apache.port}/health\n"
        f"        name: frontend\n        identity_header: X-Served-By\n        samples: {samples}\n"
        f"      - apache: {apache.manager_url}\n        name: pool\n        balancer: auth_servers\n{extra}"
    )


async def run_layout(text: str, environ: dict | None = None):
    from stackscope.diagnosis import assess
    from stackscope.kinds import ParseContext
    from stackscope.layout import parse_layout

    layout = parse_layout(text, "<test>", ParseContext(environ=environ or {}, require_env=environ is not None))
    engine = Engine(layout, environ=environ or {})
    try:
        return assess(await engine.run_round())
    finally:
        await engine.aclose()


def pool_result(diagnosis):
    return next(c for layer in diagnosis.layers for c in layer.checks if c.check.type == "apache").result


# ----------------------------------------------------------------------------- live


async def test_healthy_pool_is_ok_with_no_verdict(backends, apaches):
    diagnosis = await run_layout(layout_yaml(backends, lb_checks=lb_checks(apaches["healthy"])))
    result = pool_result(diagnosis)
    assert result.status is Status.OK, result.detail
    assert result.key_fact == "pool 3/3 UP"
    assert result.detail == "pool auth_servers: 3/3 up, all declared backends present"
    pool = result.facts["pool"]
    assert [s["address"] for s in pool["servers"]] == [f"127.0.0.1:{p}" for p in backends["b"]]
    assert [(s["name"], s["state"], s["service"], s["declared_as"]) for s in pool["servers"]] == [
        (f"auth{i}", "Ok", "in", f"auth-{i}") for i in (1, 2, 3)
    ]
    assert pool["servers"][0]["check"] == "GET /health"
    assert pool["missing"] == [] and pool["unexpected"] == []
    assert pool["workers"][0]["url"] == f"http://127.0.0.1:{backends['b'][0]}"
    assert diagnosis.verdict is None
    # HC's hcinterval=1 hcpasses=1: one pass a second after the last check, polled every 100 ms
    assert HC == "hcmethod=GET hcinterval=1 hcpasses=1 hcfails=1"
    assert [m.readmit_s for m in result.evidence.members] == [1.1] * 3
    assert [s["readmit_s"] for s in pool["servers"]] == [1.1] * 3
    config = apache_conf.load(str(apaches["healthy"].conf))  # the gate reads the same from the file
    gate = apache_conf.pool_of(apache_conf.balancers(config)["auth_servers"], {}, config)
    assert [s.readmit_s for s in gate.servers] == [1.1] * 3


def test_misroute_under_the_right_routes_is_named(backends, apaches, tmp_path):
    """The 2023-12-07 incident on Apache: the balancer keeps the routes auth1/auth2 but
    its members are another service's servers; they answer 200, the real ones are healthy."""
    layout = write_layout(tmp_path, layout_yaml(backends, lb_checks=lb_checks(apaches["misroute"])))
    done = run_cli("check", str(layout), "--format", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    verdict = report["verdict"]
    d = backends["d"]
    assert verdict["layer"] == "Load balancer" and verdict["status"] == "crit"
    decoys = ", ".join(f"127.0.0.1:{p}" for p in sorted(d))
    assert verdict["summary"].startswith(
        f"Load balancer: pool auth_servers routes to {decoys} — none is a declared backend"
    )
    assert "Auth backends: 3/3 answer 200 directly" in verdict["ruled_out"]
    pool = next(c for c in report["layers"][0]["checks"] if c["type"] == "apache")
    assert pool["status"] == "crit"
    servers = pool["facts"]["pool"]["servers"]
    assert [(s["name"], s["address"], s["declared"]) for s in servers] == [
        ("auth1", f"127.0.0.1:{d[0]}", False),
        ("auth2", f"127.0.0.1:{d[1]}", False),
    ]
    frontend = report["layers"][0]["checks"][0]
    assert frontend["status"] == "ok" and set(frontend["facts"]["identities"]) <= {"decoy-1", "decoy-2"}


async def test_misroute_shows_in_the_dashboard_pool_table(backends, apaches):
    """The detail screen's table: the routes auth1/auth2 kept, on the decoys' addresses."""
    import io
    import re

    from rich.console import Console

    from stackscope.tui import facts

    result = pool_result(await run_layout(layout_yaml(backends, lb_checks=lb_checks(apaches["misroute"], samples=1))))
    console = Console(file=io.StringIO(), width=110, color_system=None)
    console.print(facts.pool_table(result.facts["pool"], width=110))
    text = console.file.getvalue()
    b, d = backends["b"], backends["d"]
    assert re.search(rf"⚠ unexpected +auth1 +127\.0\.0\.1:{d[0]}", text), text
    assert re.search(rf"⚠ unexpected +auth2 +127\.0\.0\.1:{d[1]}", text), text
    assert re.search(rf"✖ missing +auth-1 +127\.0\.0\.1:{b[0]} +absent", text), text


async def test_pool_of_dead_ports_is_drift(backends, apaches):
    diagnosis = await run_layout(layout_yaml(backends, lb_checks=lb_checks(apaches["dead"], samples=1)))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.POOL, result.detail
    b = backends["b"]
    addresses = [s["address"] for s in result.facts["pool"]["servers"]]
    holds = ", ".join(sorted(addresses, key=lambda a: int(a.rsplit(":", 1)[1])))  # listed by port
    assert result.detail.startswith("none of the declared backends (")
    assert result.detail.endswith(f"is in pool auth_servers; it holds {holds} (none taking traffic)")
    assert all(f"127.0.0.1:{p}" in result.detail for p in b)
    assert {s["state"] for s in result.facts["pool"]["servers"]} == {"HcFl"}
    assert diagnosis.verdict.layer == "Load balancer"


async def test_wrong_health_check_path_is_called_out(backends, apaches):
    diagnosis = await run_layout(layout_yaml(backends, lb_checks=lb_checks(apaches["badcheck"], samples=1)))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.MEMBERS_DOWN, result.detail
    assert "auth1 HcFl (GET /wrong failed)" in result.detail
    assert {s["service"] for s in result.facts["pool"]["servers"]} == {"down-by-check"}
    verdict = diagnosis.verdict
    assert verdict.layer == "Load balancer"
    assert verdict.summary.startswith(
        "Load balancer: health check fails on the LB but every backend answers 200 "
        "directly: the LB's health check is wrong (the LB's check says: GET /wrong failed"
    )
    assert "Auth backends: 3/3 answer 200 directly" in verdict.ruled_out


async def test_member_disabled_by_admin_is_a_warning(backends, apaches):
    diagnosis = await run_layout(layout_yaml(backends, lb_checks=lb_checks(apaches["disabled"], samples=1)))
    result = pool_result(diagnosis)
    assert result.status is Status.WARN, result.detail
    assert result.detail == "pool auth_servers: 2/3 up — auth2 Dis (GET /health)"
    assert result.key_fact == "pool 2/3 UP"
    assert result.facts["pool"]["servers"][1]["service"] == "maint"
    assert diagnosis.verdict.layer == "Load balancer" and diagnosis.verdict.status is Status.WARN


def test_a_member_apache_put_in_error_is_down_by_check(backends):
    """No health check: httpd marks a worker `Err` when a request to it fails, and retries
    it after `retry`. An undeclared one is a warning: it takes traffic once it recovers."""
    import urllib.error
    import urllib.request

    b = backends["b"]
    dead = free_port()
    members = "\n".join(
        f"    BalancerMember http://127.0.0.1:{port} route=auth{i + 1} retry=60" for i, port in enumerate([*b, dead])
    )
    apache = Apache(
        f"<Proxy balancer://auth_servers>\n{members}\n</Proxy>\nProxyPass / balancer://auth_servers/\n", "err"
    )
    try:
        apache.start()

        def dead_member_in_error() -> bool:
            try:  # one request through the LB per poll: byrequests reaches the dead member within four
                urllib.request.urlopen(f"http://127.0.0.1:{apache.port}/health", timeout=5).close()
            except (urllib.error.URLError, OSError):
                pass
            return apache.worker_status().get(f"http://127.0.0.1:{dead}") == "Init Err"

        wait_until(dead_member_in_error, 20, "httpd puts the dead member in error")
        layout = layout_yaml(backends, lb_checks=lb_checks(apache, samples=1))
        result = pool_result(asyncio.run(run_layout(layout)))
    finally:
        apache.stop()
    assert result.status is Status.WARN, result.detail
    assert (
        f"127.0.0.1:{dead} (auth4, Err) is not a declared backend — it takes traffic once it comes UP" in result.detail
    )
    assert result.facts["pool"]["servers"][3]["service"] == "down-by-check"


async def test_the_read_is_one_plain_get_without_a_query(backends, pyservers):
    """What the check sends: GET of the path as written, nothing else — no nonce, no b=/w=."""
    from tests.probe_helpers import probe
    from tests.servers.pyservers import recorder

    heads: list[bytes] = []
    port = pyservers.tcp(recorder(heads, body=b"<html><h1>Load Balancer Manager</h1></html>"))
    await probe({"apache": f"http://127.0.0.1:{port}/balancer-manager", "balancer": "auth_servers"})
    assert len(heads) == 1
    assert heads[0].startswith(b"GET /balancer-manager HTTP/1.1\r\n")
    assert b"nonce" not in heads[0] and b"?" not in heads[0].split(b"\r\n")[0]


def _behind_login(page: bytes, credentials: bytes):
    """A manager page behind Basic auth (as an `AuthType Basic` <Location> would put it)."""
    import base64

    expected = b"Authorization: Basic " + base64.b64encode(credentials)

    async def handle(reader, writer) -> None:
        head = await read_request(reader)
        if expected in head:
            writer.write(http_response(200, page, {"Content-Type": "text/html"}))
        else:
            writer.write(http_response(401, b"no\n", {"WWW-Authenticate": 'Basic realm="m"'}, "Unauthorized"))
        await writer.drain()

    return handle


async def test_manager_behind_a_login_with_auth_env(backends, apaches, pyservers, tmp_path):
    page = apaches["healthy"].page().encode()
    port = pyservers.tcp(_behind_login(page, b"monitor:S3cret-manager-pw"))
    check = {"apache": f"http://127.0.0.1:{port}/balancer-manager", "balancer": "auth_servers", "auth_env": "MGR"}
    from tests.probe_helpers import probe

    accepted = await probe(check, environ={"MGR": "monitor:S3cret-manager-pw"})
    assert accepted.key_fact == "pool 3/3 UP", accepted.detail
    wrong = await probe(check, environ={"MGR": "monitor:wrong"})
    assert wrong.status is Status.UNKNOWN and wrong.error_kind is ErrorKind.AUTH
    assert "refused the read (401 Unauthorized): check the credentials in MGR" in wrong.detail
    empty = await probe(check, environ={"MGR": "monitor"})
    assert empty.status is Status.UNKNOWN and "MGR is not user:password" in empty.detail
    lb = (
        f"      - apache: http://127.0.0.1:{port}/balancer-manager\n        name: pool\n"
        "        balancer: auth_servers\n        auth_env: MGR\n"
    )
    layout = write_layout(tmp_path, layout_yaml(backends, lb_checks=lb))
    done = run_cli("check", str(layout), "--format", "json", env={"MGR": "monitor:S3cret-manager-pw"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "S3cret-manager-pw" not in done.stdout + done.stderr


# ----------------------------------------------------------------------------- hostile replies


async def _slow_drip(reader, writer) -> None:
    """A 200 whose body comes one byte at a time, a little slower than anyone waits."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n")
    for _ in range(600):  # bounded: at most a minute
        writer.write(b"<")
        await writer.drain()
        await asyncio.sleep(0.1)  # the server is slow on purpose


def _page(body: bytes, status: int = 200, reason: str = "OK"):
    return responder(status, body, {"Content-Type": "text/html"}) if status == 200 else _status(status, reason)


def _status(status: int, reason: str):
    async def handle(reader, writer) -> None:
        await read_request(reader)
        writer.write(http_response(status, b"no\n", {"WWW-Authenticate": 'Basic realm="x"'}, reason))
        await writer.drain()

    return handle


MANAGER_NO_TABLE = b"<html><body><h1>Load Balancer Manager for x</h1><p>nothing</p></body></html>"
ESCAPES = (
    b"<html><h3>LoadBalancer Status for <a>balancer://ev\x1b[2Jil</a></h3>"
    b"<table><tr><th>Worker URL</th><th>Route</th><th>Status</th></tr>"
    b"<tr><td>http://127.0.0.1:1</td><td>\x1b]0;PWN\x07r</td><td>Init Ok</td></tr></table></html>"
)


@pytest.mark.parametrize(
    "case", ["garbage", "no_table", "other_html", "huge", "401", "403", "slow", "refused", "escapes"]
)
async def test_hostile_manager_replies_fail_with_an_explanation(pyservers, case):
    from tests.probe_helpers import probe

    handler = {
        "garbage": garbage,
        "no_table": _page(MANAGER_NO_TABLE),
        "other_html": _page(b"<html><body>It works!</body></html>"),
        "huge": endless_body,
        "401": _status(401, "Unauthorized"),
        "403": _status(403, "Forbidden"),
        "slow": _slow_drip,
        "refused": None,
        "escapes": _page(ESCAPES),
    }[case]
    port = free_port() if handler is None else pyservers.tcp(handler)
    result = await probe(
        {
            "apache": f"http://127.0.0.1:{port}/balancer-manager",
            "balancer": "auth_servers",
            "timeout": "1s" if case == "slow" else "5s",
        }
    )
    assert result.status is Status.UNKNOWN, (case, result.status, result.detail)
    expected = {
        "garbage": "cannot read the pool",
        "no_table": "a balancer-manager page with no balancers",
        "other_html": "an HTML page that is not the balancer-manager",
        "huge": "larger than 4 MiB",
        "401": "refused the read (401 Unauthorized): set auth_env",
        "403": "refused the read (403 Forbidden): allow this host",
        "slow": "did not finish within 1s",
        "refused": "refused the connection",
        "escapes": "shows no balancer://auth_servers",
    }[case]
    assert expected in result.detail, (case, result.detail)
    text = result.detail + json.dumps(result.facts)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in result.detail), repr(result.detail)
    assert "\x1b" not in text and "\x07" not in text


MANAGER_HEAD = (
    b"<html><body><h1>Load Balancer Manager for 127.0.0.1</h1>"
    b"<h3>LoadBalancer Status for <a href='/balancer-manager?b=auth_servers'>balancer://auth_servers</a> [p1]</h3>"
    b"<table><tr><th>MaxMembers</th><th>StickySession</th><th>Method</th></tr>"
    b"<tr><td>2 [2 Used]</td><td>(None)</td><td>byrequests</td></tr></table>"
)
WORKER_HEADER = b"<table><tr><th>Worker URL</th><th>Route</th><th>Factor</th><th>Status</th></tr>"


def _workers(count: int) -> bytes:
    return b"".join(
        b"<tr><td>http://127.0.0.1:%d</td><td>r%d</td><td>1.00</td><td>Init Ok</td></tr>" % (1000 + i % 60000, i)
        for i in range(count)
    )


WHOLE_PAGE = MANAGER_HEAD + WORKER_HEADER + _workers(2) + b"</table></body></html>"


def _cut_by_the_connection(chunked: bool):
    """The whole page announced (Content-Length, or chunked), half of it sent, then the
    connection closed: a body cut short that HTTP itself can tell is cut."""

    async def handle(reader, writer) -> None:
        await read_request(reader)
        half = WHOLE_PAGE[: len(WHOLE_PAGE) // 2]
        if chunked:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
            writer.write(head + b"%x\r\n" % len(WHOLE_PAGE) + half)
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(WHOLE_PAGE)
            writer.write(head + half)
        await writer.drain()

    return handle


CUT_PAGES = {
    "worker table not closed": (
        _page(MANAGER_HEAD + WORKER_HEADER + _workers(2)),
        "balancer://auth_servers: its worker table does not close",
    ),
    "no worker table": (_page(MANAGER_HEAD + b"</body></html>"), "the page shows no worker table for it"),
    "cut by the connection": (_cut_by_the_connection(False), "the connection closed after"),
    "chunked, cut by the connection": (_cut_by_the_connection(True), "the connection closed after"),
    "more rows than are read": (
        _page(MANAGER_HEAD + WORKER_HEADER + _workers(25_000) + b"</table></body></html>"),
        "more than 20000 rows: the page is not read in part",
    ),
    "longer than the read cap": (
        _page(MANAGER_HEAD + WORKER_HEADER + _workers(2) + b"<!--" + b"x" * (4 * 1024 * 1024) + b"--></table>"),
        "the read cap cut the balancer-manager page at 4194304 bytes (it is larger than 4 MiB)",
    ),
}


@pytest.mark.parametrize("case", list(CUT_PAGES))
async def test_a_page_cut_short_is_unknown_not_an_empty_or_smaller_pool(pyservers, case):
    """A balancer-manager page that names the balancer but cannot be read whole: its
    worker table never closes, the connection ends before the announced body, it is past
    what the reader reads. UNKNOWN "cannot read the pool" with the reason, never the CRIT
    of an empty pool (or a verdict on fewer members than the LB has)."""
    from tests.probe_helpers import assert_unreadable, probe

    handler, words = CUT_PAGES[case]
    port = pyservers.tcp(handler)
    result = await probe(
        {"apache": f"http://127.0.0.1:{port}/balancer-manager", "balancer": "auth_servers", "timeout": "5s"}
    )
    assert_unreadable(result, "cannot read the pool")
    assert words in result.detail, result.detail


async def test_the_whole_page_of_the_cut_cases_is_read(pyservers):
    """The page the cases above cut, served whole, is a pool of its two workers: what
    they refuse is the cutting, not the page."""
    from tests.probe_helpers import probe

    port = pyservers.tcp(_page(WHOLE_PAGE))
    result = await probe({"apache": f"http://127.0.0.1:{port}/balancer-manager", "balancer": "auth_servers"})
    assert [s["address"] for s in result.facts["pool"]["servers"]] == ["127.0.0.1:1000", "127.0.0.1:1001"]


def test_layout_refuses_a_state_changing_url_or_a_bad_balancer_name(tmp_path):
    for target, name, words in (
        ("http://127.0.0.1:1/balancer-manager?b=auth&w=x&nonce=1", "auth", "has a query string"),
        ("http://127.0.0.1:1/balancer-manager", "balancer://auth", "is a balancer URL"),
        ("http://127.0.0.1:1/balancer-manager", "auth servers", "is not a balancer name"),
        ("http://127.0.0.1:1/bal%0d%0aancer", "auth", "has characters"),
    ):
        layout = write_layout(
            tmp_path,
            f"name: t\nlayers:\n  - name: LB\n    checks:\n      - apache: {json.dumps(target)}\n"
            f"        balancer: {json.dumps(name)}\n",
        )
        done = run_cli("lint", str(layout))
        assert done.returncode == 3, (target, name, done.stdout + done.stderr)
        assert words in done.stdout + done.stderr, done.stdout + done.stderr
        assert "layout.yaml:" in done.stdout + done.stderr


# ----------------------------------------------------------------------------- the pre-deploy gate


def lint_layout(backends, tmp_path):
    check = "      - apache: http://127.0.0.1:1/balancer-manager\n        balancer: auth_servers\n"
    return write_layout(tmp_path, layout_yaml(backends, lb_checks=check))


def _line_of(path, needle: str) -> int:
    return next(n for n, text in enumerate(open(path).read().splitlines(), 1) if needle in text)


def test_lint_on_the_configs_the_servers_run(backends, apaches, tmp_path):
    """`lint --lb-config` on the very httpd.conf each running httpd loaded: valid configs
    by construction; the verdicts match the live ones, with file and line per member."""
    layout = str(lint_layout(backends, tmp_path))
    b, d = backends["b"], backends["d"]
    healthy = apaches["healthy"]
    good = run_cli("lint", layout, "--lb-config", str(healthy.conf))
    assert good.returncode == 0, good.stdout + good.stderr
    rows = [line for line in good.stdout.splitlines() if line.startswith("  = ")]
    assert len(rows) == 3
    for i, row in enumerate(rows):
        line = _line_of(healthy.conf, f"http://127.0.0.1:{b[i]}")
        assert row.startswith(f"  = 127.0.0.1:{b[i]}") and f"auth{i + 1} [httpd.conf:{line}] is auth-{i + 1}" in row
    assert "✔ OK: pool auth_servers: 3/3 enabled, all declared backends present" in good.stdout
    drifted = run_cli("lint", layout, "--lb-config", str(apaches["misroute"].conf))
    assert drifted.returncode == 2, drifted.stdout
    assert f"  + 127.0.0.1:{d[0]}" in drifted.stdout and f"  - 127.0.0.1:{b[0]}" in drifted.stdout
    assert "✖ CRIT: pool auth_servers routes to" in drifted.stdout
    disabled = run_cli("lint", layout, "--lb-config", str(apaches["disabled"].conf))
    assert disabled.returncode == 1, disabled.stdout
    assert "▲ WARN: pool auth_servers: 2/3 enabled — auth2 Dis (config)" in disabled.stdout
    unknown = run_cli("lint", layout, "--lb-config", str(healthy.conf), "--pool", "nope")
    assert unknown.returncode == 3 and "has no balancer://nope" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def _write_config(tmp_path, body: str, files: dict[str, str] | None = None):
    """A config apache2 -t can check: the preamble of the test servers, then `body`;
    `files` are written relative to the ServerRoot (tmp_path)."""
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    conf = tmp_path / "httpd.conf"
    conf.write_text(preamble(tmp_path, free_port()) + body)
    return conf


def _apache_t(conf) -> subprocess.CompletedProcess:
    return subprocess.run([apache_binary(), "-t", "-f", str(conf)], capture_output=True, text=True)


@pytest.mark.parametrize("case", ["include", "outside", "location", "partial", "unrouted", "standby", "conditional"])
def test_lint_agrees_with_apache_t(backends, tmp_path, case):
    """Configs httpd itself accepts are judged, with the right file and line for each member."""
    b, d = backends["b"], backends["d"]
    members = [f'BalancerMember "http://127.0.0.1:{p}" route=auth{i + 1}' for i, p in enumerate(b)]
    files: dict[str, str] = {}
    use = 'ProxyPass "/" "balancer://auth_servers/"\n'
    if case == "include":
        files["conf.d/auth.conf"] = (
            "# the auth pool\n<Proxy balancer://auth_servers>\n    " + "\n    ".join(members) + "\n</Proxy>\n"
        )
        body = "IncludeOptional conf.d/*.conf\nIncludeOptional nothing-here/*.conf\n" + use
    elif case == "outside":
        body = "".join(f"BalancerMember balancer://auth_servers {m.split(' ', 1)[1]}\n" for m in members) + use
    elif case == "location":
        body = (
            "<Proxy 'balancer://auth_servers'>\n  "
            + " \\\n    ".join(["BalancerMember"] + [members[0].split(" ", 1)[1]])
            + "\n  "
            + "\n  ".join(members[1:])
            + '\n</Proxy>\n<Location "/auth">\n    ProxyPass "balancer://auth_servers/"\n</Location>\n'
        )
    elif case == "partial":
        body = "<Proxy balancer://auth_servers>\n" + "\n".join(members[:2]) + "\n</Proxy>\n" + use
    elif case == "unrouted":
        body = (
            "<Proxy balancer://auth_servers>\n" + "\n".join(members) + "\n</Proxy>\n"
            f"<Proxy balancer://other>\nBalancerMember http://127.0.0.1:{d[0]}\n</Proxy>\n"
            'ProxyPass "/" "balancer://other/"\n'
        )
    elif case == "conditional":  # members in <IfModule> inside the <Proxy>, one line continued
        body = (
            "<Proxy balancer://auth_servers>\n<IfModule proxy_hcheck_module>\n"
            + "\n".join(m.replace(" route", " \\\n    route") for m in members)
            + "\n</IfModule>\n</Proxy>\n"
            + use
        )
    else:  # standby
        body = (
            "<Proxy balancer://auth_servers>\n"
            + "\n".join(members)
            + f"\nBalancerMember http://127.0.0.1:{d[0]} route=spare status=+H\n</Proxy>\n"
            + use
        )
    conf = _write_config(tmp_path, body, files)
    checked = _apache_t(conf)
    assert checked.returncode == 0, checked.stdout + checked.stderr + conf.read_text()
    lint = run_cli("lint", str(lint_layout(backends, tmp_path)), "--lb-config", str(conf))
    out = lint.stdout + lint.stderr
    assert "Traceback" not in out
    expect = {
        "include": (0, "3/3 enabled, all declared backends present"),
        "outside": (0, "3/3 enabled, all declared backends present"),
        "location": (0, "3/3 enabled, all declared backends present"),
        "partial": (1, f"declared 127.0.0.1:{b[2]} missing from pool auth_servers (2/3 present)"),
        "unrouted": (2, "nothing routes to pool auth_servers in httpd.conf"),
        "standby": (1, f"127.0.0.1:{d[0]} (spare, backup) is not a declared backend"),
        "conditional": (0, "3/3 enabled, all declared backends present"),
    }[case]
    assert lint.returncode == expect[0] and expect[1] in lint.stdout, out
    where = tmp_path / "conf.d/auth.conf" if case == "include" else conf
    shown = "conf.d/auth.conf" if case == "include" else "httpd.conf"
    line = _line_of(where, f"http://127.0.0.1:{b[0]}")
    if case == "location":  # the member's line is where its continued directive starts
        line -= 1
    assert f"auth1 [{shown}:{line}]" in lint.stdout, lint.stdout


@pytest.mark.parametrize(
    "member,words",
    [
        ("wieght=2", "unknown worker parameter 'wieght'"),
        ("status=+Q", "unknown status flag 'Q'"),
        ("loadfactor=0", "loadfactor must be a number between 1..100"),
        ("route=a b", "is not key=value"),
    ],
)
def test_lint_refuses_what_apache_t_refuses_on_the_same_line(backends, tmp_path, member, words):
    b = backends["b"]
    body = (
        f"<Proxy balancer://auth_servers>\nBalancerMember http://127.0.0.1:{b[0]}\n"
        f"BalancerMember http://127.0.0.1:{b[1]} {member}\n</Proxy>\n"
        'ProxyPass "/" "balancer://auth_servers/"\n'
    )
    conf = _write_config(tmp_path, body)
    line = _line_of(conf, f"http://127.0.0.1:{b[1]}")
    checked = _apache_t(conf)
    assert checked.returncode != 0 and f"line {line} of {conf}" in checked.stderr, checked.stderr
    lint = run_cli("lint", str(lint_layout(backends, tmp_path)), "--lb-config", str(conf))
    assert lint.returncode == 2, lint.stdout + lint.stderr  # apache2 -t refuses it too
    assert "apache2 -t: the LB refuses this config" in lint.stdout and f"httpd.conf:{line}" in lint.stdout
    assert f"{conf}:{line}: " in lint.stderr and words in lint.stderr and "Traceback" not in lint.stderr
