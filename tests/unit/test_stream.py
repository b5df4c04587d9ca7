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
