#!/usr/bin/env python3
"""Latency of the database probes against real local servers (PostgreSQL, MariaDB, Redis),
handshake-only and with a login: median and p95 of 50 probes each, one at a time.

Run as root or a user that may start these servers: python bench/db_probes.py
Everything listens on and probes 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.probe_helpers import probe  # noqa: E402
from tests.servers.dbs import MariaDB, Postgres, Redis  # noqa: E402

RUNS = 50


async def measure(check: dict, environ: dict | None = None) -> tuple[float, float, str]:
    times = []
    status = ""
    for _ in range(RUNS):
        result = await probe(check, environ=environ)
        status = str(result.status)
        times.append(result.latency_ms or 0.0)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], status


def main() -> None:
    pg = Postgres().start()
    pg.psql("create role app login password 'bench-pw'")
    maria = MariaDB().start()
    maria.sql("create user 'app'@'127.0.0.1' identified by 'bench-pw'")
    redis = Redis("--requirepass", "bench-pw").start()
    env = {"PW": "bench-pw"}
    cases = [
        ("postgres handshake", {"postgres": f"127.0.0.1:{pg.port}"}, None),
        (
            "postgres login (SCRAM) + query",
            {"postgres": f"127.0.0.1:{pg.port}", "user": "app", "password_env": "PW"},
            env,
        ),
        ("mysql handshake", {"mysql": f"127.0.0.1:{maria.port}"}, None),
        ("mysql login + SELECT 1", {"mysql": f"127.0.0.1:{maria.port}", "user": "app", "password_env": "PW"}, env),
        ("redis PING (NOAUTH)", {"redis": f"127.0.0.1:{redis.port}"}, None),
        ("redis AUTH + PING + INFO", {"redis": f"127.0.0.1:{redis.port}", "password_env": "PW"}, env),
    ]
    try:
        print(f"{'probe':<34} {'median':>9} {'p95':>9}  status   ({RUNS} runs each)")
        for name, check, environ in cases:
            median, p95, status = asyncio.run(measure(check, environ))
            print(f"{name:<34} {median:>7.2f}ms {p95:>7.2f}ms  {status}")
    finally:
        pg.remove()
        maria.remove()
        redis.remove()


if __name__ == "__main__":
    main()
