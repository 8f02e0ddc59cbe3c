"""Whether a change between two periods (the weekly review's week against its baseline) is one
the detection engine would call real.

The review marks a metric "worse" or "better" only when its change is both large and
significant, by the same standards as the engine's rules (`monitor.core.config.RuleThresholds`):

- **size**: at least half the effect the engine's rule for that signal pages on (escalation share
  x1.5 and +8 points -> x1.25 and +4 points; quality -20 % -> -10 %; cost x1.5 -> +25 %; ...).
  Half the gate is also what a firing alert must get under to resolve: smaller changes are, to
  the engine, usual variation;
- **significance** at `alpha` (two-sided): shares by the engine's exact beta-binomial test on the
  counts (executions, tool calls); means by Welch's t-test on the hourly means, each hour
  one observation, so that a busy hour's executions do not count as independent evidence about
  the week. Weekly totals (spend) have no test: the size alone decides.

A "+50 %" on 8 tool calls, or a "+8 %" cost per execution, is then "neutral": the arrow still
shows the direction, the colour does not call it worse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import ttest_ind

from detectors.proportion import beta_binomial_sf
from monitor.core.config import RuleThresholds


@dataclass(frozen=True, slots=True)
class Gate:
    """Half the engine's effect gate of a signal: a relative change and, for shares, an absolute one."""

    relative: float
    absolute: float = 0.0
    min_n: int = 20


def gates(thr: RuleThresholds) -> dict[str, Gate]:
    """The review's gates by metric name (outcome metrics: key "outcome")."""
    tool = Gate((thr.tool_error_min_ratio - 1) / 2, thr.tool_error_min_share / 2, thr.tool_error_min_calls)
    return {
        "escalation_rate": Gate((thr.escalation_min_ratio - 1) / 2, thr.escalation_min_increase / 2,
                                thr.escalation_min_n),
        "repeat_rate": Gate((thr.repeat_min_ratio - 1) / 2, thr.repeat_min_increase / 2, thr.repeat_min_n),
        "failure_rate": tool,
        "tool_error_share": tool,
        "quality_mean": Gate(thr.quality_min_drop / 2, min_n=thr.quality_min_n),
        "cost_per_execution": Gate((thr.cost_min_ratio - 1) / 2, min_n=thr.cost_min_n),
        "spend_usd": Gate((thr.cost_min_ratio - 1) / 2, min_n=1),
        "steps_mean": Gate((thr.duration_min_ratio - 1) / 2, min_n=thr.duration_min_n),
        "steps_p95": Gate((thr.duration_min_ratio - 1) / 2, min_n=thr.duration_min_n),
        "duration_p95_ms": Gate((thr.latency_p95_min_ratio - 1) / 2, min_n=thr.latency_min_n),
        "outcome": Gate(thr.business_min_drop / 2, min_n=thr.business_min_n),
    }


def large_enough(current: float, reference: float, gate: Gate) -> bool:
    """The change reaches the gate: relative, and for shares also absolute."""
    if reference == 0:
        return abs(current) >= gate.absolute and current != 0
    return abs(current - reference) / abs(reference) >= gate.relative and abs(current - reference) >= gate.absolute


def shares_differ(x: float, n: float, bx: float, bn: float, alpha: float) -> bool:
    """The engine's exact test of a share against its baseline (beta-binomial: the binomial test
    with the baseline's own uncertainty, `detectors.proportion.beta_binomial_sf`), two-sided, at
    `alpha`.

    >>> shares_differ(2, 8, 40, 1000, 1e-3), shares_differ(400, 1000, 300, 1000, 1e-3)
    (False, True)
    >>> shares_differ(5, 1000, 40, 1000, 1e-3)  # a fall
    True
    """
    if n <= 0 or bn <= 0:
        return False
    a, b = bx + 0.5, bn - bx + 0.5
    k = round(x)
    upper = beta_binomial_sf(k, round(n), a, b)
    lower = 1.0 - beta_binomial_sf(k + 1, round(n), a, b)
    return 2 * min(upper, lower) < alpha


def means_differ(hourly: Sequence[float], base_hourly: Sequence[float], alpha: float) -> bool:
    """Welch's t-test on hourly means, two-sided, at `alpha` (at least 3 hours on each side)."""
    if len(hourly) < 3 or len(base_hourly) < 3:
        return False
    res = ttest_ind(list(hourly), list(base_hourly), equal_var=False)
    p = float(res.pvalue)
    return not math.isnan(p) and p < alpha


def share_rise_p(x: float, n: float, bx: float, bn: float) -> float:
    """One-sided p-value of `x` of `n` against a reference share `bx / bn`, by the engine's exact
    beta-binomial test (`shares_differ`, one side).

    >>> share_rise_p(2, 12, 40, 1000) > 1e-3 > share_rise_p(12, 12, 40, 1000)
    True
    """
    if n <= 0 or bn <= 0:
        return 1.0
    return beta_binomial_sf(round(x), round(n), bx + 0.5, bn - bx + 0.5)
