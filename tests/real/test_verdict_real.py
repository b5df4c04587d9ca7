"""The verdict on a real stack while parts of it fail: HAProxy 2.6 in front of three backend
processes (one hung with SIGSTOP, or killed), Redis filled past maxmemory, a PostgreSQL
standby declared as the primary. Every verdict line a bounded watch prints is read: the
load balancer must never be named for a fault of one of its members."""

from __future__ import annotations

import json

import pytest

from stackscope.model import ErrorKind, Status, StoreState
from tests.conftest import run_cli, write_layout
from tests.probe_helpers import probe
from tests.real.test_databases_real import until
from tests.servers.authstack import AuthStack
from tests.servers.dbs import Postgres, Redis


@pytest.fixture
def stack():
    started = AuthStack(dns=False, redis=False).start()
    yield started
    started.stop()


def verdict_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "  verdict  " in line]


def watch_plain(stack: AuthStack, tmp_path, rounds: int = 3) -> list[str]:
    path = write_layout(tmp_path, stack.layout())
    done = run_cli("watch", "--plain", "--rounds", str(rounds), str(path), timeout=90)
    lines = verdict_lines(done.stdout)
    assert lines, done.stdout + done.stderr
    return lines


def json_stream(stack: AuthStack, tmp_path, rounds: int = 3) -> list[dict]:
    path = write_layout(tmp_path, stack.layout(), "json.yaml")
    done = run_cli("check", "--watch", "--format", "json", "--rounds", str(rounds), str(path), timeout=90)
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(reports) >= rounds, done.stdout + done.stderr
    return reports


@pytest.mark.parametrize("fault", ["hung", "crashed"])
def test_a_failing_member_never_makes_watch_plain_name_the_lb(stack, tmp_path, fault):
    (stack.backends[1].pause if fault == "hung" else stack.backends[1].kill)()
    lines = watch_plain(stack, tmp_path)
    for line in lines:
        assert "Load balancer is the broken layer" not in line, "\n".join(lines)
        assert "Auth backends is the broken layer" in line and "▲ WARN" in line, "\n".join(lines)
    assert any("auth-2" in line for line in lines)


@pytest.mark.parametrize("fault", ["hung", "crashed"])
def test_a_failing_member_never_makes_the_json_stream_name_the_lb(stack, tmp_path, fault):
    (stack.backends[1].pause if fault == "hung" else stack.backends[1].kill)()
    for report in json_stream(stack, tmp_path):
        verdict = report["verdict"]
        assert verdict is not None and verdict["layer"] == "Auth backends", verdict
        assert verdict["status"] == "warn" and isinstance(verdict["confirmed"], bool)
        lb = next(layer for layer in report["layers"] if layer["name"] == "Load balancer")
        assert lb["status"] in ("ok", "warn"), lb  # degraded because of auth-2 at worst, never broken


def test_redis_filled_past_maxmemory_under_noeviction_refuses_writes():
    server = Redis("--maxmemory", "1mb", "--maxmemory-policy", "noeviction").start()
    try:
        refused = None
        for i in range(2000):  # the test's own client fills it until Redis says OOM
            reply = server.command("SET", f"fill:{i}", "x" * 4096)
            if reply.startswith(b"-OOM"):
                refused = reply
                break
        assert refused is not None, "Redis never refused a write"
        result = await_probe({"redis": f"127.0.0.1:{server.port}"})
        assert result.status is Status.CRIT and result.error_kind is ErrorKind.SATURATED, result.detail
        assert "at maxmemory" in result.detail and "noeviction" in result.detail
        assert isinstance(result.evidence, StoreState) and result.evidence.refuses_writes.startswith("OOM")
        assert result.facts["maxmemory_policy"] == "noeviction"
        # freeing some memory brings it under the limit but still near it: a warning
        server.command("FLUSHALL")
        for i in range(2000):
            reply = server.command("SET", f"fill:{i}", "x" * 4096)
            used = int(_info(server, "used_memory"))
            if reply.startswith(b"-OOM") or used >= 0.93 * 1024 * 1024:
                break
        server.command("DEL", f"fill:{i}")
        after = await_probe({"redis": f"127.0.0.1:{server.port}"})
        assert after.status in (Status.WARN, Status.CRIT), after.detail
    finally:
        server.remove()


def _info(server: Redis, field: str) -> str:
    text = server.command("INFO", "memory").decode()
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(field + ":"))


def await_probe(check: dict):
    import asyncio

    return asyncio.run(probe(check))


async def test_a_postgres_standby_declared_primary_is_crit():
    server = Postgres(standby=True, settings={"hot_standby": "on"}, hba="host all all 127.0.0.1/32 trust").start()
    try:
        check = {"postgres": f"127.0.0.1:{server.port}", "user": "postgres", "expect_role": "primary"}
        result = await until(check, lambda r: r.error_kind is not ErrorKind.STATE or "declared" in r.detail)
        assert result.status is Status.CRIT and result.error_kind is ErrorKind.STATE, result.detail
        assert "is a standby" in result.detail and "declared the primary" in result.detail
        assert result.evidence == StoreState(
            "postgres", role="standby", expected_role="primary", read_only=True, refuses_writes="in recovery"
        )
        as_standby = await probe({**check, "expect_role": "standby"})
        assert "declared" not in as_standby.detail  # the role matches: only its replication is judged
    finally:
        server.remove()


async def test_a_mariadb_primary_that_came_back_read_only_is_crit():
    from tests.servers.dbs import MariaDB

    server = MariaDB().start()
    try:
        server.sql("create user 'app'@'127.0.0.1' identified by 'verdict-Secret-1'")
        check = {"mysql": f"127.0.0.1:{server.port}", "user": "app", "password_env": "M", "expect_role": "primary"}
        env = {"M": "verdict-Secret-1"}
        writable = await probe(check, environ=env)
        assert writable.status is Status.OK and "writable primary as declared" in writable.detail, writable.detail
        server.sql("SET GLOBAL read_only = 1")  # the test's own set-up: a failover left it read-only
        read_only = await probe(check, environ=env)
        assert read_only.status is Status.CRIT and read_only.error_kind is ErrorKind.STATE, read_only.detail
        assert "declared the primary but is read-only" in read_only.detail
        assert read_only.evidence.refuses_writes == "read-only" and read_only.evidence.kind == "mysql"
        as_standby = await probe({**check, "expect_role": "standby"}, environ=env)
        assert as_standby.status is Status.OK and "read-only standby" in as_standby.detail
    finally:
        server.remove()
