"""One hostile payload, sent by every kind of server text a probe reads, through every output.

Fakes on 127.0.0.1 put terminal escapes (an OSC title set, ESC[2J, an 8-bit CSI, bidi
overrides, NUL, DEL) in a PostgreSQL ErrorResponse, a MySQL ERR packet after login, a
Redis error reply and an INFO field, and HAProxy stats CSV fields (the pool's server
names, states and check text, which the pool detail screen shows). None of those
characters may reach `check` in any format, `watch --plain`, the `--record` timeline or
the dashboard (the main screen and the pool's detail screen); the payload's printable
word ("pwned") must, so the test knows the text did reach each output.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from stackscope.engine import Engine
from stackscope.layout import load_layout
from stackscope.tui.app import StackscopeApp
from stackscope.tui.screens import DetailScreen
from tests.conftest import ROOT, run_cli, write_layout
from tests.servers.hostile_dbs import pg_error, pg_script, redis_script
from tests.servers.pyservers import read_request, responder
from tests.tui.stack import screen_showing, until

DEADLINE = 30
# The payload: an OSC title set, clear screen, an 8-bit CSI, bidi overrides, NUL, DEL.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil\u202c\u2066x\u2069\x00\x7f"
NO_NUL = HOSTILE.replace("\x00", "")  # for C strings (a PostgreSQL field ends at NUL)
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
JSON_ESCAPES = ("\\u001b", "\\u0007", "\\u009b", "\\u202e", "\\u0000", "\\u007f", "\\u2066")


# --------------------------------------------------------------------------- the fakes


def mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def mysql_greeting() -> bytes:
    """A MySQL 5.7 handshake v10 offering mysql_native_password (no TLS)."""
    caps = 0x0200 | 0x8000 | 0x80000  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH
    payload = (
        b"\x0a5.7.44-fake\x00"
        + struct.pack("<I", 7)
        + b"abcdefgh\x00"
        + struct.pack("<H", caps & 0xFFFF)
        + b"\x21"
        + struct.pack("<H", 2)
        + struct.pack("<H", caps >> 16)
        + bytes([21])
        + b"\x00" * 10
        + b"ijklmnopqrst\x00"
        + b"mysql_native_password\x00"
    )
    return mysql_packet(0, payload)


async def mysql_err_after_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greets, reads the login, answers an ERR packet whose message is the payload."""
    writer.write(mysql_greeting())
    await writer.drain()
    header = await asyncio.wait_for(reader.readexactly(4), 10)
    await asyncio.wait_for(reader.readexactly(int.from_bytes(header[:3], "little")), 10)
    err = b"\xff" + struct.pack("<H", 1045) + b"#28000" + ("Access denied " + HOSTILE).encode()
    writer.write(mysql_packet(header[3] + 1, err))
    await writer.drain()
    await asyncio.wait_for(reader.read(), 10)


def redis_info_reply() -> bytes:
    body = f"# Replication\r\nrole:master{HOSTILE}\r\nconnected_slaves:0\r\n".encode()
    return b"$" + str(len(body)).encode() + b"\r\n" + body + b"\r\n"


CSV_HEADER = "# pxname,svname,status,weight,bck,check_status,check_code,last_chk,type,addr,"


def stats_csv(backend_port: int) -> bytes:
    rows = [
        CSV_HEADER,
        f"app,app1{NO_NUL},UP{NO_NUL},1,0,L7OK,200,,2,127.0.0.1:{backend_port},",
        f"app,app2,DOWN,1,0,L4CON,,Connection refused {HOSTILE},2,127.0.0.2:{backend_port},",
        "app,BACKEND,UP,1,0,,,,1,,",
    ]
    return ("\n".join(rows) + "\n").encode()


def answer_stats(port: int):
    """An HTTP 'stats page' answering the hostile CSV."""
    body = stats_csv(port)

    async def handle(reader, writer) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()

    return handle


@pytest.fixture
def hostile_layout(pyservers, tmp_path):
    backend = pyservers.tcp(responder(200, b"ok\n"))
    stats = pyservers.tcp(answer_stats(backend))
    ports = {
        "pg": pyservers.tcp(pg_script(pg_error("password authentication failed " + NO_NUL))),
        "mysql": pyservers.tcp(mysql_err_after_login),
        "redis-error": pyservers.tcp(redis_script(f"-ERR {HOSTILE}\r\n".encode())),
        "redis-info": pyservers.tcp(redis_script(b"+PONG\r\n", redis_info_reply())),
    }
    text = f"""\
name: hostile
interval: 5s
timeout: 2s
layers:
  - name: LB
    role: lb
    checks:
      - {{haproxy: "http://127.0.0.1:{stats}/stats;csv", name: pool, backend: app}}
  - name: Backends
    role: backend
    checks:
      - {{http: "http://127.0.0.1:{backend}/", name: web}}
  - name: Cache
    role: cache
    checks:
      - {{redis: "127.0.0.1:{ports["redis-error"]}", name: redis-error}}
      - {{redis: "127.0.0.1:{ports["redis-info"]}", name: redis-info}}
  - name: Database
    role: db
    checks:
      - {{postgres: "127.0.0.1:{ports["pg"]}", name: pg, user: u, password_env: PW}}
      - {{mysql: "127.0.0.1:{ports["mysql"]}", name: mysql, user: u, password_env: PW}}
"""
    return write_layout(tmp_path, text), tmp_path


ENV = {"PW": "a-password-of-some-length"}


def assert_terminal_safe(text: str, where: str) -> None:
    bad = UNSAFE.search(text)
    assert bad is None, f"{where} holds {bad.group()!r}: ...{text[max(0, bad.start() - 60) : bad.end() + 20]!r}"


def strings_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_in(k) + strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


# --------------------------------------------------------------------------- check, every format


def test_every_probe_every_check_format(hostile_layout):
    path, _ = hostile_layout
    seen = {}
    for fmt in ("text", "json", "junit", "nagios"):
        done = run_cli("check", str(path), "--format", fmt, env=ENV)
        assert done.returncode in (1, 2, 3), done.stderr
        assert_terminal_safe(done.stdout.replace("\n", " "), f"check --format {fmt}")
        assert_terminal_safe(done.stderr.replace("\n", " "), f"check --format {fmt} (stderr)")
        seen[fmt] = done.stdout
    doc = json.loads(seen["json"])
    for escape in JSON_ESCAPES:
        assert escape not in seen["json"], escape
    for string in strings_in(doc):
        assert_terminal_safe(string, "a JSON string")
    checks = {c["name"]: c for layer in doc["layers"] for c in layer["checks"]}
    # the server text did reach each check's output, neutralised
    for name in ("pg", "mysql", "redis-error", "pool"):
        assert "pwned" in json.dumps(checks[name]), (name, checks[name])
    assert "pwned" in json.dumps(checks["redis-info"]["facts"]), checks["redis-info"]
    ET.fromstring(seen["junit"])  # still well-formed XML


# --------------------------------------------------------------------------- watch --plain and --record


def test_watch_plain_and_the_recorded_timeline(hostile_layout):
    path, tmp_path = hostile_layout
    record = tmp_path / "timeline.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **ENV}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackscope", "watch", str(path), "--plain", "--rounds", "1", "--record", str(record)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    try:
        out, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert "pwned" in out, out
    assert_terminal_safe(out.replace("\n", " "), "watch --plain")
    assert_terminal_safe(err.replace("\n", " "), "watch --plain (stderr)")
    timeline = record.read_text()
    assert "pwned" in timeline
    assert_terminal_safe(timeline.replace("\n", " "), "the --record timeline")


# --------------------------------------------------------------------------- the dashboard


async def test_the_dashboard_and_the_pool_detail_screen(hostile_layout):
    path, tmp_path = hostile_layout
    layout = load_layout(str(path), environ=ENV)
    app = StackscopeApp(layout, engine=Engine(layout, environ=ENV), timeline_dir=str(tmp_path))
    async with app.run_test(size=(200, 60)) as pilot:
        await until(
            pilot, lambda: app.diagnosis is not None and app.engine.rounds >= 1, "a finished round", timeout=DEADLINE
        )
        main = await screen_showing(pilot, app, "pwned", "the hostile text on the dashboard")
        assert_terminal_safe(main.replace("\n", " "), "the dashboard")
        shown = 0
        for _ in range(len(list(layout.checks()))):  # each check's detail screen, the pool's among them
            await pilot.press("enter")
            if isinstance(app.screen, DetailScreen):
                text = await screen_showing(pilot, app, "", "a detail screen")
                assert_terminal_safe(text.replace("\n", " "), f"the detail screen of {app.screen.check.name}")
                shown += app.screen.check.name == "pool" and "app1" in text
                await pilot.press("escape")
            await pilot.press("j")
        assert shown == 1, "the pool's detail screen (with its servers) was never shown"
