"""Record a real fault and replay it: HAProxy in front of three backend processes, one of
them killed while a bounded `watch --plain --record` runs. `replay --plain` must print the
very lines the live run printed, at the same times, judged again from the recording alone;
the Markdown timeline rebuilt from it names the same root cause."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli, write_layout
from tests.servers.authstack import AuthStack


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(live stdout, the Markdown path, the recording path) of a watch that saw auth-2 die."""
    stack = AuthStack(dns=False, redis=False, interval="1s").start()
    tmp = tmp_path_factory.mktemp("record")
    try:
        layout = write_layout(tmp, stack.layout())
        record = tmp / "incident.md"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stackscope",
                "watch",
                "--plain",
                "--rounds",
                "6",
                "--record",
                str(record),
                str(layout),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        )
        try:
            lines = [proc.stdout.readline(), proc.stdout.readline()]  # the banner, then the first verdict
            assert "all layers healthy" in lines[1], lines
            stack.backends[1].kill()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, err  # the member's fault: Auth backends WARN
        yield "".join(lines) + out, record, tmp / "incident.jsonl"
    finally:
        stack.stop()


def test_replay_plain_prints_the_live_lines_at_their_times(recorded):
    live, _, recording = recorded
    live_lines = live.splitlines()[1:]
    assert any("Auth backends is the broken layer" in line for line in live_lines), live
    done = run_cli("replay", str(recording), "--plain")
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[1:] == live_lines
    assert done.stderr == ""  # no note: the re-judged verdicts are the recorded ones


def test_the_markdown_timeline_is_rebuilt_from_the_recording(recorded, tmp_path):
    _, record, recording = recorded
    rebuilt = tmp_path / "rebuilt.md"
    done = run_cli("replay", str(recording), "--plain", "--markdown", str(rebuilt))
    assert done.returncode == 1, done.stderr
    live_text, text = record.read_text(), rebuilt.read_text()
    cut = "- **Watched:**"  # the source path differs (the layout file, the recording's layout)
    assert live_text.split(cut)[0] == text.split(cut)[0]
    assert live_text.split("## Timeline")[1] == text.split("## Timeline")[1]


def test_the_recording_is_compact_and_versioned(recorded):
    _, _, recording = recorded
    lines = recording.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "stackscope-recording" and header["version"] == 1
    assert "auth-2" in header["layout"]["text"]
    results = [json.loads(line) for line in lines[1:] if '"k":"r"' in line]
    rounds = [line for line in lines if '"k":"round"' in line]
    assert len(rounds) == 6 and len(results) >= 6 * 5
    steady = [r for r in results if r["r"].get("=")]
    assert steady, "a check whose answer did not change repeats only its times"
