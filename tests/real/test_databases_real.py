"""postgres, mysql and redis probes against real PostgreSQL 15, MariaDB 10.11 and Redis 7
on loopback; process and host probes on this machine; and the verdict when the database
behind real backends goes away."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import psutil
import pytest

from stackscope.model import ErrorKind, Status
from tests.conftest import run_cli, write_layout
from tests.probe_helpers import probe
from tests.servers.base import LOOPBACK, free_port
from tests.servers.dbs import MariaDB, Postgres, Redis
from tests.servers.hostile_dbs import (
    SASL_OFFER,
    mysql_raw,
    pg_auth,
    pg_message,
    pg_script,
    redis_script,
    scram_server_first,
)
from tests.servers.nginx import Nginx
from tests.servers.pyservers import ENDLESS_CAP, garbage, http_response, read_request, responder, silent

PG_PASSWORD = "pg-Secret-4711"
MARIA_PASSWORD = "maria-Secret-0815"
REDIS_PASSWORD = "redis-Secret-2342"


async def until(check: dict, predicate, timeout: float = 20, **kwargs):
    """Probe until `predicate(result)` holds (a state the test caused takes effect), or fail."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = await probe(check, **kwargs)
        if predicate(result):
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"never reached the expected state; last: {result}")


async def saturate(server, count: int, check: dict, timeout: float = 20):
    """Fill every connection slot with idle sessions and probe until the probe is turned
    away. A holder that lost the race for a slot (to a probe) exits: start it again."""
    held = server.hold(count)
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        held = [proc if proc.poll() is None else server.hold(1)[0] for proc in held]
        result = await probe(check)
        if result.status is not Status.OK:
            return held, result
        await asyncio.sleep(0.2)
    release(held)
    raise AssertionError(f"the server never filled up; last: {result}")


def release(held) -> None:
    for proc in held:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- postgres


@pytest.fixture(scope="module")
def pg():
    server = Postgres(settings={"max_connections": "4", "superuser_reserved_connections": "0"}).start()
    server.psql(f"create role app login password '{PG_PASSWORD}'")
    yield server
    server.remove()


async def test_postgres_up_without_credentials_says_what_it_asks_for(pg):
    result = await probe({"postgres": f"127.0.0.1:{pg.port}"})
    assert result.status is Status.OK, result.detail
    assert result.detail == f"127.0.0.1:{pg.port} is accepting connections (asks for SASL (SCRAM-SHA-256))"
    assert result.facts["tls"] is False  # the server said N to the SSL request


async def test_postgres_login_with_scram(pg):
    env = {"PGPASS": PG_PASSWORD}
    result = await probe({"postgres": f"127.0.0.1:{pg.port}", "user": "app", "password_env": "PGPASS"}, environ=env)
    assert result.status is Status.OK, result.detail
    assert result.facts["server_version"].startswith("15.") and result.facts["in_recovery"] is False
    assert "logged in, SELECT 1 ok" in result.detail
    assert PG_PASSWORD not in repr(result)


async def test_postgres_wrong_password_and_missing_database(pg):
    wrong = await probe({"postgres": f"127.0.0.1:{pg.port}", "user": "app", "password_env": "P"}, environ={"P": "no"})
    assert wrong.status is Status.CRIT and wrong.error_kind is ErrorKind.AUTH
    assert "28P01" in wrong.detail
    missing = await probe(
        {"postgres": f"127.0.0.1:{pg.port}", "user": "app", "database": "gone", "password_env": "P"},
        environ={"P": PG_PASSWORD},
    )
    assert missing.status is Status.CRIT and 'database "gone" does not exist (3D000)' in missing.detail


async def test_postgres_too_many_connections(pg):
    held, result = await saturate(pg, 4, {"postgres": f"127.0.0.1:{pg.port}"})
    try:
        assert result.status is Status.CRIT and result.error_kind is ErrorKind.SATURATED
        assert "sorry, too many clients already (53300)" in result.detail
    finally:
        release(held)
    await until({"postgres": f"127.0.0.1:{pg.port}"}, lambda r: r.status is Status.OK)


async def test_postgres_standby_not_accepting_connections():
    server = Postgres(standby=True, settings={"hot_standby": "off"}).start()
    try:
        result = await until({"postgres": f"127.0.0.1:{server.port}"}, lambda r: r.error_kind is ErrorKind.STATE)
        assert result.status is Status.CRIT
        assert "(57P03)" in result.detail and "not accepting connections" in result.detail
    finally:
        server.remove()


async def test_a_hot_standby_without_a_primary_is_not_streaming():
    """standby.signal and no primary_conninfo: it serves whatever it has, forever stale."""
    server = Postgres(standby=True, settings={"hot_standby": "on"}, hba="host all all 127.0.0.1/32 trust").start()
    try:
        result = await until(
            {"postgres": f"127.0.0.1:{server.port}", "user": "postgres"}, lambda r: r.status is not Status.CRIT
        )
        assert result.facts["in_recovery"] is True and result.facts["wal_receiver"] == "none"
        assert result.status is Status.WARN and result.error_kind is ErrorKind.STATE
        assert "standby is not streaming from its primary (serving possibly stale data" in result.detail
    finally:
        server.remove()


def streaming_pair() -> tuple[Postgres, Postgres]:
    """A primary and a hot standby cloned from it with pg_basebackup -R (streaming over the
    primary's unix socket). The role `app` (no superuser, no pg_monitor) exists on both."""
    from tests.servers.dbs import PG_BIN, _run_as

    primary = Postgres(hba="host all all 127.0.0.1/32 scram-sha-256\nlocal replication all trust").start()
    primary.psql(f"create role app login password '{PG_PASSWORD}'")
    standby = Postgres(settings={"hot_standby": "on"})
    done = _run_as(
        standby.user,
        [
            f"{PG_BIN}/pg_basebackup",
            "-h",
            str(primary.dir),
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(standby.data),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ],
    )
    if done.returncode:
        primary.remove()
        standby.remove()
        raise RuntimeError(f"pg_basebackup failed: {done.stderr}")
    return primary, standby.start()


async def test_a_streaming_standby_of_an_idle_primary_has_no_lag_and_warns_when_cut_off():
    primary, standby = streaming_pair()
    check = {"postgres": f"127.0.0.1:{standby.port}", "user": "app", "password_env": "P"}
    env = {"P": PG_PASSWORD}
    try:
        primary.psql("create table t (x int); insert into t values (1)")  # something to replay, then idle
        streaming = await until(
            check, lambda r: r.status is Status.OK and r.facts.get("replay_lag_s") == 0, environ=env
        )
        assert streaming.facts["in_recovery"] is True and "replay lag 0.0s" in streaming.detail
        # app lacks pg_read_all_stats: the receiver's status is hidden, its existence is not
        assert streaming.facts["wal_receiver"].startswith("running (status hidden")
        primary.stop()
        cut_off = await until(check, lambda r: r.status is Status.WARN, environ=env)
        assert "standby is not streaming from its primary (serving possibly stale data" in cut_off.detail
        assert cut_off.key_fact == "not streaming"
    finally:
        standby.remove()
        primary.remove()


async def test_postgres_stopped_and_impostors(pyservers):
    server = Postgres().start()
    port = server.port
    server.remove()
    stopped = await probe({"postgres": f"127.0.0.1:{port}"})
    assert stopped.status is Status.CRIT and stopped.error_kind is ErrorKind.REFUSED
    noisy = await probe({"postgres": f"127.0.0.1:{pyservers.tcp(garbage)}", "timeout": "1s"})
    assert noisy.status is Status.CRIT and noisy.error_kind is ErrorKind.PROTOCOL
    assert "is not PostgreSQL" in noisy.detail


# ----------------------------------------------------------------------------- mariadb


@pytest.fixture(scope="module")
def maria():
    server = MariaDB(max_connections=10).start()
    server.sql(f"create user 'app'@'127.0.0.1' identified by '{MARIA_PASSWORD}'")
    yield server
    server.remove()


async def test_mysql_greeting_without_credentials(maria):
    result = await probe({"mysql": f"127.0.0.1:{maria.port}"})
    assert result.status is Status.OK, result.detail
    assert result.facts["version"].startswith("10.11.") and not result.facts["version"].startswith("5.5.5-")
    assert "refuses user 'stackscope' (1045)" in result.detail


async def test_mysql_login_and_wrong_password(maria):
    ok = await probe(
        {"mysql": f"127.0.0.1:{maria.port}", "user": "app", "password_env": "M"}, environ={"M": MARIA_PASSWORD}
    )
    assert ok.status is Status.OK and "logged in, SELECT 1 ok" in ok.detail
    wrong = await probe({"mysql": f"127.0.0.1:{maria.port}", "user": "app", "password_env": "M"}, environ={"M": "x"})
    assert wrong.status is Status.CRIT and wrong.error_kind is ErrorKind.AUTH


async def test_mysql_saturation_is_seen_after_the_handshake(maria):
    """MariaDB greets even when full; the probe's completed handshake gets the 1040."""
    held, result = await saturate(maria, 11, {"mysql": f"127.0.0.1:{maria.port}"})  # + the spare for SUPER
    try:
        assert result.status is Status.CRIT and result.error_kind is ErrorKind.SATURATED
        assert "Too many connections (1040)" in result.detail
    finally:
        release(held)
    await until({"mysql": f"127.0.0.1:{maria.port}"}, lambda r: r.status is Status.OK)
    # nothing left behind: every probe finished its handshake and left (no session, no
    # half-open "unauthenticated user" connection lingering on the server)
    for _ in range(5):
        await probe({"mysql": f"127.0.0.1:{maria.port}"})
    lingering = (
        "select count(*) from information_schema.processlist where user in ('stackscope', 'unauthenticated user')"
    )
    await until({"mysql": f"127.0.0.1:{maria.port}"}, lambda r: maria.sql(lingering) == "0", timeout=5)


async def test_mysql_against_something_else(pyservers):
    async def ssh_banner(reader, writer):
        writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)

    result = await probe({"mysql": f"127.0.0.1:{pyservers.tcp(ssh_banner)}", "timeout": "1s"})
    assert result.status is Status.CRIT
    assert "an SSH server answered" in result.detail
    noisy = await probe({"mysql": f"127.0.0.1:{pyservers.tcp(garbage)}", "timeout": "1s"})
    assert noisy.status is Status.CRIT and "does not speak MySQL" in noisy.detail


# ----------------------------------------------------------------------------- redis


@pytest.fixture(scope="module")
def redis_plain():
    server = Redis("--busy-reply-threshold", "100").start()
    yield server
    server.remove()


async def test_redis_pong_and_role(redis_plain):
    result = await probe({"redis": f"127.0.0.1:{redis_plain.port}"})
    assert result.status is Status.OK
    assert result.facts["role"] == "master" and result.key_fact == "master"


async def test_redis_auth(tmp_path):
    server = Redis("--requirepass", REDIS_PASSWORD).start()
    target = f"127.0.0.1:{server.port}"
    try:
        noauth = await probe({"redis": target})
        assert noauth.status is Status.OK and "needs AUTH" in noauth.detail
        good = await probe({"redis": target, "password_env": "R"}, environ={"R": REDIS_PASSWORD})
        assert good.status is Status.OK and good.facts["role"] == "master"
        bad = await probe({"redis": target, "password_env": "R"}, environ={"R": "nope"})
        assert bad.status is Status.CRIT and bad.error_kind is ErrorKind.AUTH
        layout = write_layout(
            tmp_path,
            f"name: r\nlayers:\n  - name: Cache\n    role: cache\n    checks:\n"
            f"      - redis: {target}\n        password_env: R\n",
        )
        for fmt in ("text", "json", "junit", "nagios"):
            done = run_cli("check", str(layout), "--format", fmt, env={"R": REDIS_PASSWORD})
            assert done.returncode == 0 and REDIS_PASSWORD not in done.stdout + done.stderr
    finally:
        server.remove()


async def test_redis_password_env_logs_in_first_even_where_no_password_is_needed(redis_plain):
    # (The password shares no six characters with the user name: six shared characters of a
    # secret are masked wherever they appear, the user name too.)
    """The default user is nopass, so PING alone would say +PONG to anyone: AUTH comes first."""
    target = f"127.0.0.1:{redis_plain.port}"
    wrong = await probe({"redis": target, "password_env": "R"}, environ={"R": "nope"})
    assert wrong.status is Status.CRIT and wrong.error_kind is ErrorKind.AUTH
    assert wrong.detail.startswith(f"{target} refused the login: -ERR AUTH") and "PING" not in wrong.detail
    ghost = await probe({"redis": target, "user": "ghost", "password_env": "R"}, environ={"R": "nope"})
    assert ghost.status is Status.CRIT and ghost.detail.startswith(f"{target} refused the login: -WRONGPASS")
    redis_plain.command("ACL", "SETUSER", "prober", "on", ">Zx9-w8v-q7u", "+ping", "+info")
    good = await probe({"redis": target, "user": "prober", "password_env": "R"}, environ={"R": "Zx9-w8v-q7u"})
    assert good.status is Status.OK and good.facts["logged_in_as"] == "prober", good.detail


async def test_redis_full():
    server = Redis("--maxclients", "1").start()
    deadline = time.monotonic() + 10
    while True:  # take the only slot; a connection still closing (the readiness check) may hold it briefly
        holder = socket.create_connection((LOOPBACK, server.port))
        holder.sendall(b"PING\r\n")
        if holder.recv(64).startswith(b"+PONG"):
            break
        holder.close()
        assert time.monotonic() < deadline, "could not take the only client slot"
    try:
        result = await until({"redis": f"127.0.0.1:{server.port}"}, lambda r: r.status is not Status.OK)
        assert result.error_kind is ErrorKind.SATURATED and "max number of clients reached" in result.detail
    finally:
        holder.close()
        server.remove()


async def test_redis_busy_script(redis_plain):
    runner = socket.create_connection((LOOPBACK, redis_plain.port))
    runner.sendall(b"*3\r\n$4\r\nEVAL\r\n$17\r\nwhile true do end\r\n$1\r\n0\r\n")
    try:
        result = await until({"redis": f"127.0.0.1:{redis_plain.port}"}, lambda r: r.status is not Status.OK)
        assert result.status is Status.CRIT and result.key_fact == "BUSY"
        assert "busy running a script" in result.detail
    finally:
        redis_plain.command("SCRIPT", "KILL")
        runner.close()
    await until({"redis": f"127.0.0.1:{redis_plain.port}"}, lambda r: r.status is Status.OK)


async def test_redis_replica_without_master():
    dead = free_port()
    strict = Redis("--replicaof", LOOPBACK, str(dead), "--replica-serve-stale-data", "no").start()
    stale = Redis("--replicaof", LOOPBACK, str(dead)).start()
    try:
        down = await probe({"redis": f"127.0.0.1:{strict.port}"})
        assert down.status is Status.CRIT and down.key_fact == "MASTERDOWN"
        assert "lost its master" in down.detail
        serving = await probe({"redis": f"127.0.0.1:{stale.port}"})
        assert serving.status is Status.WARN and serving.facts["role"] == "replica"
        assert serving.facts["master_link"] == "down"
    finally:
        strict.remove()
        stale.remove()


async def test_redis_loading_and_impostors(pyservers, tmp_path_factory):
    async def loading(reader, writer):
        await reader.read(100)
        writer.write(b"-LOADING Redis is loading the dataset in memory\r\n")
        await writer.drain()

    result = await probe({"redis": f"127.0.0.1:{pyservers.tcp(loading)}"})
    assert result.status is Status.CRIT and "still loading its dataset" in result.detail
    port = free_port()
    nginx = Nginx(tmp_path_factory.mktemp("redis-vs-nginx"), f"server {{ listen 127.0.0.1:{port}; }}", [port]).start()
    try:
        web = await probe({"redis": f"127.0.0.1:{port}", "timeout": "2s"})
    finally:
        nginx.stop()
    assert web.status is Status.CRIT and "an HTTP server answered" in web.detail
    noisy = await probe({"redis": f"127.0.0.1:{pyservers.tcp(garbage)}", "timeout": "1s"})
    assert noisy.status is Status.CRIT and "is not Redis" in noisy.detail


# ----------------------------------------------------------------------------- hostile servers


async def endless_stream(reader, writer):
    """A server that never stops talking and never finishes a message (bounded by ENDLESS_CAP)."""
    writer.write(b"+")
    sent = 0
    while sent < ENDLESS_CAP and not writer.is_closing():
        writer.write(b"x" * 65536)
        await writer.drain()
        sent += 65536


@pytest.mark.parametrize(
    "kind,awaiting",
    [
        ("postgres", "accepted the connection but did not answer the SSL request within 500ms"),
        ("mysql", "nothing greeted within 500ms (a MySQL server speaks first)"),
        ("redis", "accepted the connection but did not answer PING within 500ms"),
    ],
)
async def test_a_silent_database_port_times_out_saying_what_was_awaited(pyservers, kind, awaiting):
    result = await probe({kind: f"127.0.0.1:{pyservers.tcp(silent)}", "timeout": "500ms"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.TIMEOUT
    assert awaiting in result.detail


@pytest.mark.parametrize("kind", ["postgres", "mysql", "redis"])
async def test_an_endless_stream_is_cut_off_as_not_the_protocol(pyservers, kind):
    result = await probe({kind: f"127.0.0.1:{pyservers.tcp(endless_stream)}", "timeout": "2s"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL


# ----------------------------------------------------------------------------- malformed replies


async def test_postgres_malformed_auth_and_scram_are_protocol_failures(pyservers):
    port = pyservers.tcp(pg_script(b"R\0\0\0\x04"))  # an authentication request without its code
    no_code = await probe({"postgres": f"127.0.0.1:{port}"})
    assert no_code.status is Status.CRIT and no_code.error_kind is ErrorKind.PROTOCOL, no_code.detail
    assert "sent a malformed authentication request" in no_code.detail
    garbage_first = pg_script(SASL_OFFER, pg_auth(11, b"dictionary? no"))
    scram = await probe(
        {"postgres": f"127.0.0.1:{pyservers.tcp(garbage_first)}", "user": "app", "password_env": "P"},
        environ={"P": "pw"},
    )
    assert scram.status is Status.CRIT and scram.error_kind is ErrorKind.PROTOCOL, scram.detail
    assert "sent a malformed SCRAM server-first message 'dictionary? no'" in scram.detail


async def test_postgres_refuses_a_scram_iteration_count_meant_to_freeze_it(pyservers):
    stall = pg_script(SASL_OFFER, scram_server_first(iterations=20_000_000))
    result = await probe(
        {"postgres": f"127.0.0.1:{pyservers.tcp(stall)}", "user": "app", "password_env": "P", "timeout": "5s"},
        environ={"P": "pw"},
    )
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL
    assert "server asks for 20000000 SCRAM iterations; refusing more than 100000" in result.detail


async def test_mysql_truncated_err_and_non_mysql_first_packets(pyservers):
    err = await probe({"mysql": f"127.0.0.1:{pyservers.tcp(mysql_raw(bytes.fromhex('01000000ff')))}"})
    assert err.status is Status.CRIT and err.error_kind is ErrorKind.PROTOCOL
    assert "sent a truncated MySQL error packet" in err.detail
    huge = await probe(
        {"mysql": f"127.0.0.1:{pyservers.tcp(mysql_raw(bytes([0x8F, 1, 2, 3]) + b'junk' * 8))}", "timeout": "5s"}
    )
    assert huge.status is Status.CRIT and huge.error_kind is ErrorKind.PROTOCOL  # not a 10s TIMEOUT
    assert "does not speak MySQL: it sent '" in huge.detail and "junk" in huge.detail
    port = pyservers.tcp(mysql_raw(b"\x20\0\0\0hello there, this is not a greeting"))
    wrong_start = await probe({"mysql": f"127.0.0.1:{port}", "timeout": "5s"})
    assert wrong_start.error_kind is ErrorKind.PROTOCOL and "does not speak MySQL" in wrong_start.detail


def _mysql_packet(payload: bytes, seq: int) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


MYSQL_GREETING = _mysql_packet(
    b"\x0a8.0.0\0"
    + (7).to_bytes(4, "little")
    + b"abcdefgh\0"
    + b"\xff\xff"
    + b"\x21"
    + b"\x02\x00"
    + b"\xff\xcf"
    + b"\x15"
    + b"\0" * 10
    + b"ijklmnopqrst\0"
    + b"mysql_native_password\0",
    0,
)


@pytest.mark.parametrize("password", [None, "pw"])
async def test_mysql_old_auth_switch_is_named(pyservers, password):
    """A bare 0xfe after the login is the pre-4.1 auth switch: it names no plugin (it read
    'wants the  plugin')."""
    port = pyservers.tcp(mysql_raw(MYSQL_GREETING + _mysql_packet(b"\xfe", 2)))
    check = {"mysql": f"127.0.0.1:{port}", "timeout": "2s"}
    if password:
        check["password_env"] = "P"
    result = await probe(check, environ={"P": password} if password else None)
    assert "asks for the old (pre-4.1) authentication, which the probe does not speak" in result.detail, result.detail
    assert "  plugin" not in result.detail
    if password:
        assert result.status is Status.CRIT and result.error_kind is ErrorKind.AUTH
    else:
        assert result.status is Status.OK


async def test_mysql_garbage_after_the_login_is_a_protocol_failure(pyservers):
    """Neither OK, ERR, an auth switch nor more auth data: it was OK 'asked for an
    authentication method the probe does not speak'."""
    port = pyservers.tcp(mysql_raw(MYSQL_GREETING + b"\x05\x00\x00\x02zzzzz"))
    result = await probe({"mysql": f"127.0.0.1:{port}", "timeout": "2s"})
    assert result.status is Status.CRIT and result.error_kind is ErrorKind.PROTOCOL, result.detail
    assert "answered the login with a packet that is no MySQL reply" in result.detail
    assert "'zzzzz'" in result.detail


async def test_redis_replica_with_link_down_and_no_master_address(pyservers):
    info = b"# Replication\r\nrole:slave\r\nmaster_link_status:down\r\n"
    port = pyservers.tcp(redis_script(b"+PONG\r\n", b"$%d\r\n%s\r\n" % (len(info), info)))
    result = await probe({"redis": f"127.0.0.1:{port}", "timeout": "2s"})
    assert result.status is Status.WARN, result.detail
    assert "its link to its master is down (master address not reported)" in result.detail
    assert "None" not in result.detail and result.facts["master"] is None


async def test_postgres_error_that_is_not_utf8_is_named_as_garbage(pyservers):
    error = pg_message(b"E", b"SFATAL\0C08P01\0M\xff\xfe(\0\0")
    port = pyservers.tcp(pg_script(error))
    result = await probe({"postgres": f"127.0.0.1:{port}", "ssl": False, "timeout": "2s"})
    assert result.status is Status.CRIT, result.detail
    assert "not valid UTF-8" in result.detail and "garbage" in result.detail
    assert "\ufffd" not in result.detail, result.detail


async def test_mysql_says_nothing_greeted_when_an_http_server_waits(pyservers):
    port = pyservers.tcp(responder())
    result = await probe({"mysql": f"127.0.0.1:{port}", "timeout": "500ms"})
    assert result.error_kind is ErrorKind.TIMEOUT
    assert result.detail == f"127.0.0.1:{port}: nothing greeted within 500ms (a MySQL server speaks first)"


async def test_redis_timeout_names_the_step_that_stalled(pyservers):
    pong_then_silence = redis_script(b"+PONG\r\n")
    result = await probe({"redis": f"127.0.0.1:{pyservers.tcp(pong_then_silence)}", "timeout": "500ms"})
    assert result.error_kind is ErrorKind.TIMEOUT
    assert "did not answer INFO within 500ms" in result.detail


async def test_postgres_timeout_names_the_query_step(pyservers):
    logged_in = pg_script(pg_auth(0) + pg_message(b"Z", b"I"))  # trust login, then silence on the query
    result = await probe({"postgres": f"127.0.0.1:{pyservers.tcp(logged_in)}", "timeout": "500ms"})
    assert result.error_kind is ErrorKind.TIMEOUT and "did not answer the query within 500ms" in result.detail


# ----------------------------------------------------------------------------- process and host


async def test_process_and_host_checks():
    server = Redis().start()
    try:
        running = await probe({"process": "redis-server"})
        assert running.status is Status.OK
        assert running.facts["count"] >= 1 and f"127.0.0.1:{server.port}" in running.facts["listening"]
        too_few = await probe({"process": "redis-server", "min": 50})
        assert too_few.status is Status.CRIT and "at least 50 expected" in too_few.detail
    finally:
        server.remove()
    itself = await probe({"process": psutil.Process().name()})  # python: other pythons may run, never us
    assert os.getpid() not in itself.facts["pids"]
    missing = await probe({"process": "no-such-daemon"})
    assert missing.status is Status.CRIT and missing.key_fact == "0 running"
    host = await probe({"host": "local"})
    assert {"cpu_percent", "memory_percent", "disk_percent", "load_per_core"} <= set(host.facts)
    full = await probe({"host": "local", "disk_warn": 0, "disk_crit": 0.001})
    assert full.status is Status.CRIT and full.error_kind is ErrorKind.RESOURCE and "disk" in full.detail


# ----------------------------------------------------------------------------- verdict, end to end


def backend_handler(name: str, dependency_port: int, hello: bytes):
    """A backend whose /health talks to its data store: 200 when the store answers."""

    async def handle(reader, writer):
        await read_request(reader)
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, dependency_port), 1)
            w.write(hello)
            await w.drain()
            answer = await asyncio.wait_for(r.read(1), 1)
            w.transport.abort()
            ok = bool(answer)
        except (OSError, asyncio.TimeoutError):
            ok = False
        body = b"ok\n" if ok else b"store unavailable\n"
        writer.write(http_response(200 if ok else 500, body, {"X-Served-By": name}))
        await writer.drain()

    return handle


@pytest.mark.parametrize("kind", ["postgres", "redis"])
def test_stopping_the_data_store_blames_it_not_the_backends_or_lb(pyservers, tmp_path, tmp_path_factory, kind):
    store = Postgres().start() if kind == "postgres" else Redis().start()
    hello = b"\x00\x00\x00\x08\x04\xd2\x16\x2f" if kind == "postgres" else b"PING\r\n"
    backends = [pyservers.tcp(backend_handler(f"app-{i}", store.port, hello)) for i in (1, 2)]
    lb_port = free_port()
    nginx = Nginx(
        tmp_path_factory.mktemp(f"lb-{kind}"),
        f"""
        upstream app {{ server 127.0.0.1:{backends[0]}; server 127.0.0.1:{backends[1]}; }}
        server {{ listen 127.0.0.1:{lb_port}; location / {{ proxy_pass http://app; }} }}""",
        [lb_port],
    ).start()
    role = "db" if kind == "postgres" else "cache"
    layout = write_layout(
        tmp_path,
        f"""\
name: e2e-{kind}
timeout: 2s
layers:
  - name: Load balancer
    role: lb
    checks:
      - http: http://127.0.0.1:{lb_port}/health
  - name: App servers
    role: backend
    checks:
      - {{http: "http://127.0.0.1:{backends[0]}/health", name: app-1}}
      - {{http: "http://127.0.0.1:{backends[1]}/health", name: app-2}}
  - name: Store
    role: {role}
    checks:
      - {kind}: 127.0.0.1:{store.port}
""",
    )
    try:
        healthy = run_cli("check", str(layout), "-f", "json")
        assert healthy.returncode == 0, healthy.stdout
        store.stop()
        broken = run_cli("check", str(layout), "-f", "json")
        verdict = json.loads(broken.stdout)["verdict"]
        assert broken.returncode == 2
        assert (verdict["layer"], verdict["role"]) == ("Store", role)
        assert verdict["summary"].startswith("Store: 127.0.0.1:") and "refused" in verdict["summary"]
        assert any("App servers (crit)" in item and "explained by Store" in item for item in verdict["also_failing"])
        assert any("Load balancer (crit)" in item for item in verdict["also_failing"])
    finally:
        nginx.stop()
        store.remove()
