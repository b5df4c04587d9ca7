"""Never a wrong layer while things change: a member of the pool hangs (SIGSTOP) and then
recovers (SIGCONT), behind each real load balancer (HAProxy, nginx, Apache httpd, Caddy,
Varnish: tests/servers/lbstacks.py). A bounded `stackscope watch --plain` and a bounded
`stackscope check --watch --format json` follow the whole of it, side by side, from a
healthy round through the hang (until the LB has noticed it) and the recovery (until the
LB has taken the member back and the verdict is healthy again). Every line each prints is
read: none may name the load balancer, whose only part in this is doing its job.

Each step waits for an event (a line printed, the LB's own state) with a deadline; the
commands stop by themselves (`--rounds`) and are ended with SIGTERM once the scenario is
over, as Ctrl-C would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_layout
from tests.servers.base import ServerError, wait_until
from tests.servers.lbstacks import STACKS

ROUNDS = 40  # the commands' own bound; the test ends them as soon as the scenario is over
STEP = 25.0  # seconds: the deadline of each step
LB = "Load balancer"
BACKENDS = "Auth backends"


class Stream:
    """A stackscope command whose output lines are collected, with the time each arrived,
    by a reader thread; `wait_for` blocks on them with a deadline."""

    def __init__(self, workdir: Path, name: str, *args: str) -> None:
        self.stderr_path = workdir / f"{name}.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stackscope", *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
                cwd=str(ROOT),
            )
        self.lines: list[tuple[float, str]] = []
        self.done = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], since: float, timeout: float = STEP, count: int = 1) -> bool:
        """Whether `count` lines printed at or after `since` satisfy `predicate` within `timeout`."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                if sum(1 for at, text in self.lines if at >= since and predicate(text)) >= count:
                    return True
                remaining = end - time.monotonic()
                if self.done or remaining <= 0:
                    return False
                self.cond.wait(remaining)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the end of a watch, as Ctrl-C
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.thread.join(5)

    def text(self) -> str:
        return "\n".join(text for _, text in self.lines) + "\n" + self.stderr_path.read_text(errors="replace")[-2000:]


def verdict_of(line: str) -> dict | None:
    """The verdict of one JSON line (None: healthy)."""
    return json.loads(line)["verdict"]


def json_names(layer: str) -> Callable[[str], bool]:
    return lambda line: (verdict_of(line) or {}).get("layer") == layer


def json_healthy(line: str) -> bool:
    return verdict_of(line) is None


def plain_names(layer: str) -> Callable[[str], bool]:
    return lambda line: "  verdict  " in line and f"{layer} is the broken layer" in line


def plain_healthy(line: str) -> bool:
    return "  verdict  " in line and "is the broken layer" not in line


def state(predicate: Callable[[], bool], what: str) -> None:
    """Poll the LB's own state (set-up code, not stackscope) until `predicate` holds."""
    try:
        wait_until(predicate, STEP, what)
    except ServerError as exc:
        raise AssertionError(str(exc)) from None


def start(kind: str):
    return STACKS[kind](dns=False, redis=False, interval="1s", timeout="1s").start()


@pytest.fixture(params=list(STACKS))
def stack(request):
    started = start(request.param)
    yield started
    started.stop()


def test_a_hung_then_recovering_member_never_names_the_lb(stack, tmp_path):
    member = stack.backends[1]
    follow(stack, tmp_path, member.pause, member.resume, BACKENDS, f"{member.name} hung")


def test_nginx_taking_its_members_back_after_all_crashed_never_names_the_lb(tmp_path):
    """nginx's passive checks keep every member out for fail_timeout after they all failed,
    and nginx answers 502 meanwhile though each member answers again: the members broke,
    nginx is doing what it is told."""
    stack = start("nginx")
    try:

        def restart() -> None:
            for backend in stack.backends:
                backend.start()

        follow(stack, tmp_path, lambda: [b.kill() for b in stack.backends], restart, BACKENDS, "every member down")
    finally:
        stack.stop()


def follow(stack, tmp_path: Path, inject: Callable, repair: Callable, broken: str, fault: str) -> None:
    """Watch with both commands from a healthy round through `inject` (until the LB has
    noticed it and the streams name the `broken` layer) and `repair` (until the LB has
    taken every member back and the verdict is healthy again); neither may name the LB."""
    path = write_layout(tmp_path, stack.layout())
    rounds = str(ROUNDS)
    js = Stream(tmp_path, "json", "check", "--watch", "--format", "json", "--rounds", rounds, str(path))
    plain = Stream(tmp_path, "plain", "watch", "--plain", "--rounds", rounds, str(path))
    marks: dict[str, float] = {}
    steps: list[str] = []  # a step that did not happen (said after the main assertion)

    def step(happened: bool, what: str, stream: Stream) -> bool:
        if not happened:
            steps.append(f"{what} did not happen:\n{stream.text()}")
        return happened

    try:
        if step(js.wait_for(json_healthy, 0), "a healthy round first", js):
            broke = marks["fault"] = time.monotonic()
            inject()
            state(stack.taken_out, f"{stack.kind} notices {fault}")
            step(js.wait_for(json_names(broken), broke), f"the JSON stream names {broken}", js)
            step(plain.wait_for(plain_names(broken), broke), f"watch --plain names {broken}", plain)
            step(js.wait_for(lambda line: True, time.monotonic(), count=2), "two more rounds", js)

            marks["recovering"] = time.monotonic()
            repair()
            stack.mark_repaired()
            state(stack.members_back, f"{stack.kind} takes every member back")
            back = time.monotonic()
            step(js.wait_for(json_healthy, back), "a healthy JSON line after the LB took them back", js)
            step(plain.wait_for(plain_healthy, broke), "a healthy watch --plain line", plain)
            step(js.wait_for(lambda line: True, time.monotonic(), count=2), "two more rounds", js)
    finally:
        js.stop()
        plain.stop()

    def phase(at: float) -> str:
        if "recovering" in marks and at >= marks["recovering"]:
            return "recovering"
        return fault if "fault" in marks and at >= marks["fault"] else "before"

    false = [
        f"JSON [{phase(at)}] {verdict['status']} {verdict['summary']}"
        for at, text in js.lines
        if json_names(LB)(text) and (verdict := verdict_of(text) or {})
    ]
    false += [f"plain [{phase(at)}] {text}" for at, text in plain.lines if plain_names(LB)(text)]
    assert not false, f"{stack.kind}: the LB was named:\n" + "\n".join(false)
    assert not steps, "\n".join(steps)
