"""Two samples compared while they grow: an always-valid confidence sequence for the difference of
two means (or shares), stratified by time so that seasonality and volume cancel out.

A canary is looked at after every bucket, for days: a fixed-sample test checked that often would
fire on noise sooner or later. The normal-mixture sequential test (mSPRT, Robbins 1970; Johari,
Pekelis & Walsh, "Always valid inference", 2017) gives an interval for the difference that holds
at every look at once with probability ``1 - alpha``: checked after every bucket for as long as the
rollout lasts, it excludes the true difference with probability at most ``alpha`` in all.

With ``d`` the estimated difference, ``V`` its variance and ``tau`` the scale of differences that
matter (the mixing distribution's standard deviation), the interval is
``d +- sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) + 2 log(1 / alpha)))``.

Strata: the two samples are compared within each stratum (an hour of event time) and the
differences are averaged with weights ``n_a n_b / (n_a + n_b)`` (Cochran's weights, the
Mantel-Haenszel form for shares): a version that gets more of its traffic at night, when
escalations are rarer, is not credited for the hour it runs in. The variance of each sample is
pooled over all its strata (slightly larger than the within-stratum variance: conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class Moments:
    """Count, sum and sum of squares of one sample (values, or 0/1 for shares)."""

    n: float = 0.0
    s: float = 0.0
    ss: float = 0.0

    def add(self, n: float, s: float, ss: float) -> None:
        self.n += n
        self.s += s
        self.ss += ss

    @property
    def mean(self) -> float | None:
        return self.s / self.n if self.n > 0 else None

    def variance(self, share: bool) -> float:
        """Sample variance; for a share, of the share smoothed towards 1/2 by one success and one
        failure (never 0, so that a candidate with no escalations yet is not certain)."""
        if share:
            p = (self.s + 1.0) / (self.n + 2.0)
            return p * (1.0 - p)
        if self.n < 2:
            return 0.0
        return max(0.0, (self.ss - self.s * self.s / self.n) / (self.n - 1.0))

    def to_data(self) -> list[float]:
        return [self.n, self.s, self.ss]

    @classmethod
    def from_data(cls, data: list[float]) -> Moments:
        return cls(*data)


@dataclass(slots=True)
class StratifiedDifference:
    """The running comparison of a candidate sample against a baseline sample, stratum by stratum.

    ``add_stratum`` takes one stratum's two samples (count, sum, sum of squares each); a stratum in
    which either sample is empty adds to the totals but not to the difference.
    """

    base: Moments
    cand: Moments
    w: float = 0.0  # sum of stratum weights
    wd: float = 0.0  # sum of weight x (candidate mean - baseline mean)
    a_base: float = 0.0  # sum of weight^2 / n_base
    a_cand: float = 0.0  # sum of weight^2 / n_cand

    @classmethod
    def empty(cls) -> StratifiedDifference:
        return cls(Moments(), Moments())

    def add_stratum(self, base: tuple[float, float, float], cand: tuple[float, float, float]) -> None:
        nb, sb, ssb = base
        nc, sc, ssc = cand
        self.base.add(nb, sb, ssb)
        self.cand.add(nc, sc, ssc)
        if nb <= 0 or nc <= 0:
            return
        w = nb * nc / (nb + nc)
        self.w += w
        self.wd += w * (sc / nc - sb / nb)
        self.a_base += w * w / nb
        self.a_cand += w * w / nc

    def plus(self, base: tuple[float, float, float], cand: tuple[float, float, float]) -> StratifiedDifference:
        """A copy with one more stratum (the hour still open), leaving this one as it is."""
        out = StratifiedDifference(Moments(self.base.n, self.base.s, self.base.ss),
                                   Moments(self.cand.n, self.cand.s, self.cand.ss),
                                   self.w, self.wd, self.a_base, self.a_cand)
        out.add_stratum(base, cand)
        return out

    def estimate(self, share: bool) -> tuple[float, float] | None:
        """(difference candidate - baseline, its variance); None before both samples share a stratum."""
        if self.w <= 0:
            return None
        d = self.wd / self.w
        v = (self.base.variance(share) * self.a_base + self.cand.variance(share) * self.a_cand) / (self.w * self.w)
        return d, v

    def to_data(self) -> list[float]:
        return [*self.base.to_data(), *self.cand.to_data(), self.w, self.wd, self.a_base, self.a_cand]

    @classmethod
    def from_data(cls, data: list[float]) -> StratifiedDifference:
        return cls(Moments(*data[0:3]), Moments(*data[3:6]), *data[6:10])


def always_valid_halfwidth(variance: float, tau: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence at level ``1 - alpha`` (see the module
    docstring). ``inf`` when the variance is 0 (nothing is known yet).

    >>> round(always_valid_halfwidth(0.01, 0.1, 0.05), 3)   # sd 0.1: wider than the fixed-n 0.196
    0.366
    >>> always_valid_halfwidth(1e-4, 0.1, 0.05) < always_valid_halfwidth(1e-2, 0.1, 0.05)
    True
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if variance <= 0:
        return math.inf
    t2 = tau * tau
    return math.sqrt(variance * (variance + t2) / t2 * (math.log((variance + t2) / variance) + 2 * math.log(1 / alpha)))


def mixture_likelihood_ratio(d: float, variance: float, tau: float) -> float:
    """The mSPRT statistic for ``d`` against a difference of 0 (``>= 1/alpha`` rejects 0 at
    level ``alpha``, the same decision as the interval of `always_valid_halfwidth` excluding 0)."""
    if variance <= 0:
        return 1.0
    t2 = tau * tau
    return math.sqrt(variance / (variance + t2)) * math.exp(min(700.0, t2 * d * d / (2 * variance * (variance + t2))))


__all__ = ["Moments", "StratifiedDifference", "always_valid_halfwidth", "mixture_likelihood_ratio"]
