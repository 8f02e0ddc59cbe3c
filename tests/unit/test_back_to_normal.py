"""The detectors' test of a return to normal (`DriftDetector.normal_llr` / `back_to_normal`): a
log-likelihood ratio of a span's data under the baseline against the effect gate. Its laws: it
adds up over consecutive spans (so the largest over the spans ending now is a CUSUM of "back to
normal"), it grows with data at the baseline and falls with data at the gate, and a span whose
estimate reaches the gate is never called normal."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import MeanShift, ProportionRise, QuantileExceedance

BASE_X, BASE_N = 1000.0, 10_000.0  # a 10 % baseline share (gate: max(15 %, 10 % + 8 %) = 18 %)


def share(count: float, n: float) -> ProportionRise:
    det = ProportionRise(min_ratio=1.5, min_increase=0.08, min_n=1)
    det.update(count, n, BASE_X, BASE_N)
    return det


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.floats(0, 1), st.floats(0, 1))
def test_the_share_llr_adds_up_over_consecutive_spans(n1: int, n2: int, f1: float, f2: float) -> None:
    x1, x2 = round(n1 * f1), round(n2 * f2)
    a, b, ab = share(x1, n1).normal_llr(1), share(x2, n2).normal_llr(1), share(x1 + x2, n1 + n2).normal_llr(1)
    assert a is not None and b is not None and ab is not None
    assert math.isclose(ab, a + b, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 500), st.floats(-0.5, 0.5), st.floats(-0.5, 0.5))
def test_the_mean_llr_adds_up_when_the_spans_share_a_variance(n: int, d1: float, d2: float) -> None:
    """For a Gaussian with a known (floored) variance the statistic is linear in the sum of the
    observations: two spans of n at means m1, m2 add up to the span of 2n at their average."""
    def llr(k: int, mean: float) -> float:
        det = MeanShift(direction="increase", min_change=0.5, min_n=2, min_baseline_n=2)
        det.update(k, mean, 0.0, 5000, 1.0, 0.25)  # the sample variance is floored at the baseline's
        got = det.normal_llr(1)
        assert got is not None
        return got
    m1, m2 = 1.0 + d1, 1.0 + d2
    assert math.isclose(llr(2 * n, (m1 + m2) / 2), llr(n, m1) + llr(n, m2), rel_tol=1e-9, abs_tol=1e-6)


def test_data_at_the_baseline_build_evidence_of_a_return_and_data_at_the_gate_take_it_away() -> None:
    usual = [share(round(0.10 * n), n).normal_llr(1) for n in (50, 100, 200, 400)]
    assert all(v is not None and v > 0 for v in usual) and usual == sorted(usual)
    at_gate = [share(round(0.18 * n), n).normal_llr(1) for n in (50, 100, 200, 400)]
    assert all(v is not None and v < 0 for v in at_gate)


def test_a_span_at_the_gate_is_still_changed_and_a_thin_span_decides_nothing() -> None:
    assert share(20, 100).back_to_normal(math.log(20), 40) is False  # 20 % >= the 18 % gate
    assert share(0, 30).back_to_normal(math.log(20), 40) is None  # 30 < 40 observations
    assert share(5, 200).back_to_normal(math.log(20), 40) is True  # 2.5 %: 200 executions of evidence
    assert share(15, 100).back_to_normal(math.log(20), 40) is None  # 15 %: not enough either way


def test_a_quantile_returns_when_few_values_exceed_the_usual_one_and_the_quantile_is_under_its_gate() -> None:
    det = QuantileExceedance(min_ratio=1.5, min_n=20)
    det.update(20, 400, 1.1, 1.0)  # 5 % above the baseline p95, p95 +10 %
    assert det.back_to_normal(math.log(20), 40) is True
    det.update(20, 400, 1.6, 1.0)  # p95 at 1.6x: still changed
    assert det.back_to_normal(math.log(20), 40) is False
    det.update(60, 400, 1.2, 1.0)  # 15 % above: closer to the 11.6 % design than to 5 %
    assert det.back_to_normal(math.log(20), 40) is None
