"""`walkthrough draft`: a walkthrough drafted from a recording (made here, with the
Recorder a watch uses) loads with the walkthrough loader, its events at the recording's
real offsets and the confirmed root cause as the answer."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from stackscope.cli import main
from stackscope.demo.draft import DraftError, draft, render
from stackscope.demo.walkthrough import load_walkthrough
from stackscope.kinds import ParseContext
from stackscope.layout import LayoutError, parse_layout
from stackscope.model import ErrorKind, Result, Status
from stackscope.recording import Recorder

TEXT = """name: rec
interval: 1s
layers:
  - name: Front
    role: backend
    checks:
      - {http: http://127.0.0.1:9/, name: front}
  - name: Web
    role: backend
    checks:
      - {http: http://127.0.0.1:9/a, name: a}
      - {http: http://127.0.0.1:9/b, name: b}
"""
T0 = 1_800_000_000.0
OK, CRIT = Status.OK, Status.CRIT
# a round a minute: Web/a fails from round 3, Web/b a minute later; Front stays up
ROUNDS = [(OK, OK, OK), (OK, OK, OK), (OK, CRIT, OK), (OK, CRIT, CRIT), (OK, CRIT, CRIT)]


def make_recording(path, rounds=ROUNDS) -> str:
    layout = dataclasses.replace(parse_layout(TEXT, "x.yaml", ParseContext()), path="x.yaml")
    recorder = Recorder(str(path), layout, TEXT, clock=lambda: T0)
    for n, statuses in enumerate(rounds, start=1):
        at = T0 + 60 * n
        for check, status in zip(("Front/front", "Web/a", "Web/b"), statuses):
            kind = None if status is OK else ErrorKind.REFUSED
            result = Result(check, status, "answer", 1.0, error_kind=kind, started_at=at, finished_at=at)
            recorder.result(result, n, set(), at)
        recorder.round(at, n, 0.1)
    recorder.close()
    return str(path)


def test_a_draft_loads_with_its_events_at_the_real_offsets(tmp_path):
    (tmp_path / "rec").mkdir()
    recording = make_recording(tmp_path / "rec" / "incident.jsonl")
    out = tmp_path / "walk.yaml"
    assert main(["walkthrough", "draft", recording, "-o", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["recording"] == "rec/incident.jsonl"  # beside the walkthrough, relative
    walk = load_walkthrough(str(out))
    assert walk.recording == recording and walk.fault == ""
    assert walk.answer == "Web"
    # T+0 is the verdict naming Web (round 3); Web/b turns red a minute later
    alerts = [e for e in walk.events if e.kind == "alert"]
    assert [e.at for e in alerts] == [0.0]
    assert walk.fault_at == 0.0
    assert 1.0 in [e.at for e in walk.events]
    assert all(e.text.startswith("TODO") for e in walk.events)
    assert "Web" in walk.debrief.dashboard and walk.debrief.root_cause.startswith("TODO")
    assert walk.minutes_per_second > 0


def test_nothing_broke_no_draft(tmp_path):
    recording = make_recording(tmp_path / "calm.jsonl", [(OK, OK, OK)] * 3)
    with pytest.raises(DraftError, match="no confirmed verdict"):
        draft(recording, str(tmp_path / "w.yaml"))
    assert main(["walkthrough", "draft", recording]) != 0


def test_recorded_text_stays_data(tmp_path):
    """A hostile detail cannot break out of its YAML string or reach the terminal."""
    recording = make_recording(tmp_path / "incident.jsonl")
    data = draft(recording, str(tmp_path / "w.yaml"))
    data["title"] = "x\n- injected: 1\n\x1b]0;pwn\x07"
    loaded = yaml.safe_load(render(data))
    assert loaded["title"] == data["title"] and "injected" not in loaded


def test_a_broken_recording_is_a_walkthrough_problem(tmp_path):
    walk = tmp_path / "w.yaml"
    recording = make_recording(tmp_path / "incident.jsonl")
    walk.write_text(render(draft(recording, str(walk))))
    (tmp_path / "incident.jsonl").write_text("not a recording\n")
    with pytest.raises(LayoutError) as caught:
        load_walkthrough(str(walk))
    assert "cannot replay the recording" in str(caught.value.problems[0])
