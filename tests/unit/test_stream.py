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
