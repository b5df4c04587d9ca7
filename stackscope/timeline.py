"""The incident timeline: every state transition and verdict change, and the postmortem
draft written from them.

Fed one Diagnosis per probe round, it keeps only what a postmortem needs — the
transitions, how long each layer and check was unhealthy, the verdicts and what was
ruled out when — never the rounds themselves, so an eight-hour watch costs the same
memory as a five-minute one. Pure: no I/O but `write`, no clock of its own (each
observation carries its time), no Textual. Everything it records comes from engine
results, which the engine has already redacted, so the Markdown is as secret-safe as
`stackscope check`.

`watch --plain` prints `Event.line()` for each event, the dashboard shows the same
events in its events pane, and `t` / `--record` write `to_markdown()`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from stackscope.diagnosis import CheckState, Diagnosis, Verdict, verdict_key
from stackscope.kinds import format_duration
from stackscope.model import Status
from stackscope.words import blame

MAX_EVENTS = 10_000  # a flapping check must not grow the timeline without bound

CHECK, VERDICT = "check", "verdict"


@dataclass(frozen=True)
class Event:
    """One transition: a check changed status, or the verdict changed.

    `before` is None for the state seen on the first round (nothing was known before);
    for a verdict event `after` is OK when every layer became healthy again. A check
    that keeps its status but fails another way (a 404 that became a 503, refused that
    became cannot-resolve) is an event too, with `before` equal to `after` and `change`
    saying what changed ("404 → 503").
    """

    at: float
    kind: str  # CHECK or VERDICT
    layer: str
    check: str  # check name; "" for a verdict event
    before: Status | None
    after: Status
    detail: str
    change: str = ""
    confirmed: bool = True  # a verdict event: False while its checks await confirmation re-probes
    recovering: bool = False  # a verdict event: the broken layer answers again, the LB has yet to take it back

    @property
    def subject(self) -> str:
        return f"{self.layer} / {self.check}" if self.kind == CHECK else f"verdict: {self.layer}"

    @property
    def transition(self) -> str:
        """'✔ OK → ✖ CRIT', or '✖ CRIT' alone for the first state seen."""
        after = self.after.label
        if self.before is None:
            return after
        if self.before is self.after and self.change:
            return f"{after} ({self.change})"
        return f"{self.before.label} → {after}"

    @property
    def verdict_words(self) -> str:
        """A verdict row's own words: 'verdict: Load balancer ✖ CRIT', 'verdict: all
        layers healthy again' (never the old verdict's status beside the new layer)."""
        if self.after is Status.OK:
            return f"verdict: {self.detail}"
        if self.recovering:
            return f"verdict: {self.layer} recovering"
        return verdict_words(self.layer, self.after) + ("" if self.confirmed else " (unconfirmed)")

    def line(self, tz: _dt.tzinfo | None = None, *, date: bool = True) -> str:
        """One plain line, for `watch --plain`, logs and the events pane."""
        stamp = format_time(self.at, tz, date=date)
        if self.kind == VERDICT:
            if self.after is Status.OK:
                return f"{stamp}  verdict  {self.after.label}  {self.detail}"
            if self.recovering:
                return f"{stamp}  verdict  {self.after.label}  {self.detail}"  # "Auth backends recovering: …"
            unconfirmed = " (unconfirmed)" if not self.confirmed else ""
            return (
                f"{stamp}  verdict  {self.after.label}  {self.layer}{blame(self.after is Status.UNKNOWN)}{unconfirmed}"
                f" — {self.detail}"
            )
        return f"{stamp}  {self.subject}  {self.transition}  {self.detail}"


@dataclass
class _Span:
    """How long one layer or check has been unhealthy, and how badly."""

    status: Status = Status.OK
    since: float = 0.0
    bad_seconds: float = 0.0
    worst: Status = Status.OK
    first_bad: float | None = None
    by_status: dict[Status, float] = field(default_factory=dict)  # seconds spent in each bad status

    def move(self, status: Status, at: float) -> None:
        if self.status is not Status.OK:
            self.bad_seconds += at - self.since
            self.by_status[self.status] = self.by_status.get(self.status, 0.0) + at - self.since
        if status is not Status.OK:
            self.worst = Status.worst([self.worst, status])
            if self.first_bad is None:
                self.first_bad = at
        self.status, self.since = status, at

    def total(self, now: float) -> float:
        ongoing = now - self.since if self.status is not Status.OK else 0.0
        return self.bad_seconds + ongoing

    def per_status(self, now: float) -> list[tuple[Status, float]]:
        """Time in each bad status, worst first: a check CRIT 6 s then WARN 5 s is not
        'CRIT for 11 s'."""
        spent = dict(self.by_status)
        if self.status is not Status.OK:
            spent[self.status] = spent.get(self.status, 0.0) + now - self.since
        return sorted(spent.items(), key=lambda item: -item[0].rank)


@dataclass
class RuledOut:
    layer: str
    since: float
    proof: str
    until: float | None = None  # when the layer failed after having been ruled out


@dataclass
class Timeline:
    """Transitions and incident facts for one layout, observed round by round."""

    layout_name: str
    source: str = ""  # the layout file, for the report's header
    interval: float | None = None
    max_events: int = MAX_EVENTS
    events: list[Event] = field(default_factory=list)
    dropped: int = 0
    rounds: int = 0
    first_at: float | None = None
    last_at: float | None = None
    incident_start: float | None = None
    incident_end: float | None = None  # None while it lasts (or before it starts)
    episodes: int = 0
    _checks: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (layer, name)
    _check_spans: dict[str, _Span] = field(default_factory=dict)
    _layer_spans: dict[str, _Span] = field(default_factory=dict)
    _overall: Status | None = None
    _verdict: Verdict | None = None
    _verdicts: list[tuple[float, Verdict]] = field(default_factory=list)  # one per verdict change
    _verdict_confirmed: list[bool] = field(default_factory=list)  # per _verdicts entry: ever confirmed
    # per _verdicts entry: when its layer answered again (recovering), None if it never did
    _recovered_at: list[float | None] = field(default_factory=list)
    _ruled_out: dict[str, RuledOut] = field(default_factory=dict)
    _check_how: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> failure_class

    # ------------------------------------------------------------------ observing

    def observe(self, diagnosis: Diagnosis, at: float | None = None, *, partial: bool = False) -> list[Event]:
        """Record one round, or with `partial` one result's re-judgement within a round
        (streaming: not counted as a round); return the events it caused (empty when
        nothing changed)."""
        at = diagnosis.snapshot.taken_at if at is None else at
        first = self.first_at is None
        if first:
            self.first_at = at
        self.last_at = at
        if not partial:
            self.rounds += 1
        new: list[Event] = []
        for layer in diagnosis.layers:
            span = self._layer_spans.setdefault(layer.name, _Span(since=at))
            if first or layer.status is not span.status:
                span.move(layer.status, at)
            for state in layer.checks:
                check, result = state.check, state.result
                self._checks[check.id] = (layer.name, check.name)
                cspan = self._check_spans.get(check.id)
                how, was = failure_class(state), self._check_how.get(check.id)
                self._check_how[check.id] = how
                change = ""
                if cspan is None:  # first sight: only a problem is news
                    cspan = self._check_spans[check.id] = _Span(since=at)
                    before: Status | None = None
                elif state.status is cspan.status:
                    if state.status is Status.OK or (was is not None and how[0] == was[0]):
                        continue
                    before = state.status  # failing another way: news, though the status is the same
                    change = f"{was[1] if was else '?'} → {how[1]}"
                else:
                    before = cspan.status
                if before is not state.status:
                    cspan.move(state.status, at)
                if before is not None or state.status is not Status.OK:
                    new.append(Event(at, CHECK, layer.name, check.name, before, state.status, result.detail, change))
        new.extend(self._observe_verdict(diagnosis, at, first))
        self._observe_incident(diagnosis, at)
        self._add(new)
        return new

    def _observe_verdict(self, diagnosis: Diagnosis, at: float, first: bool) -> list[Event]:
        verdict, previous = diagnosis.verdict, self._verdict
        self._verdict = verdict
        key = verdict_key(verdict)
        old_key = verdict_key(previous)
        # the broken layer recovering is the same incident getting better, not another
        # verdict: it is recorded as "recovered at" on the verdict it follows
        recovery = verdict is not None and verdict.recovering and bool(self._verdicts)
        recovery = recovery and self._verdicts[-1][1].layer == verdict.layer  # type: ignore[union-attr]
        if recovery:
            if self._recovered_at[-1] is None:
                self._recovered_at[-1] = at
        elif verdict is not None:
            if key != old_key:
                self._verdicts.append((at, verdict))
                self._verdict_confirmed.append(verdict.confirmed)
                self._recovered_at.append(at if verdict.recovering else None)
            else:  # same verdict: keep its latest wording and evidence
                self._verdicts[-1] = (self._verdicts[-1][0], verdict)
                self._verdict_confirmed[-1] = self._verdict_confirmed[-1] or verdict.confirmed
        # the same verdict becoming confirmed is news too (its line loses "(unconfirmed)")
        same = key == old_key and (verdict is None or previous is None or verdict.confirmed == previous.confirmed)
        if same and not first:
            return []
        if verdict is None:
            if first:
                checks = sum(len(layer.checks) for layer in diagnosis.layers)
                return [Event(at, VERDICT, "", "", None, Status.OK, f"all layers healthy ({checks} checks)")]
            return [
                Event(
                    at,
                    VERDICT,
                    previous.layer if previous else "",
                    "",
                    previous.status if previous else None,
                    Status.OK,
                    "all layers healthy again",
                )
            ]
        before = previous.status if previous is not None else (None if first else Status.OK)
        return [
            Event(
                at,
                VERDICT,
                verdict.layer,
                "",
                before,
                verdict.status,
                _report_summary(verdict),
                confirmed=verdict.confirmed,
                recovering=verdict.recovering,
            )
        ]

    def _observe_incident(self, diagnosis: Diagnosis, at: float) -> None:
        status = diagnosis.status
        if status is not Status.OK:
            if self.incident_start is None:
                self.incident_start = at
            if self._overall in (None, Status.OK):
                self.episodes += 1
                self.incident_end = None
            for layer in diagnosis.layers:
                if layer.status is Status.OK:
                    if layer.name not in self._ruled_out:
                        self._ruled_out[layer.name] = RuledOut(layer.name, at, _proof_of(diagnosis, layer.name))
                else:
                    ruled = self._ruled_out.get(layer.name)
                    if ruled is not None and ruled.until is None:
                        ruled.until = at
        elif self._overall not in (None, Status.OK):
            self.incident_end = at
        self._overall = status

    def _add(self, new: list[Event]) -> None:
        self.events.extend(new)
        overflow = len(self.events) - self.max_events
        if overflow > 0:
            del self.events[:overflow]
            self.dropped += overflow

    # ------------------------------------------------------------------ reading

    def root_cause(self) -> tuple[float, Verdict] | None:
        """The rule: the first *confirmed* verdict of the incident at its worst severity
        (the first confirmed CRIT verdict, if any was CRIT). A fault that came first and
        as bad is the cause; what followed it (a DNS failure while the LB was still
        broken, a slow database after) is listed under 'Other verdicts' in order. A
        verdict that was never confirmed (its checks' re-probes did not bear it out: a
        blip) is transient: never the root cause, listed as such."""
        confirmed = self.confirmed_verdicts()
        if not confirmed:
            return None
        worst = max(verdict.status.rank for _, verdict in confirmed)
        return next(item for item in confirmed if item[1].status.rank == worst)

    def confirmed_verdicts(self) -> list[tuple[float, Verdict]]:
        return [item for item, ok in zip(self._verdicts, self._verdict_confirmed) if ok]

    def transient_verdicts(self) -> list[tuple[float, Verdict]]:
        """Verdicts that were shown but never confirmed."""
        return [item for item, ok in zip(self._verdicts, self._verdict_confirmed) if not ok]

    # ------------------------------------------------------------------ writing

    def to_markdown(self, now: float | None = None, tz: _dt.tzinfo | None = None) -> str:
        """A postmortem draft: what happened, when, to what, why, and what it was not."""
        now = self.last_at if now is None else now
        now = now if now is not None else 0.0
        out: list[str] = []
        cause = self.root_cause()
        if self.incident_start is None:
            out.append(f"# Watch report: {self.layout_name} — no incident")
        else:
            headline = f"{cause[1].layer} {cause[1].status.word}" if cause else "cause unknown"
            out.append(f"# Incident report: {self.layout_name} — {headline}")
        out.append("")
        out.extend(self._summary(now, tz))
        if self.incident_start is not None:
            out += ["", "## Impact", ""] + self._impact(now)
            out += ["", "## Root cause", ""] + self._root_cause(tz)
        out += ["", "## Timeline", ""] + self._table(tz)
        if self.incident_start is not None:
            out += ["", "## Ruled out", ""] + self._ruled_out_lines(tz)
        out += ["", "---", "Drafted by stackscope from probe results; check it before you publish it."]
        return "\n".join(out) + "\n"

    def write(self, path: str | os.PathLike, now: float | None = None, tz: _dt.tzinfo | None = None) -> Path:
        target = Path(path)
        target.write_text(self.to_markdown(now, tz), encoding="utf-8")
        return target

    def _summary(self, now: float, tz: _dt.tzinfo | None) -> list[str]:
        lines = []
        if self.incident_start is not None:
            lines.append(f"- **Start:** {format_time(self.incident_start, tz)} (first layer not OK)")
            if self.incident_end is not None:
                lines.append(f"- **End:** {format_time(self.incident_end, tz)} (every layer OK again)")
                lines.append(f"- **Duration:** {human_duration(self.incident_end - self.incident_start)}")
            else:
                lines.append(f"- **End:** ongoing at {format_time(now, tz)}")
                lines.append(f"- **Duration:** {human_duration(now - self.incident_start)} so far")
            if self.episodes > 1:
                lines.append(f"- **Episodes:** {self.episodes} (it recovered and failed again)")
        every = f" every {format_duration(self.interval)}" if self.interval else ""
        source = f" (`{self.source}`)" if self.source else ""
        watched = (
            f"{format_time(self.first_at, tz)} to {format_time(now, tz)}, {self.rounds} rounds{every}"
            if self.first_at is not None
            else "nothing yet (no round finished)"
        )
        lines.append(f"- **Watched:** {self.layout_name}{source}, {watched}")
        return lines

    def _impact(self, now: float) -> list[str]:
        lines = ["| layer | worst | unhealthy for | checks affected |", "|---|---|---|---|"]
        for name, span in self._layer_spans.items():
            if span.worst is Status.OK:
                continue
            checks = [
                f"{self._checks[cid][1]} ("
                + ", ".join(f"{status.word} {human_duration(spent)}" for status, spent in cspan.per_status(now))
                + ")"
                for cid, cspan in self._check_spans.items()
                if self._checks[cid][0] == name and cspan.worst is not Status.OK
            ]
            lines.append(
                _row(
                    name,
                    f"{span.worst.label}",
                    human_duration(span.total(now)),
                    ", ".join(checks) or "—",
                )
            )
        return lines

    def _root_cause(self, tz: _dt.tzinfo | None) -> list[str]:
        cause = self.root_cause()
        transients = self.transient_verdicts()
        if cause is None:
            lines = ["No confirmed verdict was reached." if transients else "No verdict was reached."]
            return lines + self._transient_lines(transients, tz)
        at, verdict = cause
        lines = [
            f"**{verdict.layer}** ({verdict.role}) — {verdict.status.label}, "
            f"named at {format_time(at, tz, date=False)}",
            "",
            f"> {_report_summary(verdict)}",
            "",
            "Evidence:",
            "",
        ]
        lines += [f"- {item}" for item in verdict.evidence] or ["- (none recorded)"]
        recovered = self._recovered_at[self._verdicts.index(cause)]
        if recovered is not None:
            lines += [
                "",
                f"Recovered at {format_time(recovered, tz, date=False)}: it answered again while the LB "
                "had yet to take its members back.",
            ]
        if verdict.also_failing:
            lines += ["", "Also failing:", ""] + [f"- {item}" for item in verdict.also_failing]
        others = [(t, v) for t, v in self.confirmed_verdicts() if v is not verdict]
        if others:
            lines += ["", "Other verdicts during the incident (in order):", ""]
            lines += [
                f"- {format_time(t, tz, date=False)}: {verdict_words(v.layer, v.status)} — {_report_summary(v)}"
                for t, v in others
            ]
        return lines + self._transient_lines(transients, tz)

    def _transient_lines(self, transients: list[tuple[float, Verdict]], tz: _dt.tzinfo | None) -> list[str]:
        if not transients:
            return []
        lines = ["", "Transient verdicts (never confirmed by re-probes; not the root cause):", ""]
        return lines + [
            f"- {format_time(t, tz, date=False)}: {verdict_words(v.layer, v.status)} — {_report_summary(v)}"
            for t, v in transients
        ]

    def _table(self, tz: _dt.tzinfo | None) -> list[str]:
        lines = ["| time | layer | transition | detail |", "|---|---|---|---|"]
        if self.dropped:
            lines.append(_row("…", "", "", f"{self.dropped} earlier events not kept"))
        for event in self.events:
            stamp = format_time(event.at, tz, date=False)
            if event.kind == VERDICT:
                detail = "" if event.after is Status.OK else event.detail
                lines.append(_row(stamp, "—", event.verdict_words, detail))
            else:
                lines.append(_row(stamp, event.layer or "—", event.transition, f"{event.check}: {event.detail}"))
        if not self.events:
            lines.append(_row("—", "", "", "no transitions recorded"))
        return lines

    def _ruled_out_lines(self, tz: _dt.tzinfo | None) -> list[str]:
        if not self._ruled_out:
            return ["Nothing: every layer failed at some point."]
        lines = []
        for ruled in sorted(self._ruled_out.values(), key=lambda r: r.since):
            tail = f" — until it failed at {format_time(ruled.until, tz, date=False)}" if ruled.until else ""
            lines.append(f"- {format_time(ruled.since, tz, date=False)} — **{ruled.layer}**: {ruled.proof}{tail}")
        return lines


# --------------------------------------------------------------------------- helpers


def _proof_of(diagnosis: Diagnosis, layer_name: str) -> str:
    prefix = layer_name + ": "
    if diagnosis.verdict is not None:
        for item in diagnosis.verdict.ruled_out:
            if item.startswith(prefix):
                return item[len(prefix) :]
    return "healthy"


_MEASURE = re.compile(r"\d+(?:\.\d+)?\s*(?:ms|s|%|[KMGT]i?B|days?)\b")


def verdict_words(layer: str, status: Status) -> str:
    """'verdict: Load balancer ✖ CRIT': a verdict row in the timeline table and in
    'Other verdicts', the same words in both."""
    return f"verdict: {layer} {status.label}"


def failure_class(state: CheckState) -> tuple[str, str]:
    """How a check fails, for deciding whether it changed: its error kind and its key
    fact with measurements masked ('308 ms', '93%'), so a latency that flaps from 301 to
    308 ms is not news while a 404 that became a 503 is. The second item is what the
    event shows ('404 → 503')."""
    result = state.result
    kind = str(result.error_kind or "")
    fact = result.key_fact or kind or result.status.word
    return kind + "|" + _MEASURE.sub("#", fact), fact


def _report_summary(verdict: Verdict) -> str:
    """The verdict's one line without the count of other failing checks: the report
    lists every failing check under Evidence."""
    return verdict.compose(more="")


def _row(*cells: str) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def format_time(at: float | None, tz: _dt.tzinfo | None = None, *, date: bool = True) -> str:
    """Local time by default (the operator's clock); `tz` for reproducible output."""
    if at is None:
        return "—"
    moment = _dt.datetime.fromtimestamp(at, tz) if tz is not None else _dt.datetime.fromtimestamp(at).astimezone()
    if not date:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def human_duration(seconds: float) -> str:
    """'45s', '3m 05s', '1h 02m': the precision a person reads, not a parser."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
