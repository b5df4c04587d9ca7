"""Walkthroughs: the shipped files validate, bad files give clear problems, and a session
plays on a clock the test controls."""

from __future__ import annotations

import pytest

from stackscope.demo.walkthrough import Session, builtin_walkthroughs, find_walkthrough, load_walkthrough
from stackscope.layout import LayoutError


@pytest.mark.parametrize("name", ["inc-2023-12-07", "inc-2024-03-14", "inc-2024-06-21"])
def test_shipped_walkthroughs_load(name):
    walkthrough = load_walkthrough(builtin_walkthroughs()[name])
    assert walkthrough.events and walkthrough.hints and walkthrough.debrief.root_cause
    assert walkthrough.begins_at < 0 <= max(e.at for e in walkthrough.events)


@pytest.mark.parametrize(
    "text,needle",
    [
        (
            "name: x\ntitle: t\nfault: lb-misrout\nanswer: DNS\ndebrief: {root_cause: r, dashboard: d}\n",
            "lay.yaml:3: unknown fault 'lb-misrout' — did you mean 'lb-misroute'?",
        ),
        (
            "name: x\ntitle: t\nfault: lb-misroute\nanswer: Loadbalancer\ndebrief: {root_cause: r, dashboard: d}\n",
            "lay.yaml:4: answer 'Loadbalancer' is not a layer of the demo — did you mean 'Load balancer'?",
        ),
        (
            "name: x\ntitle: t\nfault: lb-misroute\nanswer: DNS\nhint: []\ndebrief: {root_cause: r, dashboard: d}\n",
            "lay.yaml:5: unknown key 'hint' — did you mean 'hints'?",
        ),
        (
            "name: x\ntitle: t\nfault: lb-misroute\nanswer: DNS\nevents:\n  - {at: soon, text: x}\n"
            "debrief: {root_cause: r, dashboard: d}\n",
            "lay.yaml:6: events[0]: 'at' must be float",
        ),
        ("name: x\ntitle: t\nfault: lb-misroute\nanswer: DNS\n", "missing required key 'debrief'"),
    ],
)
def test_bad_walkthroughs_name_line_and_fix(tmp_path, text, needle):
    path = tmp_path / "lay.yaml"
    path.write_text(text)
    with pytest.raises(LayoutError) as info:
        load_walkthrough(str(path))
    assert any(needle in f"{p}".replace(str(tmp_path) + "/", "") for p in info.value.problems), info.value


def test_find_walkthrough_suggests_names():
    with pytest.raises(LayoutError, match="did you mean .inc-2023-12-07."):
        find_walkthrough("inc-2023-12-7")


def test_session_plays_on_a_controlled_clock():
    walkthrough = load_walkthrough(builtin_walkthroughs()["inc-2023-12-07"])  # starts at T-20, 2 story min/s
    session = Session(walkthrough, started=1000.0)
    assert session.story_clock(1000.0) == "15:10" and session.label(-20) == "T-20"
    assert [e.at for e in session.due_events(1000.0)] == [-20]
    assert session.due_events(1000.0) == []  # each event once
    assert not session.fault_due(1000.0)
    assert session.fault_due(1008.0)  # T-4: the fault starts
    assert not session.fault_due(1009.0)  # once
    assert [e.kind for e in session.due_events(1010.0)] == ["change", "alert"]  # T-6 and T+0
    first = session.take_hint()
    assert first.cost == 10 and session.score == 90
    wrong = session.answer("Session store", 1012.0)
    assert not wrong.correct and "−15 points" in wrong.message and session.score == 75
    right = session.answer("Load balancer", 1014.0)  # T+8
    assert right.correct and session.finished
    story, real = session.diagnosis_time()
    assert story == 8.0 and real == 4.0  # real seconds from the first alert (T+0 at 1010)
    assert session.take_hint() is None  # no hints after the end
    lines = session.debrief_lines("Load balancer: pool auth_servers routes to …", ("Auth backends: 3/3 answer 200",))
    text = "\n".join(lines)
    assert "# Debrief: inc-2023-12-07 — Logins fail after a quiet afternoon change" in text  # the title, at last
    assert "You named **Load balancer** 4 s after the first alert (in the story: 15:38, T+8)." in text
    assert (
        "Score: **75/100** — 1 hint (−10), 1 wrong answer (−15: Session store), "
        "time in full (all 30 points within 20 s, none after 3 min)." in text
    )
    assert "- ruled out: Auth backends: 3/3 answer 200" in text
    assert "## Corrective measures" in text and "stackscope lint" in text


def test_an_answer_before_the_fault_is_refused_and_costs_nothing():
    walkthrough = load_walkthrough(builtin_walkthroughs()["inc-2024-03-14"])  # T-45 ..; fault at T-3; 2 min/s
    session = Session(walkthrough, started=1000.0)
    early = session.answer("DNS", 1009.5)  # T-26: every panel is green
    assert early.message == "Nothing is broken yet — watch the panels."
    assert not early.correct and not early.counted
    assert not session.finished and session.wrong == [] and session.score == 100
    wrong_early = session.answer("Load balancer", 1009.5)
    assert not wrong_early.counted and session.score == 100
    right = session.answer("DNS", 1021.5)  # T-2: the fault started at T-3, the alert is at T+0
    assert right.correct and right.counted and session.score == 100
    text = "\n".join(session.debrief_lines())
    assert "You named **DNS** before the first alert (in the story: " in text and "T-2)." in text
    assert "T-2 story minutes after" not in text


def test_relative_story_time_words():
    assert Session.relative(8.0) == "8 story minutes after the alert"
    assert Session.relative(-26.0) == "26 story minutes before the alert"
    assert Session.relative(-1.0) == "1 story minute before the alert"
    assert Session.relative(0.5) == "at the alert"


def test_the_story_clock_stops_at_the_right_answer():
    walkthrough = load_walkthrough(builtin_walkthroughs()["inc-2023-12-07"])  # T-20 ..; fault at T-4; 2 min/s
    session = Session(walkthrough, started=1000.0)
    session.due_events(1014.0)
    assert session.answer("Load balancer", 1014.0).correct  # T+8
    assert session.story_clock(1014.0) == session.story_clock(1500.0) == "15:38"
    assert session.due_events(1500.0) == []  # no story after the answer
    again = session.answer("Load balancer", 1600.0)
    assert not again.counted and session.diagnosis_time() == (8.0, 4.0)


def _started(name: str) -> tuple[Session, float]:
    walkthrough = load_walkthrough(builtin_walkthroughs()[name])
    session = Session(walkthrough, started=1000.0)
    now = 1000.0 + (walkthrough.fault_at - walkthrough.begins_at) / walkthrough.minutes_per_second + 1
    assert session.fault_started(now)
    return session, now


def test_a_repeated_wrong_answer_costs_nothing_more():
    session, now = _started("inc-2023-12-07")
    first = session.answer("Auth backends", now)
    assert first.counted and session.score == 85
    again = session.answer("Auth backends", now + 1)
    assert (again.correct, again.counted, again.message) == (False, False, "Already tried: Auth backends.")
    assert session.score == 85 and session.wrong == ["Auth backends"]


@pytest.mark.parametrize("name", ["inc-2023-12-07", "inc-2024-03-14", "inc-2024-06-21"])
def test_every_shipped_walkthrough_has_feedback_for_each_wrong_layer(name):
    from stackscope.demo.stack import LAYERS
    from stackscope.demo.walkthrough import DEFAULT_FEEDBACK

    walkthrough = load_walkthrough(builtin_walkthroughs()[name])
    wrong = [layer for layer in LAYERS if layer not in walkthrough.accepted]
    assert sorted(dict(walkthrough.feedback)) == sorted(wrong)
    for layer in wrong:
        assert walkthrough.feedback_for(layer) != DEFAULT_FEEDBACK


def test_session_storm_feedback_does_not_claim_the_backends_answer_directly():
    session, now = _started("inc-2024-06-21")
    message = session.answer("Load balancer", now).message
    assert message.startswith("Not Load balancer (−15 points). ")
    assert "what answers when asked directly" not in message and "health checks fail" in message


def test_feedback_defaults_to_a_neutral_nudge(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(
        "name: x\ntitle: t\nfault: lb-misroute\nfault_at: -1\nanswer: DNS\n"
        "feedback: {Load balancer: 'Look at what the name resolves to.'}\n"
        "debrief: {root_cause: r, dashboard: d}\n"
    )
    from stackscope.demo.walkthrough import DEFAULT_FEEDBACK

    walkthrough = load_walkthrough(str(path))
    assert walkthrough.feedback_for("Load balancer") == "Look at what the name resolves to."
    assert walkthrough.feedback_for("Session store") == DEFAULT_FEEDBACK


@pytest.mark.parametrize(
    "feedback,needle",
    [
        ("feedback: [a]\n", "lay.yaml:5: 'feedback' must be a mapping"),
        (
            "feedback: {Load balanser: x}\n",
            "lay.yaml:5: feedback: 'Load balanser' is not a layer of the demo — did you mean 'Load balancer'?",
        ),
        ("feedback: {DNS: x}\n", "lay.yaml:5: feedback: 'DNS' is the answer: feedback is for wrong answers"),
        ("feedback: {Load balancer: 3}\n", "feedback: the feedback for 'Load balancer' must be a string"),
    ],
)
def test_bad_feedback_is_a_problem_with_its_line(tmp_path, feedback, needle):
    path = tmp_path / "lay.yaml"
    path.write_text(
        "name: x\ntitle: t\nfault: lb-misroute\nanswer: DNS\n" + feedback + "debrief: {root_cause: r, dashboard: d}\n"
    )
    with pytest.raises(LayoutError) as info:
        load_walkthrough(str(path))
    assert any(needle in f"{p}".replace(str(tmp_path) + "/", "") for p in info.value.problems), info.value


def test_score_counts_real_seconds_from_the_first_alert_not_the_story_clock():
    """Two story minutes a second is narration: a trainee who takes 2 min 10 s of real time
    after the alert loses 2 min 10 s' worth, not 260 story minutes' worth (everything)."""
    session, _ = _started("inc-2023-12-07")  # the alert is at real 1010
    assert session.alert_real == 1010.0
    assert session.score_at(1010.0 + 130) == 79  # 30 × 110/160 = 20.6 lost
    assert session.answer("Load balancer", 1010.0 + 130).correct
    assert session.score == 79 and session.score_at(5000.0) == 79  # frozen at the answer
    assert session.diagnosis_time()[1] == 130.0


def test_walkthrough_ids_are_neutral_and_the_title_waits_for_the_debrief():
    from stackscope.demo.run import list_faults

    for name, path in builtin_walkthroughs().items():
        assert name.startswith("inc-") and load_walkthrough(path).name == name
    import io

    out = io.StringIO()
    list_faults(out)
    listed = out.getvalue().split("Walkthroughs", 1)[1]
    for path in builtin_walkthroughs().values():
        assert load_walkthrough(path).title not in listed


# A walkthrough a trainee was sent: every text holds what retitles and clears a terminal,
# a one-byte CSI, a bidi override, and a folded block's newlines.
HOSTILE = r"""name: "inc-\e]0;PWNED\a"
title: "The \e[2Jtitle\u202e"
summary: "Logins \x9b2J fail\e]0;PWNED\a"
fault: lb-misroute
fault_at: -1
answer: DNS
clock: {start: "07:10", minutes_per_second: 2}
events:
  - {at: -2, kind: chat, text: "\e]0;PWNED\a\e[2J"}
  - {at: 0, kind: alert, text: "alert \u202egnissim\u202c"}
hints:
  - {cost: 5, text: "hint \e[31mred"}
feedback: {Load balancer: "no \e]8;;http://x\e\\link"}
also_accept: [{layer: Session store, why: "why \e]0;PWNED\a"}]
debrief:
  root_cause: "cause \e[2J\x07"
  dashboard: >
    shown

    at	once
  misleading: ["mis \e[5mleading"]
  measures: ["measure \u2066iso\u2069"]
  original: "original \x1b[?1049h"
"""


def _strings(value):
    """Every string held by a walkthrough, at any depth of its dataclasses and tuples."""
    import dataclasses

    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            if f.name != "path":  # the file name the user typed, never shown by the dashboard
                yield from _strings(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _strings(item)


def test_every_text_of_a_hostile_walkthrough_is_terminal_safe_where_it_is_loaded(tmp_path):
    from stackscope.safetext import is_terminal_safe

    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE)
    walkthrough = load_walkthrough(str(path))
    texts = list(_strings(walkthrough))
    assert (
        len(texts) >= 16
    )  # name, title, summary, fault, answer, clock, 2 events, hint, feedback, also_accept x2, debrief x5
    unsafe = [text for text in texts if not is_terminal_safe(text)]
    assert unsafe == []
    assert walkthrough.events[0].text == "·]0;PWNED··[2J"  # the words stay, the controls cannot act
    assert walkthrough.debrief.dashboard == "shown at once"  # a folded block (a newline, a tab): one paragraph
    session = Session(walkthrough, started=0.0)
    session.answer("DNS", 100.0)
    assert all(is_terminal_safe(line) for line in session.debrief_lines())
    other = Session(walkthrough, started=0.0)
    other.answer("Session store", 100.0)  # the second answer: its why is in the debrief
    debrief = other.debrief_lines()
    assert all(is_terminal_safe(line) for line in debrief) and any("why ·]0;PWNED·" in line for line in debrief)


def test_a_clock_start_that_is_no_time_is_a_located_problem(tmp_path):
    path = tmp_path / "lay.yaml"
    path.write_text(
        "name: x\ntitle: t\nfault: lb-misroute\nanswer: DNS\nclock: {start: 'ab:cd'}\n"
        "debrief: {root_cause: r, dashboard: d}\n"
    )
    with pytest.raises(LayoutError) as info:
        load_walkthrough(str(path))
    assert "lay.yaml:5: clock: start is HH:MM" in str(info.value).replace(str(tmp_path) + "/", "")


def test_debrief_lists_must_hold_texts(tmp_path):
    path = tmp_path / "lay.yaml"
    path.write_text(
        "name: x\ntitle: t\nfault: lb-misroute\nanswer: DNS\n"
        "debrief: {root_cause: r, dashboard: d, measures: [{a: 1}]}\n"
    )
    with pytest.raises(LayoutError, match="'measures' must be a list of texts"):
        load_walkthrough(str(path))


# --------------------------------------------------------------------------- training that teaches (issue 21)

# The words that name a layer of each role. A story event, the summary or a wrong
# answer's feedback using one of the answer layer's words tells the trainee where to
# look before they have looked ("tidy-up of load balancer pools"); the story says what
# people saw and did. Hints are bought, and may name it.
ROLE_WORDS = {
    "dns": ("dns", "zone", "zones", "record", "records", "resolver", "nameserver", "name server", "ttl", "domain"),
    "lb": ("load balancer", "balancer", "lb", "pool", "pools", "pooling", "haproxy", "upstream", "vip"),
    "backend": ("backend", "backends", "app server", "application server"),
    "db": (
        "database",
        "db",
        "store",
        "session",
        "redis",
        "postgres",
        "sql",
        "connection",
        "connections",
        "primary",
        "replica",
        "cache",
    ),
}


def demo_roles() -> dict[str, str]:
    """The demo layout's layer -> role, read from the layout the demo generates."""
    import re

    from stackscope.demo.stack import PORT_NAMES, layout_text

    text = layout_text(dict.fromkeys(PORT_NAMES, 1))
    return dict(re.findall(r"- name: (.+)\n\s+role: (\w+)", text))


def named_layers(text: str) -> set[str]:
    """The demo layers whose name or role words `text` uses (whole words, any case)."""
    import re

    found = set()
    for layer, role in demo_roles().items():
        for word in (layer.lower(), *ROLE_WORDS[role]):
            if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, re.IGNORECASE):
                found.add(layer)
    return found


def test_the_role_table_covers_the_demo_layers():
    from stackscope.demo.stack import LAYERS

    assert sorted(demo_roles()) == sorted(LAYERS) and set(demo_roles().values()) <= set(ROLE_WORDS)
    assert named_layers("routine tidy-up of load balancer pools") == {"Load balancer"}
    assert named_layers("zone demo.test migrated to the new DNS provider") == {"DNS"}
    assert named_layers("Session store connections climbing steadily") == {"Session store"}
    assert named_layers("the login page says Not Found") == set()


@pytest.mark.parametrize("name", ["inc-2023-12-07", "inc-2024-03-14", "inc-2024-06-21"])
def test_no_story_text_before_the_answer_names_the_answer_layer(name):
    walkthrough = load_walkthrough(builtin_walkthroughs()[name])
    before = [("summary", walkthrough.summary)] + [(f"T{e.at:+g} {e.kind}", e.text) for e in walkthrough.events]
    before += [(f"feedback for {layer}", text) for layer, text in walkthrough.feedback]
    giveaways = [(where, text) for where, text in before if walkthrough.answer in named_layers(text)]
    assert giveaways == []


# What each shipped debrief's root cause blames, as a reader takes it (checked against
# the text's words below, so a rewrite that blames something else fails here).
BLAMED = {
    "inc-2023-12-07": {"Load balancer"},  # the LB change that moved the pool
    "inc-2024-03-14": {"DNS"},  # the stale A record
    "inc-2024-06-21": {"Session store", "Auth backends"},  # the store refused; the release leaked the connections
}


@pytest.mark.parametrize("name", sorted(BLAMED))
def test_the_debriefs_root_cause_is_an_accepted_answer(name):
    walkthrough = load_walkthrough(builtin_walkthroughs()[name])
    root_cause = walkthrough.debrief.root_cause
    words = {"Auth backends": ("auth service", "release")}  # the backends' own words in a root cause
    for layer in BLAMED[name]:
        assert layer in named_layers(root_cause) or any(w in root_cause for w in words.get(layer, ()))
    assert BLAMED[name] <= set(walkthrough.accepted)


def test_a_second_accepted_answer_solves_and_the_debrief_says_why():
    session, now = _started("inc-2024-06-21")
    right = session.answer("Auth backends", now)
    assert right.correct and right.counted and session.finished and session.wrong == []
    assert right.message == "Right — the broken layer: Auth backends."
    text = "\n".join(session.debrief_lines())
    assert "You named **Auth backends** before the first alert" in text
    why = session.walkthrough.why_accepted("Auth backends")
    assert (
        why.startswith("the 2.15.0 release")
        and f"**Auth backends** is accepted as well as **Session store**: {why}" in text
    )


@pytest.mark.parametrize(
    "extra,needle",
    [
        ("also_accept: [{layer: Auth backend, why: w}]\n", "lay.yaml:6: also_accept[0]: 'Auth backend' is not a layer"),
        ("also_accept: [{layer: DNS, why: w}]\n", "lay.yaml:6: also_accept[0]: 'DNS' is already accepted"),
        ("also_accept: [{layer: Auth backends}]\n", "also_accept[0]: missing required key 'why'"),
        (
            "also_accept: [{layer: Auth backends, why: w}]\nfeedback: {Auth backends: x}\n",
            "lay.yaml:7: feedback: 'Auth backends' is accepted (also_accept): feedback is for wrong answers",
        ),
        (
            "scoring: {per_minute: 5}\n",
            "lay.yaml:6: scoring: 'per_minute' is no longer used: the time score runs in seconds — time_points: 30",
        ),
        ("scoring: {full_within: 60, zero_after: 30}\n", "0 <= full_within < zero_after"),
    ],
)
def test_bad_also_accept_and_scoring_name_line_and_fix(tmp_path, extra, needle):
    path = tmp_path / "lay.yaml"
    path.write_text(
        "name: x\ntitle: t\nfault: lb-misroute\nanswer: DNS\ndebrief: {root_cause: r, dashboard: d}\n" + extra
    )
    with pytest.raises(LayoutError) as info:
        load_walkthrough(str(path))
    assert any(needle in f"{p}".replace(str(tmp_path) + "/", "") for p in info.value.problems), info.value


# Real seconds from the first alert to the right answer -> the score (no hints, no wrong
# answers): all 30 time points within 20 s, none from 3 min, linear in between.
SCORES = {0: 100, 10: 100, 20: 100, 30: 98, 45: 95, 60: 92, 100: 85, 120: 81, 150: 76, 180: 70, 600: 70}


@pytest.mark.parametrize("seconds,score", sorted(SCORES.items()))
def test_the_score_rewards_speed_in_the_seconds_trainees_take(seconds, score):
    session, _ = _started("inc-2023-12-07")  # the alert is at real 1010
    assert session.score_at(session.alert_real + seconds) == score
    assert session.answer("Load balancer", session.alert_real + seconds).correct
    assert session.score == score


def test_the_readme_says_how_the_score_is_computed():
    from stackscope.demo.walkthrough import TimeScore

    section = readme_section("## Your first incident")
    rule = TimeScore()
    assert f"{rule.points} points" in section and "20 s" in section and "3 min" in section
    assert "15 points" in section  # a wrong answer


def test_the_debrief_counts_hints_and_wrong_answers_in_words():
    session, now = _started("inc-2024-03-14")
    session.take_hint()
    session.answer("Load balancer", now)
    session.answer("Session store", now)
    session.answer("DNS", now)
    text = "\n".join(session.debrief_lines())
    assert "— 1 hint (−10), 2 wrong answers (−30: Load balancer, Session store), time in full (" in text
    assert "hint(s)" not in text and "answer(s)" not in text and "(−0)" not in text
    assert "You named **DNS** " in text and "the DNS" not in text.split("## Root cause")[0]
    fresh, now = _started("inc-2024-03-14")
    fresh.answer("DNS", now)
    assert "— no hints, no wrong answers, time in full (" in "\n".join(fresh.debrief_lines())
    other, now = _started("inc-2024-03-14")
    assert other.answer("Auth backends", now).message.startswith("Not Auth backends (−15 points). ")


def readme_section(heading: str) -> str:
    """README text from `heading` to the next heading of the same level."""
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    start = text.index(heading + "\n")
    level = heading.split()[0] + " "
    end = text.find("\n" + level, start + len(heading))
    return text[start : end if end > 0 else len(text)]


def test_the_readmes_training_sections_show_how_to_play_never_what_to_find():
    """'Your first incident' tells the keys and the scoring, never a layer as what to find
    (the one line listing all four answer keys names every layer alike); no walkthrough's
    title appears anywhere (it would give its answer away); the format example is no
    shipped walkthrough."""
    from tests.conftest import ROOT

    first = readme_section("## Your first incident")
    lines = [line for line in first.splitlines() if not all(layer in line for layer in demo_roles())]
    named = named_layers("\n".join(lines))
    assert named == set(), [line for line in lines if named_layers(line)]
    readme = (ROOT / "README.md").read_text().lower()
    walkthroughs = [load_walkthrough(path) for path in builtin_walkthroughs().values()]
    assert [w.title for w in walkthroughs if w.title.lower() in readme] == []
    example = readme_section("### Writing a walkthrough")
    assert not any(f"name: {w.name}" in example for w in walkthroughs)
    # nor does it quote a shipped story ("NET-4471 closed" beside the word that gave it away)
    import re

    marks = {m.lower() for w in walkthroughs for e in w.events for m in re.findall(r"[A-Z]+-\d+|\d+\.\d+\.\d+", e.text)}
    assert len(marks) >= 4 and sorted(m for m in marks if m in readme) == []
    assert not any(w.fault in first for w in walkthroughs)  # a fault's name says its layer


def test_the_readmes_walkthrough_example_loads(tmp_path):
    example = readme_section("### Writing a walkthrough").split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    walkthrough = load_walkthrough(str(path))
    assert walkthrough.accepted == ("Auth backends", "Session store")
    assert walkthrough.time_score.lost(180) == 30


def test_free_hints_and_free_wrong_answers_say_no_minus_zero(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(
        "name: x\ntitle: t\nfault: lb-misroute\nfault_at: -1\nanswer: DNS\nscoring: {wrong_answer: 0}\n"
        "hints: [{cost: 0, text: free}]\ndebrief: {root_cause: r, dashboard: d}\n"
    )
    session = Session(load_walkthrough(str(path)), started=0.0)
    session.take_hint()
    assert session.answer("Load balancer", 10.0).message.startswith("Not Load balancer. ")
    session.answer("DNS", 10.0)
    text = "\n".join(session.debrief_lines())
    assert "— 1 hint, 1 wrong answer (Load balancer), time in full (" in text and "−0" not in text
