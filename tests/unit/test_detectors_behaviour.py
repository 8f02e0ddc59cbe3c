"""Detectors on seeded streams with known change points."""

from __future__ import annotations

import math
import random

from detectors import CusumBank, MeanShift, PoissonSilence, ProportionRise, QuantileExceedance
from detectors.cusum import Design


def test_proportion_rise_needs_effect_size_and_significance() -> None:
    det = ProportionRise(alpha=1e-3, min_ratio=1.5, min_increase=0.05, min_n=20)
    # significant but tiny effect (huge n): no
    assert not det.update(1100, 10000, 1000, 10000).drift_detected
    # large effect, too few observations: no
    assert not det.update(5, 10, 100, 1000).drift_detected
    assert det.p_value is None
    # large effect, significant: yes
    assert det.update(20, 50, 150, 1000, t=5).drift_detected
    assert det.p_value is not None and det.p_value < 1e-3


def test_proportion_rise_needs_baseline() -> None:
    det = ProportionRise(min_baseline_n=200)
    assert not det.update(40, 50, 5, 100).drift_detected


def test_mean_shift_floors_small_sample_variance() -> None:
    # 20 binary outcomes all 0 against a 30 % baseline: variance 0 would be "infinitely significant"
    det = MeanShift(direction="decrease", alpha=1e-4, min_change=0.15, min_n=15)
    assert not det.update(20, 0.0, 0.0, 2000, 0.3, 0.21).drift_detected
    assert det.p_value is not None and det.p_value > 1e-4


def test_mean_shift_direction() -> None:
    det = MeanShift(direction="increase", alpha=1e-3, min_change=0.3)
    assert not det.update(40, 0.5, 0.01, 1000, 1.0, 0.01).drift_detected
    assert det.update(40, 2.0, 0.25, 1000, 1.0, 0.25).drift_detected


def test_quantile_exceedance_on_a_seeded_heavy_tail() -> None:
    rng = random.Random(3)
    base = sorted(rng.lognormvariate(9, 0.5) for _ in range(5000))
    q95 = base[int(0.95 * len(base))]
    det = QuantileExceedance(q=0.95, alpha=1e-4, min_ratio=1.5)
    same = [rng.lognormvariate(9, 0.5) for _ in range(60)]
    slow = [rng.lognormvariate(9, 0.5) * 3 for _ in range(60)]
    for sample, expect in ((same, False), (slow, True)):
        s = sorted(sample)
        det.update(sum(x > q95 for x in s), len(s), s[int(0.95 * len(s))], q95)
        assert det.drift_detected is expect


def test_bernoulli_cusum_detects_after_the_change_and_estimates_onset() -> None:
    rng = random.Random(11)
    b = math.log(0.7 / 0.85)
    bank = CusumBank([Design(0.3, math.log(0.3 / 0.15) - b, b, 12.0)])
    batches = []
    detected_at = None
    for t in range(400):
        p = 0.15 if t < 200 else 0.40
        x = float(sum(rng.random() < p for _ in range(5)))
        batches.append((float(t), 5.0, x, x, 0.0))
        if not bank.advance((5.0, x, x, 0.0)):
            detected_at = t
            break
    assert detected_at is not None and 200 <= detected_at < 240
    (hit,) = bank.recompute(batches)
    assert 190 <= hit.start <= detected_at


def test_poisson_silence_respects_the_profile() -> None:
    det = PoissonSilence(alpha=1e-5)
    assert not det.update(0, 3.0).drift_detected  # a quiet hour at night: normal
    assert det.update(0, 20.0, t=9).drift_detected
    assert det.change_point == 9
    assert not det.update(1, 20.0, t=10).drift_detected
    assert det.change_point is None


def test_reaches_tells_how_far_into_the_effect_gate_the_latest_effect_is() -> None:
    """`reaches(f)`: the latest effect is at least f of the gate, in the drift's direction."""
    from detectors import MeanShift, ProportionRise, QuantileExceedance

    drop = MeanShift(direction="decrease", min_change=0.2, min_n=2, min_baseline_n=2)
    assert drop.reaches(0.5) is None  # no update yet
    drop.update(30, 0.88, 0.01, 2000, 1.0, 0.01)  # -12 %: under the gate, over half of it
    assert drop.p_value is None and drop.reaches(0.5) is True and drop.reaches(1.0) is False
    drop.update(30, 1.2, 0.01, 2000, 1.0, 0.01)  # a rise is no drop
    assert drop.reaches(0.0) is False
    p95 = QuantileExceedance(min_ratio=1.5)
    p95.update(5, 40, 1.2, 1.0)  # +20 %: under half of the +50 % gate
    assert p95.reaches(0.5) is False and p95.reaches(0.3) is True
    share = ProportionRise()
    share.update(10, 40, 100, 1000)
    assert share.reaches(0.5) is None  # no hysteresis for shares
