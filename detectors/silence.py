"""An event source that went quiet when its usual traffic says it should not have."""

from __future__ import annotations

from scipy.special import pdtr

from detectors.base import DriftDetector


class PoissonSilence(DriftDetector):
    """Poisson lower-tail test: ``count`` events seen where ``expected`` were due.

    Detects when ``P(X <= count | Poisson(expected)) < alpha``; with ``count = 0`` that is
    ``exp(-expected) < alpha``, so a source expected to send 25 events in the gap is flagged, one
    expected to send 2 never is. ``expected`` comes from a time-of-day profile, so night hours with
    no usual traffic never count.

    Parameters
    ----------
    alpha
        Significance level of one test.
    max_count
        Counts above this are never silence (a trickle of traffic is not an outage).

    Examples
    --------
    >>> det = PoissonSilence(alpha=1e-5)
    >>> det.update(count=0, expected=5.0).drift_detected
    False
    >>> det.update(count=0, expected=25.0, t=1800).drift_detected
    True
    >>> det.update(count=3, expected=30.0, t=2100).drift_detected
    False
    """

    def __init__(self, alpha: float = 1e-5, max_count: int = 0) -> None:
        super().__init__()
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if max_count < 0:
            raise ValueError(f"max_count must be >= 0, got {max_count}")
        self.alpha = alpha
        self.max_count = max_count

    def update(self, count: int, expected: float, t: float | None = None) -> PoissonSilence:
        self.statistic = float(expected)
        self.effect = (count - expected) / expected if expected > 0 else None
        self.p_value = float(pdtr(count, expected)) if expected > 0 else 1.0
        self._record(count <= self.max_count and self.p_value < self.alpha, t)
        return self
