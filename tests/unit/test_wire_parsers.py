"""The pure parts of the database probes: parsers fed truncated and garbage frames (a
bounded, seeded fuzz), the standby classification, SCRAM's iteration cap, the redactor's
short secrets and truncation, and host threshold validation."""

from __future__ import annotations

import asyncio
import base64
import random
from types import SimpleNamespace

import pytest

from stackscope.model import ErrorKind, Status
from stackscope.probes import mysql, postgres, redis
from stackscope.probes.common import ProbeFailure, printable
from stackscope.probes.host import HostOptions
from stackscope.probes.host import _validate as validate_host
from stackscope.redact import MASK, Redactor, activated

SEED, CASES = 4711, 400


def frames(rng: random.Random, valid: bytes) -> list[bytes]:
    """Every truncation of a valid frame, plus mutations and random bytes (bounded)."""
    out = [valid[:i] for i in range(len(valid) + 1)]
    for _ in range(CASES):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        out.append(bytes(data[: rng.randint(0, len(data))]))
        out.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))))
    return out


def only_probe_failures(parse, data: bytes) -> None:
    try:
        parse(data)
    except ProbeFailure as failure:
        assert failure.kind in (ErrorKind.PROTOCOL, ErrorKind.AUTH), failure.detail
        assert "unpack" not in failure.detail and "Error" not in failure.detail


def test_postgres_parsers_survive_garbage():
    rng = random.Random(SEED)
    row = b"\x00\x02" + b"\x00\x00\x00\x01" + b"1" + b"\xff\xff\xff\xff"
    for data in frames(rng, row):
        only_probe_failures(lambda d: postgres.parse_data_row(d, "db:5432"), data)
    for data in frames(rng, b"SFATAL\0C28P01\0Mbad\0\0"):
        postgres.parse_error(data)  # never raises at all
    assert postgres.parse_data_row(row, "w") == ["1", None]


def test_a_data_row_overrunning_its_message_names_the_server():
    with pytest.raises(ProbeFailure) as info:
        postgres.parse_data_row(b"\x00\x01\x00\x00\x10\x00ab", "db:5432")
    assert info.value.kind is ErrorKind.PROTOCOL and info.value.detail.startswith("db:5432 sent a malformed data row")


def test_scram_server_messages_survive_garbage():
    rng = random.Random(SEED)
    scram = postgres._Scram("pw", "db:5432")
    good = f"r={scram.nonce}x,s={base64.b64encode(b'salt').decode()},i=4096".encode()

    async def run_all() -> None:  # one loop for every case: asyncio.run per case is slow
        for data in frames(rng, good):
            text = data.decode("utf-8", "replace")
            try:
                await scram.final(text)
            except ProbeFailure as failure:
                assert failure.kind in (ErrorKind.PROTOCOL, ErrorKind.AUTH), failure.detail
            only_probe_failures(lambda raw: scram.verify(raw.decode("utf-8", "replace")), data)

    asyncio.run(run_all())


def test_garbage_scram_server_first_is_a_protocol_failure():
    scram = postgres._Scram("pw", "db:5432")
    with pytest.raises(ProbeFailure) as info:
        asyncio.run(scram.final("garbage without fields"))
    assert info.value.kind is ErrorKind.PROTOCOL
    assert info.value.detail == "db:5432 sent a malformed SCRAM server-first message 'garbage without fields'"


def test_scram_refuses_a_huge_iteration_count_before_computing_anything():
    scram = postgres._Scram("pw", "db:5432")
    first = f"r={scram.nonce}x,s={base64.b64encode(b'salt').decode()},i=20000000"
    with pytest.raises(ProbeFailure) as info:
        asyncio.run(scram.final(first))
    assert info.value.detail == (
        f"db:5432: server asks for 20000000 SCRAM iterations; refusing more than {postgres.MAX_SCRAM_ITERATIONS}"
    )
    assert postgres.MAX_SCRAM_ITERATIONS == 100_000


def test_mysql_parsers_survive_garbage():
    rng = random.Random(SEED)
    for data in frames(rng, b"\xff\x15\x04#28000Access denied"):
        only_probe_failures(lambda d: mysql.parse_err(d, "db:3306"), data)
    greeting = (
        b"\x0a5.5.5-10.11.6-MariaDB\0"
        + b"\x01\x00\x00\x00"
        + b"12345678"
        + b"\0"
        + b"\xfe\xf7"
        + b"\x2d"
        + b"\x02\x00"
        + b"\xff\x81"
        + b"\x15"
        + b"\0" * 10
        + b"123456789012\0"
        + b"mysql_native_password\0"
    )
    assert mysql.parse_greeting(greeting, "w").version == "10.11.6-MariaDB"
    for data in frames(rng, greeting):
        only_probe_failures(lambda d: mysql.parse_greeting(d, "db:3306"), data)


def test_a_truncated_mysql_err_packet_is_named():
    with pytest.raises(ProbeFailure) as info:
        mysql.parse_err(b"\xff", "db:3306")
    assert info.value.kind is ErrorKind.PROTOCOL and "truncated MySQL error packet" in info.value.detail


def test_redis_info_survives_garbage():
    rng = random.Random(SEED)
    for data in frames(rng, b"# Replication\r\nrole:master\r\nconnected_slaves:x\r\n"):
        redis._count(redis.parse_info(data.decode("latin-1")).get("connected_slaves"))  # never raises
    info = redis.parse_info("# Replication\r\nrole:master\r\nconnected_slaves:2\r\n#x:9\r\nno colon\r\n")
    assert info == {"role": "master", "connected_slaves": "2"}
    # a missing or empty field counts none; anything but an integer is unreadable (None), not 0
    cases = {
        None: 0,
        "": 0,
        "2": 2,
        " 3": 3,
        "-1": -1,
        "x": None,
        "2x": None,
        "1.5": None,
        "0x10": None,
        "\x00": None,
        "\u00b2": None,
    }
    assert {value: redis._count(value) for value in cases} == cases


# ----------------------------------------------------------------------------- standby classification


def judge(*row):
    check = SimpleNamespace(options=postgres.PostgresOptions(max_lag=30.0), warn_ms=None, id="c")
    return postgres.judge_info(check, "db:5432", ["1", "15.6", *row], {}, 1.0)


def test_an_idle_primary_leaves_a_streaming_standby_with_no_lag():
    result = judge("t", "0", "1", "streaming")
    assert result.status is Status.OK and result.facts["replay_lag_s"] == 0.0
    assert "replay lag 0.0s" in result.detail


def test_a_standby_without_a_wal_receiver_is_not_streaming():
    result = judge("t", "9.1", "0", None)
    assert result.status is Status.WARN and result.key_fact == "not streaming"
    assert "standby is not streaming from its primary (serving possibly stale data" in result.detail
    assert judge("t", None, "1", "waiting").status is Status.WARN


def test_a_hidden_receiver_status_degrades_to_the_receiver_existing():
    result = judge("t", "2", "1", None)  # a role without pg_read_all_stats sees the pid only
    assert result.status is Status.OK and "hidden" in result.facts["wal_receiver"]


def test_real_lag_above_max_lag_warns_and_a_primary_is_ok():
    assert judge("t", "45", "1", "streaming").status is Status.WARN
    assert judge("f", None, "0", None).status is Status.OK


def test_a_short_row_or_garbage_lag_is_a_protocol_failure():
    with pytest.raises(ProbeFailure):
        judge("t")
    with pytest.raises(ProbeFailure):
        judge("t", "soon", "1", "streaming")


# ----------------------------------------------------------------------------- redaction


def test_short_secrets_are_masked_too():
    assert Redactor(["pw1"]).text("-ERR invalid password pw1") == f"-ERR invalid password {MASK}"
    assert Redactor(["x"]).text("x") == MASK


def test_a_secret_prefix_before_a_truncation_mark_is_masked():
    redactor = Redactor(["correct-horse-battery"])
    assert redactor.text("...id=correct-hor…") == f"...id={MASK}…"
    assert redactor.text("plain text… more") == "plain text… more"


def test_printable_masks_the_secret_before_cutting():
    secret = "correct-horse-battery-staple"
    data = b"x" * 30 + b"id=" + secret.encode() + b" trailing"
    assert "id=correct…" in printable(data)  # without a redactor, the cut leaves a prefix
    with activated(Redactor([secret])):
        shown = printable(data)
    assert shown == "x" * 30 + "id=" + MASK + "…"
    with activated(Redactor(["pw1"])):
        assert printable(b"-ERR pw1\r\n" * 10) == ("-ERR " + MASK + "··") * 4 + "…"


# ----------------------------------------------------------------------------- host thresholds


def test_host_warn_must_be_below_crit():
    assert validate_host("local", HostOptions()) == []
    problems = validate_host("local", HostOptions(fd_warn=95, fd_crit=90, disk_warn=80, disk_crit=80))
    assert [key for key, _, _ in problems] == ["disk_warn", "fd_warn"]
    assert problems[1][1] == "fd_warn (95) must be below fd_crit (90)"


def test_a_host_threshold_pair_out_of_order_is_a_layout_error():
    from stackscope.layout import LayoutError
    from tests.probe_helpers import one_check

    with pytest.raises(LayoutError) as info:
        one_check({"host": "local", "memory_warn": 99, "memory_crit": 97})
    assert "memory_warn (99) must be below memory_crit (97)" in str(info.value)
