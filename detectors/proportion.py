"""A rise of a proportion (escalations, repeats, tool errors) above its baseline."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import bdtrc, betaln, gammaln

from detectors.base import DriftDetector


def beta_binomial_sf(k: float, n: float, a: float, b: float) -> float:
    """``P(X >= k)`` for ``X ~ BetaBinomial(n, a, b)``, summed in log space (exact in the far tail).

    With ``a = baseline_count + 1/2`` and ``b = baseline_n - baseline_count + 1/2`` it is the
    predictive probability of ``k`` or more successes in ``n`` new trials given the baseline
    (Jeffreys prior): the binomial test with the uncertainty of the baseline share included.

    Examples
    --------
    >>> round(beta_binomial_sf(3, 10, 1e9 * 0.1, 1e9 * 0.9), 4)  # a certain share: binomial
    0.0702
    >>> float(bdtrc(2, 10, 0.1)) < beta_binomial_sf(3, 10, 10.5, 90.5)
    True
    """
    k, n = int(round(k)), int(round(n))
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    j = np.arange(k, n + 1, dtype=float)
    log_pmf = (gammaln(n + 1.0) - gammaln(j + 1.0) - gammaln(n - j + 1.0)
               + betaln(j + a, n - j + b) - betaln(a, b))
    top = float(log_pmf.max())
    return min(1.0, math.exp(top) * float(np.exp(log_pmf - top).sum()))


class ProportionRise(DriftDetector):
    """One-sided exact binomial test of ``count`` successes out of ``n`` against the baseline
    share, gated by effect size.

    Drift is detected only when all hold: ``n >= min_n``, the baseline holds at least
    ``min_baseline_n`` trials, the current share is at least ``min_ratio`` times the baseline share
    and at least ``min_increase`` above it (absolute) and at least ``min_share``, and
    ``P(X >= count) < alpha`` where ``p0 = (baseline_count + 0.5) / (baseline_n + 1)`` (the
    half-count keeps a zero baseline from making any single success significant).

    With ``baseline_uncertainty`` (default) the tail is the beta-binomial predictive one
    (`beta_binomial_sf`): the baseline share is itself an estimate from ``baseline_n`` trials, and
    far in the tail a share a few percent too low would make ordinary counts look like
    1-in-a-million events (all the more for small baselines, e.g. a rarely called tool). Without
    it, the binomial tail at ``p0``.

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
    baseline_uncertainty
        Test against the beta-binomial predictive distribution instead of ``Binomial(n, p0)``.

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
        baseline_uncertainty: bool = True,
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
        self.baseline_uncertainty = baseline_uncertainty
        self._n = self._count = self._p0 = self._gate = 0.0

    def at_gate(self) -> bool | None:
        return None if self.effect is None else self._count >= self._gate * self._n

    def normal_llr(self, min_n: float) -> float | None:
        """Bernoulli: the baseline share ``p0`` against the effect gate
        ``max(p0 x min_ratio, p0 + min_increase, min_share)``."""
        n, x, p0, gate = self._n, self._count, self._p0, self._gate
        if self.effect is None or n < min_n or gate >= 1 or not p0 > 0:
            return None
        return x * math.log(p0 / gate) + (n - x) * math.log((1 - p0) / (1 - gate))

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
            self._n, self._count, self._p0 = n, count, p0
            self._gate = max(p0 * self.min_ratio, p0 + self.min_increase, self.min_share)
            if (
                share >= p0 * self.min_ratio
                and share - p0 >= self.min_increase
                and share >= self.min_share
            ):
                k = int(round(count))
                if k <= 0:
                    self.p_value = 1.0
                elif self.baseline_uncertainty:
                    self.p_value = beta_binomial_sf(k, n, baseline_count + 0.5, baseline_n - baseline_count + 0.5)
                else:
                    self.p_value = float(bdtrc(k - 1, int(round(n)), p0))
                detected = self.p_value < self.alpha
        self._record(detected, t)
        return self
