"""When a probe's silence becomes suspicious: the φ of accrual failure detectors.

A backend that accepts and never answers is otherwise seen only when the probe times out,
seconds after the hundredth of a second it usually takes. Hayashibara et al.'s φ (used
by Akka, Cassandra, Hazelcast) turns "still no answer after t" into a level of suspicion,
φ(t) = −log10 P(latency ≥ t), with P fitted to the check's recent answers; a check is
suspected once φ reaches a threshold Φ, i.e. once an answer this late had a chance below
10^−Φ.

The distribution is log-normal (a normal fitted to log latency), not Akka's normal on raw
values: probe latencies are heavy-tailed (a 2 ms answer now and then takes 40 ms), and a
normal fitted to them puts its tail far too thin. Measured on a real HAProxy stack
(bench/false_alarms.py, 4158 answers replayed, threshold 8, no minimum silence): the
normal's crossing fell below 31 answers the checks really gave (9 with Akka-style 20 ms
spread floor; none only with a 100 ms floor, which moves every crossing to ~565 ms), the
log-normal's below none (median crossing 80 ms). Like Akka, the spread has a floor (a
very steady check would otherwise be suspected a few ms after its mean), and an absolute
minimum silence keeps scheduling jitter of a loaded machine from ever suspecting.

The crossing is solved in closed form, so the engine arms one timer per probe.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from stackscope.model import SuspectSettings

_FLOOR_MS = 0.01  # a latency recorded as 0 ms (clock resolution) still has a logarithm


@dataclass(frozen=True)
class Crossing:
    """When a silent probe becomes suspected, and what the check usually takes."""

    silence_ms: float  # φ reaches the threshold this long after the probe started
    usual_ms: float  # the median of the recent answers, for the message


@functools.lru_cache(maxsize=64)
def threshold_z(threshold: float) -> float:
    """The z-score whose upper tail is 10^−threshold (φ = threshold at z)."""
    # −inv_cdf(p) rather than inv_cdf(1 − p): 1 − 1e−12 has lost most of its digits
    import statistics  # (here: statistics pulls in fractions, decimal and random, 4 ms a start)

    return -statistics.NormalDist().inv_cdf(10.0**-threshold)


def phi(latencies: Iterable[float], elapsed_ms: float, settings: SuspectSettings) -> float:
    """φ of a silence of `elapsed_ms` given the recent answers (log-normal, spread floored);
    for the bench and tests — the engine needs only `crossing`."""
    import statistics

    logs = [math.log(max(_FLOOR_MS, x)) for x in latencies]
    if len(logs) < 2 or elapsed_ms <= 0:
        return 0.0
    mu, sigma = statistics.fmean(logs), max(statistics.stdev(logs), settings.min_spread)
    upper = statistics.NormalDist(mu, sigma).cdf(math.log(elapsed_ms))
    return -math.log10(max(1e-300, 1.0 - upper)) if upper < 1.0 else math.inf


def crossing(latencies: Iterable[float], timeout_ms: float, settings: SuspectSettings) -> Crossing | None:
    """The silence at which a running probe is suspected, or None: fewer than
    `settings.min_samples` answers to judge by, or a crossing at or after the timeout (a
    check this jittery is left to its timeout)."""
    answers = [x for x in latencies if x == x and x >= 0]  # NaN: a round without an answer
    count = len(answers)
    if count < max(2, settings.min_samples):
        return None
    # plain float sums, not the statistics module's exact fractions: this runs at the start
    # of every probe, and those cost ~50 µs for 30 answers
    logs = [math.log(max(_FLOOR_MS, x)) for x in answers]
    mu = math.fsum(logs) / count
    sigma = max(math.sqrt(math.fsum((x - mu) ** 2 for x in logs) / (count - 1)), settings.min_spread)
    at = mu + threshold_z(settings.threshold) * sigma  # log of the silence where φ = threshold
    if timeout_ms <= 0 or at >= math.log(timeout_ms):  # (compared as logs: exp() could overflow)
        return None
    silence = max(math.exp(at), settings.min_silence * 1000)
    if silence >= timeout_ms:
        return None
    ordered = sorted(answers)
    middle = count // 2
    usual = ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return Crossing(silence, usual)
