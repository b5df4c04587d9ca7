"""The demo stack: every fault gives its expected verdict through the same probes and
diagnosis real stacks use, and the stack shuts down leaving nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from stackscope.demo.faults import CLEAR, FAULTS
from stackscope.demo.stack import DemoError, DemoStack
from stackscope.diagnosis import assess
from stackscope.engine import Engine
from stackscope.layout import load_layout
from tests.conftest import ROOT, run_cli

SETTLE = 20  # seconds for the demo LB's health checks (rise/fall 2 every 0.5 s) to settle


@pytest.fixture(scope="module")
def demo():
    stack = DemoStack()
    stack.start()
    yield stack
    stack.stop()


async def settled_verdict(layout_path: str, expect: tuple[str, str] | None) -> tuple | None:
    """Probe rounds until the verdict is `expect` (layer, status) or the deadline passes;
    returns the last verdict seen."""
    engine = Engine(load_layout(layout_path))
    deadline = time.monotonic() + SETTLE
    seen = None
    try:
        while time.monotonic() < deadline:
            verdict = assess(await engine.run_round()).verdict
            seen = None if verdict is None else (verdict.layer, str(verdict.status), verdict.summary)
            if (seen and seen[:2]) == expect or (seen is None and expect is None):
                return seen
            await asyncio.sleep(0.25)  # the next round; what we wait for is the LB's checks
    finally:
        await engine.aclose()
    return seen


async def test_healthy_demo_is_all_ok(demo):
    assert await settled_verdict(demo.layout_path, None) is None
    done = run_cli("check", demo.layout_path)
    assert done.returncode == 0, done.stdout
    assert "All layers healthy" in done.stdout


@pytest.mark.parametrize("name", list(FAULTS))
async def test_every_fault_gives_its_verdict(demo, name):
    fault = FAULTS[name]
    demo.inject(name)
    try:
        expect = (fault.layer, str(fault.status))
        seen = await settled_verdict(demo.layout_path, expect)
        assert seen and seen[:2] == expect, f"{name}: expected {expect}, last verdict {seen}"
        done = run_cli("check", demo.layout_path, "--format", "json")
        verdict = json.loads(done.stdout)["verdict"]
        assert (verdict["layer"], verdict["status"]) == expect, verdict
        assert done.returncode == fault.status.exit_code
    finally:
        demo.inject(CLEAR)
        assert await settled_verdict(demo.layout_path, None) is None, f"{name}: clear did not restore health"


def test_misroute_keeps_the_server_names_on_the_wrong_addresses(demo):
    demo.inject("lb-misroute")
    try:
        assert [m.name for m in demo.lb.members] == ["auth1", "auth2"]
        assert {m.port for m in demo.lb.members} == {d.server.port for d in demo.decoys}
    finally:
        demo.inject(CLEAR)


def test_unknown_fault_is_refused(demo):
    with pytest.raises(DemoError, match="unknown fault 'nope'"):
        demo.inject("nope")


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_clean_shutdown_leaves_no_threads_tasks_or_ports():
    stack = DemoStack()
    stack.start("db-slow")
    ports = stack.ports()
    workdir = stack.workdir
    assert not any(refuses(port) for name, port in ports.items() if name != "dns")
    thread = stack.runner.thread
    stack.stop()
    assert stack.unfinished_after_stop == []
    assert not thread.is_alive()
    assert thread not in threading.enumerate()
    assert all(refuses(port) for port in ports.values())
    assert not os.path.exists(workdir)
    stack.stop()  # twice is harmless


class HeadlessDemo:
    """`stackscope demo --headless ARGS` in a subprocess; `interrupt()` stops it as Ctrl-C
    does and returns (stdout, stderr); leaving the block kills it if it still runs."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stackscope", "demo", "--headless", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def interrupt(self) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.communicate(timeout=20)

    def __enter__(self) -> HeadlessDemo:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_headless_command_prints_the_layout_path_and_stops_cleanly(tmp_path):
    with HeadlessDemo("--fault", "lb-misroute") as demo:
        proc = demo.proc
        layout_path = None
        for line in proc.stdout:  # ends when the process does: bounded by the layout line
            match = re.match(r"layout: (\S+)", line)
            if match:
                layout_path = match.group(1)
                break
        assert layout_path, proc.stderr.read()
        text = open(layout_path).read()
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text)]
        async_verdict = asyncio.run(settled_verdict(layout_path, ("Load balancer", "crit")))
        assert async_verdict[:2] == ("Load balancer", "crit")
        out, err = demo.interrupt()
    assert proc.returncode == 0, err
    assert "demo stopped" in out
    assert "Traceback" not in err
    assert all(refuses(port) for port in set(ports))


def test_print_layout_prints_only_the_yaml_and_exits():
    import yaml

    done = run_cli("demo", "--print-layout")
    assert done.returncode == 0, done.stderr
    layout = yaml.safe_load(done.stdout)  # nothing but the YAML on stdout
    assert layout["name"] == "demo-auth" and "layout:" not in done.stdout


def test_print_layout_alone_starts_no_server(monkeypatch):
    from io import StringIO

    from stackscope.demo.run import print_layout_once

    def no_start(*args, **kwargs):
        raise AssertionError("--print-layout started the demo stack")

    monkeypatch.setattr(DemoStack, "start", no_start)
    out = StringIO()
    assert print_layout_once(out) == 0
    ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", out.getvalue())}
    assert len(ports) == 6 and all(
        refuses(port) for port in ports
    )  # resolver, stats, 3 backends, store (the LB by name)


def test_print_layout_with_headless_keeps_status_lines_off_stdout():
    import yaml

    with HeadlessDemo("--print-layout") as demo:
        for line in demo.proc.stderr:  # the status lines; ends when the process does
            if line.startswith("layout: "):
                break
        out, err = demo.interrupt()
    assert demo.proc.returncode == 0, err
    assert yaml.safe_load(out)["name"] == "demo-auth"
    assert "demo stopped" in err and "demo stopped" not in out


def test_list_does_not_offer_clear_as_a_fault():
    done = run_cli("demo", "--list")
    assert done.returncode == 0
    faults = done.stdout.split("\n\n")[0].splitlines()[1:]
    assert not any(line.split()[0] == "clear" for line in faults if line.strip())
    assert "restores the healthy stack" in done.stdout
    assert run_cli("demo", "--fault", "clear").returncode == 3  # and --fault says so


@pytest.mark.parametrize("columns", ["80", "60"])
def test_list_fits_the_terminal(columns):
    """Issue 21: `demo --list` ran past 80 columns (lines of 97 and 102)."""
    from stackscope.render.text import cells

    done = run_cli("demo", "--list", env={"COLUMNS": columns})
    assert done.returncode == 0
    assert [line for line in done.stdout.splitlines() if cells(line) > int(columns)] == [], done.stdout
    assert "lb-misroute" in done.stdout and "verdict: Load" in done.stdout


def test_dead_pool_ports_refuse_and_stay_reserved(demo):
    """lb-dead-pool points at ports where nothing listens; they stay bound (never
    listening) so no server that binds port 0 can be handed one of them."""
    for port in demo._dead:
        assert refuses(port)
        with socket.socket() as sock, pytest.raises(OSError):
            sock.bind(("127.0.0.1", port))
