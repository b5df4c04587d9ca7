"""The `caddy` check and `lint --lb-config` against real Caddy 2.6 on loopback.

Backends are small loopback HTTP servers that name themselves in X-Served-By: three auth
backends and two decoys (another service's servers, answering 200 too). Caddy instances
put different pools in front of them: healthy (next to a billing route), misrouted to
the decoys (the 2023-12-07 incident), dead ports, and one whose members fail through
Caddy (503 on /fail, counted by its passive health checks) while answering directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from stackscope.engine import Engine
from stackscope.lb.pool import compress
from stackscope.model import ErrorKind, Status
from tests.conftest import run_cli, write_layout
from tests.servers.base import free_port, wait_until
from tests.servers.caddy import Caddy, caddy_binary, reverse_proxy
from tests.servers.pyservers import (
    PyServers,
    endless_body,
    hang_up,
    http_response,
    read_request,
    responder,
    silent,
)

PASSIVE = {"passive": {"fail_duration": "10m", "max_fails": 1, "unhealthy_status": [503]}}


def identity(name: str):
    """200 with X-Served-By: NAME, except 503 on /fail (a failure Caddy's passive checks count)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        path = head.split(b" ", 2)[1]
        failing = path.startswith(b"/fail")
        status, reason = (503, "Service Unavailable") if failing else (200, "OK")
        writer.write(http_response(status, b"ok\n", {"X-Served-By": name}, reason))
        await writer.drain()

    return handle


@pytest.fixture(scope="module")
def stack():
    servers = PyServers()
    ports = {
        "b": [servers.tcp(identity(f"auth-{i + 1}")) for i in range(3)],
        "d": [servers.tcp(identity(f"decoy-{i + 1}")) for i in range(2)],
        "dead": [free_port(), free_port()],
        "db": servers.tcp(hang_up),
        "servers": servers,
    }
    yield ports
    servers.close()


ROUND_ROBIN = {"selection_policy": {"policy": "round_robin"}}


def site(front: int, routes: list[dict]) -> dict:
    return {"web": {"listen": [f"127.0.0.1:{front}"], "routes": routes}}


def auth_route(ports: list[int], passive: bool = True, **extra) -> dict:
    health = {"health_checks": PASSIVE} if passive else {}
    return {"@id": "auth", "handle": [reverse_proxy(ports, **health, **extra)]}


def billing_route(ports: list[int]) -> dict:
    return {"match": [{"host": ["billing.stackscope.test"]}], "handle": [reverse_proxy(ports)]}


def start_caddy(tmp_path_factory, name: str, routes: list[dict]) -> Caddy:
    front = free_port()
    caddy = Caddy(tmp_path_factory.mktemp(f"caddy-{name}"), site(front, routes)).start()
    caddy.front = front
    return caddy


@pytest.fixture(scope="module")
def caddies(tmp_path_factory, stack):
    b, d = stack["b"], stack["d"]
    instances = {
        "healthy": start_caddy(tmp_path_factory, "healthy", [billing_route(d), auth_route(b)]),
        # round_robin, not Caddy's default random: the frontend's 6 samples meet both
        # decoys every time (random missed one in about 3 % of runs)
        "misroute": start_caddy(tmp_path_factory, "misroute", [auth_route(d, load_balancing=ROUND_ROBIN)]),
        # no passive checks: Caddy counts no failure and keeps sending to them, whatever the round's order
        "dead": start_caddy(tmp_path_factory, "dead", [auth_route(stack["dead"], passive=False)]),
    }
    # an active check on a path every member fails: Caddy takes them all out (its 503
    # through the frontend says so), though each answers its /health directly
    active = {"active": {"uri": "/fail", "interval": "1s"}}
    instances["badcheck"] = start_caddy(
        tmp_path_factory, "badcheck", [auth_route(b, passive=False, health_checks=active)]
    )
    front = instances["badcheck"].front
    wait_until(lambda: instances["badcheck"].get(front, "/health")[0] == 503, 10, "Caddy's active checks fail")
    yield instances
    for caddy in instances.values():
        caddy.stop()


def layout_yaml(stack, *, lb_checks: str) -> str:
    rows = "\n".join(
        f'      - {{http: "http://127.0.0.1:{port}/health", name: auth-{i + 1}, identity_header: X-Served-By}}'
        for i, port in enumerate(stack["b"])
    )
    return f"""\
name: caddy-test
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
      - tcp: 127.0.0.1:{stack["db"]}
"""


def lb_checks(caddy: Caddy, *, samples: int = 6, upstream: str | None = "@auth", extra: str = "") -> str:
    chosen = f"        upstream: '{upstream}'\n" if upstream else ""
    return (
        f"      - http: http://127.0.0.1:{caddy.front}/health\n"
        f"        name: frontend\n        identity_header: X-Served-By\n        samples: {samples}\n"
        f"      - caddy: {caddy.admin}\n        name: pool\n{chosen}{extra}"
    )


async def run_layout(text: str):
    from stackscope.diagnosis import assess
    from stackscope.layout import parse_layout

    layout = parse_layout(text, "<test>")
    engine = Engine(layout, environ={})
    try:
        return assess(await engine.run_round())
    finally:
        await engine.aclose()


def pool_result(diagnosis):
    return next(c for layer in diagnosis.layers for c in layer.checks if c.check.type == "caddy").result


def addresses(ports: list[int]) -> list[str]:
    return [f"127.0.0.1:{p}" for p in ports]


# ----------------------------------------------------------------------------- live


@pytest.mark.parametrize("upstream", ["@auth", None])
async def test_healthy_pool_is_ok_and_no_verdict(stack, caddies, upstream):
    """By @id, and with no upstream: the reverse_proxy holding the declared backends is
    chosen over the billing route next to it."""
    diagnosis = await run_layout(layout_yaml(stack, lb_checks=lb_checks(caddies["healthy"], upstream=upstream)))
    result = pool_result(diagnosis)
    assert result.status is Status.OK, result.detail
    assert result.key_fact == "pool 3/3 UP"
    assert result.detail == "pool @auth: 3/3 up, all declared backends present"
    pool = result.facts["pool"]
    assert [s["address"] for s in pool["servers"]] == addresses(stack["b"])
    assert [s["declared_as"] for s in pool["servers"]] == ["auth-1", "auth-2", "auth-3"]
    assert all(s["service"] == "in" and s["state"] == "UP" for s in pool["servers"])
    assert all(s["check"] == "direct GET /health 200" for s in pool["servers"])
    assert pool["selected"] == ("upstream: @auth" if upstream else "holds 3 of the 3 declared backends")
    assert diagnosis.verdict is None
    # PASSIVE's fail_duration 10m: a counted failure keeps a member out that long
    assert PASSIVE["passive"]["fail_duration"] == "10m"
    assert [m.readmit_s for m in result.evidence.members] == [600.0] * 3


def test_seed_misroute_is_named_in_one_round_with_backends_ruled_out(stack, caddies, tmp_path):
    """The 2023-12-07 incident on Caddy: the auth route proxies to another service's servers;
    they answer 200, so the frontend looks fine, and the real auth servers are healthy."""
    layout = write_layout(tmp_path, layout_yaml(stack, lb_checks=lb_checks(caddies["misroute"])))
    done = run_cli("check", str(layout), "--format", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    verdict = report["verdict"]
    b, d = stack["b"], stack["d"]
    assert verdict["layer"] == "Load balancer" and verdict["status"] == "crit"
    assert verdict["summary"] == (
        f"Load balancer: pool @auth routes to {compress(addresses(d))} "
        f"— none is a declared backend; declared {compress(addresses(b))} missing"
    )
    assert "Auth backends: 3/3 answer 200 directly" in verdict["ruled_out"]
    frontend = report["layers"][0]["checks"][0]
    assert frontend["status"] == "ok" and set(frontend["facts"]["identities"]) == {"decoy-1", "decoy-2"}
    pool = report["layers"][0]["checks"][1]["facts"]["pool"]
    assert pool["unexpected"] == addresses(d) and pool["missing"] == addresses(b)


async def test_a_named_route_that_proxies_elsewhere_is_misrouted(stack, caddies):
    text = layout_yaml(stack, lb_checks=lb_checks(caddies["healthy"], samples=1, upstream="billing.stackscope.test"))
    result = pool_result(await run_layout(text))
    assert result.status is Status.CRIT and result.key_fact == "misrouted", result.detail
    assert result.detail.startswith(f"pool billing.stackscope.test routes to {compress(addresses(stack['d']))}")


async def test_dead_pool_is_crit_and_its_members_are_failing(stack, caddies):
    """Caddy still sends requests to members that do not answer (nothing it publishes takes
    them out), so they are strangers taking traffic: misrouted, and FAILING in the table."""
    diagnosis = await run_layout(layout_yaml(stack, lb_checks=lb_checks(caddies["dead"], samples=1)))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.POOL
    dead = addresses(stack["dead"])
    assert result.detail == (
        f"pool @auth routes to {compress(dead)} — none is a declared backend; "
        f"declared {compress(addresses(stack['b']))} missing"
    )
    servers = result.facts["pool"]["servers"]
    assert [s["state"] for s in servers] == ["FAILING", "FAILING"]
    assert all(s["check"].startswith("direct TCP connect: refused") for s in servers), servers
    assert diagnosis.verdict.layer == "Load balancer"
    assert diagnosis.layers[0].checks[0].result.facts["status_code"] == 502


@pytest.fixture
def flaky(tmp_path_factory, stack):
    """Caddy picking the first healthy member; a 503 counts as a failure for 10 minutes."""
    policy = {"selection_policy": {"policy": "first"}}
    caddy = start_caddy(tmp_path_factory, "flaky", [auth_route(stack["b"], load_balancing=policy)])
    yield caddy
    caddy.stop()


def fail_through(caddy: Caddy, address: str) -> None:
    """One request that fails through Caddy, then wait until Caddy has counted it."""
    status, headers, _ = caddy.get(caddy.front, "/fail")
    assert status == 503
    wait_until(lambda: caddy.upstreams()[address]["fails"] >= 1, 10, f"Caddy counts the failure of {address}")


async def test_members_failing_through_caddy_while_answering_directly(stack, flaky):
    b = addresses(stack["b"])
    fail_through(flaky, b[0])
    text = layout_yaml(stack, lb_checks=lb_checks(flaky, samples=1))
    one = pool_result(await run_layout(text))
    assert one.status is Status.WARN, one.detail
    assert one.detail == (
        f"pool @auth: 2/3 up — {b[0]} DOWN (1 fail of max_fails 1 through Caddy; direct GET /health 200)"
    )
    first = one.facts["pool"]["servers"][0]
    assert first["service"] == "down-by-check" and first["errors"] == 1
    for address in b[1:]:  # `first` moves on to the next healthy member each time
        fail_through(flaky, address)
    diagnosis = await run_layout(text)
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.MEMBERS_DOWN, result.detail
    assert result.detail.startswith("pool @auth has no server that can take traffic:")
    verdict = diagnosis.verdict
    assert verdict.layer == "Load balancer" and verdict.status is Status.CRIT
    assert verdict.summary.startswith(
        "Load balancer: health check fails on the LB but every backend answers 200 directly: "
        "the LB's health check is wrong (the LB's check says: 1 fail of max_fails 1 through Caddy"
    )
    assert "Auth backends: 3/3 answer 200 directly" in verdict.ruled_out


async def test_wrong_active_health_check_path_is_called_out(stack, caddies):
    diagnosis = await run_layout(layout_yaml(stack, lb_checks=lb_checks(caddies["badcheck"], samples=1)))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.MEMBERS_DOWN, result.detail
    servers = result.facts["pool"]["servers"]
    assert all(s["service"] == "down-by-check" and s["check"] == "direct active GET /fail 503" for s in servers)
    # active checks every 1s (the fixture's interval) + Caddy's default health_timeout 5s; no passive
    assert [m.readmit_s for m in result.evidence.members] == [6.0] * 3
    verdict = diagnosis.verdict
    assert verdict.layer == "Load balancer"
    assert verdict.summary.startswith(
        "Load balancer: health check fails on the LB but every backend answers 200 directly: "
        "the LB's health check is wrong (the LB's check says: direct active GET /fail 503"
    )


@pytest.fixture
def tolerant(tmp_path_factory, stack):
    """Like flaky, but a member is taken out only after 3 failures."""
    policy = {"selection_policy": {"policy": "first"}}
    health = {"passive": {**PASSIVE["passive"], "max_fails": 3}}
    route = auth_route(stack["b"], passive=False, health_checks=health, load_balancing=policy)
    caddy = start_caddy(tmp_path_factory, "tolerant", [route])
    yield caddy
    caddy.stop()


async def test_failures_below_max_fails_are_reported(stack, tolerant):
    b = addresses(stack["b"])
    fail_through(tolerant, b[0])
    result = pool_result(await run_layout(layout_yaml(stack, lb_checks=lb_checks(tolerant, samples=1))))
    assert result.status is Status.WARN, result.detail
    assert result.detail == (
        f"pool @auth: 3/3 up, all declared backends present; {b[0]} failed once through Caddy (max_fails 3)"
    )
    first = result.facts["pool"]["servers"][0]
    assert first["state"] == "UP" and first["service"] == "in" and first["errors"] == 1


# ----------------------------------------------------------------------------- hostile admin APIs


def fake_admin(config: bytes, upstreams: bytes = b"[]", content_type: str = "application/json", heads=None):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request(reader)
        if heads is not None:
            heads.append(head)
        path = head.split(b" ", 2)[1]
        writer.write(http_response(200, config if path == b"/config/" else upstreams, {"Content-Type": content_type}))
        await writer.drain()

    return handle


def config_for(ports: list[int], upstreams_value=None) -> bytes:
    handler = reverse_proxy(ports)
    if upstreams_value is not None:
        handler["upstreams"] = upstreams_value
    return json.dumps({"apps": {"http": {"servers": {"s": {"routes": [{"handle": [handler]}]}}}}}).encode()


HOSTILE = {
    "refused": "refused the connection",
    "not found": "answered 404 OK to GET /config/, not JSON: '404 page not found'",
    "html": "answered an HTML page to GET /config/, not JSON",
    "bomb": "sent more than 4096 KiB for GET /config/",
    "deep": "sent JSON that cannot be read for GET /config/: nested deeper than 64 levels",
    "garbage": "sent invalid JSON for GET /config/",
    "huge number": "sent JSON that cannot be read for GET /reverse_proxy/upstreams: a number with 5000 digits",
    "NaN literal": "sent JSON that cannot be read for GET /config/: NaN, which is not a JSON value",
    "upstreams not a list": "GET /reverse_proxy/upstreams gave an object, not a list of upstreams",
    "wrong shape": "apps.http.servers.s.routes[0].handle[0].upstreams is a string, not a list",
    "slow": "sent no response within 1s",
    "no config": "runs no config (GET /config/ answered null)",
    "forbidden": 'refused GET /config/ (403: \'{"error":"host not allowed: x"}\'): the admin endpoint accepts only',
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_admin_api_is_unknown_with_an_explanation(stack, pyservers, case):
    from tests.probe_helpers import probe

    good = config_for(stack["b"])
    handler = {
        "not found": responder(404, b"404 page not found\n"),
        "html": fake_admin(b"<html><body>\x1b[2JCaddy?</body></html>", content_type="text/html"),
        "bomb": endless_body,
        "deep": fake_admin(b"[" * 500_000),
        "garbage": fake_admin(b'{"apps": \x1b]0;PWN\x07\x00 nope'),
        "huge number": fake_admin(good, b'[{"address": "127.0.0.1:1", "num_requests": ' + b"9" * 5000 + b"}]"),
        "NaN literal": fake_admin(b'{"apps": {"http": {"grace_period": NaN}}}'),
        "upstreams not a list": fake_admin(good, b'{"address": "127.0.0.1:1"}'),
        "wrong shape": fake_admin(config_for(stack["b"], "127.0.0.1:1")),
        "slow": silent,
        "no config": fake_admin(b"null\n"),
        "forbidden": responder(403, b'{"error":"host not allowed: x"}'),
    }.get(case)
    port = free_port() if handler is None else pyservers.tcp(handler)
    result = await probe({"caddy": f"http://127.0.0.1:{port}", "timeout": "1s"})
    assert result.status is Status.UNKNOWN, (case, result.detail)
    assert HOSTILE[case] in result.detail, result.detail
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in result.detail), repr(result.detail)


async def test_the_admin_api_only_ever_gets_two_gets(stack, pyservers):
    heads: list[bytes] = []
    port = pyservers.tcp(fake_admin(config_for(stack["b"]), heads=heads))
    from tests.probe_helpers import probe

    result = await probe({"caddy": f"http://127.0.0.1:{port}/", "timeout": "2s"})
    assert result.status is Status.OK, result.detail  # no backend layer: nothing to compare, members answer
    assert sorted(h.split(b"\r\n", 1)[0] for h in heads) == [
        b"GET /config/ HTTP/1.1",
        b"GET /reverse_proxy/upstreams HTTP/1.1",
    ]


async def test_a_member_that_never_answers_is_reported_within_the_timeout(stack, pyservers):
    """The member probes get part of the time left, so a hung member is named in the
    result instead of the whole check running out of time."""
    from tests.probe_helpers import probe

    hung = pyservers.tcp(silent)
    config = json.loads(config_for([stack["b"][0], hung]))
    handler = config["apps"]["http"]["servers"]["s"]["routes"][0]["handle"][0]
    handler["health_checks"] = {"active": {"uri": "/health"}}
    port = pyservers.tcp(fake_admin(json.dumps(config).encode()))
    result = await probe({"caddy": f"http://127.0.0.1:{port}", "timeout": "1s"})
    assert result.status is Status.WARN, result.detail
    assert result.detail == f"pool s: 1/2 up — 127.0.0.1:{hung} DOWN (direct active GET /health: no response)"


async def test_a_pool_too_big_to_probe_is_refused(pyservers):
    from tests.probe_helpers import probe

    port = pyservers.tcp(fake_admin(config_for(list(range(1, 1100)))))
    result = await probe({"caddy": f"http://127.0.0.1:{port}", "timeout": "1s"})
    assert result.status is Status.UNKNOWN and "has 1099 members; the check probes at most 1000" in result.detail


async def test_control_characters_in_the_config_never_reach_the_result(stack, pyservers):
    from tests.probe_helpers import probe

    config = {
        "apps": {
            "http": {
                "servers": {
                    "\x1b[2Js": {
                        "routes": [
                            {
                                "@id": "\x1b]0;PWN\x07auth",
                                "match": [{"host": ["a\x9b31m.test"]}],
                                "handle": [reverse_proxy([stack["b"][0]]) | {"upstreams": [{"dial": "\x1b[31mx:1"}]}],
                            }
                        ]
                    }
                }
            }
        }
    }
    upstreams = json.dumps([{"address": "\x1b[31mx:1", "num_requests": 0, "fails": 2}]).encode()
    port = pyservers.tcp(fake_admin(json.dumps(config).encode(), upstreams))
    result = await probe({"caddy": f"http://127.0.0.1:{port}", "timeout": "2s"})
    shown = json.dumps({"detail": result.detail, "facts": result.facts}, ensure_ascii=False)
    assert "\\u001b" not in shown and "\\u0007" not in shown and "\x9b" not in shown, shown
    server = result.facts["pool"]["servers"][0]
    assert server["name"] == "·[31mx:1" and server["errors"] == 2  # still matched with its counters


# ----------------------------------------------------------------------------- the pre-deploy gate


def lint_layout(stack, tmp_path):
    return write_layout(tmp_path, layout_yaml(stack, lb_checks="      - caddy: http://127.0.0.1:1\n"))


def validate(path, tmp_path, adapter: str | None = None) -> subprocess.CompletedProcess:
    argv = [caddy_binary(), "validate", "--config", str(path)] + (["--adapter", adapter] if adapter else [])
    home = str(tmp_path)
    env = {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def dial_line(path, port: int) -> int:
    lines = path.read_text().splitlines()
    return next(i + 1 for i, line in enumerate(lines) if f'"dial": "127.0.0.1:{port}"' in line)


def test_lint_on_the_json_configs_caddy_runs(stack, caddies, tmp_path):
    layout = lint_layout(stack, tmp_path)
    healthy, misroute = caddies["healthy"].conf, caddies["misroute"].conf
    for conf in (healthy, misroute):
        assert validate(conf, tmp_path).returncode == 0
    good = run_cli("lint", str(layout), "--lb-config", str(healthy))
    assert good.returncode == 0, good.stdout + good.stderr
    for port, name in zip(stack["b"], ("auth-1", "auth-2", "auth-3")):
        assert (
            f"= 127.0.0.1:{port}" in good.stdout and f"[caddy.json:{dial_line(healthy, port)}] is {name}" in good.stdout
        )
    assert "✔ OK: pool @auth: 3/3 enabled, all declared backends present" in good.stdout
    drifted = run_cli("lint", str(layout), "--lb-config", str(misroute))
    assert drifted.returncode == 2, drifted.stdout + drifted.stderr
    d, b = stack["d"], stack["b"]
    assert f"  + 127.0.0.1:{d[0]}" in drifted.stdout and f"[caddy.json:{dial_line(misroute, d[0])}]" in drifted.stdout
    assert f"  - 127.0.0.1:{b[0]}" in drifted.stdout
    assert "✖ CRIT: pool @auth routes to" in drifted.stdout
    billing = run_cli("lint", str(layout), "--lb-config", str(healthy), "--pool", "billing.stackscope.test")
    assert billing.returncode == 2, billing.stdout + billing.stderr
    unknown = run_cli("lint", str(layout), "--lb-config", str(healthy), "--pool", "@nope")
    assert unknown.returncode == 3 and "no reverse_proxy under route '@nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


CADDYFILE = """\
{{
\tadmin off
\tauto_https off
}}
# the auth site
http://127.0.0.1:{front} {{
\treverse_proxy {first} {rest} {{
\t\tfail_duration 30s
\t}}
}}
"""


@pytest.mark.parametrize("case", ["healthy", "misroute", "broken"])
def test_lint_on_a_caddyfile_agrees_with_caddy_validate(stack, tmp_path, case):
    ports = stack["d"] if case == "misroute" else stack["b"]
    text = CADDYFILE.format(
        front=free_port(), first=f"127.0.0.1:{ports[0]}", rest=" ".join(f"http://127.0.0.1:{p}" for p in ports[1:])
    )
    if case == "broken":
        text = text.replace("fail_duration 30s", "fail_duraton 30s")
    path = tmp_path / "Caddyfile"
    path.write_text(text)
    checked = validate(path, tmp_path, "caddyfile")
    layout = lint_layout(stack, tmp_path)
    lint = run_cli("lint", str(layout), "--lb-config", str(path))
    if case == "broken":
        assert checked.returncode != 0 and "fail_duraton" in checked.stderr
        # caddy validate refuses it too (its words, file:line, on stdout): the gate fails, exit 2
        assert lint.returncode == 2 and "Caddyfile:8" in lint.stderr and "fail_duraton" in lint.stderr, lint.stderr
        assert "✖ Caddyfile:8: " in lint.stdout and "unrecognized subdirective fail_duraton" in lint.stdout
        return
    assert checked.returncode == 0, checked.stderr
    if case == "healthy":
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert lint.stdout.count("[Caddyfile:7] is auth-") == 3
    else:
        assert lint.returncode == 2, lint.stdout + lint.stderr
        assert f"  + 127.0.0.1:{ports[0]}" in lint.stdout and "[Caddyfile:7]: not a declared backend" in lint.stdout


def test_lint_on_a_caddyfile_without_caddy_on_path(stack, tmp_path):
    path = tmp_path / "Caddyfile"
    path.write_text(CADDYFILE.format(front=free_port(), first="127.0.0.1:1", rest=""))
    bare = tmp_path / "bin"
    bare.mkdir()
    lint = run_cli("lint", str(lint_layout(stack, tmp_path)), "--lb-config", str(path), env={"PATH": str(bare)})
    assert lint.returncode == 3 and "no caddy binary on PATH" in lint.stderr, lint.stderr


def test_the_example_layout_and_its_caddyfile_agree(tmp_path):
    """layouts/caddy.yaml quotes the Caddyfile it expects: caddy validates it, and the gate
    finds the layout's declared backends in it on the line of its reverse_proxy."""
    from tests.conftest import ROOT

    example = ROOT / "layouts" / "caddy.yaml"
    lines = example.read_text().splitlines()
    start = lines.index("# The Caddyfile this layout expects (Caddy 2.6):") + 2
    quoted = []
    for line in lines[start:]:
        if not line.startswith("#   "):
            break
        quoted.append(line[4:])
    path = tmp_path / "Caddyfile"
    path.write_text("\n".join(quoted) + "\n")
    assert validate(path, tmp_path, "caddyfile").returncode == 0
    line = next(i + 1 for i, text in enumerate(quoted) if text.strip().startswith("reverse_proxy"))
    lint = run_cli("lint", str(example), "--lb-config", str(path))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.count(f"[Caddyfile:{line}] is auth-") == 3
