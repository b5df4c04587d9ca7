"""The varnish check and the VCL gate against real Varnish 7.1 on loopback.

Three auth backends and two decoys (another service's servers, answering 200 too) are
small HTTP servers naming themselves in X-Served-By. Several varnishd instances put a
director `auth_servers` in front of them: healthy, misrouted to the decoys under the
auth names (the 2023-12-07 incident), pointing at dead ports, with a probe on a path that
404s, and one member set sick by an operator (varnishadm, in this set-up only).
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from stackscope.lb.pool import compress
from stackscope.lb.varnish_cli import READ_ONLY
from stackscope.model import ErrorKind, Status
from tests.conftest import ROOT, run_cli, write_layout
from tests.probe_helpers import assert_unreadable
from tests.real.test_lb_real import run_layout
from tests.servers.base import LOOPBACK, free_port, wait_until
from tests.servers.pyservers import PyServers, garbage, hang_up, silent
from tests.servers.varnish import Varnish, compile_vcl, identity_backend

SECRET = b"Qm7-vT2-xK9-pL4-wR8\n"  # no word of the messages: six shared characters are masked


def vcl_text(ports: list[int], *, check_path: str = "/health", unused: list[int] | None = None) -> str:
    backends = "\n".join(
        f'backend auth{i + 1} {{ .host = "127.0.0.1"; .port = "{port}"; .probe = hc; }}' for i, port in enumerate(ports)
    )
    adds = "\n".join(f"    auth_servers.add_backend(auth{i + 1});" for i in range(len(ports)))
    spare = ""
    if unused:
        backends += "\n" + "\n".join(
            f'backend spare{i + 1} {{ .host = "127.0.0.1"; .port = "{port}"; }}' for i, port in enumerate(unused)
        )
        spare = "    new unused_pool = directors.random();\n" + "\n".join(
            f"    unused_pool.add_backend(spare{i + 1}, 1);" for i in range(len(unused))
        )
    return f"""vcl 4.1;
import directors;

# a brace in a comment {{ and a string "}}" must not bend the structure
probe hc {{ .url = "{check_path}"; .interval = 100ms; .timeout = 1s; .window = 3; .threshold = 2; .initial = 0; }}

{backends}

sub vcl_init {{
    new auth_servers = directors.round_robin();
{adds}
{spare}
}}

sub vcl_recv {{
    set req.backend_hint = auth_servers.backend();
    return (pass);
}}
"""


@pytest.fixture(scope="module")
def web():
    servers = PyServers()
    ports = {
        "b": [servers.tcp(identity_backend(f"auth-{i + 1}")) for i in range(3)],
        "d": [servers.tcp(identity_backend(f"decoy-{i + 1}")) for i in range(2)],
        "db": servers.tcp(silent),
        "servers": servers,
    }
    yield ports
    servers.close()


@pytest.fixture(scope="module")
def varnishes(tmp_path_factory, web):
    b, d = web["b"], web["d"]
    dead = [free_port(), free_port()]
    scenarios = {
        "healthy": (vcl_text(b, unused=d), {f"auth{i + 1}": ("probe", "healthy") for i in range(3)}),
        "misroute": (vcl_text(d), {"auth1": ("probe", "healthy"), "auth2": ("probe", "healthy")}),
        "dead": (vcl_text(dead), {"auth1": ("probe", "sick"), "auth2": ("probe", "sick")}),
        "badcheck": (vcl_text(b, check_path="/wrong"), {f"auth{i + 1}": ("probe", "sick") for i in range(3)}),
        "maint": (vcl_text(b), {f"auth{i + 1}": ("probe", "healthy") for i in range(3)}),
    }
    instances: dict[str, Varnish] = {}
    try:
        for name, (vcl, _) in scenarios.items():  # all start at once: each compiles its VCL
            instances[name] = Varnish(tmp_path_factory.mktemp(f"varnish-{name}"), vcl, SECRET).spawn()
        for name, (_, expect) in scenarios.items():
            proxy = instances[name].wait_ready()
            seen: list[dict] = [{}]

            def settled(proxy=proxy, expect=expect, seen=seen) -> bool:
                seen[0] = {k: v for k, v in proxy.health().items() if k.startswith("auth")}
                return seen[0] == expect

            try:
                wait_until(settled, 20, f"varnish {name} probes settle", proxy.process.died)
            except Exception as exc:
                raise AssertionError(f"{exc}: expected {expect}, last seen {seen[0]}") from None
        instances["maint"].admin("backend.set_health", "auth2", "sick")  # an operator's action, in set-up only
        wait_until(lambda: instances["maint"].health()["auth2"][0] == "sick", 5, "auth2 set sick")
        yield instances
    finally:
        for proxy in instances.values():
            proxy.stop()


def layout_yaml(web, proxy: Varnish, *, director: str = "auth_servers", extra: str = "", samples: int = 4) -> str:
    rows = "\n".join(
        f'      - {{http: "http://127.0.0.1:{port}/health", name: auth-{i + 1}, identity_header: X-Served-By}}'
        for i, port in enumerate(web["b"])
    )
    secret = extra or f"        secret_file: {proxy.secret_path}\n"
    return f"""\
name: varnish-test
interval: 3s
timeout: 2s
layers:
  - name: Load balancer
    role: lb
    checks:
      - http: http://127.0.0.1:{proxy.http_port}/health
        name: frontend
        identity_header: X-Served-By
        samples: {samples}
      - varnish: 127.0.0.1:{proxy.admin_port}
        name: pool
        director: {director}
{secret}  - name: Auth backends
    role: backend
    checks:
{rows}
  - name: Database
    role: db
    checks:
      - tcp: 127.0.0.1:{web["db"]}
"""


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def pool_result(diagnosis):
    return next(c for layer in diagnosis.layers for c in layer.checks if c.check.type == "varnish").result


def assert_only_read_only(commands: list[str]) -> None:
    for command in commands:
        assert (
            command in READ_ONLY
            or re.fullmatch(r"vcl\.show -v [A-Za-z0-9_.-]+", command)
            or (re.fullmatch(r"auth [0-9a-f]{64}", command) or command == "auth <response>")
        ), command


# ----------------------------------------------------------------------------- live checks


async def test_healthy_director_is_ok_with_no_verdict(web, varnishes):
    diagnosis = await run_layout(layout_yaml(web, varnishes["healthy"]))
    result = pool_result(diagnosis)
    assert result.status is Status.OK, result.detail
    assert result.key_fact == "pool 3/3 UP"
    assert result.detail == "pool auth_servers: 3/3 up, all declared backends present"
    pool = result.facts["pool"]
    assert [(s["name"], s["address"], s["service"], s["declared_as"]) for s in pool["servers"]] == [
        (f"auth{i + 1}", f"127.0.0.1:{port}", "in", f"auth-{i + 1}") for i, port in enumerate(web["b"])
    ]
    assert pool["status"] == "healthy" and pool["director_type"] == "round_robin"
    line = line_of(varnishes["healthy"].vcl_path.read_text(), "set req.backend_hint")
    assert pool["used_by"] == [f"vcl_recv set req.backend_hint = auth_servers.backend() [default.vcl:{line}]"]
    # probe hc as vcl_text writes it: .timeout 1s + .threshold 2 x .interval 100ms
    assert ".interval = 100ms; .timeout = 1s; .window = 3; .threshold = 2;" in varnishes["healthy"].vcl_path.read_text()
    assert [m.readmit_s for m in result.evidence.members] == [1.2] * 3
    assert_only_read_only(result.facts["varnish"]["commands"])
    assert diagnosis.verdict is None


def test_seed_misroute_is_named_with_backends_ruled_out(web, varnishes, tmp_path):
    """The 2023-12-07 incident on Varnish: director auth_servers keeps the auth names but
    its backends are another service's servers, which answer 200."""
    layout = write_layout(tmp_path, layout_yaml(web, varnishes["misroute"]))
    done = run_cli("check", str(layout), "--format", "json")
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    verdict = report["verdict"]
    b, d = web["b"], web["d"]
    assert verdict["layer"] == "Load balancer" and verdict["status"] == "crit"
    assert verdict["summary"] == (
        f"Load balancer: pool auth_servers routes to {compress([f'127.0.0.1:{p}' for p in d])} "
        f"— none is a declared backend; declared {compress([f'127.0.0.1:{p}' for p in b])} missing"
    )
    assert "Auth backends: 3/3 answer 200 directly" in verdict["ruled_out"]
    frontend = report["layers"][0]["checks"][0]
    assert frontend["status"] == "ok" and set(frontend["facts"]["identities"]) <= {"decoy-1", "decoy-2"}
    pool = report["layers"][0]["checks"][1]
    assert pool["facts"]["pool"]["unexpected"] == [f"127.0.0.1:{p}" for p in d]


async def test_dead_pool_is_drift(web, varnishes):
    diagnosis = await run_layout(layout_yaml(web, varnishes["dead"], samples=1))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.POOL
    holds = compress([s["address"] for s in result.facts["pool"]["servers"]])
    declared = compress([f"127.0.0.1:{p}" for p in web["b"]])
    assert result.detail == (
        f"none of the declared backends ({declared}) is in pool auth_servers; it holds {holds} (none taking traffic)"
    )
    assert diagnosis.verdict.layer == "Load balancer"
    assert diagnosis.layers[0].checks[0].result.facts["status_code"] == 503  # Varnish's own 503


async def test_wrong_health_check_is_called_out(web, varnishes):
    diagnosis = await run_layout(layout_yaml(web, varnishes["badcheck"], samples=1))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.MEMBERS_DOWN
    assert {s["service"] for s in result.facts["pool"]["servers"]} == {"down-by-check"}
    verdict = diagnosis.verdict
    assert verdict.layer == "Load balancer"
    assert verdict.summary.startswith(
        "Load balancer: health check fails on the LB but every backend answers 200 "
        "directly: the LB's health check is wrong (the LB's check says: probe /wrong 0/3 good"
    ), verdict.summary
    assert "Auth backends: 3/3 answer 200 directly" in verdict.ruled_out


async def test_one_member_set_sick_is_a_maintenance_warning(web, varnishes):
    diagnosis = await run_layout(layout_yaml(web, varnishes["maint"], samples=1))
    result = pool_result(diagnosis)
    assert result.status is Status.WARN, result.detail
    assert result.detail.startswith("pool auth_servers: 2/3 up — auth2 MAINT (set sick)"), result.detail
    assert result.key_fact == "pool 2/3 UP"
    services = {s["name"]: s["service"] for s in result.facts["pool"]["servers"]}
    assert services == {"auth1": "in", "auth2": "maint", "auth3": "in"}
    assert diagnosis.verdict.layer == "Load balancer" and diagnosis.verdict.status is Status.WARN


async def test_director_nothing_routes_to_is_crit(web, varnishes):
    diagnosis = await run_layout(layout_yaml(web, varnishes["healthy"], director="unused_pool", samples=1))
    result = pool_result(diagnosis)
    assert result.status is Status.CRIT and result.key_fact == "unrouted"
    line = line_of(varnishes["healthy"].vcl_path.read_text(), "set req.backend_hint")
    assert result.detail.startswith(
        "nothing routes to pool unused_pool in default.vcl: users' traffic does not reach the declared backends "
        f"(traffic goes to vcl_recv → auth_servers.backend() [default.vcl:{line}])"
    ), result.detail


async def test_only_allow_listed_commands_reach_varnish_and_its_state_is_unchanged(web, varnishes):
    """A recording relay between the check and the real CLI port: every line the check sent
    is read-only, and backend.list before and after the check is the same."""
    proxy = varnishes["maint"]
    lines: list[bytes] = []

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, proxy.admin_port)

        async def pump(src, dst, record: bool) -> None:
            buffer = b""
            for _ in range(10000):  # bounded: a CLI session is a handful of replies
                chunk = await src.read(65536)
                if not chunk:
                    break
                if record:
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        lines.append(line)
                dst.write(chunk)
                await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))
        finally:
            up_writer.transport.abort()

    relay_port = web["servers"].tcp(relay)
    before = proxy.backend_list()
    text = layout_yaml(web, proxy, samples=1).replace(
        f"varnish: 127.0.0.1:{proxy.admin_port}", f"varnish: 127.0.0.1:{relay_port}"
    )
    diagnosis = await run_layout(text)
    result = pool_result(diagnosis)
    assert result.status is Status.WARN, result.detail  # auth2 is still set sick: read, not touched
    sent = [line.decode() for line in lines]
    assert sent and sent[0].startswith("auth ")
    assert [s for s in sent if not s.startswith("auth ")] == ["vcl.list", "vcl.show -v boot", "backend.list -j"]
    assert_only_read_only(sent)
    after = proxy.backend_list()
    assert {k: (v["admin_health"], v["last_change"]) for k, v in after.items()} == {
        k: (v["admin_health"], v["last_change"]) for k, v in before.items()
    }


async def test_secret_from_env_without_its_newline_logs_in(web, varnishes):
    proxy = varnishes["healthy"]
    environ = {"VARNISH_SECRET": SECRET.decode().strip()}  # as $(cat secret) gives it
    text = layout_yaml(web, proxy, extra="        secret_env: VARNISH_SECRET\n", samples=1)
    diagnosis = await run_layout(text, environ)
    assert pool_result(diagnosis).status is Status.OK, pool_result(diagnosis).detail


async def test_the_probe_logs_in_with_the_secret_read_when_the_layout_loaded(web, varnishes, tmp_path):
    """The secret file is read once, when the layout loads (and masked from then on): a file
    changed afterwards is not re-read, as an *_env value is the one the process started with."""
    from stackscope.diagnosis import assess
    from stackscope.engine import Engine
    from stackscope.kinds import ParseContext
    from stackscope.layout import parse_layout

    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    text = layout_yaml(web, varnishes["healthy"], extra=f"        secret_file: {secret}\n", samples=1)
    layout = parse_layout(text, "<test>", ParseContext(environ={}))
    assert layout.file_secret(str(secret)) == SECRET and str(SECRET) not in repr(layout)
    secret.write_bytes(b"Hj3-nB6-cY1-zD5\n")  # a wrong secret now: the probe must not read it
    engine = Engine(layout, environ={})
    try:
        result = pool_result(assess(await engine.run_round()))
    finally:
        await engine.aclose()
    assert result.status is Status.OK, result.detail


def test_wrong_secret_is_an_auth_failure_and_no_secret_is_shown(web, varnishes, tmp_path):
    proxy = varnishes["healthy"]
    wrong = tmp_path / "wrong-secret"
    wrong.write_bytes(b"Hj3-nB6-cY1-zD5\n")
    text = layout_yaml(web, proxy, extra=f"        secret_file: {wrong}\n", samples=1)
    done = run_cli("check", str(write_layout(tmp_path, text)), "--format", "json")
    pool = json.loads(done.stdout)["layers"][0]["checks"][1]
    assert pool["status"] == "unknown" and pool["facts"]["error_kind"] == "auth"
    assert pool["detail"] == (
        f"the Varnish CLI at 127.0.0.1:{proxy.admin_port} rejected the CLI secret "
        "(is it the file varnishd was started with -S?)"
    )
    assert "Hj3-nB6-cY1-zD5" not in done.stdout + done.stderr
    assert SECRET.decode().strip() not in done.stdout + done.stderr


# ----------------------------------------------------------------------------- hostile peers


def cli_frame(code: int, body: bytes) -> bytes:
    return f"{code:<3d} {len(body):<8d}\n".encode() + body + b"\n"


async def _stall_mid_status(reader, writer):
    writer.write(b"107 5")
    await writer.drain()
    await asyncio.wait_for(reader.read(), 60)


async def _bad_length(reader, writer):
    writer.write(b"200 abcdefgh\nhello\n")
    await writer.drain()


async def _over_cap(reader, writer):
    writer.write(b"200 99999999\n" + b"x" * 4096)
    await writer.drain()
    await asyncio.wait_for(reader.read(), 60)


async def _stall_mid_body(reader, writer):
    writer.write(b"200 500     \n" + b"x" * 10)
    await writer.drain()
    await asyncio.wait_for(reader.read(), 60)


async def _always_107(reader, writer):
    for _ in range(5):  # a peer rejecting every answer (bounded)
        writer.write(cli_frame(107, b"abcdefghijklmnopqrstuvwxyzabcdef\n\nAuthentication required.\n"))
        await writer.drain()
        if not await reader.readline():
            return


def _echo_secret(secret: bytes):
    async def handle(reader, writer):
        writer.write(cli_frame(200, b"banner"))
        await writer.drain()
        await reader.readline()
        writer.write(cli_frame(300, b"bad: " + secret))
        await writer.drain()

    return handle


@pytest.mark.parametrize(
    "handler, words",
    [
        (_stall_mid_status, "did not send the CLI greeting within 1s"),
        (_bad_length, "does not speak the Varnish CLI: it sent '200 abcdefgh·hello·'"),
        (_over_cap, "announced a reply of 99999999 bytes, over the cap of 4096 KiB"),
        (_stall_mid_body, "did not send the CLI greeting within 1s"),
        (garbage, "does not speak the Varnish CLI"),
        (_always_107, "rejected the CLI secret"),
        (hang_up, "closed the connection while the probe waited to send the CLI greeting"),
    ],
    ids=["stall-mid-status", "bad-length", "over-cap", "stall-mid-body", "garbage-banner", "wrong-auth", "hang-up"],
)
async def test_hostile_cli_peer_fails_the_check_with_an_explanation(tmp_path, web, handler, words):
    port = web["servers"].tcp(handler)
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    text = f"""\
name: hostile
timeout: 1s
layers:
  - name: Load balancer
    role: lb
    checks:
      - varnish: 127.0.0.1:{port}
        director: auth_servers
        secret_file: {secret}
"""
    diagnosis = await run_layout(text)
    result = pool_result(diagnosis)
    assert result.status is Status.UNKNOWN, result.detail
    assert words in result.detail, result.detail


async def test_a_peer_echoing_the_secret_has_it_masked(tmp_path, web):
    port = web["servers"].tcp(_echo_secret(SECRET.strip()))
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    text = f"""\
name: echo
timeout: 1s
layers:
  - name: Load balancer
    role: lb
    checks:
      - varnish: 127.0.0.1:{port}
        director: auth_servers
        secret_file: {secret}
"""
    result = pool_result(await run_layout(text))
    assert result.status is Status.UNKNOWN
    assert "answered vcl.list with 300: 'bad: «redacted»'" in result.detail, result.detail
    assert SECRET.decode().strip() not in json.dumps(result.facts) + result.detail
    layout = write_layout(tmp_path, text)
    for form in ("text", "json"):  # the command a user runs, in a process of its own
        done = await asyncio.to_thread(run_cli, "check", str(layout), "--format", form)
        assert "«redacted»" in done.stdout, done.stdout + done.stderr
        assert SECRET.decode().strip() not in done.stdout + done.stderr


# ----------------------------------------------------------------------------- the gate


def gate_layout(tmp_path, web, director: str = "auth_servers") -> str:
    rows = "\n".join(f"      - {{tcp: 127.0.0.1:{port}, name: auth-{i + 1}}}" for i, port in enumerate(web["b"]))
    return str(
        write_layout(
            tmp_path,
            f"""\
name: gate
layers:
  - name: Load balancer
    role: lb
    checks:
      - varnish: 127.0.0.1:6082
        director: {director}
        secret_file: /etc/varnish/secret
  - name: Auth backends
    role: backend
    checks:
{rows}
""",
        )
    )


def test_gate_ok_on_vcl_varnishd_compiles(tmp_path, web):
    vcl = tmp_path / "default.vcl"
    vcl.write_text(vcl_text(web["b"]))
    assert compile_vcl(vcl, tmp_path).returncode == 0
    done = run_cli("lint", gate_layout(tmp_path, web), "--lb-config", str(vcl))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✔ OK: pool auth_servers: 3/3 enabled, all declared backends present" in done.stdout
    line = line_of(vcl.read_text(), "auth_servers.add_backend(auth1)")
    assert f"= 127.0.0.1:{web['b'][0]:<14} auth1 [default.vcl:{line}] is auth-1" in done.stdout


def test_gate_names_drift_with_file_and_line_through_an_include(tmp_path, web):
    b, d = web["b"], web["d"]
    (tmp_path / "backends.vcl").write_text(
        f'backend auth1 {{ .host = "127.0.0.1"; .port = "{d[0]}"; }}\n'
        f'backend auth2 {{ .host = "127.0.0.1"; .port = "{b[1]}"; }}\n'
    )
    vcl = tmp_path / "default.vcl"
    vcl.write_text(
        "vcl 4.1;\nimport directors;\n"
        'include "backends.vcl";\n'
        "sub vcl_init {\n"
        "    new auth_servers = directors.round_robin();\n"
        "    auth_servers.add_backend(auth1);\n"
        "    auth_servers.add_backend(auth2);\n"
        "}\n"
        "sub vcl_recv { set req.backend_hint = auth_servers.backend(); }\n"
    )
    assert compile_vcl(vcl, tmp_path).returncode == 0
    done = run_cli("lint", gate_layout(tmp_path, web), "--lb-config", str(vcl))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"+ 127.0.0.1:{d[0]:<14} auth1 [default.vcl:6]: not a declared backend" in done.stdout
    assert f"- 127.0.0.1:{b[0]:<14} auth-1: declared, not in the pool" in done.stdout
    assert "✖ CRIT: pool auth_servers routes to" in done.stdout


def test_gate_director_nothing_routes_to_is_crit(tmp_path, web):
    vcl = tmp_path / "default.vcl"
    vcl.write_text(vcl_text(web["b"]).replace("set req.backend_hint = auth_servers.backend();", ""))
    assert compile_vcl(vcl, tmp_path).returncode == 0
    done = run_cli("lint", gate_layout(tmp_path, web), "--lb-config", str(vcl))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "! nothing routes to auth_servers in default.vcl" in done.stdout
    assert "(traffic goes to the default backend auth1 (no subroutine sets req.backend_hint))" in done.stdout


def test_gate_partial_drift_is_exit_1(tmp_path, web):
    vcl = tmp_path / "default.vcl"
    vcl.write_text(vcl_text(web["b"][:2]))
    assert compile_vcl(vcl, tmp_path).returncode == 0
    done = run_cli("lint", gate_layout(tmp_path, web), "--lb-config", str(vcl))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"declared 127.0.0.1:{web['b'][2]} missing from pool auth_servers (2/3 present)" in done.stdout


def test_the_example_layouts_vcl_compiles_and_passes_the_gate(tmp_path):
    """layouts/varnish.yaml carries the VCL it expects in its comments: it must be valid VCL
    (varnishd -C) and match the layout's declared backends."""
    example = ROOT / "layouts" / "varnish.yaml"
    lines = example.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line == "#   vcl 4.1;")
    end = next(i for i in range(start, len(lines)) if lines[i] == "#   }" and "return" in lines[i - 1])
    vcl = tmp_path / "default.vcl"
    vcl.write_text("\n".join(line[4:].split("  #")[0] for line in lines[start : end + 1]) + "\n")
    done = compile_vcl(vcl, tmp_path)
    assert done.returncode == 0, done.stderr + vcl.read_text()
    done = run_cli("lint", str(example), "--lb-config", str(vcl))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✔ OK: pool auth_servers: 3/3 enabled, all declared backends present" in done.stdout


def fake_cli(sent: list[str], vcl_source: bytes, path: bytes, backend_list: dict | bytes) -> object:
    """A CLI peer without a secret (varnishd -S none) that records every line it gets and
    answers vcl.list, vcl.show -v and backend.list -j with the given content (bytes: the
    whole backend.list -j reply as it is)."""
    shown = b"// VCL.SHOW 0 %d " % len(vcl_source) + path + b"\n" + vcl_source + b"// VCL.SHOW 1 6 <builtin>\nx = 1;"
    answers = {
        "vcl.list": b"active   auto    warm         0    boot\n",
        "vcl.show -v boot": shown,
        "backend.list -j": backend_list
        if isinstance(backend_list, bytes)
        else json.dumps([3, ["backend.list", "-j"], 1.0, backend_list]).encode(),
    }

    async def handle(reader, writer):
        writer.write(cli_frame(200, b"Varnish Cache CLI 1.0"))
        await writer.drain()
        for _ in range(20):  # bounded: a session is a few commands
            line = await reader.readline()
            if not line:
                return
            command = line.decode().rstrip("\n")
            sent.append(command)
            body = answers.get(command)
            writer.write(cli_frame(200, body) if body is not None else cli_frame(101, b"Unknown request."))
            await writer.drain()

    return handle


async def test_server_text_is_made_terminal_safe_and_byte_lengths_are_honoured(web):
    """A VCL with multi-byte UTF-8 (the VCL.SHOW length counts bytes) and escape sequences in
    a path, a probe URL and backend.list words: the pool is read, and no control character
    reaches the result."""
    b = web["b"]
    source = (
        "vcl 4.1;\nimport directors;\n// café ünïcödé — the length is in bytes\n"
        'probe hc { .url = "/health\x1b[2J"; }\n'
        + "".join(
            f'backend auth{i + 1} {{ .host = "127.0.0.1"; .port = "{p}"; .probe = hc; }}\n' for i, p in enumerate(b)
        )
        + "sub vcl_init {\n  new auth_servers = directors.round_robin();\n"
        + "".join(f"  auth_servers.add_backend(auth{i + 1});\n" for i in range(3))
        + "}\nsub vcl_recv { set req.backend_hint = auth_servers.backend(); }\n"
    ).encode()
    states = {
        f"boot.auth{i + 1}": {
            "type": "backend",
            "admin_health": "probe",
            "probe_message": [3, 3, "healthy\x1b]0;x\x07"],
        }
        for i in range(3)
    }
    sent: list[str] = []
    port = web["servers"].tcp(fake_cli(sent, source, b"/etc/varnish/\x1b[31mdefault.vcl", states))
    rows = "\n".join(f"      - {{tcp: 127.0.0.1:{p}, name: auth-{i + 1}}}" for i, p in enumerate(b))
    text = f"""\
name: fake
timeout: 2s
layers:
  - name: Load balancer
    role: lb
    checks:
      - varnish: 127.0.0.1:{port}
        director: auth_servers
  - name: Auth backends
    role: backend
    checks:
{rows}
"""
    result = pool_result(await run_layout(text))
    texts: list[str] = [result.detail]

    def walk(value) -> None:
        if isinstance(value, dict):
            texts.extend(str(k) for k in value)
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            texts.append(value)

    walk(result.facts)
    assert not [t for t in texts if re.search("[\x00-\x1f\x7f-\x9f]", t)]
    assert any("/health·[2J" in t for t in texts)  # the probe URL, made safe
    assert [s["address"] for s in result.facts["pool"]["servers"]] == [f"127.0.0.1:{p}" for p in b]
    assert result.facts["varnish"]["files"] == ["/etc/varnish/·[31mdefault.vcl"]
    assert sent == ["vcl.list", "vcl.show -v boot", "backend.list -j"]


def test_the_unit_tests_vcl_samples_are_vcl_varnishd_compiles(tmp_path):
    """The parser's unit tests read VCL that Varnish itself accepts (varnishd -C), so they
    test the language, not an imitation of it."""
    import socket

    from tests.unit.test_varnish import NAMED_ARGS_VCL, VCL

    sock_path = tmp_path / "app.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))  # a .path backend must exist when the VCL compiles
        for name, text in (("main", VCL.replace("/run/app.sock", str(sock_path))), ("named", NAMED_ARGS_VCL)):
            path = tmp_path / f"{name}.vcl"
            path.write_text(text)
            done = compile_vcl(path, tmp_path / name)
            assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"


def _backend_list(states: str) -> bytes:
    return ('[3, ["backend.list", "-j"], 1700000000.0, ' + states + "]").encode()


HOSTILE_BACKEND_LISTS = {
    "500,000 deep": (
        _backend_list('{"boot.auth1": ' + "[" * 500_000 + "]" * 500_000 + "}"),
        "backend.list -j answered JSON that cannot be read: nested deeper than 64 levels",
    ),
    "400-digit last_change": (
        _backend_list('{"boot.auth1": {"type": "backend", "admin_health": "probe", "last_change": ' + "9" * 400 + "}}"),
        "backend.list -j answered JSON that cannot be read: a number with 400 digits",
    ),
    "admin_health not text": (
        _backend_list('{"boot.auth1": {"type": "backend", "admin_health": {"a": 1}}}'),
        "boot.auth1.admin_health is an object, not a string",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_BACKEND_LISTS))
async def test_hostile_backend_list_is_unknown_with_the_reason(web, case):
    """backend.list -j nested deep, with a number no float holds, or of the wrong shape:
    UNKNOWN "cannot read the pool" saying why, never a crash reported as `internal`."""
    b = web["b"]
    source = (
        "vcl 4.1;\nimport directors;\n"
        + "".join(f'backend auth{i + 1} {{ .host = "127.0.0.1"; .port = "{p}"; }}\n' for i, p in enumerate(b))
        + "sub vcl_init {\n  new auth_servers = directors.round_robin();\n"
        + "".join(f"  auth_servers.add_backend(auth{i + 1});\n" for i in range(3))
        + "}\nsub vcl_recv { set req.backend_hint = auth_servers.backend(); }\n"
    ).encode()
    body, words = HOSTILE_BACKEND_LISTS[case]
    port = web["servers"].tcp(fake_cli([], source, b"/etc/varnish/default.vcl", body))
    text = f"""\
name: hostile
timeout: 5s
layers:
  - name: Load balancer
    role: lb
    checks:
      - varnish: 127.0.0.1:{port}
        director: auth_servers
"""
    result = pool_result(await run_layout(text))
    assert_unreadable(result, "cannot read the pool from the Varnish CLI")
    assert words in result.detail, result.detail
