"""`stackscope walkthrough draft RECORDING`: a walkthrough drafted from a team's own incident.

The recording (recording.py) is judged again as `replay --plain` judges it; what the
dashboard said, and when, becomes the skeleton a trainer fills in: the first verdict
naming a broken layer is the alert (T+0), the checks turning red and the verdict changes
are story events at their real offsets (story minutes are the incident's minutes: the
walkthrough's clock runs at the replay's speed), the confirmed root cause (the timeline's
rule) is the answer, and the debrief says what the dashboard showed and when. What only
the trainer knows — the story lines, the hints, the root cause in words — is left as
TODO. The file is data dumped through the YAML emitter, never a template, so no recorded
text can break out of its string.
"""

from __future__ import annotations

import os
import re

import yaml

from stackscope.model import Status
from stackscope.replay import SPEEDS, ReplayError, load, play_lines
from stackscope.safetext import safe_value
from stackscope.timeline import CHECK, VERDICT, Event, Timeline, format_time

TODO = "TODO"
MAX_EVENTS = 24  # a flapping incident would bury the story: the first changes, and a note of the rest
PLAY_SECONDS = 180.0  # the replay's speed is the slowest that plays the incident within this


class DraftError(ValueError):
    """A recording no walkthrough can be drafted from, with the reason in words."""


def alert_at(timeline: Timeline, cause_at: float) -> float:
    """T+0 of a walkthrough drafted from a recording: its first verdict naming a broken
    layer (the replay of the walkthrough finds it the same way)."""
    return next((e.at for e in timeline.events if e.kind == VERDICT and e.after is not Status.OK), cause_at)


def _minutes(at: float, alert: float) -> float:
    return round((at - alert) / 60.0, 3)


def _red(event: Event) -> bool:
    """A check turning red, or the verdict naming (another) broken layer."""
    return event.after is not Status.OK and (event.before is None or event.before.rank < event.after.rank)


def draft(recording_path: str, out_path: str) -> dict:
    """The walkthrough drafted from the recording at `recording_path`, as data, for a
    file at `out_path` (its `recording:` is relative to that file's folder)."""
    try:
        recording, layout = load(recording_path)
    except ReplayError as error:
        raise DraftError(str(error)) from None
    _, _, timeline = play_lines(recording, layout, lambda line: None)
    cause = timeline.root_cause()
    if cause is None:
        raise DraftError("the recording shows no confirmed verdict: there is no broken layer to ask for")
    cause_at, verdict = cause
    verdicts = [e for e in timeline.events if e.kind == VERDICT]
    alert = alert_at(timeline, cause_at)
    checks = [e for e in timeline.events if e.kind == CHECK and _red(e)]
    first_red = min([alert, *(e.at for e in checks)])
    shown = [e for e in timeline.events if (e.kind == VERDICT and e.at >= first_red) or e in checks]
    left_out = max(0, len(shown) - MAX_EVENTS)
    events = []
    for event in shown[:MAX_EVENTS]:
        is_alert = event.kind == VERDICT and event.at == alert and event.after is not Status.OK
        what = event.line(date=False)
        events.append(
            {
                "at": _minutes(event.at, alert),
                "kind": "alert" if is_alert else "note",
                "text": f"{TODO}: what the team saw or said here (the dashboard, {what})",
            }
        )
    end = max([step.at for step in recording.steps] or [alert])
    span = end - first_red
    speed = next((s for s in SPEEDS if span / s <= PLAY_SECONDS), SPEEDS[-1])
    when = [f"{e.line(date=False)}" for e in verdicts[:MAX_EVENTS]]
    dashboard = (
        f"At {format_time(cause_at, date=False)} ({_label(_minutes(cause_at, alert))}) the dashboard named "
        f"{verdict.headline}. Its verdicts: " + "; ".join(when) + "."
    )
    if left_out:
        dashboard += f" ({left_out} later changes are not drafted as events.)"
    alert_clock = format_time(alert, date=False)[:5]
    return safe_value(
        {
            "name": _slug(recording_path),
            "title": f"{TODO}: a title that does not give the answer away",
            "summary": f"{TODO}: what the on-call knew when they were paged, in two sentences.",
            "recording": os.path.relpath(os.path.abspath(recording_path), os.path.dirname(os.path.abspath(out_path))),
            "fault_at": _minutes(first_red, alert),
            "answer": verdict.layer,
            "clock": {"start": alert_clock, "minutes_per_second": round(speed / 60.0, 6)},
            "events": events,
            "hints": [
                {"cost": 10, "text": f"{TODO}: a first hint that narrows the search"},
                {"cost": 20, "text": f"{TODO}: a second hint (the dashboard's evidence: {verdict.headline})"},
            ],
            "debrief": {
                "root_cause": f"{TODO}: what really broke, and why. The recording's verdict: {verdict.headline}",
                "dashboard": dashboard,
                "misleading": [f"{TODO}: the signals that pointed elsewhere"],
                "measures": [f"{TODO}: what the team changed afterwards"],
            },
        }
    )


def _label(minutes: float) -> str:
    return f"T{'+' if minutes >= 0 else '-'}{abs(minutes) * 60:.0f}s"


def _slug(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "incident"


HEAD = (
    "# A walkthrough drafted by `stackscope walkthrough draft` from a recording.\n"
    "# Replace every TODO with the story; play it with `stackscope demo --walkthrough FILE`.\n"
)


def render(data: dict) -> str:
    return HEAD + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
