"""Large rounds across every core: worker processes that each probe a shard of the checks.

One event loop saturates one core at a few thousand probes a round (a 10,000-check round
took ~5 s of one core). From WORKER_THRESHOLD checks on, and with more than one core to
use, the engine hands the round to a WorkerPool: one worker process per usable core, each
with its own engine and event loop on a fixed shard of the checks (check i goes to worker
i mod N), paced by its own scheduler. A worker sends its results back in one message of
plain tuples (no Result objects, no layout), each with the moment its probe ended; the
engine turns them back into Results and takes them in that order across workers, so that
a change seen by one worker re-probes the related checks another saw before it: a second
pass, in which each worker probes only the checks of its shard it is sent.

Workers are fresh interpreters running stackscope.worker_process (started by
launch.python_command: safe from a process with threads and a running event loop, as the
dashboard is, and never importing the current directory's code), started once and kept for the
engine's life, talking over their stdin and stdout in length-prefixed pickle frames; a
worker that dies is reported as an UNKNOWN for each of its checks and replaced the next
round. They ignore Ctrl-C (the parent decides when to stop) and leave when their stdin
closes, so they never outlive the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
from collections.abc import Collection, Mapping

from stackscope.launch import python_command
from stackscope.model import ErrorKind, Result, Status
from stackscope.scheduler import WORKER_THRESHOLD

REPLY_GRACE = 30.0  # seconds past the round's own bounds before a silent worker counts as dead

Compact = tuple  # (index, status value, detail, latency_ms, key_fact, facts, error kind, started_at,
#                  evidence, confirmations, confirmed, finished_at): plain values, and the
#                  evidence's frozen dataclasses


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def wants_workers(checks: int, cores: int | None = None) -> int:
    """How many worker processes a layout of `checks` checks should use (0: none)."""
    cores = usable_cores() if cores is None else cores
    if checks < WORKER_THRESHOLD or cores < 2:
        return 0
    return cores


def to_compact(index: int, result: Result) -> Compact:
    kind = result.error_kind.value if result.error_kind is not None else None
    facts = dict(result.facts) if result.facts else None
    return (
        index,
        result.status.value,
        result.detail,
        result.latency_ms,
        result.key_fact,
        facts,
        kind,
        result.started_at,
        result.evidence,
        result.confirmations,
        result.confirmed,
        result.finished_at,
    )


def from_compact(check_id: str, item: Compact) -> Result:
    _, status, detail, latency, key_fact, facts, kind, started_at, evidence, confirmations, confirmed, finished = item
    return Result(
        check_id,
        Status(status),
        detail,
        latency_ms=latency,
        key_fact=key_fact,
        facts=facts or {},
        error_kind=ErrorKind(kind) if kind is not None else None,
        started_at=started_at,
        evidence=evidence,
        confirmations=confirmations,
        confirmed=confirmed,
        finished_at=finished,
    )


def read_frame(stream):
    header = stream.read(4)
    if len(header) < 4:
        raise EOFError("the other end closed the pipe")
    size = int.from_bytes(header, "big")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe mid-message")
    return pickle.loads(data)


def write_frame(stream, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


class WorkerPool:
    """N worker processes, each probing its shard of the layout's checks every round."""

    def __init__(self, layout, count: int, environ: Mapping[str, str]) -> None:
        self.layout = layout
        self.count = count
        self.environ = dict(environ)
        self.checks = list(layout.checks())
        self.shards = [list(range(i, len(self.checks), count)) for i in range(count)]
        self._workers: list[subprocess.Popen | None] = [None] * count
        # the layout pickled once for every worker (and every replacement): 0.18 s of the
        # parent's CPU per pickling at 10,000 checks. A worker unpickles it, never re-reads YAML.
        self._layout_bytes: bytes | None = None

    def _start(self, slot: int) -> subprocess.Popen:
        process = subprocess.Popen(
            python_command("stackscope.worker_process"),  # this tree's code, never the current directory's
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C on the terminal is the parent's to handle
        )
        if self._layout_bytes is None:
            self._layout_bytes = pickle.dumps(self.layout, protocol=pickle.HIGHEST_PROTOCOL)
        write_frame(process.stdin, (self._layout_bytes, self.shards[slot], self.environ))
        self._workers[slot] = process
        return process

    async def run_round(self, only: Collection[str] | None = None) -> list[tuple[str, Result]]:
        """Probe every check once, or the checks `only` names (by id): (check id, result)
        for each, shard by shard. A result's finished_at is the worker's wall clock when
        the probe ended (0.0 for a lost one)."""
        loop = asyncio.get_running_loop()
        bound = self.layout.interval + max((c.timeout for c in self.checks), default=0) + REPLY_GRACE

        async def one(slot: int, indexes: list[int]) -> list[tuple[str, Result]]:
            process = self._workers[slot]
            try:
                if process is None or process.poll() is not None:
                    process = self._start(slot)
                write_frame(process.stdin, "round" if only is None else ("probe", indexes))
                reply = await asyncio.wait_for(loop.run_in_executor(None, read_frame, process.stdout), bound)
            except (EOFError, OSError, TimeoutError, pickle.UnpicklingError) as exc:
                self._stop(slot)
                return [_lost(self.checks[i].id, exc) for i in indexes]
            return [(self.checks[item[0]].id, from_compact(self.checks[item[0]].id, item)) for item in reply]

        work = [
            (slot, shard if only is None else [i for i in shard if self.checks[i].id in only])
            for slot, shard in enumerate(self.shards)
        ]
        replies = await asyncio.gather(*(one(slot, indexes) for slot, indexes in work if indexes))
        return [pair for reply in replies for pair in reply]

    def _stop(self, slot: int) -> None:
        process = self._workers[slot]
        self._workers[slot] = None
        if process is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if process.stdin is not None:  # always: started with stdin=PIPE
                process.stdin.close()  # the worker's cue to leave
        try:
            process.wait(2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(2)
        with contextlib.suppress(OSError, ValueError):
            if process.stdout is not None:  # always: started with stdout=PIPE
                process.stdout.close()

    def close(self) -> None:
        for slot in range(self.count):
            self._stop(slot)


def _lost(check_id: str, exc: BaseException) -> tuple[str, Result]:
    detail = f"probe error: the worker process probing this check was lost ({type(exc).__name__})"
    return check_id, Result(
        check_id,
        Status.UNKNOWN,
        detail,
        key_fact="probe error",
        facts={"exception": type(exc).__name__},
        error_kind=ErrorKind.INTERNAL,
    )
