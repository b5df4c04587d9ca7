"""Fixtures that start real servers on 127.0.0.1 and always stop them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.pyservers import PyServers

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pyservers():
    servers = PyServers()
    yield servers
    servers.close()


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 60, cwd: str | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m stackscope` from this checkout, as a user would run the command
    (its input is empty: a command that would read the terminal sees end of input)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stackscope", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=full_env,
        timeout=timeout,
        cwd=cwd or str(ROOT),
    )


def write_layout(tmp_path: Path, text: str, name: str = "layout.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
