"""Pure statistical drift detectors (no I/O, nothing of agentmon imported): the ones the rules
of `monitor/core/rules/` use.

Each detector follows the River-like interface of STYLE.md: hyperparameters are keyword arguments
kept on public attributes, state lives in underscore attributes, ``update(...)`` feeds evidence
and sets ``drift_detected``; a detection records ``change_point`` (the ``t`` given with the update
that first detected the drift) instead of silently resetting. State round-trips through
``to_dict()`` / ``from_dict()`` (plain JSON-compatible data) and pickle. ``CusumBank`` is the
exception: the rules recompute it from the buckets they persist (see its module).
"""

from detectors.base import DriftDetector
from detectors.cusum import CusumBank, bernoulli_kl, cusum_threshold
from detectors.mean_shift import MeanShift
from detectors.proportion import ProportionRise
from detectors.quantile import QuantileExceedance
from detectors.silence import PoissonSilence

__all__ = [
    "CusumBank",
    "DriftDetector",
    "MeanShift",
    "PoissonSilence",
    "ProportionRise",
    "QuantileExceedance",
    "bernoulli_kl",
    "cusum_threshold",
]
