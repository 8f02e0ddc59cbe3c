"""A rise of a proportion (escalations, repeats, tool errors) above its baseline."""

from __future__ import annotations

from scipy.special import bdtrc

from detectors.base import DriftDetector


class ProportionRise(DriftDetector):
    """One-sided exact binomial test of ``count`` successes out of ``n`` against the baseline
    share, gated by effect size.

    Drift is detected only when all hold: ``n >= min_n``, the baseline holds at least
    ``min_baseline_n`` trials, the current share is at least ``min_ratio`` times the baseline share
    and at least ``min_increase`` above it (absolute) and at least ``min_share``, and
    ``P(X >= count | n, p0) < alpha`` where ``p0 = (baseline_count + 0.5) / (baseline_n + 1)`` (the
    half-count keeps a zero baseline from making any single success significant).

    The p-value is computed only when the effect-size gates pass: cheap when nothing happens.

    Parameters
    ----------
    alpha
        Significance level of one test.
    min_ratio
        Smallest current/baseline share ratio that counts as an effect.
    min_increase
        Smallest absolute rise of the share that counts as an effect.
    min_share
        Smallest current share that counts (e.g. 0.10 for "error share >= 10 %").
    min_n
        Fewest current trials to test at all.
    min_baseline_n
        Fewest baseline trials to test at all.

    Examples
    --------
    >>> det = ProportionRise(alpha=1e-3, min_ratio=1.5)
    >>> det.update(8, 50, 150, 1000, t=1.0).drift_detected
    False
    >>> det.update(20, 50, 150, 1000, t=2.0).drift_detected
    True
    >>> det.change_point, round(det.effect, 2)
    (2.0, 1.66)
    >>> det.update(21, 50, 150, 1000, t=3.0).change_point
    2.0
    """

    def __init__(
        self,
        alpha: float = 1e-3,
        min_ratio: float = 1.5,
        min_increase: float = 0.0,
        min_share: float = 0.0,
        min_n: int = 20,
        min_baseline_n: int = 200,
    ) -> None:
        super().__init__()
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if min_ratio < 1:
            raise ValueError(f"min_ratio must be >= 1, got {min_ratio}")
        if not 0 <= min_increase < 1 or not 0 <= min_share <= 1:
            raise ValueError(f"min_increase/min_share must be shares, got {min_increase}/{min_share}")
        if min_n < 1 or min_baseline_n < 1:
            raise ValueError(f"min_n and min_baseline_n must be >= 1, got {min_n}/{min_baseline_n}")
        self.alpha = alpha
        self.min_ratio = min_ratio
        self.min_increase = min_increase
        self.min_share = min_share
        self.min_n = min_n
        self.min_baseline_n = min_baseline_n

    def update(
        self, count: float, n: float, baseline_count: float, baseline_n: float, t: float | None = None
    ) -> ProportionRise:
        self.p_value = self.statistic = self.effect = None
        detected = False
        if n >= self.min_n and baseline_n >= self.min_baseline_n:
            p0 = (baseline_count + 0.5) / (baseline_n + 1)
            share = count / n
            self.effect = share / p0 - 1
            self.statistic = share
            if (
                share >= p0 * self.min_ratio
                and share - p0 >= self.min_increase
                and share >= self.min_share
            ):
                k = int(round(count))
                self.p_value = float(bdtrc(k - 1, int(round(n)), p0)) if k > 0 else 1.0
                detected = self.p_value < self.alpha
        self._record(detected, t)
        return self
