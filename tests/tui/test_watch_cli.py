"""`stackscope watch` as a user runs it: --plain lines, --record, bad layouts, and the
full-screen dashboard inside a real pseudo-terminal with the TERMs a bastion has."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.conftest import ROOT, run_cli, write_layout
from tests.servers.base import free_port
from tests.tui.stack import LoopbackStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = LoopbackStack(tmp_path_factory.mktemp("watch-stack")).start()
    yield stack
    stack.stop()


def test_plain_prints_one_line_per_change_and_records(stack, tmp_path):
    layout = write_layout(tmp_path, stack.layout_yaml())
    record = tmp_path / "timeline.md"
    done = run_cli("watch", str(layout), "--plain", "--rounds", "3", "--record", str(record))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "stackscope: watching auth-e2e (4 layers, 6 checks) every 1s; one line per change; Ctrl-C to stop"
    assert len(lines) == 2 and lines[1].endswith("verdict  ✔ OK  all layers healthy (6 checks)")  # no change, no line
    assert record.read_text().startswith("# Watch report: auth-e2e — no incident")
    assert f"timeline written to {record}" in done.stderr


def test_plain_names_the_failure_and_exits_with_its_status(stack, tmp_path):
    text = stack.layout_yaml().replace(f":{stack.ports['lb']}/health", f":{free_port()}/health")
    done = run_cli("watch", str(write_layout(tmp_path, text)), "--plain", "--rounds", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout
    assert "  Load balancer / lb-health  ✖ CRIT  " in out and "refused" in out
    assert "  verdict  ✖ CRIT  Load balancer is the broken layer — " in out
    assert "✔ OK" not in out.split("\n", 1)[1]  # healthy checks are not news on the first round


@pytest.mark.parametrize("args", [["watch"], ["watch", "--plain"], []])
def test_a_broken_layout_is_the_usual_clear_error(tmp_path, args):
    path = write_layout(tmp_path, "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n"
                                  "      - http: http://127.0.0.1/\n        expect_staus: 200\n")
    done = run_cli(*args, str(path))
    assert done.returncode == 3
    assert "unknown key 'expect_staus' — did you mean 'expect_status'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_a_terminal_watch_falls_back_to_lines_and_stops_on_ctrl_c(stack, tmp_path):
    layout = write_layout(tmp_path, stack.layout_yaml())
    proc = subprocess.Popen([sys.executable, "-m", "stackscope", str(layout)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().startswith("stackscope: watching auth-e2e")
        assert "all layers healthy" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "not a terminal" in err and "Traceback" not in err


# --------------------------------------------------------------------------- in a pty


class Terminal:
    """A process on a pseudo-terminal of a given size; `expect` reads until a text shows."""

    def __init__(self, argv: list[str], env: dict, cols: int = 80, rows: int = 24) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.output = b""

    def expect(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} not shown; got {self.output[-2000:]!r}")
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    pass

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:  # keep the pty drained
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    break
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        os.close(self.master)


@pytest.mark.parametrize("term,no_color", [("xterm-256color", False), ("screen-256color", False), ("linux", False),
                                           ("xterm-256color", True)],
                         ids=["xterm-256color", "screen-256color", "linux", "NO_COLOR"])
def test_dashboard_in_a_real_terminal_quits_on_q_and_records(stack, tmp_path, term, no_color):
    layout = write_layout(tmp_path, stack.layout_yaml())
    record = tmp_path / "incident.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": term}
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    terminal = Terminal([sys.executable, "-m", "stackscope", str(layout), "--record", str(record)], env)
    try:
        terminal.expect("All layers healthy (6 checks)")
        terminal.expect("auth-e2e")
        terminal.send(b"q")
        assert terminal.wait() == 0
    finally:
        terminal.close()
    assert record.read_text().startswith("# Watch report: auth-e2e — no incident")
