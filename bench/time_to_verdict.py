#!/usr/bin/env python3
"""Time to verdict on a real stack behind each load balancer: how fast the verdict names the
right layer after a fault, how fast it says healthy again after the repair, and every line
that names another layer from the injection until the LB has taken every member back.

The stack (tests/servers/lbstacks.py), all on 127.0.0.1: dnsmasq, an LB in front of three
backend processes, Redis. The layout probes every 2 s with a 2 s timeout. Each LB runs
health checks typical of production-but-fast:

- HAProxy  `check inter 1s fall 2 rise 1`
- nginx    `max_fails=1 fail_timeout=2s` (passive), proxy connect/read timeouts 1 s
- Apache   `retry=1 timeout=1`, mod_proxy_hcheck `hcinterval=1 hcpasses=1 hcfails=1`
- Caddy    active `interval 1s timeout 1s` and passive `fail_duration 2s`, round-robin
- Varnish  probe `.interval = 0.5s; .timeout = 1s; .window = 3; .threshold = 2`

Faults, each injected `--injections` times (default 8) at a random phase of the probe
interval, by this bench's own set-up code (stackscope never writes):

- kill-one     SIGKILL one backend                          -> Auth backends WARN
- hang-one     SIGSTOP one backend                          -> Auth backends WARN
- error-one    one backend answers 500 to everything        -> Auth backends WARN
- kill-all     SIGKILL every backend                        -> Auth backends CRIT
- misroute     the pool points at a port nothing listens on  -> Load balancer CRIT
               (HAProxy Runtime API `set server … addr`; nginx and Apache a config
               change and reload; Caddy POST /load; Varnish vcl.load + vcl.use)
- maintenance  an operator takes one member out             -> Load balancer WARN
               (HAProxy `set server … state maint`; Varnish `backend.set_health … sick`;
               nginx `down` and Apache `status=+D` by config and reload; Caddy 2.6 has
               no such thing: skipped)
- stop-redis   stop Redis                                   -> Cache CRIT
- stop-dns     stop dnsmasq                                 -> DNS CRIT

The verdict is followed the way `check --watch --format json` prints it (cli.py, stream.py):
one line at every round's end, plus a line whenever a result brings a new verdict (judged
once every check has reported in the round, or earlier when the checks still out cannot
change it). `watch --plain` prints the same verdict changes (without the repeated round
lines). Measured per injection:

- detect: the first line naming the expected layer and status (and the first such line
  that is confirmed), from the injection;
- recover: the first healthy line after the repair;
- readmit: when the LB had taken every member back after the repair. Read from the LB's
  state where it publishes one (HAProxy's stats, Apache's balancer-manager, Varnish's
  backend.list); Caddy 2.6 publishes no active-check state and nginx's passive checks none
  at all: there the documented window must have passed (Caddy one health interval + its
  timeout, and passive fails back to 0; nginx fail_timeout + 1 s) and then every member
  must serve a request sent through the LB (a few requests by the bench);
- false lines: every line from the injection until the first healthy line after the
  readmission that names another layer than the one that broke (whatever its status,
  confirmed or not). Lines naming the right layer with another status, and healthy lines
  while the fault was in place after it had been named, are listed apart (not false).

Run: python bench/time_to_verdict.py [--lb haproxy,nginx,apache,caddy,varnish]
[--injections 8] [--seed 1] [--json]. It stops by itself (a deadline per step and for the
whole run); every server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackscope.diagnosis import assess  # noqa: E402
from stackscope.engine import Engine  # noqa: E402
from stackscope.layout import parse_layout  # noqa: E402
from stackscope.model import Status  # noqa: E402
from stackscope.stream import VerdictStream, held, per_result  # noqa: E402
from tests.servers.lbstacks import STACKS, LbStack  # noqa: E402

DETECT_DEADLINE = 12.0  # seconds: a fault not named by then counts as missed
RECOVER_DEADLINE = 20.0
READMIT_DEADLINE = 25.0
HOLD = 4.0  # seconds the fault stays in place after it was named (two rounds)
RUN_DEADLINE = 3 * 3600.0

LB = "Load balancer"
BACKENDS = "Auth backends"


@dataclass
class Line:
    """One line `check --watch --format json` prints."""

    at: float
    layer: str | None
    status: Status
    confirmed: bool
    summary: str
    round_end: bool

    def text(self, since: float) -> str:
        what = "healthy" if self.layer is None else f"{self.status.word} {self.layer}"
        sure = "" if self.confirmed or self.layer is None else " (unconfirmed)"
        kind = "round" if self.round_end else "change"
        return f"+{self.at - since:5.1f}s {kind:<6} {what}{sure}: {self.summary[:200]}"


@dataclass
class Outcome:
    detect: list[float] = field(default_factory=list)
    detect_confirmed: list[float] = field(default_factory=list)
    recover: list[float] = field(default_factory=list)
    readmit: list[float] = field(default_factory=list)
    missed: int = 0
    not_recovered: int = 0
    not_readmitted: int = 0
    false: list[str] = field(default_factory=list)  # lines naming another layer
    other_status: list[str] = field(default_factory=list)  # the right layer, another status
    healthy_during_fault: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def n(self) -> int:
        return len(self.detect) + self.missed


class Follower:
    """Runs the engine and records every line `check --watch --format json` would print."""

    def __init__(self, layout) -> None:
        self.engine = Engine(layout)
        self.stream = VerdictStream()
        self.lines: list[Line] = []
        self.rounds = 0
        self.changed = asyncio.Event()

    def _record(self, diagnosis, round_end: bool) -> None:
        v = diagnosis.verdict
        self.lines.append(
            Line(
                time.monotonic(),
                v.layer if v else None,
                v.status if v else Status.OK,
                v.confirmed if v else True,
                v.summary if v else "healthy",
                round_end,
            )
        )
        self.changed.set()

    def on_result(self, result) -> None:
        diagnosis = self.stream.judge(*per_result(self.engine))
        if diagnosis is not None and self.rounds:  # the first round's report comes at its end
            self._record(diagnosis, False)

    def on_snapshot(self, snapshot) -> None:
        diagnosis = assess(snapshot)
        self.rounds += 1
        if held(diagnosis) and self.lines:  # as `check --watch` does: the last report stands
            return
        self.stream.news(diagnosis)
        self._record(diagnosis, True)

    async def run(self) -> None:
        await self.engine.watch(self.on_snapshot, on_result=self.on_result)

    async def until(self, predicate, since: float, deadline: float) -> Line | None:
        """The first line recorded at or after `since` that satisfies `predicate`."""
        end = time.monotonic() + deadline
        index = 0
        while True:
            for item in self.lines[index:]:
                if item.at >= since and predicate(item):
                    return item
            index = len(self.lines)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                return None

    async def healthy(self, deadline: float) -> bool:
        return await self.until(lambda s: s.layer is None, time.monotonic(), deadline) is not None


def faults(stack: LbStack):
    """(name, expected (layer, status), inject, repair) for each fault; blocking calls."""
    b = stack.backends

    def restart(*backends):
        def go():
            for backend in backends:
                backend.start()

        return go

    listed = [
        ("kill-one", (BACKENDS, Status.WARN), b[1].kill, restart(b[1])),
        ("hang-one", (BACKENDS, Status.WARN), b[1].pause, b[1].resume),
        ("error-one", (BACKENDS, Status.WARN), b[1].fail, b[1].heal),
        ("kill-all", (BACKENDS, Status.CRIT), lambda: [x.kill() for x in b], restart(*b)),
        ("misroute", (LB, Status.CRIT), stack.misroute, stack.unmisroute),
        ("maintenance", (LB, Status.WARN), stack.maintain, stack.unmaintain),
    ]
    if stack.redis is not None:
        listed.append(("stop-redis", ("Cache", Status.CRIT), stack.redis.stop, stack.redis.start))
    if stack.dnsmasq is not None:
        listed.append(("stop-dns", ("DNS", Status.CRIT), stack.dnsmasq.stop, stack.dnsmasq.start))
    return listed


async def wait_readmitted(stack: LbStack, deadline: float) -> float | None:
    """Poll the LB (in a thread: its reads block) until every member is back; when."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await asyncio.to_thread(stack.members_back):
            return time.monotonic()
        await asyncio.sleep(0.2)
    return None


async def inject_once(stack, follower, layout, rng, name, want, inject, repair, outcome: Outcome) -> None:
    layer, status = want
    await asyncio.sleep(rng.uniform(0, layout.interval))  # a random phase of the round
    t0 = time.monotonic()
    await asyncio.to_thread(inject)
    right = await follower.until(lambda s: (s.layer, s.status) == want, t0, DETECT_DEADLINE)
    if right is None:
        outcome.missed += 1
    else:
        outcome.detect.append(right.at - t0)
        sure = await follower.until(lambda s: (s.layer, s.status) == want and s.confirmed, t0, DETECT_DEADLINE)
        if sure is not None:
            outcome.detect_confirmed.append(sure.at - t0)
        await asyncio.sleep(HOLD)
    t1 = time.monotonic()
    await asyncio.to_thread(repair)
    stack.mark_repaired()
    back = await follower.until(lambda s: s.layer is None, t1, RECOVER_DEADLINE)
    if back is None:
        outcome.not_recovered += 1
    else:
        outcome.recover.append(back.at - t1)
    t2 = await wait_readmitted(stack, READMIT_DEADLINE)
    if t2 is None:
        outcome.not_readmitted += 1
        t2 = time.monotonic()
    else:
        outcome.readmit.append(t2 - t1)
    end = await follower.until(lambda s: s.layer is None, t2, RECOVER_DEADLINE)
    t3 = end.at if end is not None else time.monotonic()
    for s in follower.lines:
        if not t0 <= s.at <= t3 or s.layer is None and not (right is not None and right.at < s.at < t1):
            continue
        phase = "fault" if s.at < t1 else "recovering"
        text = f"[{phase}] {s.text(t0)}"
        if s.layer is None:
            outcome.healthy_during_fault.append(text)
        elif s.layer != layer:
            outcome.false.append(text)
        elif s.status is not status and s.at < t1:
            outcome.other_status.append(text)
    await follower.healthy(20)


async def run_lb(
    kind: str, injections: int, seed: int, started: float, only: set[str] | None = None
) -> dict[str, Outcome]:
    rng = random.Random(seed)
    stack = STACKS[kind](interval="2s", timeout="2s").start()
    layout = parse_layout(stack.layout(), f"{kind}stack.yaml")
    follower = Follower(layout)
    task = asyncio.create_task(follower.run())
    results: dict[str, Outcome] = {}
    try:
        if not await follower.healthy(30):
            raise SystemExit(f"{kind}: the stack never became healthy: {follower.lines[-1:]}")
        for name, want, inject, repair in faults(stack):
            if only is not None and name not in only:
                continue
            outcome = results[name] = Outcome()
            if name == "maintenance" and not stack.can_maintain:
                outcome.skipped = f"{kind} has no administrative state per member"
                continue
            for _ in range(injections):
                if time.monotonic() - started > RUN_DEADLINE:
                    print("run deadline reached; stopping", file=sys.stderr)
                    return results
                await inject_once(stack, follower, layout, rng, name, want, inject, repair, outcome)
            print(f"  {kind} {name}: {len(outcome.false)} false lines", file=sys.stderr, flush=True)
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        await follower.engine.aclose()
        stack.stop()
    return results


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def table(kind: str, results: dict[str, Outcome]) -> str:
    stack = STACKS[kind]
    out = [
        f"== {kind} (re-admission: {stack.readmission})",
        f"{'fault':<12} {'n':>2}  {'detect s min/med/max':<20} {'confirmed s':<20} {'recover s':<20} "
        f"{'readmit s':<20} {'missed':>6} {'false':>5}",
    ]
    for name, o in results.items():
        if o.skipped:
            out.append(f"{name:<12}  skipped: {o.skipped}")
            continue
        out.append(
            f"{name:<12} {o.n:>2}  {spread(o.detect):<20} {spread(o.detect_confirmed):<20} {spread(o.recover):<20} "
            f"{spread(o.readmit):<20} {o.missed:>6} {len(o.false):>5}"
            + (f"  (not recovered {o.not_recovered})" if o.not_recovered else "")
            + (f"  (not readmitted {o.not_readmitted})" if o.not_readmitted else "")
        )
        for label, items in (
            ("false", o.false),
            ("right layer, other status", o.other_status),
            ("healthy while the fault was in place", o.healthy_during_fault),
        ):
            for item in items:
                out.append(f"    {label}: {item}")
    total = sum(len(o.false) for o in results.values())
    injected = sum(o.n for o in results.values())
    out.append(f"{kind}: {injected} injections, {total} false lines")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lb", default="haproxy", help=f"comma-separated, of {','.join(STACKS)} (or all)")
    parser.add_argument("--injections", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", help="comma-separated fault names to run (default: all)")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    args = parser.parse_args()
    only = {f.strip() for f in args.faults.split(",") if f.strip()} if args.faults else None
    kinds = list(STACKS) if args.lb == "all" else [k.strip() for k in args.lb.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in STACKS]
    if unknown or not kinds:
        parser.error(f"--lb: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(STACKS)}")
    if not 1 <= args.injections <= 100:
        parser.error("--injections: between 1 and 100")
    started = time.monotonic()
    everything: dict[str, dict[str, Outcome]] = {}
    for kind in kinds:
        everything[kind] = asyncio.run(run_lb(kind, args.injections, args.seed, started, only))
        print(table(kind, everything[kind]), flush=True)
        print(flush=True)
    if args.json:
        print(
            json.dumps(
                {kind: {name: asdict(o) for name, o in results.items()} for kind, results in everything.items()},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
