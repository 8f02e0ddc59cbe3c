"""The accumulating-evidence detectors and their calibration, pinned on small hand-made inputs."""

from __future__ import annotations

import math
import random

import pytest
from scipy.special import bdtrc

from detectors import CusumBank, PoissonSilence
from detectors.cusum import Design, bernoulli_kl, cusum_threshold, mean_designs, rate_designs
from detectors.proportion import ProportionRise, beta_binomial_sf


def _share_design(p0: float, p1: float, h: float) -> Design:
    """The bank's design for a rise of a share from `p0` to `p1` (as `rate_designs` builds it)."""
    b = math.log((1 - p1) / (1 - p0))
    return Design(p1, math.log(p1 / p0) - b, b, h)


def test_rate_designs_hold_the_bernoulli_log_likelihood_ratio() -> None:
    for d in rate_designs(0.1, 0.25, 1e5):
        p1 = d.target
        for x, n in ((0.0, 10.0), (3.0, 5.0), (7.0, 7.0)):
            llr = x * math.log(p1 / 0.1) + (n - x) * math.log((1 - p1) / 0.9)
            assert d.a * x + d.b * n == pytest.approx(llr)
    assert [round(d.target, 4) for d in rate_designs(0.1, 0.25, 1e5)] == [0.25, 0.4545, 0.6757]
    # the bank's threshold covers its three designs (union bound)
    assert rate_designs(0.1, 0.25, 1e5)[0].h == pytest.approx(cusum_threshold(3e5, bernoulli_kl(0.1, 0.25)))


def test_share_cusum_arithmetic_by_hand() -> None:
    bank = CusumBank([_share_design(0.1, 0.3, 3.0)])
    up, down = math.log(0.3 / 0.1), math.log(0.7 / 0.9)
    batches = [(0.0, 10.0, 0.0, 0.0, 0.0)]  # 10 x ln(7/9) < 0: stays at 0
    assert bank.recompute(batches) == [] and bank.bounds == [0.0]
    batches.append((1.0, 5.0, 3.0, 3.0, 0.0))
    assert bank.recompute(batches) == [] and bank.bounds[0] == pytest.approx(3 * up + 2 * down)  # 2.79: below 3
    batches.append((2.0, 1.0, 1.0, 1.0, 0.0))
    (hit,) = bank.recompute(batches)
    assert hit.statistic == pytest.approx(4 * up + 2 * down)
    assert (hit.start, hit.n, hit.total, hit.shown) == (1.0, 6.0, 4.0, 4.0)
    batches.append((3.0, 40.0, 0.0, 0.0, 0.0))  # back to 0: run and segment forgotten
    assert bank.recompute(batches) == [] and bank.bounds == [0.0]


def test_mean_cusum_arithmetic_by_hand() -> None:
    # mu0 0.8, shift -0.2, var 0.04: a batch of n with sum T adds (-0.2 (T - 0.8 n) - 0.02 n) / 0.04
    d = mean_designs(0.8, 0.04, -0.2, 1e4)[0]
    assert (d.target, d.a, d.b) == (pytest.approx(0.6), pytest.approx(-5.0), pytest.approx(3.5))
    bank = CusumBank([Design(d.target, d.a, d.b, 5.0)])
    batches = [(0.0, 4.0, 3.2, 3.2, 2.56)]
    assert bank.recompute(batches) == [] and bank.bounds == [pytest.approx(0.0, abs=1e-12)]
    batches.append((1.0, 2.0, 1.2, 1.2, 0.72))
    assert bank.recompute(batches) == [] and bank.bounds[0] == pytest.approx((-0.2 * (1.2 - 1.6) - 0.04) / 0.04)
    batches.append((2.0, 4.0, 2.4, 2.4, 1.44))
    assert bank.recompute(batches) == [] and bank.bounds[0] == pytest.approx(3.0)
    batches.append((3.0, 4.0, 2.4, 2.4, 1.44))
    (hit,) = bank.recompute(batches)
    assert hit.statistic == pytest.approx(5.0) and hit.start == 1.0
    assert (hit.n, hit.total, hit.sq) == (10.0, pytest.approx(6.0), pytest.approx(3.6))


def test_mean_cusum_detects_increases_too() -> None:
    d = mean_designs(1.0, 0.25, 0.5, 1e4)[0]
    bank = CusumBank([Design(d.target, d.a, d.b, 2.0)])
    (hit,) = bank.recompute([(0.0, 5.0, 7.5, 7.5, 0.0)])  # (0.5 x 2.5 - 5 x 0.125) / 0.25 = 2.5
    assert hit.statistic == pytest.approx(2.5)


def test_advance_bounds_the_recomputed_statistic_and_flags_the_threshold() -> None:
    """`advance` over one more batch is the CUSUM recursion itself from a recomputed start, so it
    never falls below what `recompute` gives over a window that slides by one batch."""
    rng = random.Random(3)
    bank = CusumBank(rate_designs(0.1, 0.2, 1e4))
    batches = [(float(t), 10.0, float(sum(rng.random() < 0.14 for _ in range(10))), 0.0, 0.0) for t in range(200)]
    bank.recompute(batches[:50])
    for t in range(50, 200):
        below = bank.advance(batches[t][1:])
        bounds = list(bank.bounds)
        exact = CusumBank(bank.designs)
        hits = exact.recompute(batches[t - 49:t + 1])
        assert all(u >= s - 1e-9 for u, s in zip(bounds, exact.bounds, strict=True))
        assert below == all(u < d.h - 1e-9 for u, d in zip(bounds, bank.designs, strict=True))
        if hits:
            assert not below
    assert bank.advance(None) == all(u < d.h - 1e-9 for u, d in zip(bank.bounds, bank.designs, strict=True))


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
        bank, seen = CusumBank([_share_design(p0, p1, h)]), 0
        while True:
            n = 5
            seen += n
            if not bank.advance((float(n), float(sum(rng.random() < p0 for _ in range(n))), 0.0, 0.0)):
                break
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
        bank = CusumBank([_share_design(p0, p1, h)])
        batches = []
        for b in range(72):  # 4 h of normal traffic, then 2 h at 50 %
            x = float(sum(rng.random() < (p0 if b < 48 else 0.5) for _ in range(4)))
            batches.append((float(b), 4.0, x, x, 0.0))
            below = bank.advance((4.0, x, x, 0.0))
            assert below or b >= 48
            if not below:
                delays.append(b - 47)
                (hit,) = CusumBank(bank.designs).recompute(batches)
                assert hit.start >= 40
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
