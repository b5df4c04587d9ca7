"""The incident timeline with a fixed clock and hand-built snapshots."""

from __future__ import annotations

import datetime as dt

from stackscope.diagnosis import assess
from stackscope.model import Status
from stackscope.timeline import CHECK, VERDICT, Timeline, human_duration
from tests import dashboard_data as data

UTC = dt.timezone.utc


def observe(timeline: Timeline, broken: bool, at: float):
    return timeline.observe(assess(data.snapshot(broken, at=at)))


def incident() -> Timeline:
    """Healthy, then the LB fails for a minute, then healthy again."""
    timeline = Timeline("auth-prod", source="auth-prod.yaml", interval=2)
    observe(timeline, False, data.T0)
    observe(timeline, True, data.T0 + 10)
    observe(timeline, True, data.T0 + 20)
    observe(timeline, False, data.T0 + 70)
    return timeline


def test_first_healthy_round_is_one_event():
    events = Timeline("auth-prod").observe(assess(data.snapshot(False, at=data.T0)))
    assert [(e.kind, e.after, e.detail) for e in events] == [(VERDICT, Status.OK, "all layers healthy (6 checks)")]


def test_transitions_and_verdict_changes_are_recorded_once():
    timeline = Timeline("auth-prod")
    observe(timeline, False, data.T0)
    failing = observe(timeline, True, data.T0 + 10)
    assert [(e.kind, e.layer, e.check, e.before, e.after) for e in failing] == [
        (CHECK, "Load balancer", "lb-health", Status.OK, Status.CRIT),
        (VERDICT, "Load balancer", "", Status.OK, Status.CRIT),
    ]
    assert failing[0].detail == "502 Bad Gateway (expected 200)"
    assert failing[0].transition == "✔ OK → ✖ CRIT"
    assert observe(timeline, True, data.T0 + 20) == []  # nothing changed
    recovered = observe(timeline, False, data.T0 + 70)
    assert [(e.kind, e.after) for e in recovered] == [(CHECK, Status.OK), (VERDICT, Status.OK)]
    assert recovered[1].detail == "all layers healthy again"


def test_a_broken_first_round_is_the_start_of_the_incident():
    timeline = Timeline("auth-prod")
    events = observe(timeline, True, data.T0)
    assert events[0].before is None and events[0].transition == "✖ CRIT"
    assert timeline.incident_start == data.T0 and timeline.incident_end is None


def test_event_line_is_one_plain_line():
    timeline = Timeline("auth-prod")
    observe(timeline, False, data.T0)
    check, verdict = observe(timeline, True, data.T0 + 10)
    assert check.line(UTC) == (
        "2023-11-14 22:13:30 UTC  Load balancer / lb-health  ✔ OK → ✖ CRIT  502 Bad Gateway (expected 200)"
    )
    assert verdict.line(UTC, date=False).startswith(
        "22:13:30  verdict  ✖ CRIT  Load balancer is the broken layer — Load balancer: 502 Bad Gateway"
    )


def test_markdown_is_a_postmortem_draft():
    text = incident().to_markdown(now=data.T0 + 80, tz=UTC)
    assert text.startswith("# Incident report: auth-prod — Load balancer CRIT\n")
    assert "- **Start:** 2023-11-14 22:13:30 UTC (first layer not OK)" in text
    assert "- **End:** 2023-11-14 22:14:30 UTC (every layer OK again)" in text
    assert "- **Duration:** 1m 00s" in text
    assert "| Load balancer | ✖ CRIT | 1m 00s | lb-health (CRIT 1m 00s) |" in text
    root = text[text.index("## Root cause") : text.index("## Timeline")]
    assert "**Load balancer** (lb) — ✖ CRIT, named at 22:13:30" in root
    assert "> Load balancer: 502 Bad Gateway (expected 200)" in root
    assert "- lb-health: CRIT — 502 Bad Gateway (expected 200)" in root
    table = text[text.index("## Timeline") : text.index("## Ruled out")]
    assert "| 22:13:30 | Load balancer | ✔ OK → ✖ CRIT | lb-health: 502 Bad Gateway (expected 200) |" in table
    assert "| 22:13:30 | — | verdict: Load balancer ✖ CRIT | Load balancer: 502 Bad Gateway (expected 200) |" in table
    assert "| 22:14:30 | — | verdict: all layers healthy again |  |" in table
    ruled = text[text.index("## Ruled out") :]
    assert "- 22:13:30 — **Auth backends**: 3/3 answer 200 directly" in ruled
    assert "- 22:13:30 — **DNS**: auth.stackscope.test → 127.0.0.1 as expected" in ruled


def test_an_ongoing_incident_says_so():
    timeline = Timeline("auth-prod")
    observe(timeline, False, data.T0)
    observe(timeline, True, data.T0 + 10)
    text = timeline.to_markdown(now=data.T0 + 130, tz=UTC)
    assert "- **End:** ongoing at 2023-11-14 22:15:30 UTC" in text
    assert "- **Duration:** 2m 00s so far" in text
    assert "| Load balancer | ✖ CRIT | 2m 00s |" in text


def test_no_incident_is_a_short_watch_report(tmp_path):
    timeline = Timeline("auth-prod")
    observe(timeline, False, data.T0)
    observe(timeline, False, data.T0 + 2)
    path = timeline.write(tmp_path / "t.md", tz=UTC)
    text = path.read_text()
    assert text.startswith("# Watch report: auth-prod — no incident")
    assert "## Root cause" not in text and "2 rounds" in text


def test_a_layer_ruled_out_then_failing_is_marked():
    timeline = Timeline("auth-prod")
    observe(timeline, True, data.T0)
    snap = data.snapshot(True, at=data.T0 + 5)
    results = dict(snap.results)
    from stackscope.model import ErrorKind, Result

    results[data.DB] = Result(data.DB, Status.CRIT, "refused", error_kind=ErrorKind.REFUSED)
    timeline.observe(assess(type(snap)(snap.layout, results, data.T0 + 5, 2)))
    text = timeline.to_markdown(tz=UTC)
    assert "**Database**: 1/1 accept connections — until it failed at 22:13:25" in text


def test_events_are_bounded():
    timeline = Timeline("auth-prod", max_events=5)
    for i in range(20):
        observe(timeline, i % 2 == 1, data.T0 + i)
    assert len(timeline.events) == 5 and timeline.dropped > 0
    assert timeline.episodes == 10
    assert "earlier events not kept" in timeline.to_markdown(tz=UTC)


def test_pipes_in_details_do_not_break_the_table():
    from stackscope.timeline import _row

    assert _row("a|b", "c\nd") == "| a\\|b | c d |"


def test_human_duration():
    assert [human_duration(s) for s in (0, 45, 65, 3600 + 125)] == ["0s", "45s", "1m 05s", "1h 02m"]


def test_timeline_is_pure():
    import stackscope.timeline as module

    source = open(module.__file__).read()
    assert "environ" not in source and "getenv" not in source  # secrets come only from redacted results


def with_results(at: float, **changes):
    from stackscope.model import ErrorKind, Result

    snap = data.snapshot(False, at=at)
    results = dict(snap.results)
    for check_id, (status, detail) in changes.items():
        results[check_id] = Result(
            check_id, status, detail, error_kind=ErrorKind.HTTP_STATUS if status is Status.CRIT else None
        )
    return assess(type(snap)(snap.layout, results, at, 2))


def test_impact_reports_time_per_status():
    timeline = Timeline("auth-prod")
    timeline.observe(assess(data.snapshot(False, at=data.T0)))
    timeline.observe(with_results(data.T0 + 10, **{data.LB: (Status.CRIT, "502 Bad Gateway")}))
    timeline.observe(with_results(data.T0 + 16, **{data.LB: (Status.WARN, "slow: 900 ms")}))
    timeline.observe(assess(data.snapshot(False, at=data.T0 + 21)))
    text = timeline.to_markdown(tz=UTC)
    assert "lb-health (CRIT 6s, WARN 5s)" in text
    assert "(CRIT, 11s)" not in text


def test_root_cause_drops_the_banners_more_marker():
    timeline = Timeline("auth-prod")
    timeline.observe(assess(data.snapshot(False, at=data.T0)))
    diagnosis = with_results(
        data.T0 + 10,
        **{
            data.B1: (Status.CRIT, "500 Internal Server Error"),
            data.B2: (Status.CRIT, "500 Internal Server Error"),
            data.B3: (Status.CRIT, "500 Internal Server Error"),
        },
    )
    timeline.observe(diagnosis)
    assert "(+2 more failing checks)" in diagnosis.verdict.summary  # the banner's short form
    root = timeline.to_markdown(tz=UTC).split("## Root cause")[1].split("## Timeline")[0]
    assert "more)" not in root
    assert root.count("CRIT — 500 Internal Server Error") == 3  # every failing check, under Evidence


def results_at(at: float, **changes):
    """A healthy snapshot at `at` with some results replaced: id=(status, detail, kind, key_fact)."""
    from stackscope.model import Result

    snap = data.snapshot(False, at=at)
    results = dict(snap.results)
    for check_id, (status, detail, kind, fact) in changes.items():
        results[data.__dict__[check_id]] = Result(
            data.__dict__[check_id], status, detail, error_kind=kind, key_fact=fact, latency_ms=3.0
        )
    return assess(type(snap)(snap.layout, results, at, 2))


def test_failing_another_way_with_the_same_status_is_an_event():
    from stackscope.model import ErrorKind as K

    timeline = Timeline("auth-prod")
    timeline.observe(results_at(data.T0))
    timeline.observe(results_at(data.T0 + 10, LB=(Status.CRIT, "404 Not Found (expected 200)", K.HTTP_STATUS, "404")))
    events = timeline.observe(
        results_at(data.T0 + 20, LB=(Status.CRIT, "503 Service Unavailable (expected 200)", K.HTTP_STATUS, "503"))
    )
    check = [e for e in events if e.kind == CHECK]
    assert [(e.before, e.after, e.change) for e in check] == [(Status.CRIT, Status.CRIT, "404 → 503")]
    assert check[0].transition == "✖ CRIT (404 → 503)"
    verdict = [e for e in events if e.kind == VERDICT]  # the summary's first clause changed: a new verdict
    assert len(verdict) == 1 and "503 Service Unavailable" in verdict[0].detail
    events = timeline.observe(
        results_at(data.T0 + 30, LB=(Status.CRIT, "cannot resolve lb.example: NXDOMAIN", K.RESOLVE, "no address"))
    )
    assert [e.change for e in events if e.kind == CHECK] == ["503 → no address"]
    table = timeline.to_markdown(tz=UTC)
    assert "| 22:13:40 | Load balancer | ✖ CRIT (404 → 503) | lb-health: 503 Service Unavailable" in table


def test_a_flapping_latency_is_not_news():
    from stackscope.model import ErrorKind as K

    timeline = Timeline("auth-prod")
    timeline.observe(results_at(data.T0))
    timeline.observe(
        results_at(data.T0 + 10, DB=(Status.WARN, "answered in 301 ms (warn above 200 ms)", K.SLOW, "301 ms"))
    )
    for i, ms in enumerate((308, 297, 312)):
        assert (
            timeline.observe(
                results_at(
                    data.T0 + 12 + i, DB=(Status.WARN, f"answered in {ms} ms (warn above 200 ms)", K.SLOW, f"{ms} ms")
                )
            )
            == []
        )


def _incident_of_three_faults() -> Timeline:
    """lb-misroute, then a DNS failure while the LB is still broken, then a slow
    database, then healthy: the LB failed first and as badly as DNS."""
    from stackscope.model import ErrorKind as K

    timeline = Timeline("auth-prod", interval=0.1)
    timeline.observe(results_at(data.T0))
    lb = (Status.CRIT, "pool auth_servers routes to 127.0.0.1:19101", K.POOL, "pool drift")
    timeline.observe(results_at(data.T0 + 10, LB=lb))
    timeline.observe(
        results_at(data.T0 + 40, LB=lb, DNS=(Status.CRIT, "NXDOMAIN for auth.stackscope.test", K.DNS_RCODE, "NXDOMAIN"))
    )
    timeline.observe(results_at(data.T0 + 70, DB=(Status.WARN, "answered in 310 ms", K.SLOW, "310 ms")))
    timeline.observe(results_at(data.T0 + 90))
    return timeline


def test_root_cause_is_the_first_verdict_at_the_worst_severity():
    timeline = _incident_of_three_faults()
    at, cause = timeline.root_cause()
    assert (at, cause.layer) == (data.T0 + 10, "Load balancer")
    text = timeline.to_markdown(tz=UTC)
    assert text.startswith("# Incident report: auth-prod — Load balancer CRIT\n")
    root = text[text.index("## Root cause") : text.index("## Timeline")]
    others = root[root.index("Other verdicts") :].splitlines()[2:]
    assert [line.split(" — ")[0] for line in others if line] == [
        "- 22:14:00: verdict: DNS ✖ CRIT",
        "- 22:14:30: verdict: Database ▲ WARN",
    ]
    table = text[text.index("## Timeline") : text.index("## Ruled out")]
    for line in others:  # the same words as the timeline's rows
        if line:
            stamp, words = line[2:].split(": ", 1)
            assert f"| {stamp} | — | {words.split(' — ')[0]} | {words.split(' — ', 1)[1]} |" in table
    assert "| 22:14:50 | — | verdict: all layers healthy again |  |" in table


def test_report_header_and_last_line():
    text = _incident_of_three_faults().to_markdown(tz=UTC)
    assert "rounds every 100ms" in text
    assert text.endswith("check it before you publish it.\n") and not text.endswith("\n\n")


def results_unconfirmed(at: float, **changes):
    """results_at, with the changed results still awaiting their confirmation re-probes."""
    import dataclasses

    diagnosis = results_at(at, **changes)
    snap = diagnosis.snapshot
    ids = {data.__dict__[name] for name in changes}
    results = {cid: dataclasses.replace(r, confirmed=cid not in ids) for cid, r in snap.results.items()}
    return assess(type(snap)(snap.layout, results, at, snap.round))


def test_a_transient_verdict_is_never_the_root_cause():
    """A blip on the LB (never confirmed: its re-probes answered) is shown, marked
    unconfirmed, then the confirmed fault of the database is the root cause, though it
    came later and the blip was as severe."""
    from stackscope.model import ErrorKind as K

    timeline = Timeline("auth-prod", interval=2)
    timeline.observe(results_at(data.T0))
    blip = (Status.CRIT, "502 Bad Gateway (expected 200)", K.HTTP_STATUS, "502")
    events = timeline.observe(results_unconfirmed(data.T0 + 10, LB=blip), partial=True)
    line = next(e for e in events if e.kind == VERDICT).line(UTC)
    assert "Load balancer is the broken layer (unconfirmed)" in line
    timeline.observe(results_at(data.T0 + 11))  # the re-probes answered: a blip
    db = (Status.CRIT, "127.0.0.1:15432 refused the connection", K.REFUSED, "refused")
    timeline.observe(results_unconfirmed(data.T0 + 20, DB=db), partial=True)
    confirmed = timeline.observe(results_at(data.T0 + 21, DB=db))
    assert [e.line(UTC) for e in confirmed if e.kind == VERDICT][0].endswith(
        "Database is the broken layer — Database: 127.0.0.1:15432 refused the connection"
    )
    timeline.observe(results_at(data.T0 + 40))
    at, cause = timeline.root_cause()
    assert (at, cause.layer) == (data.T0 + 20, "Database")
    text = timeline.to_markdown(tz=UTC)
    assert text.startswith("# Incident report: auth-prod — Database CRIT\n")
    root = text[text.index("## Root cause") : text.index("## Timeline")]
    transients = root[root.index("Transient verdicts") :]
    assert "- 22:13:30: verdict: Load balancer ✖ CRIT — Load balancer: 502 Bad Gateway" in transients
    assert "Other verdicts" not in root  # the blip is not one of them
    assert timeline.rounds == 4  # partial observations are not rounds


def test_an_incident_of_blips_only_has_no_root_cause():
    from stackscope.model import ErrorKind as K

    timeline = Timeline("auth-prod", interval=2)
    timeline.observe(results_at(data.T0))
    blip = (Status.CRIT, "502 Bad Gateway (expected 200)", K.HTTP_STATUS, "502")
    timeline.observe(results_unconfirmed(data.T0 + 10, LB=blip), partial=True)
    timeline.observe(results_at(data.T0 + 11))
    assert timeline.root_cause() is None
    root = timeline.to_markdown(tz=UTC)
    assert "No confirmed verdict was reached." in root and "Transient verdicts" in root


def test_a_recovery_is_recorded_on_the_verdict_it_follows_not_as_another_verdict():
    """Killed backends, then back while the LB has yet to re-check them, then healthy: the
    timeline keeps one verdict (the backends), with when they answered again."""
    from tests.unit.test_diagnosis import AT, H503, REFUSED, TWO_LAYERS, recovering_pool, snapshot, two_layer_snapshot

    timeline = Timeline("two", interval=2)
    timeline.observe(assess(snapshot(TWO_LAYERS, {})), at=AT - 20)
    down = {"auth-1": REFUSED, "auth-2": REFUSED, "auth-3": REFUSED, "front": H503}
    named = timeline.observe(assess(snapshot(TWO_LAYERS, down)), at=AT - 10)
    assert [e.verdict_words for e in named if e.kind == VERDICT] == ["verdict: Backends ✖ CRIT"]
    back = {"pool": recovering_pool((1, 2, 3)), "front": H503}
    recovering = [
        e
        for e in timeline.observe(assess(two_layer_snapshot(back, {"auth-1": 1, "auth-2": 1, "auth-3": 1})), at=AT)
        if e.kind == VERDICT
    ]
    assert [e.verdict_words for e in recovering] == ["verdict: Backends recovering"]
    assert "✖ CRIT  Backends recovering: auth-1, auth-2 and auth-3 answer again; HAProxy takes them back" in (
        recovering[0].line(UTC)
    )
    timeline.observe(assess(snapshot(TWO_LAYERS, {})), at=AT + 2)
    assert [v.layer for _, v in timeline.confirmed_verdicts()] == ["Backends"]
    report = timeline.to_markdown(tz=UTC)
    assert "Recovered at 00:16:40" in report and "Other verdicts" not in report


def test_an_unknown_verdict_is_cannot_tell_never_the_broken_layer():
    """Issue 21: a stats page without `stats show-legends` is UNKNOWN (the check cannot
    read its evidence); the line said the LB "is the broken layer"."""
    from stackscope.model import ErrorKind as K

    timeline = Timeline("auth-prod", interval=2)
    timeline.observe(results_at(data.T0))
    unreadable = (Status.UNKNOWN, "the stats page has no legends", K.CONFIG, "no legends")
    events = timeline.observe(results_at(data.T0 + 10, LB=unreadable))
    line = next(e for e in events if e.kind == VERDICT).line(UTC)
    assert "Load balancer: cannot tell (its evidence cannot be read) — " in line, line
    assert "broken layer" not in line
