"""Streaming verdicts: news only when the verdict changes or becomes confirmed."""

from __future__ import annotations

from stackscope.diagnosis import assess
from stackscope.stream import VerdictStream
from tests.unit.test_diagnosis import H503, LAYOUT, REFUSED, F, snapshot


def test_the_first_diagnosis_is_news_then_only_changes():
    stream = VerdictStream()
    healthy = assess(snapshot(LAYOUT, {}))
    assert stream.news(healthy)
    assert not stream.news(assess(snapshot(LAYOUT, {})))
    unconfirmed = F(REFUSED.status, REFUSED.kind, REFUSED.detail, confirmed=False)
    assert stream.news(assess(snapshot(LAYOUT, {"db": unconfirmed})))
    assert not stream.news(assess(snapshot(LAYOUT, {"db": unconfirmed})))
    # the same verdict, confirmed by the re-probes: news (the line loses "(unconfirmed)")
    assert stream.news(assess(snapshot(LAYOUT, {"db": REFUSED})))
    assert not stream.news(assess(snapshot(LAYOUT, {"db": REFUSED})))
    assert stream.news(assess(snapshot(LAYOUT, {"lb": H503})))
    assert stream.news(assess(snapshot(LAYOUT, {})))


def test_judge_holds_the_verdict_while_a_round_is_partial():
    stream = VerdictStream()
    assert stream.judge(None) is None  # the engine has no complete snapshot yet
    first = stream.judge(snapshot(LAYOUT, {"db": REFUSED}))
    assert first is not None and first.verdict.layer == "Database"
    assert stream.judge(snapshot(LAYOUT, {"db": REFUSED})) is None


def test_an_early_verdict_only_when_no_outcome_of_the_checks_still_out_can_change_it():
    from stackscope.model import ErrorKind as K
    from stackscope.model import Status
    from stackscope.stream import settled
    from tests.unit.test_diagnosis import FRONT_TIMEOUT, linked

    drift = F(Status.CRIT, K.POOL, "none of the declared backends is in pool auth")
    # the pool is misrouted: the LB's whatever its frontend check, still out, will say
    early = settled(linked({"pool": drift}), {"LB/front"})
    assert early is not None and early.verdict.layer == "LB"
    # the frontend timed out; auth-2's direct check is still out: it may be auth-2's doing
    assert settled(linked({"front": FRONT_TIMEOUT}), {"Backends/auth-2"}) is None
    # too many checks still out: hold
    assert settled(linked({"pool": drift}), {"LB/front", "Backends/auth-1", "Backends/auth-2", "Cache/cache"}) is None


def test_a_verdict_on_evidence_from_two_moments_is_held_until_the_re_probes_are_in():
    """The LB's 503 came 200 ms after the backends' 200s: neither streamed nor, in a
    watch, shown at the round's end, until the backends are probed again."""
    import dataclasses

    from stackscope.diagnosis import assess
    from stackscope.model import ErrorKind, Result, Snapshot, Status
    from stackscope.stream import VerdictStream, held, settled
    from tests.unit.test_diagnosis import AT, H503, TWO_LAYERS, snapshot, timed

    results = {
        cid: timed(r, changed=AT - 600, finished=AT - 0.2) for cid, r in snapshot(TWO_LAYERS, {}).results.items()
    }
    front = timed(snapshot(TWO_LAYERS, {"front": H503}).results["LB/front"], changed=AT, finished=AT)
    results["LB/front"] = front
    stale = Snapshot(TWO_LAYERS, results, AT)
    assert settled(stale, set()) is None and VerdictStream().judge(stale) is None
    assert held(assess(stale))
    refused = Result("Backends/auth-2", Status.CRIT, "refused", error_kind=ErrorKind.REFUSED)
    for cid in results:
        if cid != "LB/front":
            results[cid] = dataclasses.replace(results[cid], finished_at=AT + 0.01)
    results["Backends/auth-2"] = timed(refused, changed=AT - 600, finished=AT + 0.01)
    fresh = settled(Snapshot(TWO_LAYERS, results, AT + 0.02), set())
    assert fresh is not None and fresh.verdict.layer == "Backends" and not held(fresh)
