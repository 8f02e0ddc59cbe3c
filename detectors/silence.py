"""An event source that went quiet when its usual traffic says it should not have."""

from __future__ import annotations

from scipy.special import betainc, pdtr

from detectors.base import DriftDetector


class PoissonSilence(DriftDetector):
    """Poisson lower-tail test: ``count`` events seen where ``expected`` were due.

    Detects when ``P(X <= count | Poisson(expected)) < alpha``; with ``count = 0`` that is
    ``exp(-expected) < alpha``, so a source expected to send 25 events in the gap is flagged, one
    expected to send 2 never is. ``expected`` comes from a time-of-day profile, so night hours with
    no usual traffic never count.

    ``expected_var`` is the variance of ``expected`` when it is itself an estimate (a median of a
    few days' counts): the test then uses the predictive distribution of the count, a gamma
    mixture of Poissons (negative binomial) with that mean and variance, so that a profile that
    happens to read high does not make an ordinary quiet spell look impossible. With ``count = 0``
    that is ``(1 + var / expected) ** (-expected**2 / var)``.

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
    >>> det.update(count=0, expected=12.0, t=2400).drift_detected  # exp(-12) = 6e-6
    True
    >>> det.update(count=0, expected=12.0, t=2700, expected_var=4.0).drift_detected
    False
    >>> round(det.p_value, 6)
    3.2e-05
    """

    def __init__(self, alpha: float = 1e-5, max_count: int = 0) -> None:
        super().__init__()
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if max_count < 0:
            raise ValueError(f"max_count must be >= 0, got {max_count}")
        self.alpha = alpha
        self.max_count = max_count

    def update(
        self, count: int, expected: float, t: float | None = None, expected_var: float = 0.0
    ) -> PoissonSilence:
        self.statistic = float(expected)
        self.effect = (count - expected) / expected if expected > 0 else None
        if expected <= 0:
            self.p_value = 1.0
        elif expected_var > 0:
            shape = expected * expected / expected_var  # gamma mixing: mean expected, var expected_var
            self.p_value = float(betainc(shape, count + 1, shape / (shape + expected)))
        else:
            self.p_value = float(pdtr(count, expected))
        self._record(count <= self.max_count and self.p_value < self.alpha, t)
        return self
