"""Page's CUSUM of log-likelihood ratios: accumulating evidence of a change, fed by batches.

Two designs share one calibration (`cusum_threshold`): a rise of a share (Bernoulli counts) and a
shift of a mean (Gaussian sums with a known variance).

Calibration. For a CUSUM ``S <- max(0, S + Z)`` of log-likelihood ratios ``Z = ln f1(x)/f0(x)``
of single observations, the in-control drift is ``E0[Z] = -I0`` with ``I0 = KL(f0 || f1)`` and
``E0[exp(Z)] = 1``. Wald's identity with Siegmund's approximation (overshoot over ``h`` ignored)
gives the in-control average run length, in observations,

    ARL0 ~= (exp(h) - h - 1) / I0,

so the threshold for a target ``ARL0`` is the root of ``exp(h) - h - 1 = ARL0 * I0``
(`cusum_threshold`). Ignoring the overshoot makes this a lower bound: feeding observations in
batches (one update per time bucket) and restarting the statistic at the start of a finite
history only lower ``S``, so they lengthen the run too (seeded simulations of bucketed Bernoulli
streams: 1.4x to 9x longer than the formula; the larger the per-observation jump, the longer).
"""

from __future__ import annotations

import math

from detectors.base import DriftDetector


def cusum_threshold(arl: float, kl0: float) -> float:
    """Threshold ``h`` of a CUSUM of log-likelihood ratios whose in-control average run length is
    at least about ``arl`` observations, ``kl0`` being the Kullback-Leibler divergence of the
    in-control from the designed out-of-control distribution (nats per observation): the root of
    ``exp(h) - h - 1 = arl * kl0``.

    Examples
    --------
    >>> round(cusum_threshold(1e6, 0.02), 2)
    9.9
    >>> h = cusum_threshold(5e4, 0.1)
    >>> round((math.exp(h) - h - 1) / 0.1)
    50000
    """
    if arl <= 0 or kl0 <= 0:
        raise ValueError(f"need arl > 0 and kl0 > 0, got {arl}, {kl0}")
    c = arl * kl0
    h = math.log1p(c) + math.log1p(math.log1p(c))  # above the root: Newton descends monotonically
    for _ in range(100):
        step = (math.expm1(h) - h - c) / math.expm1(h)
        h -= step
        if abs(step) < 1e-12:
            break
    return h


def bernoulli_kl(p: float, q: float) -> float:
    """``KL(Bernoulli(p) || Bernoulli(q))`` in nats.

    Examples
    --------
    >>> round(bernoulli_kl(0.35, 0.15), 3)
    0.122
    """
    if not 0 < q < 1 or not 0 <= p <= 1:
        raise ValueError(f"need 0 <= p <= 1 and 0 < q < 1, got p={p}, q={q}")
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


class _CUSUM(DriftDetector):
    """Shared run bookkeeping: the statistic, the start of its current positive run (the
    estimated change point) and the sums of the observations fed since then (the segment)."""

    _state_fields = ("_s", "_start", "_seg_n", "_seg_sum")

    def __init__(self, threshold: float) -> None:
        super().__init__()
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.threshold = threshold
        self._s = 0.0
        self._start: float | None = None
        self._seg_n = 0.0
        self._seg_sum = 0.0

    def _step(self, llr: float, n: float, total: float, t: float | None) -> None:
        s = self._s + llr
        if s <= 0.0:
            self._s, self._start, self._seg_n, self._seg_sum = 0.0, None, 0.0, 0.0
        else:
            if self._s == 0.0:
                self._start, self._seg_n, self._seg_sum = t, 0.0, 0.0
            self._s = s
            self._seg_n += n
            self._seg_sum += total
        self.statistic = self._s
        detected = self._s >= self.threshold
        if detected and not self.drift_detected:
            self.n_detections += 1
            self.change_point = self._start
        elif not detected:
            self.change_point = None
        self.drift_detected = detected

    @property
    def segment(self) -> tuple[float | None, float, float]:
        """``(start, n, sum)``: the ``t`` of the first update of the current positive run (None
        while the statistic is 0), and the observations and their sum fed since then."""
        return self._start, self._seg_n, self._seg_sum

    def reset(self) -> None:
        self._s, self._start, self._seg_n, self._seg_sum = 0.0, None, 0.0, 0.0
        self.drift_detected, self.change_point, self.statistic = False, None, None


class BernoulliCUSUM(_CUSUM):
    """Page's CUSUM of the log-likelihood ratio of a share ``p1`` against ``p0``, fed by counts.

    ``S <- max(0, S + x ln(p1/p0) + (n - x) ln((1-p1)/(1-p0)))``; drift when ``S >= threshold``
    (choose it with ``cusum_threshold(arl, bernoulli_kl(p0, p1))``). The statistic is not reset
    on a detection: ``change_point`` keeps the ``t`` at which ``S`` last left zero before crossing
    (the estimated onset), and ``segment`` the counts since then, until ``reset()``. ``effect`` is
    the segment's share relative to ``p0`` minus one.

    Parameters
    ----------
    threshold
        Decision threshold ``h`` on the accumulated log-likelihood ratio (nats).

    Examples
    --------
    >>> det = BernoulliCUSUM(threshold=8.0)
    >>> for t in range(10):
    ...     _ = det.update(count=3, n=20, p0=0.15, p1=0.30, t=t)
    >>> det.drift_detected
    False
    >>> for t in range(10, 20):
    ...     _ = det.update(count=8, n=20, p0=0.15, p1=0.30, t=t)
    >>> det.drift_detected, det.change_point, det.segment
    (True, 10, (10, 200.0, 80.0))
    """

    def __init__(self, threshold: float = 10.0) -> None:
        super().__init__(threshold)

    def update(self, count: float, n: float, p0: float, p1: float, t: float | None = None) -> BernoulliCUSUM:
        if not 0 < p0 < p1 < 1:
            raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
        llr = count * math.log(p1 / p0) + (n - count) * math.log((1 - p1) / (1 - p0))
        self._step(llr, n, count, t)
        self.effect = self._seg_sum / self._seg_n / p0 - 1 if self._seg_n else None
        return self


class MeanCUSUM(_CUSUM):
    """Page's CUSUM for a shift of a mean from ``mu0`` to ``mu1``, fed by batch sums.

    Gaussian log-likelihood ratio with a known variance ``var`` per observation: a batch of ``n``
    observations summing to ``total`` adds ``((mu1 - mu0) * (total - n * mu0) - n * (mu1 - mu0)**2
    / 2) / var``. It detects an increase when ``mu1 > mu0`` and a decrease when ``mu1 < mu0``.
    With ``I0 = (mu1 - mu0)**2 / (2 var)`` per observation, ``cusum_threshold(arl, I0)`` calibrates
    it; for data lighter-tailed than Gaussian on the side of the shift (bounded scores, shares,
    logarithms of costs) that calibration holds or errs on the safe side. ``effect`` is the
    segment's mean relative to ``mu0`` minus one.

    Parameters
    ----------
    threshold
        Decision threshold ``h`` on the accumulated log-likelihood ratio (nats).

    Examples
    --------
    >>> det = MeanCUSUM(threshold=10.0)
    >>> _ = det.update(n=10, total=8.1, mu0=0.8, mu1=0.64, var=0.01, t=0)
    >>> det.statistic
    0.0
    >>> _ = det.update(n=10, total=5.5, mu0=0.8, mu1=0.64, var=0.01, t=1)
    >>> round(det.statistic, 2), det.drift_detected, det.change_point, round(det.effect, 3)
    (27.2, True, 1, -0.312)
    """

    def __init__(self, threshold: float = 10.0) -> None:
        super().__init__(threshold)

    def update(
        self, n: float, total: float, mu0: float, mu1: float, var: float, t: float | None = None
    ) -> MeanCUSUM:
        if not var > 0 or mu1 == mu0:
            raise ValueError(f"need var > 0 and mu1 != mu0, got var={var}, mu0={mu0}, mu1={mu1}")
        d = mu1 - mu0
        llr = (d * (total - n * mu0) - n * d * d / 2) / var
        self._step(llr, n, total, t)
        if self._seg_n and mu0:
            self.effect = (self._seg_sum / self._seg_n - mu0) / abs(mu0)
        else:
            self.effect = None
        return self
