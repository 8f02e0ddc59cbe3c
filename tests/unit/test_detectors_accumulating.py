"""The accumulating-evidence detectors and their calibration, pinned on small hand-made inputs."""

from __future__ import annotations

import math
import random

import pytest
from scipy.special import bdtrc

from detectors import BernoulliCUSUM, MeanCUSUM, PoissonSilence
from detectors.cusum import bernoulli_kl, cusum_threshold
from detectors.proportion import ProportionRise, beta_binomial_sf


def test_bernoulli_cusum_arithmetic_by_hand() -> None:
    det = BernoulliCUSUM(threshold=3.0)
    up, down = math.log(0.3 / 0.1), math.log(0.7 / 0.9)
    det.update(0, 10, p0=0.1, p1=0.3, t=0)  # 10 x ln(7/9) < 0: stays at 0
    assert det.statistic == 0.0 and det.segment == (None, 0.0, 0.0)
    det.update(3, 5, p0=0.1, p1=0.3, t=1)
    assert det.statistic == pytest.approx(3 * up + 2 * down)  # 2.79: below 3
    assert not det.drift_detected and det.segment == (1, 5.0, 3.0)
    det.update(1, 1, p0=0.1, p1=0.3, t=2)
    assert det.statistic == pytest.approx(4 * up + 2 * down)
    assert det.drift_detected and det.change_point == 1 and det.segment == (1, 6.0, 4.0)
    assert det.effect == pytest.approx(4 / 6 / 0.1 - 1)
    det.update(0, 40, p0=0.1, p1=0.3, t=3)  # back to 0: run and segment forgotten
    assert det.statistic == 0.0 and not det.drift_detected and det.segment == (None, 0.0, 0.0)


def test_mean_cusum_arithmetic_by_hand() -> None:
    det = MeanCUSUM(threshold=5.0)
    # mu0 0.8, mu1 0.6, var 0.04: a batch of n with sum T adds (-0.2 (T - 0.8 n) - 0.02 n) / 0.04
    det.update(n=4, total=3.2, mu0=0.8, mu1=0.6, var=0.04, t=0)
    assert det.statistic == 0.0
    det.update(n=2, total=1.2, mu0=0.8, mu1=0.6, var=0.04, t=1)
    assert det.statistic == pytest.approx((-0.2 * (1.2 - 1.6) - 0.04) / 0.04)  # 1.0
    det.update(n=4, total=2.4, mu0=0.8, mu1=0.6, var=0.04, t=2)
    assert det.statistic == pytest.approx(3.0)
    assert not det.drift_detected
    det.update(n=4, total=2.4, mu0=0.8, mu1=0.6, var=0.04, t=3)
    assert det.statistic == pytest.approx(5.0) and det.drift_detected and det.change_point == 1
    assert det.segment == (1, 10.0, pytest.approx(6.0))
    assert det.effect == pytest.approx(0.6 / 0.8 - 1)


def test_mean_cusum_detects_increases_too() -> None:
    det = MeanCUSUM(threshold=2.0)
    det.update(n=5, total=7.5, mu0=1.0, mu1=1.5, var=0.25, t=0)  # (0.5 x 2.5 - 5 x 0.125) / 0.25 = 2.5
    assert det.statistic == pytest.approx(2.5) and det.drift_detected


def test_cusum_threshold_solves_siegmunds_run_length() -> None:
    for arl, kl in ((1e3, 0.5), (1e6, 0.02), (3.5e7, 0.12)):
        h = cusum_threshold(arl, kl)
        assert (math.exp(h) - h - 1) / kl == pytest.approx(arl, rel=1e-9)
    assert cusum_threshold(2e6, 0.02) > cusum_threshold(1e6, 0.02)  # rarer false alarms: higher h
    with pytest.raises(ValueError):
        cusum_threshold(0, 0.1)


def test_bernoulli_kl_by_hand() -> None:
    assert bernoulli_kl(0.35, 0.15) == pytest.approx(0.35 * math.log(0.35 / 0.15) + 0.65 * math.log(0.65 / 0.85))
    assert bernoulli_kl(0.0, 0.2) == pytest.approx(math.log(1 / 0.8))
    assert bernoulli_kl(0.3, 0.3) == 0.0


def test_cusum_run_length_is_at_least_the_calibrated_one() -> None:
    """Seeded bucketed Bernoulli streams without a change: the mean run length to a false alarm
    is not shorter than the formula (which ignores the overshoot, hence errs long)."""
    rng = random.Random(7)
    p0, p1, arl = 0.15, 0.3, 3000.0
    h = cusum_threshold(arl, bernoulli_kl(p0, p1))
    runs = []
    for _ in range(60):
        det, seen = BernoulliCUSUM(threshold=h), 0
        while not det.drift_detected:
            n = 5
            det.update(sum(rng.random() < p0 for _ in range(n)), n, p0=p0, p1=p1)
            seen += n
        runs.append(seen)
    assert sum(runs) / len(runs) > arl


def test_bernoulli_cusum_catches_an_abrupt_rise_within_a_few_buckets() -> None:
    """10 % -> 50 % at 4 executions per 5-minute bucket (~50 per hour): the bank's design for large
    rises, at the threshold for a false-alarm run length of 10 years at that volume (bank of 3),
    fires after a median of 8 buckets of data (40 min; ~32 executions at 0.48 nats each against
    h ~ 15.7), never before the change and always within 2 hours."""
    p0, p1 = 0.10, 0.58
    h = cusum_threshold(10 * 8766 * 48 * 3, bernoulli_kl(p0, p1))
    delays = []
    for seed in range(20):
        rng = random.Random(seed)
        det = BernoulliCUSUM(threshold=h)
        for b in range(48):  # 4 h of normal traffic
            det.update(sum(rng.random() < p0 for _ in range(4)), 4, p0=p0, p1=p1, t=b)
            assert not det.drift_detected
        for b in range(48, 72):
            det.update(sum(rng.random() < 0.5 for _ in range(4)), 4, p0=p0, p1=p1, t=b)
            if det.drift_detected:
                delays.append(b - 47)
                assert det.change_point is not None and det.change_point >= 40
                break
    assert len(delays) == 20
    assert sorted(delays)[10] <= 8


def test_beta_binomial_tail_tends_to_the_binomial_and_is_wider_for_small_baselines() -> None:
    assert beta_binomial_sf(17, 93, 0.04 * 1e9, 0.96 * 1e9) == pytest.approx(float(bdtrc(16, 93, 0.04)), rel=1e-6)
    small = beta_binomial_sf(17, 93, 8.5, 192.5)  # 8 errors in 200 calls: 4 %, uncertain
    large = beta_binomial_sf(17, 93, 400.5, 9600.5)  # 400 in 10000: 4 %, well known
    assert small > 100 * large
    assert large > float(bdtrc(16, 93, 400.5 / 10001))
    assert beta_binomial_sf(0, 10, 1.0, 1.0) == 1.0 and beta_binomial_sf(11, 10, 1.0, 1.0) == 0.0


def test_proportion_rise_accounts_for_a_small_baseline() -> None:
    exact = ProportionRise(alpha=1e-6, min_ratio=2.0, min_n=20, baseline_uncertainty=False)
    predictive = ProportionRise(alpha=1e-6, min_ratio=2.0, min_n=20)
    assert exact.update(17, 93, 8, 200).drift_detected  # binomial at 4.2 %: p ~ 2e-7
    assert not predictive.update(17, 93, 8, 200).drift_detected  # the 4.2 % itself is uncertain
    assert predictive.update(30, 93, 8, 200).drift_detected


def test_poisson_silence_with_an_uncertain_profile_needs_a_longer_gap() -> None:
    det = PoissonSilence(alpha=1e-7)
    assert det.update(0, 17.0).drift_detected
    assert not det.update(0, 17.0, expected_var=1.57 * 17 / 5).drift_detected
    assert det.p_value == pytest.approx((1 + 1.57 / 5) ** (-17 * 5 / 1.57))
    assert det.update(0, 25.0, expected_var=1.57 * 25 / 5).drift_detected
