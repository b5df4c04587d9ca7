"""`stackscope init` from a running LB (tests/servers/lbstacks.py, each with its admin
interface): HAProxy's admin socket and stats URL, Apache's balancer-manager, Caddy's admin
API and Varnish's CLI give a layout lint accepts and check passes on the healthy stack;
what already looks wrong (a member held out, a member naming another service) is marked
for review; hostile answers give a clear error, never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

from stackscope.discover import members as asked
from stackscope.discover.found import Member, Origin
from tests.conftest import run_cli
from tests.servers import lbstacks
from tests.servers.base import wait_until
from tests.servers.pyservers import garbage, responder, silent


def init(*args: str):
    return run_cli("init", *args, timeout=30)


def lint_and_check(tmp_path, done) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    out = tmp_path / "layout.yaml"
    out.write_text(done.stdout)
    lint = run_cli("lint", str(out))
    assert lint.returncode == 0, lint.stdout + lint.stderr + done.stdout
    check = run_cli("check", str(out), "--format", "json")
    assert check.returncode == 0, check.stdout + done.stdout
    return done.stdout


def test_haproxy_socket_and_stats_then_down_member_then_misroute(tmp_path):
    """One HAProxy: from its admin socket and from its stats URL a layout that checks 0,
    with the identity header the members send; a member in MAINT is marked for review;
    with --backends, the layout from the live pool names the LB once it is misrouted."""
    stack = lbstacks.HaproxyStack(dns=False, redis=False).start()
    try:
        frontend = f"http://127.0.0.1:{stack.frontend}"
        socket = f"unix:{stack.haproxy.admin_socket}"
        refused = init(socket)  # HAProxy's stats name frontends, never their binds
        assert refused.returncode == 3 and "--frontend URL" in refused.stderr and "web" in refused.stderr
        text = lint_and_check(tmp_path, init(socket, "--frontend", frontend))
        assert f"# {socket}: auth_servers/s1 UP" in text
        assert "identity_header: X-Served-By, samples: 3" in text
        assert "review" not in text
        text = lint_and_check(tmp_path, init(f"http://127.0.0.1:{stack.stats}/stats", "--frontend", frontend))
        assert "stats;csv', name: pool-auth_servers" in text

        stack.backends[1].fail()  # answers 500: HAProxy's health check takes it DOWN
        wait_until(lambda: stack.taken_out(1), 10, "s2 DOWN")
        held = init(socket, "--frontend", frontend)
        assert held.returncode == 0, held.stderr
        line = next(line for line in held.stdout.splitlines() if f":{stack.ports[1]}/" in line)
        assert "— review: haproxy holds it out now: DOWN" in line and "answered 500" in line
        assert "review auth_servers/s2: haproxy holds it out of rotation now (DOWN" in held.stderr
        assert "# review: pool auth_servers: haproxy holds s2 (DOWN" in held.stdout
        marked = [line for line in held.stdout.splitlines() if "review:" in line and "name: s" in line]
        assert marked == [line]  # s2 alone of the members
        stack.backends[1].heal()
        wait_until(stack.members_in_now, 10, "s2 back")

        truth = tmp_path / "backends.txt"
        truth.write_text("".join(f"127.0.0.1:{port}\n" for port in stack.ports))
        out = tmp_path / "truth.yaml"
        done = init(socket, "--frontend", frontend, "--backends", str(truth), "-o", str(out))
        assert done.returncode == 0, done.stderr
        stack.misroute()
        broken = run_cli("check", str(out), "--format", "json")
        assert broken.returncode == 2, broken.stdout
        assert json.loads(broken.stdout)["verdict"]["layer"] == "Load balancer", broken.stdout
    finally:
        stack.stop()


LIVE = {
    "apache": (lbstacks.ApacheStack, lambda s: [s.apache.manager_url]),
    "caddy": (lbstacks.CaddyStack, lambda s: [s.caddy.admin]),
    "varnish": (
        lbstacks.VarnishStack,
        lambda s: [
            f"varnish://127.0.0.1:{s.varnish.admin_port}",
            "--secret-file",
            str(s.varnish.secret_path),
            "--frontend",
            f"http://127.0.0.1:{s.frontend}",
        ],
    ),
}


@pytest.mark.parametrize("kind", list(LIVE))
def test_init_from_live_lb_lints_and_checks(kind, tmp_path):
    cls, source = LIVE[kind]
    stack = cls(dns=False, redis=False).start()
    try:
        text = lint_and_check(tmp_path, init(*source(stack)))
        assert f"(live {kind})" in text.splitlines()[0]
        for port in stack.ports:
            assert f"'http://127.0.0.1:{port}/health', name: " in text  # the LB's own health path
        assert f"http://127.0.0.1:{stack.frontend}/health" in text
        assert "identity_header: X-Served-By, samples: 3" in text and "review" not in text
        if kind == "varnish":  # the secret is named by its file, never read into the layout
            assert stack.varnish.secret_path.read_text().strip() not in text
    finally:
        stack.stop()
        shutil.rmtree(stack.dir, ignore_errors=True)


def test_a_member_naming_another_service_is_marked(pyservers, tmp_path):
    """Real sockets: two members say auth-N, the third billing-7 (the pool points at
    another service): the header is used, and the odd member is marked for review."""
    ports = [pyservers.tcp(responder(headers={"X-Served-By": name})) for name in ("auth-1", "auth-2", "billing-7")]
    cfg = tmp_path / "haproxy.cfg"
    servers = "".join(f"    server s{i} 127.0.0.1:{port} check\n" for i, port in enumerate(ports, 1))
    cfg.write_text("frontend web\n    bind 127.0.0.1:1\n    default_backend auth\nbackend auth\n" + servers)
    done = init(str(cfg), "--probe")
    assert done.returncode == 0, done.stderr
    lines = {port: next(line for line in done.stdout.splitlines() if f":{port}/'" in line) for port in ports}
    assert "identity_header: X-Served-By" in lines[ports[0]] and "review" not in lines[ports[0]]
    assert "review: X-Served-By: billing-7 — unlike the pool's other members (auth…)" in lines[ports[2]]
    assert "review auth/s3: X-Served-By: billing-7" in done.stderr


def _member(name: str) -> Member:
    return Member(name, "127.0.0.1", 1, Origin("test"))


def test_judge_identities():
    answers = {
        ("auth", "a"): asked.Answer(True, "", (("X-Served-By", "auth-1"),)),
        ("auth", "b"): asked.Answer(True, "", (("X-Served-By", "auth-1"),)),
        ("auth", "c"): asked.Answer(True, "", (("X-Served-By", "auth-3"),)),
        ("auth", "d"): asked.Answer(False, "GET / directly: refused"),
    }
    members = tuple(_member(n) for n in "abcd")
    header, why = asked.judge("auth", members, answers)
    assert header == "X-Served-By"
    assert set(why) == {"a", "b", "d"} and "same server twice" in why["a"] and "refused" in why["d"]
    alike = {("auth", n): asked.Answer(True, "", (("X-Backend", "auth"),)) for n in "ab"}  # an app naming itself
    assert asked.judge("auth", members[:2], alike) == ("X-Backend", {})
    none = {("auth", "a"): asked.Answer(True, "", (("X-Served-By", "auth-1"),)), ("auth", "b"): asked.Answer(True, "")}
    assert asked.judge("auth", members[:2], none) == (None, {})


def _html(reader, writer):
    return responder(body=b"<html><body>\x1b]0;pwned\x07 hello</body></html>")(reader, writer)


HOSTILE = {
    "haproxy stats HTML": (lambda p: f"http://127.0.0.1:{p}/stats", _html, "an HTML page instead of a stats CSV"),
    "apache not a manager": (lambda p: f"http://127.0.0.1:{p}/balancer-manager", _html, "not the balancer-manager"),
    "caddy HTML": (lambda p: f"http://127.0.0.1:{p}", _html, "an HTML page to GET /config/"),
    "varnish garbage": (lambda p: f"varnish://127.0.0.1:{p}", garbage, "does not speak the Varnish CLI"),
    "caddy silent": (lambda p: f"http://127.0.0.1:{p}", silent, "within"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_live_answers_get_a_clear_error(case, pyservers):
    url, handler, expected = HOSTILE[case]
    source = url(pyservers.tcp(handler))
    done = init(source, "--frontend", "http://127.0.0.1:1", "--timeout", "0.3")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert expected in done.stderr and source in done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr


def test_haproxy_socket_impostor_and_unknown_url(pyservers, tmp_path):
    async def impostor(reader, writer):
        await reader.readline()
        writer.write(b"# pxname,svname,type\nweb\x1b[2J,FRONTEND,0\n")  # a stats CSV of frontends only
        await writer.drain()

    path = pyservers.unix(impostor, str(tmp_path / "admin.sock"))
    done = init(f"unix:{path}")
    assert done.returncode == 3 and "Traceback" not in done.stderr and "\x1b" not in done.stderr
    assert "--frontend URL" in done.stderr
    nothing = init(f"unix:{path}", "--frontend", "http://127.0.0.1:1")
    assert nothing.returncode == 3 and "found nothing to check" in nothing.stderr
    unknown = init("http://127.0.0.1:1/status")
    assert unknown.returncode == 3 and "give --kind" in unknown.stderr
