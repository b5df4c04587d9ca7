"""One known secret, short and long, through every output stackscope has.

Hostile fakes on 127.0.0.1 echo the secret back (in an error, in garbage, placed so the
probe's 40-character cut would land inside it), and real Redis, PostgreSQL and MariaDB
log in with it through password_env. The secret must be absent from `check` in every
format (stdout and stderr), `watch --plain`, the `--record` timeline and the dashboard
(screenshot of the main screen and of a check's detail screen).
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
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
from tests.tui.stack import until

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
    record = tmp_path / "timeline.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "S": secret}
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


def screen_text(app) -> str:
    """What the screen shows: the SVG screenshot's text, tags stripped and entities decoded."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def test_the_dashboard_and_the_detail_screen(case):
    secret, path, tmp_path = case
    layout = load_layout(str(path), environ={"S": secret})
    app = StackscopeApp(layout, engine=Engine(layout, environ={"S": secret}), timeline_dir=str(tmp_path))
    async with app.run_test(size=(160, 50)) as pilot:
        await until(
            pilot, lambda: app.diagnosis is not None and app.engine.rounds >= 1, "a finished round", timeout=DEADLINE
        )
        await pilot.pause()
        assert_absent(secret, screen_text(app), "the dashboard")
        details = 0
        for _ in range(len(list(layout.checks()))):  # each check's detail screen, one by one
            await pilot.press("enter")
            if isinstance(app.screen, DetailScreen):
                details += 1
                assert_absent(secret, screen_text(app), f"the detail screen of {app.screen.check.name}")
                await pilot.press("escape")
            await pilot.press("j")
        assert details >= 1
