"""The machine-readable recording of a watch: what `stackscope replay` plays back.

`watch --record FILE` and `check --record FILE` keep, beside the Markdown timeline, a
JSON Lines file (recording_path: FILE.jsonl, or FILE with .md changed to .jsonl):

- a header: the format and its version, the stackscope version, when it started, and
  the layout's text as loaded with every secret the layout refers to masked (the same
  Redactor the engine masks results with), so the replay can rebuild the layout through
  the loader;
- one line per result, as the engine hands it over (confirmation re-probes included),
  with the moment it arrived, the round it belongs to and which checks were still out
  then (their ids when few enough to judge early, else their count): everything the
  stream (stream.py) needs to judge it again exactly as the live run did. What a result
  repeats of its check's previous one (detail, key fact, kind, evidence, unchanged facts)
  is left out (`compact`): the steady state costs times, a latency and what moved;
- one line per round's end, and one per verdict shown.

Times are microsecond offsets from the header's `t0`. Each line is written and flushed
at once (a crash of the process loses nothing written); the file is fsync'ed at most
once a second, so a crash of the machine loses at most the last second. Results are
already redacted by the engine; evidence and every text is data, rebuilt by `decode_result`
with its type checked and every string made terminal-safe where it enters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from stackscope import __version__
from stackscope.model import (
    DnsAnswers,
    ErrorKind,
    Evidence,
    GrpcAnswer,
    HttpAnswer,
    Layout,
    PoolEvidence,
    PoolMember,
    Result,
    SeriesEvidence,
    Status,
    StoreState,
    terminal_safe,
)

FORMAT = "stackscope-recording"
VERSION = 1
MAX_RECORDING_BYTES = 64 * 1024 * 1024  # written and read: about 200,000 changed results
MAX_LINE_BYTES = 1024 * 1024
EVIDENCE: dict[str, type] = {
    cls.__name__: cls for cls in (HttpAnswer, GrpcAnswer, PoolEvidence, DnsAnswers, StoreState, SeriesEvidence)
}
LAYOUT_MASK = "REDACTED"
_HEAVY = ("d", "f", "x", "e", "v")  # what a steady check repeats round after round


class RecordingError(ValueError):
    """A recording (or one of its lines) that cannot be read: the reason in words."""


def recording_path(record: str) -> str:
    """Where `--record FILE` keeps the recording: FILE.md -> FILE.jsonl, else FILE.jsonl."""
    return record[:-3] + ".jsonl" if record.endswith(".md") else record + ".jsonl"


# ------------------------------------------------------------------ encoding


def _t(value: float | None, t0: float) -> float | None:
    return None if value is None else round(value - t0, 6)


def encode_evidence(evidence: Evidence | None) -> dict[str, Any] | None:
    if evidence is None:
        return None
    return {"type": type(evidence).__name__, **dataclasses.asdict(evidence)}


def encode_result(result: Result, t0: float) -> dict[str, Any]:
    """The result as compact data: defaults left out."""
    out: dict[str, Any] = {"c": result.check_id, "s": result.status.value}
    if result.detail:
        out["d"] = result.detail
    if result.key_fact:
        out["f"] = result.key_fact
    if result.facts:
        out["x"] = dict(result.facts)
    if result.error_kind is not None:
        out["e"] = result.error_kind.value
    if result.evidence is not None:
        out["v"] = encode_evidence(result.evidence)
    if result.latency_ms is not None:
        out["l"] = round(result.latency_ms, 3)
    out["a"] = _t(result.started_at, t0)
    out["z"] = _t(result.finished_at, t0)
    if result.changed_at is not None:
        out["g"] = _t(result.changed_at, t0)
    if result.confirmations:
        out["n"] = result.confirmations
    if not result.confirmed:
        out["u"] = 1
    return out


def compact(data: dict[str, Any], last: Mapping[str, Any]) -> None:
    """Leave out of `data` what its check's previous result (`last`) said already: each of
    detail, key fact, kind and evidence when equal ("=" names them), and of the facts only
    the top-level entries that changed ("X") or went ("X-")."""
    same = "".join(key for key in _HEAVY if key != "x" and key in data and data[key] == last.get(key))
    for key in same:
        del data[key]
    if same:
        data["="] = same
    facts, before = data.get("x"), last.get("x")
    if isinstance(facts, dict) and isinstance(before, dict):
        del data["x"]
        changed = {k: v for k, v in facts.items() if before.get(k, _ABSENT) != v}
        gone = [k for k in before if k not in facts]
        data["X"] = changed
        if gone:
            data["X-"] = gone


_ABSENT = object()


def expand(data: dict[str, Any], last: Mapping[str, Any] | None) -> dict[str, Any]:
    """`data` as `compact` found it, from its check's previous expanded data `last`."""
    if "=" not in data and "X" not in data:
        return data
    if last is None:
        raise RecordingError("a result refers to an earlier one of its check that is not there")
    out = dict(data)
    same = out.pop("=", "")
    if not isinstance(same, str) or not set(same) <= set(_HEAVY):
        raise RecordingError("a result's repeated fields are not readable")
    for key in same:
        if key in last:
            out[key] = last[key]
    if "X" in out:
        changed, gone = out.pop("X"), out.pop("X-", [])
        before = last.get("x", {})
        if not isinstance(changed, dict) or not isinstance(gone, list) or not isinstance(before, dict):
            raise RecordingError("a result's changed facts are not readable")
        facts = {k: v for k, v in before.items() if k not in gone}
        facts.update(changed)
        out["x"] = facts
    return out


class Recorder:
    """Appends one watch's recording to a file; safe to call from the probe thread and the
    UI thread alike (one lock). After an OSError or at the size cap it stops recording and
    says why once (`on_stop`), so a full disk never ends the watch."""

    def __init__(
        self,
        path: str,
        layout: Layout,
        layout_text: str,
        *,
        clock: Callable[[], float] = time.time,
        cap: int = MAX_RECORDING_BYTES,
        on_stop: Callable[[str], None] | None = None,
    ) -> None:
        from stackscope.redact import MASK, Redactor

        self.path = path
        self.clock = clock
        self.cap = cap
        self.on_stop = on_stop
        self.t0 = clock()
        self.written = 0
        self.results = 0
        self.rounds = 0
        self._lock = threading.Lock()
        self._last: dict[str, dict[str, Any]] = {}
        self._synced = time.monotonic()
        self._file: TextIO | None = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
        # ASCII in the secret's place: the replay's loader must accept it where the secret
        # stood (an HTTP header value refuses "«redacted»")
        masked = Redactor.for_layout(layout, os.environ).text(layout_text).replace(MASK, LAYOUT_MASK)
        self._write(
            {
                "format": FORMAT,
                "version": VERSION,
                "stackscope": __version__,
                "t0": self.t0,
                "layout": {"name": layout.name, "path": layout.path, "text": masked},
            }
        )

    def result(self, result: Result, round_no: int, outstanding: set[str] | int, at: float | None = None) -> None:
        """A result as it arrives (`at`: the time the verdict judged on it carries);
        `outstanding`: the checks still out this round (a count when too many to judge
        early: stream.EARLY_MAX_OUTSTANDING)."""
        data = encode_result(result, self.t0)
        heavy = {key: data.get(key) for key in _HEAVY}
        last = self._last.get(result.check_id)
        self._last[result.check_id] = heavy
        if last is not None:
            compact(data, last)
        out = sorted(outstanding) if isinstance(outstanding, set) else outstanding
        self.results += 1
        self._write(
            {"k": "r", "t": _t(self.clock() if at is None else at, self.t0), "n": round_no, "o": out, "r": data}
        )

    def round(self, taken_at: float, round_no: int, duration: float) -> None:
        self.rounds += 1
        self._write({"k": "round", "t": _t(taken_at, self.t0), "n": round_no, "d": round(duration, 6)})

    def verdict(self, at: float, line: str) -> None:
        """A verdict line as the live run showed it (replay compares its own with these)."""
        self._write({"k": "v", "t": _t(at, self.t0), "line": line})

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        size = len(line.encode("utf-8"))
        with self._lock:
            if self._file is None:
                return
            if self.written + size > self.cap:
                self._stop(f"the recording reached its cap of {self.cap} bytes; later results are not recorded")
                return
            try:
                self._file.write(line)
                self._file.flush()
                if time.monotonic() - self._synced >= 1.0:
                    os.fsync(self._file.fileno())
                    self._synced = time.monotonic()
            except OSError as exc:
                self._stop(f"cannot write the recording {self.path}: {exc.strerror or exc}")
                return
            self.written += size

    def _stop(self, why: str) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass
        if self.on_stop is not None:
            self.on_stop(why)

    def close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            try:
                file.flush()
                os.fsync(file.fileno())
                file.close()
            except OSError:
                pass


# ------------------------------------------------------------------ decoding


def _safe_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RecordingError(f"{where} is not a string")
    return terminal_safe(value)


def _opt(convert: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, where: None if value is None else convert(value, where)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordingError(f"{where} is not a whole number")
    return value


def _num(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordingError(f"{where} is not a number")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RecordingError(f"{where} is not true or false")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise RecordingError(f"{where} is not a list")
    return value


def _strs(value: Any, where: str) -> tuple[str, ...]:
    return tuple(_safe_str(item, where) for item in _list(value, where))


def _identities(value: Any, where: str) -> tuple[tuple[str, int], ...]:
    out = []
    for item in _list(value, where):
        pair = _list(item, where)
        if len(pair) != 2:
            raise RecordingError(f"{where} holds something other than (identity, count) pairs")
        out.append((_safe_str(pair[0], where), _int(pair[1], where)))
    return tuple(out)


def _members(value: Any, where: str) -> tuple[PoolMember, ...]:
    return tuple(_dataclass(PoolMember, item, where) for item in _list(value, where))


# The annotation of every evidence field (as written in model.py) -> how its value is read.
# A field of another type is refused by the unit test that walks the evidence classes.
CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "str": _safe_str,
    "str | None": _opt(_safe_str),
    "int": _int,
    "int | None": _opt(_int),
    "float": _num,
    "float | None": _opt(_num),
    "bool": _bool,
    "bool | None": _opt(_bool),
    "tuple[str, ...]": _strs,
    "tuple[tuple[str, int], ...]": _identities,
    "tuple[PoolMember, ...]": _members,
}


def _dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise RecordingError(f"{where} is not an object")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # its default (a field added since: an older recording)
        values[f.name] = CONVERTERS[str(f.type)](data[f.name], f"{where}.{f.name}")
    try:
        return cls(**values)
    except TypeError:
        raise RecordingError(f"{where} lacks a field {cls.__name__} needs") from None


def decode_evidence(data: Any, where: str = "evidence") -> Evidence | None:
    if data is None:
        return None
    if not isinstance(data, dict) or data.get("type") not in EVIDENCE:
        raise RecordingError(f"{where} is not one of {', '.join(EVIDENCE)}")
    return _dataclass(EVIDENCE[data["type"]], data, where)


def decode_result(data: Any, t0: float, previous: Mapping[str, Any] | None = None) -> Result:
    """A Result from its recorded data (`previous`: the check's last recorded data, expanded,
    for a line that left out what it repeats: `compact`)."""
    if not isinstance(data, dict):
        raise RecordingError("the result is not an object")
    data = expand(data, previous)
    check_id = _safe_str(data.get("c"), "the check id")
    try:
        status = Status(_int(data.get("s"), "the status"))
        kind = None if data.get("e") is None else ErrorKind(_safe_str(data["e"], "the error kind"))
    except ValueError as exc:
        raise RecordingError(f"{check_id}: {exc}") from None
    facts = data.get("x", {})
    if not isinstance(facts, dict):
        raise RecordingError(f"{check_id}: the facts are not an object")

    def at(key: str) -> float | None:
        value = data.get(key)
        return None if value is None else t0 + _num(value, f"{check_id}: time {key}")

    return Result(
        check_id,
        status,
        _safe_str(data.get("d", ""), "the detail"),
        latency_ms=_opt(_num)(data.get("l"), "the latency"),
        key_fact=_safe_str(data.get("f", ""), "the key fact"),
        facts=facts,  # Result makes every string in it terminal-safe
        error_kind=kind,
        started_at=at("a") or 0.0,
        evidence=decode_evidence(data.get("v"), f"{check_id}: evidence"),
        confirmations=_int(data.get("n", 0), "the confirmations"),
        confirmed=not data.get("u"),
        changed_at=at("g"),
        finished_at=at("z") or 0.0,
    )


@dataclass(frozen=True)
class Step:
    """One recorded moment: a result that arrived ("r"), a round's end ("round"), a verdict
    shown ("v")."""

    kind: str
    at: float
    round: int = 0
    result: Result | None = None
    outstanding: tuple[str, ...] | int = 0
    duration: float = 0.0
    line: str = ""


@dataclass(frozen=True)
class Recording:
    """A recording as read: its header, its steps, and what could not be read (`problem`:
    the steps are the readable part before it)."""

    version: int
    written_by: str
    t0: float
    layout_name: str
    layout_path: str
    layout_text: str
    steps: tuple[Step, ...]
    problem: str = ""
    notes: tuple[str, ...] = field(default=())


def read_recording(path: str, *, cap: int = MAX_RECORDING_BYTES) -> Recording:
    """The recording at `path` (files.py's rules: a regular file of at most `cap` bytes);
    RecordingError when nothing of it can be read (not a recording, another version, an
    unreadable header); a bad or cut line later ends the readable part (`problem`)."""
    from stackscope.files import read_bounded
    from stackscope.jsonbound import JsonRefused, loads

    shown = terminal_safe(path)
    try:
        data = read_bounded(path, cap)
    except OSError as exc:
        raise RecordingError(f"cannot read {shown}: {terminal_safe(exc.strerror or exc)}") from None
    lines = data.split(b"\n")
    complete = data.endswith(b"\n")

    def parse(raw: bytes, number: int) -> Any:
        if len(raw) > MAX_LINE_BYTES:
            raise RecordingError(f"line {number} is longer than {MAX_LINE_BYTES} bytes")
        try:
            return loads(raw, max_bytes=MAX_LINE_BYTES)
        except JsonRefused as exc:
            raise RecordingError(f"line {number}: {exc}") from None

    if not data.strip():
        raise RecordingError(f"{shown} is empty: not a stackscope recording")
    try:
        header = parse(lines[0], 1)
    except RecordingError as exc:
        raise RecordingError(f"{shown} is not a stackscope recording ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise RecordingError(f"{shown} is not a stackscope recording (its first line has no format {FORMAT!r})")
    version = header.get("version")
    if version != VERSION:
        by = terminal_safe(header.get("stackscope", "an unknown version"))
        raise RecordingError(
            f"{shown} is a recording of format version {terminal_safe(version)} (written by stackscope {by}); "
            f"this stackscope {__version__} reads version {VERSION} only"
        )
    layout = header.get("layout")
    t0 = header.get("t0")
    if not isinstance(layout, dict) or not isinstance(layout.get("text"), str) or not isinstance(t0, (int, float)):
        raise RecordingError(f"{shown}: its header lacks the layout or the start time")
    steps: list[Step] = []
    previous: dict[str, Any] = {}
    problem = ""
    body = lines[1:]
    for index, raw in enumerate(body, start=2):
        if not raw.strip():
            continue
        try:
            steps.append(_step(parse(raw, index), float(t0), previous))
        except RecordingError as exc:
            if index == len(body) + 1 and not complete:
                problem = f"its last line (line {index}) is cut short: the recording was interrupted"
            else:
                problem = f"{exc}; replaying the {index - 2} lines before it"
            break
    return Recording(
        version=version,
        written_by=terminal_safe(header.get("stackscope", "")),
        t0=float(t0),
        layout_name=terminal_safe(layout.get("name", "")),
        layout_path=terminal_safe(layout.get("path", "")),
        layout_text=layout["text"],
        steps=tuple(steps),
        problem=problem,
    )


def _step(record: Any, t0: float, previous: dict[str, Any]) -> Step:
    if not isinstance(record, dict):
        raise RecordingError("a line is not an object")
    kind = record.get("k")
    at = t0 + _num(record.get("t"), "the time")
    if kind == "r":
        data = record.get("r")
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            raise RecordingError("a result line without a result")
        data = expand(data, previous.get(data["c"]))
        result = decode_result(data, t0)
        previous[data["c"]] = data
        out = record.get("o")
        outstanding = _int(out, "the outstanding count") if not isinstance(out, list) else _strs(out, "outstanding")
        return Step("r", at, _int(record.get("n"), "the round"), result, outstanding)
    if kind == "round":
        return Step("round", at, _int(record.get("n"), "the round"), duration=_num(record.get("d", 0), "duration"))
    if kind == "v":
        return Step("v", at, line=_safe_str(record.get("line"), "the verdict line"))
    raise RecordingError(f"a line of unknown kind {terminal_safe(kind)!r}")
