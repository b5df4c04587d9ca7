"""`stackscope watch` as a user runs it: --plain lines, --record, bad layouts, and the
full-screen dashboard inside a real pseudo-terminal with the TERMs a bastion has."""

from __future__ import annotations

import fcntl
import os
import pty
import queue
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
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
    assert (
        lines[0] == "stackscope: watching auth-e2e (4 layers, 6 checks) every 1s; one line per change; Ctrl-C to stop"
    )
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
    path = write_layout(
        tmp_path,
        "name: x\nlayers:\n  - name: A\n    role: lb\n    checks:\n"
        "      - http: http://127.0.0.1/\n        expect_staus: 200\n",
    )
    done = run_cli(*args, str(path))
    assert done.returncode == 3
    assert "unknown key 'expect_staus' — did you mean 'expect_status'?" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_a_terminal_watch_falls_back_to_lines_and_stops_on_ctrl_c(stack, tmp_path):
    layout = write_layout(tmp_path, stack.layout_yaml())
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackscope", str(layout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
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
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
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


@pytest.mark.parametrize(
    "term,no_color",
    [("xterm-256color", False), ("screen-256color", False), ("linux", False), ("xterm-256color", True)],
    ids=["xterm-256color", "screen-256color", "linux", "NO_COLOR"],
)
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


# --------------------------------------------------------------------------- signals and --record


def _refused_layout(tmp_path):
    return write_layout(
        tmp_path,
        f"name: sig\ninterval: 200ms\nlayers:\n  - name: Web\n    role: lb\n"
        f"    checks:\n      - tcp: 127.0.0.1:{free_port()}\n",
    )


def _read_line_until(stream, text: str, timeout: float = 20) -> str:
    """Lines of `stream` until one holds `text` (a deadline, not a sleep).

    select() on the pipe cannot be used with readline(): two lines that arrive together
    land in the file object's buffer, the pipe then looks empty, and the second line is
    never seen. A reader thread hands over whole lines instead."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:  # ends with the process's output
            lines.put(line)
            if text in line:
                return
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = ""
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            break
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never printed; got {seen!r}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("command", [["watch", "--plain"], ["check", "--watch"]], ids=["watch-plain", "check-watch"])
def test_sigterm_and_sighup_end_a_watch_like_ctrl_c(tmp_path, signum, command):
    record = tmp_path / "timeline.md"
    extra = ["--record", str(record)] if command[0] == "watch" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackscope", *command, str(_refused_layout(tmp_path)), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
    )
    try:
        # watch --plain: wait for the confirmed verdict (an unconfirmed one is never the
        # report's root cause); check --watch: for the first report
        _read_line_until(proc.stdout, "is the broken layer — " if extra else "refused")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err  # the last status (CRIT), not 143 / 129
    assert "Traceback" not in err
    if extra:
        text = record.read_text()
        assert text.startswith("# Incident report: sig — Web CRIT")
        assert "| Web | ✖ CRIT | " in text and "refused" in text
        assert f"timeline written to {record}" in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_dashboard_quits_on_sigterm_and_sighup_and_records(tmp_path, signum):
    record = tmp_path / "incident.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    terminal = Terminal(
        [sys.executable, "-m", "stackscope", str(_refused_layout(tmp_path)), "--record", str(record)], env
    )
    try:
        # the confirmed verdict's event line (an unconfirmed verdict reads "… layer (unconfirmed) —"
        # and is never the report's root cause)
        terminal.expect("is the broken layer — ")
        os.kill(terminal.proc.pid, signum)
        assert terminal.wait() == 0  # a quit, as documented: not 143 / 129
    finally:
        terminal.close()
    text = record.read_text()
    assert text.startswith("# Incident report: sig — Web CRIT") and "refused" in text


@pytest.mark.parametrize("where", ["missing-dir", "directory", "proc"])
@pytest.mark.parametrize("plain", [True, False], ids=["plain", "dashboard"])
def test_an_unwritable_record_path_fails_at_startup(tmp_path, where, plain):
    path = {"missing-dir": str(tmp_path / "nope" / "t.md"), "directory": str(tmp_path), "proc": "/proc/version"}[where]
    layout = _refused_layout(tmp_path)
    done = run_cli("watch", str(layout), *(["--plain"] if plain else []), "--record", path, timeout=20)
    assert done.returncode == 3
    assert f"stackscope: cannot write the timeline to {path}: " in done.stderr
    assert "watching" not in done.stdout and "refused" not in done.stdout  # nothing probed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.yaml"]


def test_a_writable_record_path_is_left_as_it_was(tmp_path):
    record = tmp_path / "t.md"
    record.write_text("an earlier report\n")
    from stackscope.cli import record_path_problem

    assert record_path_problem(str(record)) is None and record.read_text() == "an earlier report\n"
    assert record_path_problem(str(tmp_path / "new.md")) is None and not (tmp_path / "new.md").exists()
