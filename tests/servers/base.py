"""Process management shared by the server launchers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    pass


# Ports handed out in this test process. The kernel may give the same free port twice in
# a row, so without this a "dead" port (nothing listens) could become the next server's
# port and a fixture that waits for its checks to fail would wait in vain.
_HANDED_OUT: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 right now (for TCP and, with SOCK_DGRAM, UDP),
    and that no earlier call in this process returned."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind((LOOPBACK, 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise ServerError("no free port that was not handed out already")


def free_port_range(count: int) -> int:
    """The first of `count` consecutive ports all free on 127.0.0.1 right now."""
    import random

    for _ in range(200):
        base = random.randint(20000, 60000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                if port in _HANDED_OUT:
                    raise OSError("handed out already")
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((LOOPBACK, port))
            _HANDED_OUT.update(range(base, base + count))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise ServerError(f"no {count} consecutive free ports")


def free_port_both() -> int:
    """A port free for both TCP and UDP (DNS servers listen on both)."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind((LOOPBACK, port))
        except OSError:
            continue
        return port
    raise ServerError("no port free for both TCP and UDP")


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, alive: Callable[[], str | None] | None = None
) -> None:
    """Poll `predicate` until true or the deadline; fail fast when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if alive is not None:
            reason = alive()
            if reason:
                raise ServerError(f"{what}: {reason}")
        time.sleep(0.02)
    raise ServerError(f"{what}: not ready within {timeout}s")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def require_binary(name: str, *candidates: str) -> str:
    for candidate in (name, *candidates):
        path = shutil.which(candidate) or (candidate if os.path.exists(candidate) else None)
        if path:
            return path
    raise ServerError(f"{name} is not installed: run .ci/run (it installs the Debian packages the tests use)")


_PR_SET_PDEATHSIG = 1


def _prctl():
    """libc's prctl, looked up in the test process: after a fork and setuid the child may
    no longer be allowed to read the Python installation to import ctypes."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this (forked) server when the test process dies.

    Fixture teardown stops servers on a normal exit, but a test run killed from outside
    (a CI timeout, ctrl+c twice, SIGKILL) skips teardown, and the servers it started would
    keep listening on loopback ports for good. Best effort: elsewhere it does nothing."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class Process:
    """A server process with a log file; `stop()` is idempotent."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def spawn(self, argv: Sequence[str], *, env: dict | None = None, user: str | None = None) -> None:
        log = open(self.log_path, "ab")
        entry = None
        if user is not None and os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(user)

        def preexec() -> None:
            if entry is not None:  # drop to the unprivileged user the server insists on
                os.setgid(entry.pw_gid)
                os.setuid(entry.pw_uid)
            _die_with_parent()  # after setuid, which clears it

        self.proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=preexec,
            start_new_session=True,
        )
        log.close()

    def died(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"exited with {self.proc.returncode}; log:\n{self.log()}"
        return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
