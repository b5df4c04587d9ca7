"""Recordings (recording.py) and `replay --plain` on hand-made files: typed evidence back
as it was, secrets masked in the recorded layout, and truncated, oversized, other-version
and hostile recordings refused or read in part, never with a traceback."""

from __future__ import annotations

import dataclasses
import json
import typing

import pytest

from stackscope import cli
from stackscope.kinds import ParseContext
from stackscope.layout import parse_layout
from stackscope.model import (
    DnsAnswers,
    ErrorKind,
    Evidence,
    GrpcAnswer,
    HttpAnswer,
    PoolEvidence,
    PoolMember,
    Result,
    SeriesEvidence,
    Status,
    StoreState,
)
from stackscope.recording import CONVERTERS, EVIDENCE, Recorder, read_recording

SECRET = "k3y-literal-42"
TEXT = f"""name: rec
interval: 1s
layers:
  - name: Web
    role: backend
    checks:
      - http: http://127.0.0.1:9/health
        name: web
        headers:
          X-Api-Key: '{SECRET}'
"""
T0 = 1_800_000_000.0
EVIDENCES = [
    HttpAnswer(503, "auth-1", "X-Served-By", (("auth-1", 2), ("(no identity header)", 1)), ("redis",)),
    PoolEvidence("pool", (PoolMember("s1", "127.0.0.1:1", "in", True, "web", "UP", "L7OK", False, True, 4.0),)),
    DnsAnswers(("127.0.0.1",), ("127.0.0.2",), False),
    StoreState("redis", "primary", "primary", False, "OOM", 10, 20, "noeviction"),
    SeriesEvidence(("a", "b"), ("b",), True, "value 0"),
    GrpcAnswer("OK", "NOT_SERVING", 200),
]


@pytest.fixture
def layout(tmp_path):
    path = tmp_path / "layout.yaml"
    path.write_text(TEXT)
    return dataclasses.replace(parse_layout(TEXT, str(path), ParseContext()), path=str(path))


def result(status: Status, at: float, detail: str = "200 OK", evidence=None) -> Result:
    kind = None if status is Status.OK else ErrorKind.REFUSED
    return Result("Web/web", status, detail, 3.5, "200", {"k": [1, "x"]}, kind, at - 0.1, evidence, finished_at=at)


def record(path, layout, results) -> Recorder:
    recorder = Recorder(str(path), layout, TEXT, clock=lambda: T0)
    for n, each in enumerate(results, start=1):
        recorder.result(each, n, set(), each.finished_at)
        recorder.round(each.finished_at, n, 0.1)
    recorder.close()
    return recorder


def test_every_kind_of_evidence_is_recorded():
    """A kind of evidence the recording does not know would be lost on replay."""
    assert set(EVIDENCE.values()) == set(typing.get_args(Evidence))


def test_every_evidence_field_has_a_reader():
    for cls in [*EVIDENCE.values(), PoolMember]:
        for f in dataclasses.fields(cls):
            assert str(f.type) in CONVERTERS, (cls.__name__, f.name, f.type)


def test_results_and_their_evidence_come_back_as_recorded_and_the_layout_is_masked(tmp_path, layout):
    results = [result(Status.CRIT, T0 + i, evidence=e) for i, e in enumerate(EVIDENCES)]
    results += [result(Status.CRIT, T0 + 9, evidence=EVIDENCES[-1])]  # the same again: compacted
    record(tmp_path / "r.jsonl", layout, results)
    text = (tmp_path / "r.jsonl").read_text()
    assert SECRET not in text and "X-Api-Key: 'REDACTED'" in text
    assert '"=":"dfev"' in text  # the repeat leaves out what it repeats
    recording = read_recording(str(tmp_path / "r.jsonl"))
    assert recording.problem == ""
    back = [step.result for step in recording.steps if step.kind == "r"]
    assert [r.evidence for r in back] == [r.evidence for r in results]
    assert [(r.status, r.detail, dict(r.facts), r.finished_at) for r in back] == [
        (r.status, r.detail, dict(r.facts), pytest.approx(r.finished_at)) for r in results
    ]


def replay(path, capsys) -> tuple[int, str, str]:
    code = cli.main(["replay", str(path), "--plain"])
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_plain_prints_the_verdicts_from_the_recording(tmp_path, layout, capsys):
    record(tmp_path / "r.jsonl", layout, [result(Status.OK, T0 + 1), result(Status.CRIT, T0 + 2, "refused")])
    code, out, err = replay(tmp_path / "r.jsonl", capsys)
    assert code == 2, err
    lines = out.splitlines()
    assert "verdict  ✔ OK  all layers healthy (1 checks)" in lines[1]
    assert "verdict  ✖ CRIT  Web is the broken layer" in out


def test_a_truncated_recording_replays_its_readable_part(tmp_path, layout, capsys):
    path = tmp_path / "r.jsonl"
    record(path, layout, [result(Status.OK, T0 + 1), result(Status.CRIT, T0 + 2, "refused")])
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b'{"k":"r"') + 30])  # a crash mid-line, after round 1
    code, out, err = replay(path, capsys)
    assert code == 0 and "all layers healthy" in out and "CRIT" not in out
    assert "is cut short: the recording was interrupted" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "header, message",
    [
        (
            {"format": "stackscope-recording", "version": 2, "stackscope": "9.0"},
            "format version 2 (written by stackscope 9.0)",
        ),
        ({"format": "something-else"}, "is not a stackscope recording"),
        ("[" * 100_000, "not a stackscope recording (line 1: nested deeper than 64 levels)"),
    ],
)
def test_another_version_or_another_file_is_a_clear_error(tmp_path, capsys, header, message):
    path = tmp_path / "r.jsonl"
    path.write_text((header if isinstance(header, str) else json.dumps(header)) + "\n")
    code, out, err = replay(path, capsys)
    assert code == 3 and out == ""
    assert message in err and "Traceback" not in err


def test_an_oversized_or_special_file_is_refused_unread(tmp_path, capsys):
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as handle:
        handle.truncate(65 * 1024 * 1024)  # sparse: no disk used
    code, _, err = replay(big, capsys)
    assert code == 3 and "larger than 64 MiB" in err
    code, _, err = replay("/dev/zero", capsys)
    assert code == 3 and "not a regular file" in err


def test_a_hostile_recording_is_made_terminal_safe_and_its_bad_line_ends_it(tmp_path, layout, capsys):
    path = tmp_path / "r.jsonl"
    record(path, layout, [result(Status.CRIT, T0 + 1, "refused\x1b[2J\x1b]0;pwned\x07")])
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["layout"]["text"] = header["layout"]["text"].replace("name: rec", 'name: "rec\\x1b[31m\\u202e"')
    evil = json.loads(lines[1])
    evil["r"]["v"] = {"type": "HttpAnswer", "status_code": 503, "identity": "\x1b[5mx"}
    lines[0], lines[1] = json.dumps(header), json.dumps(evil)
    lines.append('{"k":"r","t":5,"n":2,"o":[],"r":{"c":"Web/web","s":7}}')  # no such status
    lines.append('{"k":"r","t":NaN}')
    path.write_text("\n".join(lines) + "\n")
    code, out, err = replay(path, capsys)
    assert "\x1b" not in out + err and "\u202e" not in out + err and "\x07" not in out + err
    assert "verdict  ✖ CRIT  Web is the broken layer" in out and code == 2
    assert "Web/web: 7 is not a valid Status; replaying the 2 lines before it" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**header, "layout": {"text": "layers: 7", "name": "x"}}) + "\n")
    code, out, err = replay(bad, capsys)
    assert code == 3 and "its layout cannot be rebuilt" in err and "Traceback" not in err


def test_a_recorder_that_cannot_write_stops_recording_and_says_so(tmp_path, layout):
    said: list[str] = []
    recorder = Recorder(str(tmp_path / "r.jsonl"), layout, TEXT, cap=2000, on_stop=said.append)
    for i in range(20):
        recorder.result(result(Status.OK, T0 + i, f"answer {i}"), i + 1, set())
    recorder.close()
    assert said == ["the recording reached its cap of 2000 bytes; later results are not recorded"]
    assert read_recording(str(tmp_path / "r.jsonl")).problem == ""  # what it holds is whole
