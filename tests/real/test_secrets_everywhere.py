"""One known secret, short and long, through every output stackscope has.

Hostile fakes on 127.0.0.1 echo the secret back (in an error, in garbage, placed so the
probe's 40-character cut would land inside it), and real Redis, PostgreSQL and MariaDB
log in with it through password_env. The secret must be absent from `check` in every
format (stdout and stderr), `watch --plain`, the `--record` timeline and the dashboard
(screenshot of the main screen and of a check's detail screen).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from stackscope.engine import Engine
from stackscope.layout import load_layout
from stackscope.tui.app import StackscopeApp
from stackscope.tui.screens import DetailScreen
from tests.conftest import ROOT, run_cli, write_layout
from tests.servers.dbs import MariaDB, Postgres, Redis
from tests.servers.hostile_dbs import mysql_raw, pg_auth, pg_echo_password_error, pg_script, redis_script
from tests.tui.stack import screen_showing, until

SECRETS = {"short": "pw1", "long": "correct-horse-battery-staple-4711"}
DEADLINE = 30  # seconds any wait below may take before the test fails


@pytest.fixture(scope="module")
def real():
    """One server of each kind; a login per secret variant is added to each."""
    redis, pg, maria = Redis().start(), Postgres().start(), MariaDB().start()
    try:
        for variant, secret in SECRETS.items():
            redis.command("ACL", "SETUSER", variant, "on", f">{secret}", "+ping", "+info")
            pg.psql(f"create role {variant} login password '{secret}'")
            maria.sql(f"create user '{variant}'@'127.0.0.1' identified by '{secret}'")
        yield redis, pg, maria
    finally:
        for server in (redis, pg, maria):
            server.remove()


def hostile(pyservers, secret: str) -> dict[str, int]:
    """Fakes that echo the secret: in an error, and in garbage the probe shortens."""
    data = secret.encode()
    return {
        # AUTH answered with an error quoting the password (whole, never cut)
        "redis-error": pyservers.tcp(redis_script(lambda words: b"-ERR wrong password " + words[-1] + b"\r\n")),
        # AUTH answered with garbage in which the password straddles the 40-character cut
        "redis-garbage": pyservers.tcp(redis_script(lambda words: b"?" * 25 + b"id=" + words[-1] + b"\x00\r\n")),
        # asks for a cleartext password, then quotes it in the ErrorResponse
        "pg-echo": pyservers.tcp(pg_script(pg_auth(3), pg_echo_password_error())),
        # a 'greeting' of garbage with the secret where printable() cuts
        "mysql-garbage": pyservers.tcp(mysql_raw(b"\x20\x00\x00\x00" + b"\x07" * 20 + b"pw=" + data + b"\x01" * 9)),
    }


def layout_text(variant: str, fakes: dict[str, int], real) -> str:
    redis, pg, maria = real
    return f"""\
name: secrets-{variant}
interval: 5s
timeout: 2s
layers:
  - name: Cache
    role: cache
    checks:
      - {{redis: "127.0.0.1:{fakes["redis-error"]}", name: redis-error, password_env: S}}
      - {{redis: "127.0.0.1:{fakes["redis-garbage"]}", name: redis-garbage, password_env: S}}
      - {{redis: "127.0.0.1:{redis.port}", name: redis-real, user: {variant}, password_env: S}}
  - name: Database
    role: db
    checks:
      - {{postgres: "127.0.0.1:{fakes["pg-echo"]}", name: pg-echo, user: {variant}, password_env: S}}
      - {{postgres: "127.0.0.1:{pg.port}", name: pg-real, user: {variant}, password_env: S}}
      - {{mysql: "127.0.0.1:{fakes["mysql-garbage"]}", name: mysql-garbage, user: {variant}, password_env: S}}
      - {{mysql: "127.0.0.1:{maria.port}", name: mysql-real, user: {variant}, password_env: S}}
"""


def assert_absent(secret: str, text: str, where: str) -> None:
    assert secret not in text, f"the secret leaked into {where}"
    if len(secret) > 8:
        assert secret[:8] not in text, f"a prefix of the secret leaked into {where}"


@pytest.fixture(params=sorted(SECRETS))
def case(request, pyservers, real, tmp_path):
    variant = request.param
    secret = SECRETS[variant]
    path = write_layout(tmp_path, layout_text(variant, hostile(pyservers, secret), real))
    return secret, path, tmp_path


def test_check_in_every_format(case):
    secret, path, _ = case
    seen = {}
    for fmt in ("text", "json", "junit", "nagios"):
        done = run_cli("check", str(path), "--format", fmt, env={"S": secret})
        assert_absent(secret, done.stdout, f"check --format {fmt} (stdout)")
        assert_absent(secret, done.stderr, f"check --format {fmt} (stderr)")
        seen[fmt] = done.stdout
    assert "«redacted»" in seen["json"]  # the echoes happened, and were masked
    checks = {c["name"]: c for layer in json.loads(seen["json"])["layers"] for c in layer["checks"]}
    for name in ("redis-real", "pg-real", "mysql-real"):  # the real logins worked with the secret
        assert checks[name]["status"] == "ok", checks[name]
    for name in ("redis-error", "redis-garbage", "pg-echo", "mysql-garbage"):
        assert checks[name]["status"] == "crit", checks[name]


def test_watch_plain_and_the_recorded_timeline(case):
    secret, path, tmp_path = case
    assert_watch_masks(secret, path, tmp_path, {"S": secret})


def assert_watch_masks(secret: str, path, tmp_path, extra_env: dict) -> None:
    """`watch --plain --record` until its first result line, then Ctrl-C: the secret is in
    neither its output nor the timeline it records."""
    record = tmp_path / "timeline.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **extra_env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackscope", "watch", str(path), "--plain", "--record", str(record)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    out = []
    try:
        deadline = time.monotonic() + DEADLINE
        while True:  # until the first result line (the banner starts with 'stackscope:')
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no result line from watch --plain: {out}"
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            out.append(line)
            if not line.startswith("stackscope:"):
                break
        proc.send_signal(signal.SIGINT)
        proc.wait(DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(DEADLINE)
    while not lines.empty():
        out.append(lines.get())
    stderr = proc.stderr.read()
    assert_absent(secret, "".join(out), "watch --plain (stdout)")
    assert_absent(secret, stderr, "watch --plain (stderr)")
    assert record.exists(), stderr
    assert_absent(secret, record.read_text(), "the --record timeline")
    assert "«redacted»" in "".join(out) + record.read_text()  # what held the secret was printed, masked


async def test_the_dashboard_and_the_detail_screen(case):
    secret, path, tmp_path = case
    layout = load_layout(str(path), environ={"S": secret})
    app = StackscopeApp(layout, engine=Engine(layout, environ={"S": secret}), timeline_dir=str(tmp_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await until(
            pilot, lambda: app.diagnosis is not None and app.engine.rounds >= 1, "a finished round", timeout=DEADLINE
        )
        assert_absent(secret, await screen_showing(pilot, app, "", "the dashboard"), "the dashboard")
        details = 0
        for _ in range(len(list(layout.checks()))):  # each check's detail screen, one by one
            await pilot.press("enter")
            if isinstance(app.screen, DetailScreen):
                details += 1
                name = app.screen.check.name
                assert_absent(
                    secret, await screen_showing(pilot, app, "", "a detail screen"), f"the detail screen of {name}"
                )
                await pilot.press("escape")
            await pilot.press("j")
        assert details >= 1


# ----------------------------------------------------------------------------- a Varnish secret_file
# The CLI secret of a real varnishd (-S), read from the file the layout names: a person who
# pastes it into a layer's or a check's name must not see it printed, as with *_env secrets.
# A check named with it fails (nothing listens), so watch --plain and the timeline name it.

FILE_SECRET = "Zt4-hN8-qW2-rB6-fileonly"


@pytest.fixture(scope="module")
def varnish_layout(tmp_path_factory):
    from tests.real.test_lb_varnish import vcl_text
    from tests.servers.base import free_port
    from tests.servers.pyservers import PyServers
    from tests.servers.varnish import Varnish, identity_backend

    servers = PyServers()
    ports = [servers.tcp(identity_backend(f"auth-{i + 1}")) for i in range(2)]
    workdir = tmp_path_factory.mktemp("varnish-secret")
    proxy = Varnish(workdir / "varnishd", vcl_text(ports), (FILE_SECRET + "\n").encode()).spawn()
    try:
        proxy.wait_ready()
        rows = "\n".join(f"      - {{tcp: 127.0.0.1:{port}, name: auth-{i + 1}}}" for i, port in enumerate(ports))
        path = write_layout(
            workdir,
            f"""\
name: varnish-secret
interval: 5s
timeout: 2s
layers:
  - name: Edge {FILE_SECRET}
    role: lb
    checks:
      - varnish: 127.0.0.1:{proxy.admin_port}
        name: pool-{FILE_SECRET}
        director: auth_servers
        secret_file: {proxy.secret_path}
      - {{tcp: "127.0.0.1:{free_port()}", name: down-{FILE_SECRET}}}
  - name: Auth backends
    role: backend
    checks:
{rows}
""",
        )
        yield path
    finally:
        proxy.stop()
        servers.close()


def test_a_secret_file_is_masked_in_names_in_every_check_format(varnish_layout):
    seen = {}
    for fmt in ("text", "json", "junit", "nagios"):
        done = run_cli("check", str(varnish_layout), "--format", fmt)
        assert_absent(FILE_SECRET, done.stdout, f"check --format {fmt} (stdout)")
        assert_absent(FILE_SECRET, done.stderr, f"check --format {fmt} (stderr)")
        seen[fmt] = done.stdout
    layer = json.loads(seen["json"])["layers"][0]
    assert layer["name"] == "Edge «redacted»"
    pool, down = layer["checks"]
    assert (pool["name"], down["name"]) == ("pool-«redacted»", "down-«redacted»")
    # the probe logged in with the secret read when the layout loaded: it read the pool
    assert pool["facts"].get("error_kind") != "auth" and pool["facts"]["varnish"]["vcl"], pool


def test_a_secret_file_is_masked_in_watch_plain_and_the_recorded_timeline(varnish_layout, tmp_path):
    assert_watch_masks(FILE_SECRET, varnish_layout, tmp_path, {})


@pytest.mark.parametrize("what", ["fifo", "oversized", "directory", "empty"])
def test_a_secret_file_that_cannot_serve_is_a_located_error(tmp_path, what):
    secret = tmp_path / "secret"
    if what == "fifo":
        os.mkfifo(secret)
    elif what == "oversized":
        secret.write_bytes(b"x" * 4097)
    elif what == "directory":
        secret.mkdir()
    else:
        secret.write_bytes(b"")
    layout = write_layout(
        tmp_path,
        f"name: v\nlayers:\n  - name: Edge\n    role: lb\n    checks:\n      - varnish: 127.0.0.1:6082\n"
        f"        director: d\n        secret_file: {secret}\n",
    )
    words = {
        "fifo": "is not a regular file (a named pipe (FIFO)): stackscope reads only regular files",
        "oversized": "is larger than 4096 bytes (4097 bytes): refused unread",
        "directory": "is a directory",
        "empty": "is empty",
    }[what]
    for command in ("check", "lint"):  # a wrong file is wrong wherever the layout is read
        done = run_cli(command, str(layout))
        assert done.returncode == 3, done.stdout + done.stderr
        assert f"{layout}:8: layer 'Edge', checks[0] (varnish): 'secret_file': the secret file " in done.stderr
        assert words in done.stderr and " — " in done.stderr  # what, then the fix
        assert "Traceback" not in done.stderr


def test_a_missing_secret_file_stops_check_and_is_a_note_for_lint(tmp_path):
    """Like an unset *_env variable: `check` refuses the layout, naming the file; `lint`,
    on a machine that does not hold the secret, accepts it and says what check will need."""
    missing = tmp_path / "nowhere" / "secret"
    layout = write_layout(
        tmp_path,
        f"name: v\nlayers:\n  - name: Edge\n    role: lb\n    checks:\n      - varnish: 127.0.0.1:6082\n"
        f"        director: d\n        secret_file: {missing}\n",
    )
    done = run_cli("check", str(layout))
    assert done.returncode == 3 and f"{layout}:8: " in done.stderr
    assert f"'secret_file': no secret file at {missing} — fix the path" in done.stderr
    linted = run_cli("lint", str(layout))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert f"note: secret file {missing} cannot be read here; `check` and `watch` will need it" in linted.stdout
