"""What makes a probe cheap must not change what it says: the stamped copies of a Result,
the one-pass cleaning of facts, the cached request events, the float-sum suspicion math
and the event-loop choice (issue 22)."""

from __future__ import annotations

import asyncio
import math
import statistics

import pytest

from stackscope import eventloop
from stackscope.history import History, Sample
from stackscope.model import Result, Status, SuspectSettings, safe_value
from stackscope.probes.httpclient import _EVENTS, MAX_EVENTS, _request_event
from stackscope.suspicion import crossing, threshold_z

ESC = "\x1b]0;owned\x07"


def test_a_stamped_result_keeps_its_cleaned_text_and_changes_only_its_times():
    result = Result("L/c", Status.OK, f"200 {ESC}", key_fact=ESC, facts={"h": {ESC: [ESC, 1, None]}})
    stamped = result.stamped(started_at=1.0, finished_at=2.0, changed_at=2.0, confirmed=False, confirmations=2)
    assert "\x1b" not in stamped.detail and "\x07" not in stamped.key_fact
    assert stamped.facts == result.facts and "\x1b" not in repr(stamped.facts)
    assert (stamped.started_at, stamped.finished_at, stamped.changed_at) == (1.0, 2.0, 2.0)
    assert (stamped.confirmed, stamped.confirmations) == (False, 2)
    assert (result.started_at, result.confirmed) == (0.0, True)  # the original is untouched
    assert stamped == Result(
        "L/c",
        Status.OK,
        f"200 {ESC}",
        key_fact=ESC,
        facts={"h": {ESC: [ESC, 1, None]}},
        started_at=1.0,
        finished_at=2.0,
        changed_at=2.0,
        confirmed=False,
        confirmations=2,
    )


@pytest.mark.parametrize("field", ["detail", "key_fact", "facts", "status", "evidence", "check_id"])
def test_stamping_refuses_anything_that_would_need_cleaning_or_judging_again(field):
    with pytest.raises(TypeError, match=field):
        Result("L/c", Status.OK, "ok").stamped(**{field: "\x1b[2J"})


def test_a_fact_added_to_a_result_is_cleaned_and_the_others_kept():
    result = Result("L/c", Status.OK, "ok", facts={"a": 1}).with_fact(f"lag{ESC}", 2.5)
    assert result.facts == {"a": 1, "lag·]0;owned·": 2.5}


@pytest.mark.parametrize(
    "value,expected",
    [
        ({"k": "v", 1: 2.5, None: True}, {"k": "v", 1: 2.5, None: True}),
        ({f"k{ESC}": f"v{ESC}"}, {"k·]0;owned·": "v·]0;owned·"}),
        ({"nested": {"list": [f"a{ESC}", ("t\u202e", 3)]}}, {"nested": {"list": ["a·]0;owned·", ("t·", 3)]}}),
        ({"bytes": b"\x1b[31m"}, {"bytes": "·[31m"}),
        ([{"x": "\x85"}], [{"x": "·"}]),
    ],
)
def test_safe_value_cleans_every_string_at_every_depth(value, expected):
    assert safe_value(value) == expected


def test_the_same_request_is_one_event_and_a_different_one_is_another():
    _EVENTS.clear()
    headers = (("User-Agent", "stackscope"),)
    first = _request_event("GET", "/a", "h:80", headers)
    assert _request_event("GET", "/a", "h:80", headers) is first
    assert _request_event("GET", "/b", "h:80", headers) is not first
    assert _request_event("HEAD", "/a", "h:80", headers) is not first
    assert _request_event("GET", "/a", "h:80", (("User-Agent", "other"),)) is not first
    assert (b"host", b"h:80") in [(name, value) for name, value in first.headers]


def test_request_events_are_bounded_and_unhashable_headers_still_work():
    _EVENTS.clear()
    for i in range(MAX_EVENTS + 10):
        _request_event("GET", f"/?c={i}", "h", ())
    assert len(_EVENTS) <= MAX_EVENTS
    event = _request_event("GET", "/", "h", ([b"X-A", b"1"],))  # type: ignore[arg-type]
    assert (b"x-a", b"1") in list(event.headers)


def test_the_answers_suspicion_reads_are_the_ok_latencies_of_the_window():
    history = History(5)
    statuses = [Status.OK, Status.CRIT, Status.OK, Status.OK, Status.WARN, Status.OK, Status.OK]
    for i, status in enumerate(statuses):
        history.append(Sample(float(i), status, None if i == 5 else 10.0 + i))
    # ring of 5: samples 2..6; OK with a latency: 2, 3 (5 has none), 6
    assert history.answered_ms(5, Status.OK) == [12.0, 13.0, 16.0]
    assert history.answered_ms(2, Status.OK) == [16.0]
    assert History(3).answered_ms(30, Status.OK) == []


@pytest.mark.parametrize("seed", range(5))
def test_the_crossing_in_float_sums_matches_the_exact_statistics(seed):
    import random

    rng = random.Random(seed)
    answers = [rng.lognormvariate(math.log(20), 0.4) for _ in range(30)]
    settings = SuspectSettings(min_silence=0)
    due = crossing(answers, 60000, settings)
    logs = [math.log(x) for x in answers]
    sigma = max(statistics.stdev(logs), settings.min_spread)
    expected = math.exp(statistics.fmean(logs) + threshold_z(settings.threshold) * sigma)
    assert due is not None
    assert due.silence_ms == pytest.approx(expected, rel=1e-9)
    assert due.usual_ms == statistics.median(answers)


@pytest.mark.parametrize(
    "env,checks,long_running,expected",
    [
        (None, 1, False, False),  # a one-shot check of a few: no import to pay for
        (None, eventloop.FAST_FROM, False, True),
        (None, 1, True, True),  # watch, export, workers
        ("asyncio", 10000, True, False),
        ("uvloop", 1, False, True),
        ("  UVLOOP ", 1, False, True),
    ],
)
def test_the_event_loop_choice(monkeypatch, env, checks, long_running, expected):
    if env is None:
        monkeypatch.delenv(eventloop.CHOICE_ENV, raising=False)
    else:
        monkeypatch.setenv(eventloop.CHOICE_ENV, env)
    assert eventloop.wanted(checks, long_running=long_running) is expected


@pytest.mark.parametrize("fast", [False, True])
def test_run_uses_the_loop_asked_for(fast):
    pytest.importorskip("uvloop")

    async def which() -> str:
        await asyncio.sleep(0)
        return eventloop.name()

    assert eventloop.run(which(), fast=fast) == ("uvloop" if fast else "asyncio")


def test_without_uvloop_the_plain_loop_runs(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError

    async def which() -> str:
        return eventloop.name()

    assert eventloop.run(which(), fast=True) == "asyncio"


def test_the_wire_reads_what_came_then_the_end_or_the_error():
    from stackscope.probes.httpclient import _Wire

    async def scenario() -> list:
        wire = _Wire()
        got: list = []
        waiting = asyncio.ensure_future(wire.read(4))
        await asyncio.sleep(0)  # the reader now waits for bytes
        assert not waiting.done()
        wire.data_received(b"HTTP/1.1")
        got.append(await waiting)  # at most what was asked for
        got.append(await wire.read(100))  # the rest, at once
        assert wire.arrival[0] is not None  # stamped as the bytes came
        wire.eof_received()
        got.append(await wire.read(100))  # the end: b""
        broken = _Wire()
        broken.data_received(b"x")
        broken.connection_lost(ConnectionResetError("reset"))
        got.append(await broken.read(100))  # bytes that came before the error are still read
        try:
            await broken.read(100)
        except ConnectionResetError as exc:
            got.append(str(exc))
        return got

    assert asyncio.run(scenario()) == [b"HTTP", b"/1.1", b"", b"x", "reset"]
