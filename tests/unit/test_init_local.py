"""`init --local` names what it found from what the server (or its binary) says: MariaDB
apart from MySQL, PostgreSQL by its major version, and Redis that wants AUTH gets a
placeholder rather than a check that would fail."""

from __future__ import annotations

import pytest

from stackscope.discover import local
from stackscope.discover.found import Origin, Service


def _service(kind: str, password: str | None = None) -> Service:
    return Service(kind, "127.0.0.1:1", Origin("listening"), password)


@pytest.mark.parametrize(
    ("kind", "process", "exe", "facts", "label", "name"),
    [
        ("mysql", "mysqld", "", {"version": "8.0.36"}, "mysql 8.0", "mysql"),
        ("mysql", "mysqld", "", {"version": "10.11.6-MariaDB-0+deb12u1"}, "mariadb 10.11", "mariadb"),
        ("mysql", "mariadbd", "", {}, "mariadb on", "mariadb"),
        ("postgres", "postgres", "/usr/lib/postgresql/15/bin/postgres", {}, "postgres 15", "postgres"),
        ("postgres", "postgres", "", {"server_version": "16.4 (Debian 16.4-1)"}, "postgres 16", "postgres"),
        ("postgres", "postgres", "/usr/pgsql-9.6/bin/postgres", {}, "postgres 9.6", "postgres"),
        ("redis", "redis-server", "", {"version": "7.0.15"}, "redis 7.0", "redis"),
    ],
)
def test_named_and_versioned(kind, process, exe, facts, label, name):
    service = local._identify(_service(kind), 42, process, exe, facts)
    assert service.origin.text.startswith(f"listening: {label}"), service.origin.text
    assert service.name == name


def test_redis_that_wants_auth_gets_a_placeholder():
    asks = local._identify(_service("redis"), 42, "redis-server", "", {"auth": "required"})
    assert asks.password_env == "REDISCLI_AUTH"
    assert local._identify(_service("redis"), 42, "redis-server", "", {}).password_env is None


def test_a_binary_that_is_not_there_says_nothing():
    assert local._exe_version("/nonexistent/postgres") == "" and local._exe_version("postgres") == ""
