"""The engine with a fake check type: isolation, hard timeouts, concurrency, history."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from stackscope import probes
from stackscope.engine import TIMEOUT_GRACE, Engine
from stackscope.kinds import CheckSpec, EnvName, Text, option
from stackscope.model import ErrorKind, HttpAnswer, Result, Status, SuspectSettings
from stackscope.probes.common import ProbeFailure
from tests.probe_helpers import layout_of


@dataclass(frozen=True)
class FakeOptions:
    secret_env: str | None = option(EnvName(), None, "a secret")


STALL_AFTER = 6  # answers of a "stall" check before it goes silent


class Behaviour:
    """Shared state the fake probe reports into."""

    def __init__(self) -> None:
        self.inflight = 0
        self.max_inflight = 0
        self.release = asyncio.Event()
        self.log: list[str] = []
        self.calls = 0
        self.stall_after = STALL_AFTER


STATE = Behaviour()
FLAKY: list[Status] = []
STALL_AFTER = (
    6  # answers of a "stall" check before it goes silent  # the statuses a "flaky" check answers, in order (then OK)
)


async def fake_probe(check, ctx) -> Result:
    mode = check.address
    STATE.inflight += 1
    STATE.max_inflight = max(STATE.max_inflight, STATE.inflight)
    STATE.log.append(f"start {check.name}")
    try:
        if mode == "raise":
            raise ValueError("boom")
        if mode == "hang":  # ignores its own timeout, as a buggy probe might
            await asyncio.sleep(3600)
        if mode == "fail":
            raise ProbeFailure(ErrorKind.REFUSED, "refused", key_fact="refused")
        if mode == "flaky":
            status = FLAKY.pop(0) if FLAKY else Status.OK
            return Result(check.id, status, str(status), latency_ms=1.0)
        if mode == "wait":
            await asyncio.wait_for(STATE.release.wait(), 5)
        if mode == "stall":  # answers in 1 ms, then accepts and never answers (past its timeout)
            STATE.calls += 1
            if STATE.calls > STATE.stall_after:
                await asyncio.sleep(3600)
        if mode == "dies":  # answers its first probe, then is gone (a fault beginning)
            STATE.calls += 1
            if STATE.calls > 1:
                raise ProbeFailure(ErrorKind.REFUSED, "refused", key_fact="refused")
            asyncio.get_running_loop().call_soon(STATE.release.set)  # after this result is in
        if mode == "lb503":  # its request reaches the member after the member died
            await asyncio.wait_for(STATE.release.wait(), 5)
            return Result(check.id, Status.CRIT, "503", error_kind=ErrorKind.HTTP_STATUS, evidence=HttpAnswer(503))
        if mode == "secret":
            return Result(
                check.id,
                Status.CRIT,
                f"server said: bad password {ctx.secret('PW')}",
                facts={"echo": ctx.secret("PW"), "nested": [{"k": ctx.secret("PW")}]},
                evidence=HttpAnswer(500, identity=ctx.secret("PW"), identities=((ctx.secret("PW"), 1),)),
            )
        return Result(check.id, Status.OK, "fine", latency_ms=1.0)
    finally:
        STATE.inflight -= 1
        STATE.log.append(f"end {check.name}")


FAKE = CheckSpec(key="fake", doc="test double", target=Text(), options=FakeOptions, probe=fake_probe)


@pytest.fixture(autouse=True)
def fake_type(monkeypatch):
    global STATE
    STATE = Behaviour()
    FLAKY.clear()
    monkeypatch.setitem(probes.CHECK_TYPES, "fake", "tests.unit.test_engine")
    monkeypatch.setitem(probes._loaded, "fake", FAKE)
    yield


SPEC = FAKE  # the registry imports SPEC from the module it names


def layout(*modes: str, timeout: str = "300ms", **kwargs):
    checks = [{"fake": mode, "name": f"{mode}-{i}"} for i, mode in enumerate(modes)]
    return layout_of([{"name": "L", "role": "other", "checks": checks}], timeout=timeout, **kwargs)


async def test_a_raising_probe_is_unknown_and_others_are_untouched():
    engine = Engine(layout("ok", "raise", "ok"))
    snap = await engine.run_round()
    statuses = {r.check_id: r.status for r in snap.results.values()}
    assert statuses == {"L/ok-0": Status.OK, "L/raise-1": Status.UNKNOWN, "L/ok-2": Status.OK}
    raised = snap.results["L/raise-1"]
    assert raised.error_kind is ErrorKind.INTERNAL
    assert raised.detail == "probe error: ValueError: boom"


async def test_a_hung_probe_becomes_a_timeout_and_others_finish():
    engine = Engine(layout("hang", "ok", "fail"))
    snap = await engine.run_round()
    hung = snap.results["L/hang-0"]
    assert hung.status is Status.CRIT
    assert hung.error_kind is ErrorKind.TIMEOUT
    assert hung.detail == "no result within 300ms"
    assert snap.results["L/ok-1"].status is Status.OK
    failed = snap.results["L/fail-2"]
    assert (failed.status, failed.error_kind, failed.detail) == (Status.CRIT, ErrorKind.REFUSED, "refused")
    assert TIMEOUT_GRACE < 1  # the safety net stays close to the check's own timeout


async def test_checks_of_a_round_run_concurrently():
    """Every probe waits for a release that only comes once all have started: a
    sequential engine would never get there and the round would time out."""
    engine = Engine(layout(*["wait"] * 20, timeout="3s"))
    round_task = asyncio.create_task(engine.run_round())
    deadline = asyncio.get_running_loop().time() + 3
    while STATE.max_inflight < 20 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert STATE.max_inflight == 20
    assert set(engine.inflight) == {f"L/wait-{i}" for i in range(20)}
    STATE.release.set()
    snap = await round_task
    assert all(r.status is Status.OK for r in snap.results.values())
    assert engine.inflight == {}


async def test_concurrency_cap_is_respected():
    engine = Engine(layout(*["wait"] * 12, timeout="3s"), concurrency=4)
    round_task = asyncio.create_task(engine.run_round())
    deadline = asyncio.get_running_loop().time() + 3
    while STATE.max_inflight < 4 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    # (a broken cap would have let all 12 start while the poll above slept)
    assert STATE.max_inflight == 4 and len(engine.inflight) == 4
    STATE.release.set()
    snap = await round_task
    assert len(snap.results) == 12 and STATE.max_inflight == 4


async def test_history_is_bounded_and_rounds_never_overlap():
    engine = Engine(layout("ok", "fail", interval="100ms", timeout="100ms"), history=3)
    engine.confirm_retries = 0  # one probe per check per round (confirmations: tests below)
    seen, marks = [], []

    def ended(snap) -> None:
        seen.append(snap.round)
        marks.append((len(STATE.log), STATE.inflight))

    await engine.watch(ended, rounds=5)
    assert seen == [1, 2, 3, 4, 5]
    assert [len(h) for h in engine.history.values()] == [3, 3]
    assert [s.status for s in engine.history["L/fail-1"]] == [Status.CRIT] * 3
    # each round's probes start and end before the next round starts anything (the first
    # round also probes ok-0 again: fail-1, first seen failing, is a change)
    assert all(inflight == 0 for _, inflight in marks)
    bounds = [0, *(at for at, _ in marks)]
    counts = []
    for a, b in zip(bounds, bounds[1:]):
        events = [e.split()[0] for e in STATE.log[a:b]]
        assert events.count("start") == events.count("end"), STATE.log
        counts.append(events.count("start"))
    assert counts == [3, 2, 2, 2, 2], STATE.log


async def test_callbacks_see_every_start_and_result():
    engine = Engine(layout("ok", "fail"))
    started, finished = [], []
    await engine.run_round(on_start=lambda c: started.append(c.id), on_result=lambda r: finished.append(r.check_id))
    # the failing check is re-probed to confirm its change (once at once, once more after),
    # and ok-0, known before that change, once to have evidence from after it
    assert sorted(started) == sorted(finished) == ["L/fail-1"] * 3 + ["L/ok-0"] * 2


async def test_a_change_is_news_at_once_and_confirmed_by_re_probes():
    engine = Engine(layout("ok", "fail"))
    seen: list[Result] = []
    snap = await engine.run_round(on_result=seen.append)
    fail = [r for r in seen if r.check_id == "L/fail-1"]
    # first result: news at once, unconfirmed; the re-probes agree; the last is confirmed
    assert [(r.status, r.confirmed) for r in fail] == [
        (Status.CRIT, False),
        (Status.CRIT, False),
        (Status.CRIT, True),
    ]
    assert snap.results["L/fail-1"].confirmed and snap.results["L/ok-0"].confirmed
    assert engine.confirmed == {"L/ok-0": Status.OK, "L/fail-1": Status.CRIT}
    # the next round: no change, no re-probe
    seen.clear()
    await engine.run_round(on_result=seen.append)
    assert sorted(r.check_id for r in seen) == ["L/fail-1", "L/ok-0"]


async def test_a_blip_does_not_change_the_confirmed_status():
    engine = Engine(layout("flaky"))
    seen: list[Result] = []
    FLAKY[:] = [Status.CRIT, Status.OK]  # fails once, then is fine again
    snap = await engine.run_round(on_result=seen.append)
    assert [(r.status, r.confirmed) for r in seen] == [(Status.CRIT, False), (Status.OK, True)]
    assert snap.results["L/flaky-0"].status is Status.OK
    assert engine.confirmed == {"L/flaky-0": Status.OK}


async def test_engine_current_waits_for_every_check_then_follows_each_result():
    engine = Engine(layout("ok", "fail"))
    engine.confirm_retries = 0
    partial = []
    await engine.run_round(on_result=lambda r: partial.append(engine.current()))
    assert partial[0] is None  # one of two checks has reported: no snapshot to judge
    assert set(partial[1].results) == {"L/ok-0", "L/fail-1"}


async def test_secrets_are_redacted_before_anyone_sees_a_result():
    env = {"PW": "hunter2-very-secret"}
    lay = layout_of([{"name": "L", "role": "other", "checks": [{"fake": "secret", "secret_env": "PW"}]}], environ=env)
    engine = Engine(lay, environ=env)
    seen = []
    snap = await engine.run_round(on_result=seen.append)
    result = snap.results["L/secret"]
    text = repr(result) + repr(seen)
    assert "hunter2-very-secret" not in text
    assert result.detail == "server said: bad password «redacted»"
    assert result.facts["nested"][0]["k"] == "«redacted»"
    assert result.evidence == HttpAnswer(500, identity="«redacted»", identities=(("«redacted»", 1),))


async def test_round_starts_are_paced_in_order_and_within_the_spread():
    """The pacer starts every item once, in order, returns results in order, and starts
    whatever is left at once when the spread allowed is used up."""
    from stackscope.scheduler import Pacer

    pacer = Pacer()
    started = []

    async def start(item):
        started.append(item)
        return item * 2

    assert await pacer.run(list(range(50)), start) == [i * 2 for i in range(50)]
    assert started == list(range(50))
    started.clear()
    assert await pacer.run(list(range(300)), start, max_spread=0.0) == [i * 2 for i in range(300)]
    assert started == list(range(300))
    assert pacer.lag_ms() is None  # outside a round nothing is noted


async def test_a_result_taken_while_the_loop_lags_says_so():
    """A result measured while the loop ran late carries loop_lag_ms in its facts."""
    lay = layout("ok")
    engine = Engine(lay)
    check = next(iter(lay.checks()))
    engine.pacer._running = True  # as during a round
    engine.pacer.lag = 0.025
    assert (await engine._run_one(check, None, None)).facts["loop_lag_ms"] == 25.0
    engine.pacer._running = False
    assert "loop_lag_ms" not in (await engine._run_one(check, None, None)).facts


def test_history_is_a_compact_ring_of_samples():
    from stackscope.history import History, Sample

    history = History(3)
    assert len(history) == 0 and not history and list(history) == []
    for i in range(5):
        history.append(Sample(float(i), Status.CRIT if i == 3 else Status.OK, None if i == 3 else i + 0.5))
    assert [(s.at, s.status, s.latency_ms) for s in history] == [
        (2.0, Status.OK, 2.5),
        (3.0, Status.CRIT, None),
        (4.0, Status.OK, 4.5),
    ]
    assert [s.at for s in history.tail(2)] == [3.0, 4.0]
    assert not hasattr(Sample(0.0, Status.OK, 1.0), "__dict__")  # slotted


async def test_a_sharded_round_runs_in_worker_processes_and_reports_every_check():
    """With workers, each process probes its shard; the engine gets one result per check,
    redacted, recorded in the history and reported through on_result, in layout order."""
    import os

    async def accept(reader, writer):
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    checks = [{"tcp": f"127.0.0.1:{port}", "name": f"t{i}"} for i in range(5)]
    lay = layout_of([{"name": "L", "role": "other", "checks": checks}], timeout="2s")
    engine = Engine(lay, workers=2)
    seen = []
    try:
        snap = await engine.run_round(on_result=seen.append)
        worker_pids = {p.pid for p in engine._pool._workers}
    finally:
        await engine.aclose()
        server.close()
    assert [r.status for r in snap.results.values()] == [Status.OK] * 5, [r.detail for r in snap.results.values()]
    assert list(snap.results) == [c.id for c in lay.checks()]
    assert len(seen) == 5 and all(len(engine.history[c.id]) == 1 for c in lay.checks())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert engine._pool is None  # closed


# --------------------------------------------------------------------------- suspicion


def _suspecting(lay, **settings):
    return dataclasses.replace(lay, suspect=SuspectSettings(**settings))


async def test_a_hung_real_backend_is_suspected_before_it_times_out(tmp_path):
    """A real HTTP backend process, frozen with SIGSTOP after a few fast rounds: the kernel
    still accepts, nothing answers. A provisional WARN is streamed before the timeout's CRIT
    of the same probe, and it is neither a latency sample nor a confirmed status."""
    from tests.servers.authstack import Backend
    from tests.servers.base import free_port

    backend = Backend(tmp_path, "auth-1", free_port()).start()
    lay = layout_of(
        [{"name": "B", "role": "backend", "checks": [{"http": f"http://127.0.0.1:{backend.port}/", "name": "b"}]}],
        timeout="2s",
    )
    # a low threshold and floor: on a loaded test machine a stray slow answer in six must
    # not push the crossing past the timeout (the defaults are bench/false_alarms.py's)
    engine = Engine(_suspecting(lay, threshold=1, min_silence=0.1, min_samples=5))
    engine.confirm_retries = 0
    try:
        for _ in range(6):
            assert (await engine.run_round()).results["B/b"].status is Status.OK
        backend.pause()
        streamed: list[Result] = []
        await engine.run_round(on_result=streamed.append)
    finally:
        backend.resume()
        backend.kill()
        await engine.aclose()
    assert [(r.status, r.error_kind) for r in streamed] == [
        (Status.WARN, ErrorKind.SUSPECTED),
        (Status.CRIT, ErrorKind.TIMEOUT),
    ]
    suspected, timed_out = streamed
    assert suspected.key_fact == "suspected" and not suspected.confirmed
    assert suspected.detail.startswith("no answer for ") and "(usually " in suspected.detail
    assert suspected.started_at == timed_out.started_at <= suspected.finished_at
    assert suspected.latency_ms is None
    assert [s.status for s in engine.history["B/b"]] == [Status.OK] * 6 + [Status.CRIT]  # no WARN sample
    assert engine.latest["B/b"] is timed_out and engine.confirmed["B/b"] is Status.CRIT


@pytest.mark.parametrize(
    "answered,suspect,lag,expected",
    [
        (STALL_AFTER, {"min_silence": 0.05}, 0.0, ["suspected", "timeout"]),
        (STALL_AFTER, None, 0.0, ["timeout"]),  # suspect: off
        (2, {"min_silence": 0.05}, 0.0, ["timeout"]),  # too little history
        (STALL_AFTER, {"min_silence": 0.3}, 0.0, ["timeout"]),  # the floor is at the timeout
        (STALL_AFTER, {"min_silence": 0.05}, 1.0, ["timeout"]),  # the loop itself runs late
        # a loop always a little late (a loaded machine): deferred a few times, not forever
        (STALL_AFTER, {"min_silence": 0.05}, 0.02, ["suspected", "timeout"]),
    ],
    ids=["suspected", "off", "no-history", "floor-at-timeout", "loop-lag", "always-a-little-late"],
)
async def test_when_a_silent_probe_is_suspected(answered, suspect, lag, expected):
    STATE.stall_after = answered
    lay = layout("stall")
    engine = Engine(dataclasses.replace(lay, suspect=None) if suspect is None else _suspecting(lay, **suspect))
    engine.confirm_retries = 0
    for _ in range(answered):
        await engine.run_round()
    if lag:  # the pacer measured the loop this late: a timer firing now owes the loop first
        engine.pacer._running, engine.pacer.lag = True, lag
    streamed: list[Result] = []
    await engine._run_one(next(iter(lay.checks())), None, streamed.append)
    assert [r.key_fact for r in streamed] == expected


async def test_a_worker_process_engine_suspects_nothing():
    """A worker of a sharded round hands over only a probe's end: its engine arms no
    suspicion timer (suspect_silence=False), where the same layout's own engine would."""
    STATE.stall_after = STALL_AFTER
    lay = _suspecting(layout("stall"), min_silence=0.05)
    streamed: dict[bool, list[str]] = {}
    for suspecting in (True, False):
        STATE.calls = 0
        engine = Engine(lay, suspect_silence=suspecting)
        engine.confirm_retries = 0
        for _ in range(STALL_AFTER):
            await engine.run_round()
        seen: list[Result] = []
        await engine._run_one(next(iter(lay.checks())), None, seen.append)
        streamed[suspecting] = [r.key_fact for r in seen]
    assert streamed == {True: ["suspected", "timeout"], False: ["timeout"]}


async def test_a_failing_check_is_not_suspected_again_while_it_is_re_probed():
    """Confirmation re-probes of a check already seen failing: no WARN between the CRITs."""
    engine = Engine(_suspecting(layout("stall", timeout="150ms"), min_silence=0.05))
    engine.confirm_interval = 0.0
    for _ in range(STALL_AFTER):
        await engine.run_round()
    streamed: list[Result] = []
    await engine.run_round(on_result=streamed.append)
    assert [(r.key_fact, r.confirmed) for r in streamed] == [
        ("suspected", False),
        ("timeout", False),
        ("timeout", False),
        ("timeout", True),
    ]


def _verdicts_streamed(engine: Engine) -> tuple[list[str], Callable[[Result], None]]:
    """(the layers of the verdicts streamed, the on_result that streams them) as `watch
    --plain` judges them: each result re-judged, a verdict shown when it is news."""
    from stackscope import stream

    verdicts = stream.VerdictStream()
    shown: list[str] = []

    def arrived(result: Result) -> None:
        snapshot, outstanding = stream.per_result(engine)
        diagnosis = verdicts.judge(snapshot, outstanding)
        if diagnosis is not None and diagnosis.verdict is not None:
            shown.append(diagnosis.verdict.layer)

    return shown, arrived


async def test_a_fault_beginning_with_the_first_round_never_names_the_lb():
    """A watch's first round can begin as a fault does: a member answers its first probe
    and dies, and the LB's request, a moment later, fails on it. Those two results are
    from two moments; judged together they would name the LB. The LB's failure, first
    seen, is a change: the member is probed again before any verdict is shown."""
    from tests.probe_helpers import layout_of

    engine = Engine(
        layout_of(
            [
                {"name": "LB", "role": "lb", "checks": [{"fake": "lb503", "name": "front"}]},
                {"name": "Backends", "role": "backend", "checks": [{"fake": "dies", "name": "auth-1"}]},
            ],
            timeout="300ms",
        )
    )
    shown, arrived = _verdicts_streamed(engine)

    snap = await engine.run_round(on_result=arrived)
    from stackscope.diagnosis import assess

    assert assess(snap).verdict.layer == "Backends"
    assert shown and set(shown) == {"Backends"}, shown
    assert STATE.calls >= 2  # the member was probed again after the LB's failure


async def test_a_round_never_waits_on_re_probes_that_have_ended():
    """A re-probe task that ended in the same loop pass as the round's last probe is still
    in the engine's set until its done-callback runs; from Python 3.12 gather() of done
    tasks returns without a loop pass, and a round waiting on them spun for ever (a 3.13
    CI run: a test timed out at 120 s in `while self._extra`)."""
    engine = Engine(layout("ok"))
    ended = asyncio.get_running_loop().create_future()
    ended.set_result(None)
    engine._extra.add(ended)  # ended, never discarded: what the pass between would have done
    snap = await asyncio.wait_for(engine.run_round(), 5)
    assert snap.results["L/ok-0"].ok


# --------------------------------------------------------------------------- sharded rounds


async def _lb_over_backends_that_die(count: int = 1):
    """(backend servers, LB server, layout): an LB over `count` backends, each a TCP
    server. Once every backend has been probed (its probe connected and closed: its
    result is in), the backends stop listening and the LB's request fails with a 503, so
    the backends' results are from before the fault and the LB's from after it."""
    from tests.probe_helpers import layout_of

    seen = [asyncio.Event() for _ in range(count)]

    def accept(event: asyncio.Event):
        async def handle(reader, writer):
            try:
                await asyncio.wait_for(reader.read(), 5)  # the probe has closed: its result is in
            finally:
                event.set()
                writer.close()

        return handle

    backends = [await asyncio.start_server(accept(event), "127.0.0.1", 0) for event in seen]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in seen)), 5)
            for backend in backends:
                backend.close()
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            writer.close()

    lb = await asyncio.start_server(answer, "127.0.0.1", 0)
    lay = layout_of(
        [
            {"name": "LB", "role": "lb", "checks": [{"http": f"http://127.0.0.1:{lb.sockets[0].getsockname()[1]}/"}]},
            {
                "name": "Backends",
                "role": "backend",
                "checks": [
                    {"tcp": f"127.0.0.1:{backend.sockets[0].getsockname()[1]}", "name": f"auth-{index + 1}"}
                    for index, backend in enumerate(backends)
                ],
            },
        ],
        timeout="2s",
    )
    return backends, lb, lay


async def test_a_sharded_round_re_probes_related_checks_across_shards():
    """Worker 0 probes the LB, worker 1 the backend. The backend answers, then dies; the
    LB's request, answered after that, fails. Shard by shard the backend's 200 could look
    like the newer evidence and name the LB: the engine takes the results in the order
    their probes ended and has the backend probed again (a second pass through its worker)
    before any verdict."""
    from stackscope.diagnosis import assess

    backends, lb, lay = await _lb_over_backends_that_die()
    engine = Engine(lay, workers=2)
    shown, arrived = _verdicts_streamed(engine)

    try:
        snap = await engine.run_round(on_result=arrived)
    finally:
        await engine.aclose()
        lb.close()
        backends[0].close()
    auth = snap.results["Backends/auth-1"]
    assert not auth.ok and len(engine.history["Backends/auth-1"]) == 2, auth.detail  # probed again
    front = snap.results[next(c.id for c in lay.checks() if c.id.startswith("LB/"))]
    assert auth.finished_at > front.changed_at  # the backend's evidence is from after the LB's change
    assert assess(snap).verdict.layer == "Backends"
    assert shown and set(shown) == {"Backends"}, shown


async def test_a_sharded_pass_counts_its_checks_outstanding_until_each_is_handed_over():
    """A pass's results are all known at once and handed over one by one: until its
    result is, a check counts as not reported, re-probed ones included, so a verdict is
    judged on whole passes only (never 10,000 times on part of one)."""
    backends, lb, lay = await _lb_over_backends_that_die(2)
    engine = Engine(lay, workers=2)
    seen: list[tuple[str, int, bool]] = []

    def arrived(result: Result) -> None:
        seen.append((result.check_id, engine.outstanding_count(), engine.current() is not None))

    try:
        await engine.run_round(on_result=arrived)
    finally:
        await engine.aclose()
        lb.close()
        for backend in backends:
            backend.close()
    assert [count for _, count, _ in seen[:3]] == [2, 1, 0], seen  # the round's pass
    assert {check_id for check_id, _, _ in seen[3:5]} == {"Backends/auth-1", "Backends/auth-2"}, seen
    assert [count for _, count, _ in seen[3:5]] == [1, 0], seen  # the re-probes' pass
    assert all(judged is (count == 0) for _, count, judged in seen), seen


async def test_a_worker_lost_mid_round_reports_its_checks_unknown_and_is_replaced():
    """A worker killed while its probe hangs: its checks are UNKNOWN with why, the other
    shard's results stand, and the next round starts a new worker for the shard."""
    requested = asyncio.Event()
    answer = asyncio.Event()

    async def hang_then_answer(reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            requested.set()
            await asyncio.wait_for(answer.wait(), 10)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (TimeoutError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def accept(reader, writer):
        writer.close()

    web = await asyncio.start_server(hang_then_answer, "127.0.0.1", 0)
    quick = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = quick.sockets[0].getsockname()[1]
    lay = layout_of(
        [
            {
                "name": "L",
                "role": "other",
                "checks": [
                    {"http": f"http://127.0.0.1:{web.sockets[0].getsockname()[1]}/", "name": "web"},
                    {"tcp": f"127.0.0.1:{port}", "name": "tcp"},
                ],
            }
        ],
        timeout="5s",
    )
    engine = Engine(lay, workers=2)
    try:
        round_one = asyncio.ensure_future(engine.run_round())
        await asyncio.wait_for(requested.wait(), 30)
        lost = engine._pool._workers[0]
        lost.kill()
        first = await asyncio.wait_for(round_one, 30)
        answer.set()
        second = await asyncio.wait_for(engine.run_round(), 30)
        replaced = engine._pool._workers[0]
    finally:
        await engine.aclose()
        web.close()
        quick.close()
    web_first = first.results["L/web"]
    assert web_first.status is Status.UNKNOWN and "worker process" in web_first.detail, web_first.detail
    assert first.results["L/tcp"].ok
    assert second.results["L/web"].ok, second.results["L/web"].detail
    assert replaced.pid != lost.pid
