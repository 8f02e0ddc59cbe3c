"""A rise of a high quantile (p95 duration) above its baseline."""

from __future__ import annotations

import math

from scipy.special import bdtrc

from detectors.base import DriftDetector


class QuantileExceedance(DriftDetector):
    """Exceedance test of a quantile: under no change, a share ``1 - q`` of current observations
    lies above the baseline's ``q``-quantile; a one-sided exact binomial test of the observed
    count above it, gated by the ratio of the current to the baseline quantile.

    Distribution-free (no assumption about the heavy tail), and it needs only counts.

    Parameters
    ----------
    q
        The quantile, e.g. ``0.95``.
    alpha
        Significance level of one test.
    min_ratio
        Smallest current/baseline quantile ratio that counts.
    min_n
        Fewest current observations to test at all.

    Examples
    --------
    >>> det = QuantileExceedance(q=0.95, alpha=1e-3, min_ratio=1.5)
    >>> det.update(n_above=2, n=40, current_quantile=10.0, baseline_quantile=9.0).drift_detected
    False
    >>> det.update(n_above=12, n=40, current_quantile=20.0, baseline_quantile=9.0, t=7).drift_detected
    True
    >>> det.change_point
    7
    """

    def __init__(self, q: float = 0.95, alpha: float = 1e-3, min_ratio: float = 1.5, min_n: int = 20) -> None:
        super().__init__()
        if not 0 < q < 1:
            raise ValueError(f"q must be in (0, 1), got {q}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if min_ratio < 1:
            raise ValueError(f"min_ratio must be >= 1, got {min_ratio}")
        if min_n < 1:
            raise ValueError(f"min_n must be >= 1, got {min_n}")
        self.q = q
        self.alpha = alpha
        self.min_ratio = min_ratio
        self.min_n = min_n
        self._n = self._above = 0.0

    def reaches(self, fraction: float) -> bool | None:
        return None if self.effect is None else self.effect >= fraction * (self.min_ratio - 1)

    def normal_llr(self, min_n: float) -> float | None:
        """The share above the baseline quantile: usual (``1 - q``) against 2.5 times its odds
        (5 % -> 11.6 % for p95), the design of the rule's accumulating test."""
        if self.effect is None or self._n < min_n:
            return None
        p0 = 1 - self.q
        odds = 2.5 * p0 / self.q
        p1 = odds / (1 + odds)
        x, n = self._above, self._n
        return x * math.log(p0 / p1) + (n - x) * math.log((1 - p0) / (1 - p1))

    def update(
        self,
        n_above: float,
        n: float,
        current_quantile: float,
        baseline_quantile: float,
        t: float | None = None,
    ) -> QuantileExceedance:
        self.p_value = self.statistic = self.effect = None
        detected = False
        if n >= self.min_n and baseline_quantile > 0:
            self.effect = current_quantile / baseline_quantile - 1
            self.statistic = n_above / n
            self._n, self._above = n, n_above
            if current_quantile >= self.min_ratio * baseline_quantile:
                k = int(round(n_above))
                self.p_value = float(bdtrc(k - 1, int(round(n)), 1 - self.q)) if k > 0 else 1.0
                detected = self.p_value < self.alpha
        self._record(detected, t)
        return self
