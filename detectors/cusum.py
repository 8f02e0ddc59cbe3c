"""Page's CUSUM for a rise of a share, fed by counts (accumulating evidence of gradual drifts)."""

from __future__ import annotations

import math

from detectors.base import DriftDetector


class BernoulliCUSUM(DriftDetector):
    """Page's CUSUM of the log-likelihood ratio of a share ``p1`` against ``p0``, fed by counts.

    ``S <- max(0, S + x ln(p1/p0) + (n - x) ln((1-p1)/(1-p0)))``; drift when ``S >= threshold``.
    The in-control run length grows like ``exp(threshold)``. The statistic is not reset on a
    detection: ``change_point`` keeps the ``t`` at which ``S`` last left zero before crossing
    (the estimated onset), until ``reset()``.

    Parameters
    ----------
    threshold
        Decision threshold ``h`` on the accumulated log-likelihood ratio.

    Examples
    --------
    >>> det = BernoulliCUSUM(threshold=8.0)
    >>> for t in range(10):
    ...     _ = det.update(count=3, n=20, p0=0.15, p1=0.30, t=t)
    >>> det.drift_detected
    False
    >>> for t in range(10, 20):
    ...     _ = det.update(count=8, n=20, p0=0.15, p1=0.30, t=t)
    >>> det.drift_detected, det.change_point
    (True, 10)
    """

    _state_fields = ("_s", "_start")

    def __init__(self, threshold: float = 10.0) -> None:
        super().__init__()
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.threshold = threshold
        self._s = 0.0
        self._start: float | None = None

    def update(self, count: float, n: float, p0: float, p1: float, t: float | None = None) -> BernoulliCUSUM:
        if not 0 < p0 < p1 < 1:
            raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
        llr = count * math.log(p1 / p0) + (n - count) * math.log((1 - p1) / (1 - p0))
        before = self._s
        self._s = max(0.0, self._s + llr)
        if before == 0.0 and self._s > 0.0:
            self._start = t
        elif self._s == 0.0:
            self._start = None
        self.statistic = self._s
        detected = self._s >= self.threshold
        if detected and not self.drift_detected:
            self.n_detections += 1
            self.change_point = self._start
        elif not detected:
            self.change_point = None
        self.drift_detected = detected
        return self

    def reset(self) -> None:
        self._s, self._start = 0.0, None
        self.drift_detected, self.change_point = False, None
