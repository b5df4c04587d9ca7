"""The φ accrual math (suspicion.py): when a silent probe becomes suspected, or never."""

from __future__ import annotations

import math
import random

import pytest

from stackscope.model import SuspectSettings
from stackscope.suspicion import crossing, phi, threshold_z

DEFAULT = SuspectSettings()
STEADY_2MS = [2.0, 2.1, 1.9, 2.0, 2.2, 1.8, 2.0, 2.1, 1.9, 2.0] * 3
_rng = random.Random(20)
# 1–200 ms, log-normal (what bench/false_alarms.py makes the backends answer with)
JITTERY = [min(200.0, max(1.0, _rng.lognormvariate(math.log(14), 1.3))) for _ in range(30)]
STEADY_100MS = [100.0] * 20


@pytest.mark.parametrize(
    "latencies,timeout_ms,settings,expected_ms",
    [
        ([], 3000, DEFAULT, None),  # no history: never
        (STEADY_2MS[:4], 3000, DEFAULT, None),  # fewer answers than min_samples: never
        ([math.nan] * 30, 3000, DEFAULT, None),  # rounds without an answer are no history
        (STEADY_2MS, 3000, DEFAULT, 300.0),  # steady 2 ms: at the absolute floor
        (STEADY_2MS + [math.nan] * 5, 3000, DEFAULT, 300.0),
        (STEADY_2MS, 250, DEFAULT, None),  # the floor is at/after the timeout: never
        (STEADY_2MS, 3000, SuspectSettings(min_silence=1.0), 1000.0),
        (JITTERY, 3000, DEFAULT, None),  # jittery 1–200 ms: left to the timeout
        (STEADY_100MS, 3000, SuspectSettings(min_silence=0), 100 * math.exp(threshold_z(8) * 0.25)),
        (STEADY_100MS, 3000, SuspectSettings(min_silence=0, min_spread=0.5), 100 * math.exp(threshold_z(8) * 0.5)),
        (STEADY_100MS, 3000, SuspectSettings(min_silence=0, threshold=3), 100 * math.exp(threshold_z(3) * 0.25)),
        (STEADY_2MS, 3000, SuspectSettings(min_samples=40), None),
    ],
    ids=[
        "no-history",
        "too-few",
        "no-answers",
        "steady-2ms",
        "steady-2ms-with-timeouts",
        "floor-past-timeout",
        "min-silence",
        "jittery",
        "spread-floor",
        "wider-spread-floor",
        "lower-threshold",
        "min-samples",
    ],
)
def test_when_a_silence_becomes_suspect(latencies, timeout_ms, settings, expected_ms):
    got = crossing(latencies, timeout_ms, settings)
    if expected_ms is None:
        assert got is None
    else:
        assert got is not None and got.silence_ms == pytest.approx(expected_ms)


def test_a_jittery_check_is_suspected_only_after_a_long_silence():
    got = crossing(JITTERY, 3_600_000, DEFAULT)
    assert got is not None and got.silence_ms > 10 * max(JITTERY)


def test_the_threshold_orders_the_crossings_and_phi_agrees():
    history = [40.0, 55.0, 48.0, 70.0, 45.0, 52.0, 61.0, 44.0, 50.0, 58.0]
    free = SuspectSettings(min_silence=0, min_spread=0)
    low, high = (
        crossing(history, 60_000, SuspectSettings(threshold=4, min_silence=0, min_spread=0)),
        crossing(history, 60_000, free),
    )
    assert low is not None and high is not None and max(history) < low.silence_ms < high.silence_ms
    assert phi(history, high.silence_ms, free) == pytest.approx(8.0)
    assert phi(history, low.silence_ms, free) == pytest.approx(4.0)


def test_the_usual_latency_is_the_median_answer():
    got = crossing(STEADY_2MS, 3000, DEFAULT)
    assert got is not None and got.usual_ms == 2.0


def test_huge_spread_does_not_overflow():
    assert crossing([0.0, 1e9] * 5, 3000, SuspectSettings(threshold=300)) is None
