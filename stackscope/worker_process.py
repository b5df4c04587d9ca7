"""The worker side of a sharded round: a fresh interpreter that probes its shard.

Started by `workers.WorkerPool` through launch.python_command. It lives apart
from workers.py so that the pool (imported by the engine) never imports the engine back:
only this process runs an engine of its own.
"""

from __future__ import annotations

import asyncio
import pickle
import signal
import sys
from collections.abc import Mapping

from stackscope import eventloop
from stackscope.engine import MAX_SPREAD_SHARE, Engine, raise_fd_limit, settle_memory
from stackscope.scheduler import SHARD_START_RATE, Pacer
from stackscope.workers import read_frame, to_compact, write_frame


def main() -> None:
    """A worker process (workers.WorkerPool starts it): read its layout and shard from
    stdin, then for every "round" probe the shard, for every ("probe", indexes) those of
    its checks, and write the compact results."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the result stream
    layout_bytes, indexes, environ = read_frame(source)  # the layout pickled once by the pool
    layout = pickle.loads(layout_bytes)
    eventloop.run(
        _serve(source, sink, layout, indexes, environ), fast=eventloop.wanted(len(indexes), long_running=True)
    )


async def _serve(source, sink, layout, indexes: list[int], environ: Mapping[str, str]) -> None:
    raise_fd_limit()
    # the parent re-probes across shards; a suspicion would never leave this process
    engine = Engine(layout, environ=environ, workers=0, refresh_related=False, suspect_silence=False)
    engine.pacer = Pacer(SHARD_START_RATE)
    engine.warm_up()
    every = list(layout.checks())
    mine = set(indexes)
    settle_memory()
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                message = await loop.run_in_executor(None, read_frame, source)
            except (EOFError, OSError, pickle.UnpicklingError):
                return  # the parent is gone
            if message == "round":  # the whole shard, a new round
                engine.context.begin_round()
                wanted = indexes
            elif isinstance(message, tuple) and len(message) == 2 and message[0] == "probe":
                wanted = [i for i in message[1] if i in mine]  # the round's re-probes (Engine._run_sharded)
            else:
                return
            results = await engine.pacer.run(
                [every[i] for i in wanted],
                lambda check: engine._run_one(check, None, None),
                max_spread=layout.interval * MAX_SPREAD_SHARE,
            )
            write_frame(sink, [to_compact(i, r) for i, r in zip(wanted, results)])
    finally:
        await engine.aclose()


if __name__ == "__main__":
    main()
