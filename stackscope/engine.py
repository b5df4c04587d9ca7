"""Runs the probes: concurrent rounds, hard timeouts, isolation, bounded history.

A round starts its checks at the pace the event loop can keep up with (scheduler.Pacer:
30 checks within a few tens of ms, 1000 over about a second, not queueing behind each other),
under a concurrency cap so 1000 checks do not exhaust file descriptors. Each probe is
wrapped so that whatever it does (hang, raise, return late) it yields exactly one Result
within its timeout plus a small grace. Every result passes through the redactor here,
the one place all output comes from, so a secret cannot reach any renderer.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from stackscope.history import History, Sample
from stackscope.kinds import format_duration
from stackscope.model import SUSPECT_WINDOW, Check, ErrorKind, Layout, Result, Snapshot, Status
from stackscope.probes import spec_for
from stackscope.probes.common import ProbeFailure, evidence_in, timeout_scope
from stackscope.probes.context import ProbeContext
from stackscope.redact import activated
from stackscope.scheduler import WORKER_THRESHOLD, Pacer
from stackscope.suspicion import Crossing, crossing

if TYPE_CHECKING:
    from stackscope.workers import WorkerPool

MAX_CONCURRENCY = 1024
DEFAULT_HISTORY = 120
# Probes enforce their own timeout with a precise message; this grace only catches a
# probe that fails to, so the engine's guarantee holds even for a buggy probe.
TIMEOUT_GRACE = 0.25
# Share of the interval over which a round may spread its starts (scheduler.Pacer): past
# it, the checks left start at once, so a round always ends before the next is due.
MAX_SPREAD_SHARE = 0.5
# How often one check may be probed again in a round because another check changed
# (`_refresh`): enough for a change and the change it reveals, bounded if checks flap.
REFRESHES_PER_ROUND = 3
# A suspicion timer (suspicion.py) that fires more than SUSPECT_LAG late means the loop
# itself was busy: the answer may be waiting unread behind that backlog, so the timer is
# re-armed that much later.
SUSPECT_LAG = 0.01
# ...at most this many times: on a loop that is always that late (a loaded machine) the
# answer has had its chances to be read, and silence past them is the target's.
SUSPECT_DEFERRALS = 3


def default_concurrency() -> int:
    """How many probes may run at once: as many as the file-descriptor limit allows with
    room to spare (a probe holds one or two sockets), up to MAX_CONCURRENCY."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 256
    if soft == resource.RLIM_INFINITY:
        return MAX_CONCURRENCY
    return max(8, min(MAX_CONCURRENCY, (soft - 64) // 2))


def settle_memory() -> None:
    """After the layout is loaded and the engine built: move every object made so far out
    of the garbage collector's sight (gc.freeze: they live as long as the process), and
    collect the young generation less often — a 10,000-check round allocates tens of
    thousands of short-lived containers, and gen-0 passes over them cost ~23 % of its CPU."""
    import gc

    gc.freeze()
    threshold0, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(max(threshold0, 10000), threshold1, threshold2)


def raise_fd_limit(target: int = 8192) -> None:
    """Lift this process's soft file-descriptor limit towards the hard one (best effort),
    so a large layout can run in one wave instead of several."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, OSError, ValueError):
        pass


class Engine:
    """Probes a layout, one round at a time; rounds never overlap."""

    def __init__(
        self,
        layout: Layout,
        *,
        concurrency: int | None = None,
        history: int = DEFAULT_HISTORY,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        workers: int | None = None,
        refresh_related: bool = True,
        suspect_silence: bool = True,
    ) -> None:
        """`workers`: processes to share each round among (0: this one only; None: one
        per core from workers.WORKER_THRESHOLD checks on). `refresh_related`: re-probe the
        related checks when one changes (`_refresh`); off in a worker process, which sees
        one shard: its parent does it across every shard. `suspect_silence`: suspect a
        silent probe as the layout says (suspicion.py); off in a worker process, which
        hands over only a probe's end."""
        self.layout = layout
        self.clock = clock
        environ = os.environ if environ is None else environ
        self.environ = environ
        self.context = ProbeContext(layout.resolver, environ, layout)
        self.redactor = self.context.redactor
        self.concurrency = concurrency or default_concurrency()
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._round_lock = asyncio.Lock()
        self.pacer = Pacer()
        self.workers = self._default_workers() if workers is None else workers
        self._pool: WorkerPool | None = None  # the WorkerPool, started on the first sharded round
        self.history: dict[str, History] = {c.id: History(history) for c in layout.checks()}
        self.inflight: dict[str, float] = {}  # check id -> time.monotonic() when its probe started
        self.rounds = 0
        self.last: Snapshot | None = None
        self._warm = False
        # the latest result of every check, updated as each arrives (confirmation re-probes
        # included): what a verdict judged per result reads (`current()`)
        self.latest: dict[str, Result] = {}
        self._fresh: set[str] = set()  # checks that have reported in the current round
        # the last confirmed status of each check: a result that differs is "soft" until
        # `confirm_retries` re-probes, `confirm_interval` apart, agree with it
        self.confirmed: dict[str, Status] = {}
        self.confirm_retries = layout.confirm_retries
        self.confirm_interval = layout.confirm_interval
        # evidence from the same moment (`_refresh`): the checks whose results decide which
        # layer a check's layer is, the checks being probed or confirmed right now, the
        # re-probes started this round and how many each check has had
        self._related = _related_checks(layout)
        self._layer_of = {check.id: layer.name for layer in layout.layers for check in layer.checks}
        self._busy: set[str] = set()
        self._extra: set[asyncio.Future] = set()
        self._refreshed: dict[str, int] = {}
        self.refresh_related = refresh_related
        self.suspect_settings = layout.suspect if suspect_silence else None
        self._callbacks: tuple[Callable[[Check], None] | None, Callable[[Result], None] | None] = (None, None)

    def _default_workers(self) -> int:
        count = sum(1 for _ in self.layout.checks())
        if count < WORKER_THRESHOLD:
            return 0  # without importing the worker machinery: `check` starts faster
        from stackscope.workers import wants_workers

        return wants_workers(count)

    def warm_up(self) -> None:
        """Pay one-time costs (imports, TLS contexts) before any probe is timed."""
        for check in self.layout.checks():
            spec = spec_for(check.type)
            if spec.warm_up is not None:
                try:
                    spec.warm_up(check, self.context)
                except Exception:  # the probe itself will report the problem
                    pass
        self._warm = True

    async def run_round(
        self, on_start: Callable[[Check], None] | None = None, on_result: Callable[[Result], None] | None = None
    ) -> Snapshot:
        """Probe every check once, concurrently; call back as each starts and ends."""
        async with self._round_lock:
            if not self._warm:
                self.warm_up()
            self.context.begin_round()
            began = time.monotonic()
            self._fresh = set()
            self._refreshed = {}
            self._callbacks = (on_start, on_result)
            checks = list(self.layout.checks())
            try:
                if self.workers > 1:
                    await self._run_sharded(checks, on_start, on_result)
                else:
                    await self.pacer.run(
                        checks,
                        lambda check: self._run_one(check, on_start, on_result),
                        max_spread=self.layout.interval * MAX_SPREAD_SHARE,
                    )
                # the re-probes a change asked for are part of the round. Done ones are
                # not waited for: a task's discard runs a loop pass after it ends, and
                # from Python 3.12 gather() of done tasks returns without a pass, so
                # waiting on them would spin here for ever
                while pending := [task for task in self._extra if not task.done()]:
                    await asyncio.gather(*pending)
            except asyncio.CancelledError:  # the round ends, its re-probes with it
                for task in self._extra:
                    task.cancel()
                raise
            self.rounds += 1
            snapshot = Snapshot(
                self.layout,
                {check.id: self.latest[check.id] for check in checks},
                self.clock(),
                self.rounds,
                duration=time.monotonic() - began,
            )
            self.last = snapshot
            return snapshot

    def current(self) -> Snapshot | None:
        """The latest result of every check as one snapshot, or None until every check has
        reported in the current round (a verdict on a partial round would compare this
        round's failures with the last round's results of the checks still out)."""
        if len(self._fresh) < len(self.history):
            return None
        return Snapshot(self.layout, dict(self.latest), self.clock(), max(1, self.rounds + 1))

    def outstanding(self) -> set[str]:
        """The checks that have not reported yet in the current round."""
        return set(self.history) - self._fresh

    def outstanding_count(self) -> int:
        return len(self.history) - len(self._fresh)

    def latest_snapshot(self) -> Snapshot | None:
        """The latest result of every check, whichever round it is from; None until every
        check has reported at least once. With `outstanding()`, what an early verdict is
        judged on (stream.py)."""
        if len(self.latest) < len(self.history):
            return None
        return Snapshot(self.layout, dict(self.latest), self.clock(), max(1, self.rounds + 1))

    async def watch(
        self,
        on_snapshot: Callable[[Snapshot], Awaitable[None] | None],
        *,
        rounds: int | None = None,
        on_start: Callable[[Check], None] | None = None,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        """Run rounds every `interval`, the next one scheduled after the current ends.
        `on_result` sees every result as it arrives (with `current()` up to date)."""
        done = 0
        while rounds is None or done < rounds:
            started = time.monotonic()
            snapshot = await self.run_round(on_start, on_result)
            outcome = on_snapshot(snapshot)
            if asyncio.iscoroutine(outcome):
                await outcome
            done += 1
            if rounds is not None and done >= rounds:
                break
            await asyncio.sleep(max(0.0, self.layout.interval - (time.monotonic() - started)))

    async def _run_one(
        self,
        check: Check,
        on_start: Callable[[Check], None] | None,
        on_result: Callable[[Result], None] | None,
    ) -> Result:
        self._busy.add(check.id)
        try:
            return await self._settle(check, on_start, on_result)
        finally:
            self._busy.discard(check.id)

    async def _settle(
        self,
        check: Check,
        on_start: Callable[[Check], None] | None,
        on_result: Callable[[Result], None] | None,
    ) -> Result:
        """Probe `check`, and re-probe a changed status until it is confirmed or a blip."""
        outcome = await self._probe_once(check, on_start, on_result)
        before = self.confirmed.get(check.id, Status.OK)  # nothing known: healthy until shown otherwise
        if outcome.status is before or self.confirm_retries <= 0:
            self.confirmed[check.id] = outcome.status
            return self._arrive(outcome, on_result)
        # Nagios' soft state: the change is news at once, marked unconfirmed, and re-probed
        # at once and then `confirm_interval` apart until `confirm_retries` re-probes agree;
        # a re-probe back at the confirmed status ends it as a blip.
        soft = outcome.status
        agreed = 0
        outcome = self._arrive(outcome.stamped(confirmed=False), on_result)
        for attempt in range(self.confirm_retries * 2):  # bounded even if it keeps changing
            if attempt:
                await asyncio.sleep(self.confirm_interval)
            again = await self._probe_once(check, on_start, on_result)
            if again.status is before:  # a blip: the confirmed status holds
                self.confirmed[check.id] = before
                return self._arrive(again, on_result)
            if again.status is soft:
                agreed += 1
            else:  # changed again: that is the new status to confirm
                soft, agreed = again.status, 1
            if agreed >= self.confirm_retries:
                self.confirmed[check.id] = soft
                return self._arrive(again.stamped(confirmations=agreed), on_result)
            outcome = self._arrive(again.stamped(confirmed=False, confirmations=agreed), on_result)
        return outcome

    async def _probe_once(
        self,
        check: Check,
        on_start: Callable[[Check], None] | None,
        on_result: Callable[[Result], None] | None = None,
    ) -> Result:
        async with self._semaphore:
            started_wall = self.clock()
            started = time.monotonic()
            self.inflight[check.id] = started
            if on_start is not None:
                on_start(check)
            watch = self._watch_silence(check, started_wall, on_result)
            try:
                outcome = await probe_check(check, self.context)
                lag_ms = self.pacer.lag_ms()
            finally:
                if watch is not None:
                    watch.cancel()
                self.inflight.pop(check.id, None)
        outcome = self.redactor.result(outcome)
        if lag_ms is not None:  # measured while the loop ran late: say so
            outcome = outcome.with_fact("loop_lag_ms", lag_ms)
        return outcome.stamped(started_at=started_wall)

    def _watch_silence(
        self, check: Check, started_wall: float, on_result: Callable[[Result], None] | None
    ) -> _SilenceWatch | None:
        """Arm one timer at the silence where this probe becomes suspected (suspicion.py),
        or none: suspicion off, too little history, a crossing past the timeout, or a check
        that is not healthy now (a failing check being re-probed has nothing to suspect)."""
        settings = self.suspect_settings
        latest = self.latest.get(check.id)
        if settings is None or latest is None or latest.status is not Status.OK:
            return None
        answers = self.history[check.id].answered_ms(SUSPECT_WINDOW, Status.OK)
        due = crossing(answers, check.timeout * 1000, settings)
        if due is None:
            return None
        return _SilenceWatch(self, check, started_wall, due, on_result)

    def _suspect(self, check: Check, started_wall: float, silent_s: float, due: Crossing, on_result) -> None:
        """Stream a provisional WARN for a probe still silent at its crossing. It is no
        latency sample and leaves the confirmation bookkeeping alone: the probe's own end
        (an answer, or the timeout's CRIT) follows through the usual path."""
        silence = f"{silent_s * 1000:.0f} ms"
        suspected = Result(
            check.id,
            Status.WARN,
            f"no answer for {silence} (usually {_ms(due.usual_ms)})",
            key_fact="suspected",
            facts={"silence_ms": round(silent_s * 1000, 1), "usual_ms": round(due.usual_ms, 2)},
            error_kind=ErrorKind.SUSPECTED,
            started_at=started_wall,
            confirmed=False,
            finished_at=self.clock(),
        )
        self._arrive(self.redactor.result(suspected), on_result)

    def _arrive(self, outcome: Result, on_result: Callable[[Result], None] | None) -> Result:
        """Record and report a result; a change re-probes the related checks (`_refresh`)."""
        outcome, flipped = self._record(outcome, on_result)
        if flipped and self.refresh_related:
            self._refresh(self._layer_of[outcome.check_id], outcome.finished_at)
        return outcome

    def _record(self, outcome: Result, on_result: Callable[[Result], None] | None) -> tuple[Result, bool]:
        """Stamp, record and report a result: (it stamped, whether its check went from OK
        to failing or back)."""
        finished_at = outcome.finished_at or self.clock()
        before = self.latest.get(outcome.check_id)
        # A check first seen failing changed from "healthy until shown otherwise" (what the
        # confirmation bookkeeping assumes too) at the latest when it was seen: the results
        # of other checks known before it may be from before the fault (a watch's first
        # round can begin as the fault does), so it is a change like any flip and they are
        # probed again. A check first seen healthy: since when is not known.
        flipped = (before.ok if before is not None else True) != outcome.ok
        if before is None and not flipped:
            changed_at = outcome.changed_at
        elif not flipped:
            changed_at = before.changed_at  # type: ignore[union-attr]  # not None: the branch above
        else:
            changed_at = finished_at
        outcome = outcome.stamped(finished_at=finished_at, changed_at=changed_at)
        if outcome.error_kind is not ErrorKind.SUSPECTED:  # a provisional result is no sample
            self.history[outcome.check_id].append(Sample(outcome.started_at, outcome.status, outcome.latency_ms))
        self.latest[outcome.check_id] = outcome
        self._fresh.add(outcome.check_id)
        if on_result is not None:
            on_result(outcome)
        return outcome, flipped

    def _refresh(self, layer: str, since: float) -> None:
        """A check went from OK to failing or back: probe again, now, every check whose
        result decides which layer that is (diagnosis.related_layers) and was known before
        the change. Until they are in, the verdict rests on evidence from two moments and
        is held (diagnosis.stale_evidence, stream.py): a backend's 200 from 2 ms before it
        died must not clear it of the LB's 503 of 200 ms later. `layer` is the changed
        check's, `since` the end of the probe that saw the change."""
        on_start, on_result = self._callbacks
        for check in self._stale_related(layer, since):
            task = asyncio.ensure_future(self._run_one(check, on_start, on_result))
            self._busy.add(check.id)  # from now, not from when the task first runs
            self._extra.add(task)
            task.add_done_callback(self._extra.discard)

    def _stale_related(self, layer: str, since: float) -> list[Check]:
        """The checks of the layers related to `layer` known before `since`, each counted
        as re-probed once more this round (at most REFRESHES_PER_ROUND times). A check
        being probed or confirmed right now needs nothing: its next result comes after
        the change."""
        stale = []
        for check in self._related.get(layer, ()):
            known = self.latest.get(check.id)
            if known is None or known.finished_at >= since or check.id in self._busy:
                continue
            count = self._refreshed.get(check.id, 0)
            if count >= REFRESHES_PER_ROUND:
                continue
            self._refreshed[check.id] = count + 1
            stale.append(check)
        return stale

    async def _run_sharded(
        self,
        checks: list[Check],
        on_start: Callable[[Check], None] | None,
        on_result: Callable[[Result], None] | None,
    ) -> None:
        """The round in worker processes, one per core (workers.py). Their results arrive
        here in the order the probes ended, whichever worker ran them, and are redacted,
        recorded and reported as _run_one's would be. The re-probes the changes among them
        ask for (`_refresh`: the related checks known before a change, across every shard)
        are a second pass through the same workers, and so on while the re-probes bring
        changes of their own (bounded: REFRESHES_PER_ROUND per check). Shard by shard
        instead, a backend's 200 from before the fault could arrive after the LB's 503 and
        look like the newer evidence. A sharded round (WORKER_THRESHOLD checks or more)
        does not suspect silent probes: the workers keep no history, and a timer per
        probe would cost what sharding is there to save."""
        from stackscope.workers import WorkerPool

        if self._pool is None:
            self._pool = WorkerPool(self.layout, self.workers, self.environ)
        wanted: list[Check] | None = None  # None: every check
        while wanted is None or wanted:
            if on_start is not None:
                for check in checks if wanted is None else wanted:
                    on_start(check)
            replies = await self._pool.run_round(None if wanted is None else {check.id for check in wanted})
            replies.sort(key=lambda pair: pair[1].finished_at)  # stable: a lost shard's (0.0) first
            # known all at once, handed over one by one: until its result is, a check counts
            # as not reported (`outstanding`), so no verdict is judged on part of the pass
            # (nor, at 10,000 checks, 10,000 times in a row)
            self._fresh.difference_update(check_id for check_id, _ in replies)
            # the changes, per layer its latest: the same re-probes as one `_refresh` per
            # change, without walking a 10,000-check layer again for each of thousands
            flips: dict[str, float] = {}
            for _, outcome in replies:
                outcome, flipped = self._record(self.redactor.result(outcome), on_result)
                # a lost worker's result (never started) is no news of the system
                if flipped and self.refresh_related and outcome.started_at:
                    layer = self._layer_of[outcome.check_id]
                    flips[layer] = max(outcome.finished_at, flips.get(layer, 0.0))
            again: dict[str, Check] = {}
            for layer, since in flips.items():
                again.update((check.id, check) for check in self._stale_related(layer, since))
            wanted = list(again.values())

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        await self.context.aclose()


def _related_checks(layout: Layout) -> dict[str, tuple[Check, ...]]:
    """Layer name -> every check of the layers related to it (one tuple per layer, shared
    by its checks: a 10,000-check layer costs one tuple, not one per check)."""
    from stackscope.diagnosis import related_layers

    return {
        layer.name: tuple(c for other in layout.layers if other.name in related for c in other.checks)
        for layer in layout.layers
        for related in (related_layers(layout, layer.name),)
    }


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


class _SilenceWatch:
    """The one timer of a running probe that may suspect it; re-armed when it fires late
    (the loop's own delay is not the target's silence)."""

    __slots__ = ("engine", "check", "started_wall", "due", "on_result", "handle", "loop", "began", "deferred")

    def __init__(self, engine: Engine, check: Check, started_wall: float, due: Crossing, on_result) -> None:
        self.engine, self.check, self.started_wall, self.due, self.on_result = (
            engine,
            check,
            started_wall,
            due,
            on_result,
        )
        self.loop = asyncio.get_running_loop()
        self.began = self.loop.time()
        self.deferred = 0
        self.handle = self.loop.call_at(self.began + due.silence_ms / 1000, self.fire)

    def fire(self) -> None:
        late = self.loop.time() - self.handle.when()
        lag_ms = self.engine.pacer.lag_ms() or 0.0
        behind = max(late, lag_ms / 1000)
        if behind > SUSPECT_LAG and self.deferred < SUSPECT_DEFERRALS:  # the answer may be queued
            self.deferred += 1
            self.handle = self.loop.call_at(self.loop.time() + behind, self.fire)
            return
        now = self.loop.time()
        self.engine._suspect(self.check, self.started_wall, now - self.began, self.due, self.on_result)

    def cancel(self) -> None:
        self.handle.cancel()


async def probe_check(check: Check, context: ProbeContext) -> Result:
    """Run one probe and always return a Result: never raise, never overrun the timeout."""
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        probe = spec_for(check.type).probe
        # server text is masked while the probe still has it whole (printable, redact.py)
        with activated(context.redactor):
            async with timeout_scope(check.timeout + TIMEOUT_GRACE):
                return await probe(check, context)
    except ProbeFailure as failure:
        return Result(
            check.id,
            failure.status,
            failure.detail,
            latency_ms=None,
            key_fact=failure.key_fact,
            facts=failure.facts,
            error_kind=failure.kind,
            evidence=failure.evidence if failure.evidence is not None else evidence_in(failure.facts),
        )
    except TimeoutError:
        return Result(
            check.id,
            Status.CRIT,
            f"no result within {format_duration(check.timeout)}",
            latency_ms=None,
            key_fact="timeout",
            facts={"elapsed_ms": round(elapsed(), 1)},
            error_kind=ErrorKind.TIMEOUT,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug in a probe must not take the round down
        return Result(
            check.id,
            Status.UNKNOWN,
            f"probe error: {type(exc).__name__}: {exc}",
            latency_ms=None,
            key_fact="probe error",
            facts={"exception": type(exc).__name__},
            error_kind=ErrorKind.INTERNAL,
        )
