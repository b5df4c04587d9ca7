"""Guided incidents: a story on a compressed clock, a fault, a question, a debrief.

A walkthrough is a data file (YAML) so trainers can write their own; this module loads
and validates it (file:line problems, like layouts) and runs a `Session`, which is pure:
it is given the time, never reads a clock, so a test can play an hour of story in a few
calls. The dashboard only renders what the session says.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from stackscope.demo.faults import FAULTS
from stackscope.kinds import did_you_mean
from stackscope.layout import LayoutError, Node, Problem, Validator, read_yaml, shown
from stackscope.model import Layout

BUILTIN_DIR = os.path.join(os.path.dirname(__file__), "walkthroughs")
EVENT_KINDS = ("alert", "deploy", "change", "chat", "metric", "note")
KEYS = (
    "name",
    "title",
    "summary",
    "fault",
    "recording",
    "fault_at",
    "answer",
    "also_accept",
    "clock",
    "events",
    "hints",
    "scoring",
    "debrief",
    "feedback",
)
DEFAULT_FEEDBACK = "Look again: which failing layer is not explained by another one?"
DEBRIEF_KEYS = ("root_cause", "dashboard", "misleading", "measures", "original")
SCORING_KEYS = ("start", "wrong_answer", "time_points", "full_within", "zero_after")


@dataclass(frozen=True)
class StoryEvent:
    at: float  # story minutes from T+0 (the alert); negative is before it
    kind: str
    text: str


@dataclass(frozen=True)
class Hint:
    cost: int
    text: str


@dataclass(frozen=True)
class Accepted:
    """A second answer the story honestly supports, and why (the debrief says it)."""

    layer: str
    why: str


@dataclass(frozen=True)
class TimeScore:
    """Points for speed, counted in real seconds from the first alert: all of `points`
    within `full_within` seconds, none from `zero_after`, linear in between.

    Trainees of the first round all answered within a minute, so a whole-minute step
    never cost anything: the scale has to move in the seconds they actually take. The
    last story event of a shipped walkthrough comes 15 real seconds after the alert and
    the panels need a few seconds' reading, so 20 s is "as soon as you could"; by 3
    minutes the story has long ended and the answer is a guess or a slow read."""

    points: int = 30
    full_within: float = 20.0
    zero_after: float = 180.0

    def lost(self, seconds: float) -> int:
        """Points lost after `seconds` (rounded half up, so 0.5 of a point counts)."""
        if seconds <= self.full_within:
            return 0
        share = min(1.0, (seconds - self.full_within) / (self.zero_after - self.full_within))
        return int(self.points * share + 0.5)

    def rule(self) -> str:
        """'all 30 points within 20 s, none after 3 min', for the debrief and the README."""
        return f"all {self.points} points within {_duration(self.full_within)}, none after {_duration(self.zero_after)}"


def _duration(seconds: float) -> str:
    """'20 s', '3 min', '90 s' — whole minutes as minutes."""
    whole = int(seconds)
    return f"{whole // 60} min" if whole >= 60 and whole % 60 == 0 else f"{whole} s"


@dataclass(frozen=True)
class Debrief:
    root_cause: str
    dashboard: str  # what stackscope showed, and how early
    misleading: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    original: str = ""  # how long it took without the dashboard, when modelled on a real outage


@dataclass(frozen=True)
class Walkthrough:
    name: str
    title: str
    summary: str
    fault: str
    fault_at: float  # story minutes when the fault is injected
    answer: str  # the layer the trainee must name
    clock_start: str  # story time of T+0, "HH:MM"
    minutes_per_second: float
    events: tuple[StoryEvent, ...]
    hints: tuple[Hint, ...]
    debrief: Debrief
    start_score: int = 100
    wrong_answer_cost: int = 15
    path: str = ""
    feedback: tuple[tuple[str, str], ...] = ()  # (wrong layer, what to tell the trainee)
    time_score: TimeScore = TimeScore()
    also_accept: tuple[Accepted, ...] = ()
    recording: str = ""  # instead of a demo fault: a team's own incident, replayed (its absolute path)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every layer that counts as the right answer: `answer` first."""
        return (self.answer, *(a.layer for a in self.also_accept))

    def why_accepted(self, layer: str) -> str:
        """The walkthrough's reason for accepting `layer` ('' for the answer itself)."""
        return next((a.why for a in self.also_accept if a.layer == layer), "")

    def feedback_for(self, layer: str) -> str:
        """The walkthrough's words for naming `layer` wrongly, else a neutral nudge."""
        return dict(self.feedback).get(layer, DEFAULT_FEEDBACK)

    @property
    def begins_at(self) -> float:
        return min([self.fault_at, *(e.at for e in self.events)])

    @property
    def alert_at(self) -> float:
        """Story minutes of the first alert (T+0 when no event is an alert)."""
        return next((e.at for e in self.events if e.kind == "alert"), 0.0)


def builtin_walkthroughs() -> dict[str, str]:
    """name -> path of the walkthroughs shipped with stackscope."""
    names = sorted(f for f in os.listdir(BUILTIN_DIR) if f.endswith(".yaml"))
    return {name[:-5]: os.path.join(BUILTIN_DIR, name) for name in names}


def find_walkthrough(name_or_path: str) -> str:
    """A built-in name, or the path of a trainer's own file."""
    builtin = builtin_walkthroughs()
    if name_or_path in builtin:
        return builtin[name_or_path]
    if os.path.exists(name_or_path):
        return name_or_path
    hint = did_you_mean(name_or_path, tuple(builtin)) or f"built in: {', '.join(builtin)}; or give a file path"
    raise LayoutError([Problem(name_or_path, 0, "", "no such walkthrough", hint)])


# --------------------------------------------------------------------------- loading


def clean(text: str) -> str:
    """A walkthrough's text as the dashboard may show it. A trainer's file (or one a
    trainee was sent) is read like a layout: every text is made terminal-safe where it is
    loaded, with the layout's rule (`layout.shown`), so no story event, hint or debrief
    can retitle or clear the terminal each time it is shown. Runs of whitespace (the
    newlines of a folded `>` block, a tab) become one space first: the texts are shown
    as one line or one Markdown paragraph, and a newline would otherwise show as a mark."""
    return shown(" ".join(text.split()))


_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):[0-5][0-9]")


class _Checker(Validator):
    """The layout loader's validator (file, line, key, fix; unknown keys named with the
    closest match), plus plain typed values: every string among them made terminal-safe
    (`clean`), here, where the file is read."""

    def get(
        self, node: Node, key: str, kind: type | tuple, where: str, *, required: bool = False, default: Any = None
    ) -> Any:
        child = node.value.get(key)
        if child is None:
            if required:
                self.problem(node.line, where, f"missing required key '{key}'")
            return default
        value = child.plain()
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.problem(node.key_lines.get(key, node.line), where, f"'{key}' must be {name}")
            return default
        return clean(value) if isinstance(value, str) else value

    def texts(self, node: Node, key: str, where: str) -> tuple[str, ...]:
        """A list of texts (`misleading:`, `measures:`), each made terminal-safe."""
        items = self.get(node, key, list, where, default=[])
        if not all(isinstance(item, str) for item in items):
            self.problem(node.key_lines.get(key, node.line), where, f"'{key}' must be a list of texts")
            return ()
        return tuple(clean(item) for item in items)


def load_walkthrough(path: str, layers: tuple[str, ...] | None = None) -> Walkthrough:
    """Read and validate a walkthrough; `layers` are the names an answer may take."""
    from stackscope.demo.stack import LAYERS

    root = read_yaml(path)
    check = _Checker(path)
    if not isinstance(root.value, dict):
        raise LayoutError([Problem(path, root.line, "", "a walkthrough is a mapping", "see the README")])
    check.unknown_keys(root, KEYS, "")
    name = check.get(root, "name", str, "", required=True, default="?")
    title = check.get(root, "title", str, "", required=True, default="")
    summary = check.get(root, "summary", str, "", default="")
    recording = _recording(root, check, path)
    if recording is not None and layers is None:
        layers = tuple(layer.name for layer in recording[1].layers)
    layers = layers or LAYERS
    of = "the recorded layout" if recording is not None else "the demo"
    recording_path = recording[0] if recording is not None else ""
    fault = check.get(root, "fault", str, "", required="recording" not in root.value, default="")
    if fault and "recording" in root.value:
        check.problem(root.key_lines["fault"], "", "a walkthrough has a demo fault or a recording, not both")
    elif fault and fault not in FAULTS:
        check.problem(
            root.key_lines["fault"],
            "",
            f"unknown fault '{fault}'",
            did_you_mean(fault, tuple(FAULTS)) or "see stackscope demo --list",
        )
    answer = check.get(root, "answer", str, "", required=True, default="")
    if answer and answer not in layers:
        check.problem(
            root.key_lines["answer"],
            "",
            f"answer '{answer}' is not a layer of {of}",
            did_you_mean(answer, layers) or "layers: " + ", ".join(layers),
        )
    also_accept: list[Accepted] = []
    for index, item in enumerate(_items(root, "also_accept", check)):
        where = f"also_accept[{index}]"
        check.unknown_keys(item, ("layer", "why"), where)
        layer = check.get(item, "layer", str, where, required=True, default="")
        why = check.get(item, "why", str, where, required=True, default="")
        line = item.key_lines.get("layer", item.line)
        if layer and layer not in layers:
            check.problem(
                line,
                where,
                f"'{layer}' is not a layer of {of}",
                did_you_mean(layer, layers) or "layers: " + ", ".join(layers),
            )
        elif layer and layer in (answer, *(a.layer for a in also_accept)):
            check.problem(line, where, f"'{layer}' is already accepted")
        also_accept.append(Accepted(layer, why))
    fault_at = check.get(root, "fault_at", float, "", default=-5.0)
    clock = root.value.get("clock")
    start, speed = "00:00", 1.0
    if clock is not None and isinstance(clock.value, dict):
        check.unknown_keys(clock, ("start", "minutes_per_second"), "clock")
        start = str(check.get(clock, "start", (str, int), "clock", default="00:00"))
        speed = check.get(clock, "minutes_per_second", float, "clock", default=1.0)
        if not _CLOCK.fullmatch(start) or speed <= 0:
            check.problem(clock.line, "clock", "start is HH:MM and minutes_per_second is positive")
    events = []
    for index, item in enumerate(_items(root, "events", check)):
        where = f"events[{index}]"
        check.unknown_keys(item, ("at", "kind", "text"), where)
        kind = check.get(item, "kind", str, where, default="note")
        if kind not in EVENT_KINDS:
            check.problem(
                item.key_lines.get("kind", item.line),
                where,
                f"unknown kind '{kind}'",
                did_you_mean(kind, EVENT_KINDS) or "kinds: " + ", ".join(EVENT_KINDS),
            )
        events.append(
            StoryEvent(
                check.get(item, "at", float, where, required=True, default=0.0),
                kind,
                check.get(item, "text", str, where, required=True, default=""),
            )
        )
    hints = []
    for index, item in enumerate(_items(root, "hints", check)):
        where = f"hints[{index}]"
        check.unknown_keys(item, ("cost", "text"), where)
        hints.append(
            Hint(
                check.get(item, "cost", int, where, default=10),
                check.get(item, "text", str, where, required=True, default=""),
            )
        )
    scoring = root.value.get("scoring")
    start_score, wrong_cost, time_score = 100, 15, TimeScore()
    if scoring is not None and isinstance(scoring.value, dict):
        start_score, wrong_cost, time_score = _scoring(scoring, check)
    debrief_node = root.value.get("debrief")
    debrief = Debrief("", "")
    if debrief_node is None or not isinstance(debrief_node.value, dict):
        check.problem(root.line, "", "missing required key 'debrief'", "add root_cause: and dashboard:")
    else:
        check.unknown_keys(debrief_node, DEBRIEF_KEYS, "debrief")
        debrief = Debrief(
            check.get(debrief_node, "root_cause", str, "debrief", required=True, default=""),
            check.get(debrief_node, "dashboard", str, "debrief", required=True, default=""),
            check.texts(debrief_node, "misleading", "debrief"),
            check.texts(debrief_node, "measures", "debrief"),
            check.get(debrief_node, "original", str, "debrief", default=""),
        )
    feedback: list[tuple[str, str]] = []
    feedback_node = root.value.get("feedback")
    if feedback_node is not None:
        if not isinstance(feedback_node.value, dict):
            check.problem(
                root.key_lines["feedback"],
                "",
                "'feedback' must be a mapping",
                'wrong layer: what to tell the trainee, e.g. {Auth backends: "..."}',
            )
        else:
            for layer, text_node in feedback_node.value.items():
                line = feedback_node.key_lines.get(layer, feedback_node.line)
                if layer not in layers:
                    check.problem(
                        line,
                        "feedback",
                        f"'{layer}' is not a layer of {of}",
                        did_you_mean(layer, layers) or "layers: " + ", ".join(layers),
                    )
                elif layer == answer:
                    check.problem(line, "feedback", f"'{layer}' is the answer: feedback is for wrong answers")
                elif layer in (a.layer for a in also_accept):
                    check.problem(
                        line, "feedback", f"'{layer}' is accepted (also_accept): feedback is for wrong answers"
                    )
                if not isinstance(text_node.plain(), str):
                    check.problem(line, "feedback", f"the feedback for '{layer}' must be a string")
                else:
                    feedback.append((layer, clean(text_node.plain())))
    if check.problems:
        raise LayoutError(check.problems)
    return Walkthrough(
        name,
        title,
        summary,
        fault,
        fault_at,
        answer,
        start,
        speed,
        tuple(sorted(events, key=lambda e: e.at)),
        tuple(hints),
        debrief,
        start_score,
        wrong_cost,
        path,
        tuple(feedback),
        time_score,
        tuple(also_accept),
        recording_path,
    )


def _recording(root: Node, check: _Checker, path: str) -> tuple[str, Layout] | None:
    """`recording:` — a recording (beside the walkthrough when relative) and its layout,
    whose layers the answers name; None when absent or unreadable (then a problem)."""
    from stackscope.replay import ReplayError, load

    value = check.get(root, "recording", str, "", default=None)
    if value is None:
        return None
    full = os.path.join(os.path.dirname(os.path.abspath(path)), value)
    try:
        return full, load(full)[1]
    except ReplayError as error:
        check.problem(root.key_lines["recording"], "", f"cannot replay the recording: {str(error).splitlines()[0]}")
        return None


def _scoring(node: Node, check: _Checker) -> tuple[int, int, TimeScore]:
    """`scoring:` — the start, the cost of a wrong answer, the points for speed."""
    if "per_minute" in node.value:
        check.problem(
            node.key_lines["per_minute"],
            "scoring",
            "'per_minute' is no longer used: the time score runs in seconds",
            "time_points: 30, full_within: 20, zero_after: 180 (seconds from the first alert)",
        )
    check.unknown_keys(node, (*SCORING_KEYS, "per_minute"), "scoring")
    start = check.get(node, "start", int, "scoring", default=100)
    wrong = check.get(node, "wrong_answer", int, "scoring", default=15)
    default = TimeScore()
    points = check.get(node, "time_points", int, "scoring", default=default.points)
    full = check.get(node, "full_within", float, "scoring", default=default.full_within)
    zero = check.get(node, "zero_after", float, "scoring", default=default.zero_after)
    if not 0 <= full < zero or points < 0:
        check.problem(
            node.key_lines.get("full_within", node.key_lines.get("zero_after", node.line)),
            "scoring",
            "time_points is 0 or more and 0 <= full_within < zero_after (seconds)",
        )
        return start, wrong, default
    return start, wrong, TimeScore(points, full, zero)


def _items(root: Node, key: str, check: _Checker) -> list[Node]:
    node = root.value.get(key)
    if node is None:
        return []
    if not isinstance(node.value, list):
        check.problem(root.key_lines[key], "", f"'{key}' must be a list")
        return []
    out = []
    for index, item in enumerate(node.value):
        if not isinstance(item.value, dict):
            check.problem(item.line, f"{key}[{index}]", "each item is a mapping")
            continue
        out.append(item)
    return out


# --------------------------------------------------------------------------- playing


def _count(count: int, noun: str) -> str:
    """'no hints', '1 hint', '2 hints'."""
    if count == 0:
        return f"no {noun}s"
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _points(lost: int) -> str:
    """Points lost: '−15'; none is '0' (a '−0' reads like a penalty)."""
    return f"−{lost}" if lost else "0"


def _costing(lost: int, names: str = "") -> str:
    """' (−30: DNS, Session store)', ' (DNS)' when it cost nothing, '' for nothing."""
    parts = ": ".join(filter(None, (_points(lost) if lost else "", names)))
    return f" ({parts})" if parts else ""


@dataclass(frozen=True)
class Outcome:
    correct: bool
    message: str
    counted: bool = True  # False when the answer was refused (nothing broken yet, already solved)


NOTHING_BROKEN_YET = "Nothing is broken yet — watch the panels."


@dataclass
class Session:
    """One trainee playing one walkthrough. Every method takes the current time."""

    walkthrough: Walkthrough
    started: float  # real time (monotonic seconds) when the story began
    shown: int = 0  # events already shown
    fault_injected: bool = False
    hints_taken: int = 0
    wrong: list[str] = field(default_factory=list)
    solved_at: float | None = None  # real time of the right answer
    named: str = ""  # the layer named by the right answer (the answer, or one also accepted)

    def story_minutes(self, now: float) -> float:
        """Story minutes at real time `now`; the story clock stops at the right answer."""
        if self.solved_at is not None:
            now = min(now, self.solved_at)
        return self.walkthrough.begins_at + (now - self.started) * self.walkthrough.minutes_per_second

    def story_clock(self, now: float) -> str:
        return self.clock_at(self.story_minutes(now))

    def clock_at(self, minutes: float) -> str:
        hours, mins = (int(x) for x in self.walkthrough.clock_start.split(":"))
        total = (hours * 60 + mins + int(minutes // 1)) % (24 * 60)
        return f"{total // 60:02d}:{total % 60:02d}"

    def label(self, minutes: float) -> str:
        """'T-20' / 'T+0' / 'T+12' for a story moment."""
        whole = int(minutes // 1)
        return f"T{'+' if whole >= 0 else '-'}{abs(whole)}"

    @staticmethod
    def relative(minutes: float) -> str:
        """'8 story minutes after the alert' / '2 story minutes before the alert'."""
        whole = int(minutes // 1)
        if whole == 0:
            return "at the alert"
        count = abs(whole)
        unit = "story minute" if count == 1 else "story minutes"
        return f"{count} {unit} {'after' if whole > 0 else 'before'} the alert"

    def fault_started(self, now: float) -> bool:
        return self.story_minutes(now) >= self.walkthrough.fault_at

    def due_events(self, now: float) -> list[StoryEvent]:
        """Events whose time has come and that were not returned before."""
        minutes = self.story_minutes(now)
        events = self.walkthrough.events
        due = []
        while self.shown < len(events) and events[self.shown].at <= minutes:
            due.append(events[self.shown])
            self.shown += 1
        return due

    def fault_due(self, now: float) -> bool:
        """True once, when the story reaches the moment the fault starts."""
        if not self.fault_injected and self.story_minutes(now) >= self.walkthrough.fault_at:
            self.fault_injected = True
            return True
        return False

    def take_hint(self) -> Hint | None:
        if self.finished or self.hints_taken >= len(self.walkthrough.hints):
            return None
        hint = self.walkthrough.hints[self.hints_taken]
        self.hints_taken += 1
        return hint

    def answer(self, layer: str, now: float) -> Outcome:
        """Score an answer. Before the fault has started there is nothing to find: the
        answer is refused and costs nothing (a lucky guess must not score 100)."""
        if self.finished:
            return Outcome(True, "Already answered.", counted=False)
        if not self.fault_started(now):
            return Outcome(False, NOTHING_BROKEN_YET, counted=False)
        if layer in self.walkthrough.accepted:
            self.solved_at = now
            self.named = layer
            return Outcome(True, f"Right — the broken layer: {layer}.")
        if layer in self.wrong:  # the same wrong answer again costs nothing more
            return Outcome(False, f"Already tried: {layer}.", counted=False)
        self.wrong.append(layer)
        cost = self.walkthrough.wrong_answer_cost
        costs = f" (−{cost} points)" if cost else ""
        return Outcome(False, f"Not {layer}{costs}. {self.walkthrough.feedback_for(layer)}")

    @property
    def finished(self) -> bool:
        return self.solved_at is not None

    @property
    def hint_cost(self) -> int:
        return sum(h.cost for h in self.walkthrough.hints[: self.hints_taken])

    @property
    def alert_real(self) -> float:
        """Real time (the clock the session is given) of the story's first alert."""
        w = self.walkthrough
        return self.started + (w.alert_at - w.begins_at) / w.minutes_per_second

    def seconds_from_alert(self, now: float) -> float:
        """Real seconds from the first alert to `now` (to the right answer once given).
        The score counts these: the story clock is narration, and two story minutes a
        second would make every hesitation look like an hour."""
        end = self.solved_at if self.solved_at is not None else now
        return max(0.0, end - self.alert_real)

    def time_cost(self, now: float) -> int:
        return self.walkthrough.time_score.lost(self.seconds_from_alert(now))

    def score_at(self, now: float) -> int:
        lost = self.hint_cost + len(self.wrong) * self.walkthrough.wrong_answer_cost + self.time_cost(now)
        return max(0, self.walkthrough.start_score - lost)

    @property
    def score(self) -> int:
        """The score: final once answered, else before any time is counted."""
        return self.score_at(self.solved_at if self.solved_at is not None else self.alert_real)

    def diagnosis_time(self) -> tuple[float, float] | None:
        """(story minutes from the alert, real seconds from the first alert) to the right answer."""
        if self.solved_at is None:
            return None
        return self.story_minutes(self.solved_at), self.seconds_from_alert(self.solved_at)

    def debrief_lines(self, verdict_summary: str | None = None, ruled_out: tuple[str, ...] = ()) -> list[str]:
        """The debrief as Markdown lines: the outcome, then what happened and what to change."""
        w = self.walkthrough
        lines = [f"# Debrief: {w.name} — {w.title}", ""]
        timing = self.diagnosis_time()
        time_part = ""
        if timing is not None:
            story, real = timing
            solved_at = self.solved_at or 0.0
            after = solved_at > self.alert_real
            when = f"{real:.0f} s after the first alert" if after else "before the first alert"
            lines.append(
                f"You named **{self.named}** {when} (in the story: {self.clock_at(story)}, {self.label(story)})."
            )
            if self.named != w.answer:
                lines += ["", f"**{self.named}** is accepted as well as **{w.answer}**: {w.why_accepted(self.named)}"]
            lost = self.time_cost(solved_at)
            time_part = f", time {_points(lost) if lost else 'in full'} ({w.time_score.rule()})"
        wrong = _count(len(self.wrong), "wrong answer")
        wrong += _costing(len(self.wrong) * w.wrong_answer_cost, ", ".join(self.wrong))
        hints = _count(self.hints_taken, "hint") + _costing(self.hint_cost)
        lines += ["", f"Score: **{self.score}/{w.start_score}** — {hints}, {wrong}{time_part}."]
        if w.debrief.original:
            lines += ["", w.debrief.original]
        lines += ["", "## Root cause", w.debrief.root_cause, "", "## What the dashboard showed", w.debrief.dashboard]
        if verdict_summary:
            lines += ["", f"Verdict at the time: {verdict_summary}"]
            lines += [f"- ruled out: {item}" for item in ruled_out]
        if w.debrief.misleading:
            lines += ["", "## Signals that pointed elsewhere"] + [f"- {item}" for item in w.debrief.misleading]
        if w.debrief.measures:
            lines += ["", "## Corrective measures"] + [f"- {item}" for item in w.debrief.measures]
        return lines
