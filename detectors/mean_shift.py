"""A shift of a mean (quality score, cost, steps, an outcome metric) away from its baseline."""

from __future__ import annotations

import math
from typing import Literal

from scipy.special import stdtr

from detectors.base import DriftDetector


class MeanShift(DriftDetector):
    """One-sided Welch t-test from sufficient statistics, gated by relative effect size.

    ``update`` takes the current and baseline samples as ``(n, mean, variance)``. Feed it
    ``log``-transformed statistics for heavy-tailed quantities (costs, durations): a t-test on
    logarithms compares geometric means and is not moved by a few huge values. The effect gate
    uses ``effect`` when given (e.g. the ratio of arithmetic means minus one), else the relative
    change of the tested means.

    Small current windows estimate their variance badly (15 binary outcomes that happen to be all
    0 have variance 0, which would make any difference "significant"), so with ``variance_floor``
    the current variance is taken as at least the baseline's: under no change both samples come
    from the baseline distribution, whose variance is known well.

    Parameters
    ----------
    direction
        ``"increase"`` or ``"decrease"``: the side that counts as drift.
    alpha
        Significance level of one test.
    min_change
        Smallest relative change (a fraction, e.g. ``0.2``) in ``direction`` that counts.
    min_n
        Fewest current observations to test at all.
    min_baseline_n
        Fewest baseline observations to test at all.
    variance_floor
        Use ``max(var, baseline_var)`` as the current variance.

    Examples
    --------
    >>> det = MeanShift(direction="decrease", alpha=1e-3, min_change=0.2)
    >>> det.update(30, 0.78, 0.01, 2000, 0.80, 0.01, t=0).drift_detected
    False
    >>> det.update(30, 0.55, 0.01, 2000, 0.80, 0.01, t=300).drift_detected
    True
    >>> round(det.effect, 3), det.p_value < 1e-9
    (-0.312, True)
    """

    def __init__(
        self,
        direction: Literal["increase", "decrease"] = "increase",
        alpha: float = 1e-3,
        min_change: float = 0.2,
        min_n: int = 15,
        min_baseline_n: int = 200,
        variance_floor: bool = True,
    ) -> None:
        super().__init__()
        if direction not in ("increase", "decrease"):
            raise ValueError(f"direction must be 'increase' or 'decrease', got {direction!r}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if min_change < 0:
            raise ValueError(f"min_change must be >= 0, got {min_change}")
        if min_n < 2 or min_baseline_n < 2:
            raise ValueError(f"min_n and min_baseline_n must be >= 2, got {min_n}/{min_baseline_n}")
        self.direction = direction
        self.alpha = alpha
        self.min_change = min_change
        self.min_n = min_n
        self.min_baseline_n = min_baseline_n
        self.variance_floor = variance_floor
        self._n = self._toward = self._mean = self._mu0 = self._var = 0.0
        self._log_scale = False

    def reaches(self, fraction: float) -> bool | None:
        if self.effect is None:
            return None
        sign = 1.0 if self.direction == "increase" else -1.0
        return sign * self.effect >= fraction * self.min_change

    def normal_llr(self, min_n: float) -> float | None:
        """Gaussian, the variance floored at the baseline's: the baseline mean against the mean at
        the effect gate. When ``update`` was given the effect separately (a test on logarithms),
        the gate in the tested scale is the baseline log mean plus ``log(1 +- min_change)``."""
        if self.effect is None or self._n < min_n or not self._var > 0:
            return None
        mu0, m = self._mu0, self._mean
        sign = 1.0 if self.direction == "increase" else -1.0
        if self._log_scale:
            if sign * self.min_change <= -1:
                return None
            gate = mu0 + math.log1p(sign * self.min_change)
        else:
            gate = mu0 + sign * self.min_change * abs(mu0)
        return self._n * ((m - gate) ** 2 - (m - mu0) ** 2) / (2 * self._var)

    def update(
        self,
        n: float,
        mean: float,
        var: float,
        baseline_n: float,
        baseline_mean: float,
        baseline_var: float,
        t: float | None = None,
        effect: float | None = None,
    ) -> MeanShift:
        self.p_value = self.statistic = self.effect = None
        detected = False
        if n >= self.min_n and baseline_n >= self.min_baseline_n:
            log_scale = effect is not None
            if effect is None:
                effect = (mean - baseline_mean) / abs(baseline_mean) if baseline_mean else math.inf
            self.effect = effect
            sign = 1.0 if self.direction == "increase" else -1.0
            self._n, self._toward, self._mean, self._mu0 = n, sign * effect, mean, baseline_mean
            self._var, self._log_scale = max(var, baseline_var if self.variance_floor else 0.0, 0.0), log_scale
            if sign * effect >= self.min_change:
                if self.variance_floor and var < baseline_var:
                    var = baseline_var
                se2 = max(var, 0.0) / n + max(baseline_var, 0.0) / baseline_n
                diff = sign * (mean - baseline_mean)
                if se2 <= 0:
                    self.statistic = math.inf if diff > 0 else 0.0
                    self.p_value = 0.0 if diff > 0 else 1.0
                else:
                    t_stat = diff / math.sqrt(se2)
                    a = max(var, 0.0) / n
                    b = max(baseline_var, 0.0) / baseline_n
                    denom = (a * a / (n - 1) if a else 0.0) + (b * b / (baseline_n - 1) if b else 0.0)
                    df = se2 * se2 / denom if denom > 0 else n + baseline_n - 2
                    self.statistic = t_stat
                    self.p_value = float(stdtr(df, -t_stat))
                detected = self.p_value < self.alpha
        self._record(detected, t)
        return self
