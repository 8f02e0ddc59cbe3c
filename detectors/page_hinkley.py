"""Page-Hinkley test: accumulating evidence of a rise of the mean of a stream."""

from __future__ import annotations

from detectors.base import DriftDetector


class PageHinkley(DriftDetector):
    """Page-Hinkley test for an increase of the mean of a stream of values.

    ``m_t = sum (x_i - mean_i - delta)``; drift when ``m_t - min(m) > threshold``. Feed it
    standardised values (e.g. z-scores against a baseline) so one ``threshold`` fits all signals.
    Use ``-x`` to detect decreases.

    Parameters
    ----------
    delta
        Magnitude of changes tolerated.
    threshold
        Decision threshold ``lambda``.
    min_instances
        Updates before any detection.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> det = PageHinkley(delta=0.1, threshold=20.0)
    >>> for t in range(200):
    ...     _ = det.update(rng.gauss(0, 1), t=t)
    >>> det.drift_detected
    False
    >>> for t in range(200, 260):
    ...     _ = det.update(rng.gauss(1.5, 1), t=t)
    >>> det.drift_detected, det.change_point is not None and 200 <= det.change_point < 260
    (True, True)
    """

    _state_fields = ("_n", "_mean", "_sum", "_min")

    def __init__(self, delta: float = 0.005, threshold: float = 50.0, min_instances: int = 30) -> None:
        super().__init__()
        if delta < 0 or threshold <= 0 or min_instances < 1:
            raise ValueError(
                f"need delta >= 0, threshold > 0, min_instances >= 1; got {delta}, {threshold}, {min_instances}"
            )
        self.delta = delta
        self.threshold = threshold
        self.min_instances = min_instances
        self._n = 0
        self._mean = 0.0
        self._sum = 0.0
        self._min = 0.0

    def update(self, x: float, t: float | None = None) -> PageHinkley:
        self._n += 1
        self._mean += (x - self._mean) / self._n
        self._sum += x - self._mean - self.delta
        self._min = min(self._min, self._sum)
        self.statistic = self._sum - self._min
        self._record(self._n >= self.min_instances and self.statistic > self.threshold, t)
        return self
