"""Sums of hourly rollups over a period (a week, the baseline weeks) for one agent.

Rollups carry sums and counts, so they add up; means are taken at the end. What sums cannot
give (p95 over the week, the sample, the top costs, categories, evaluators) comes from the
hourly `ReviewExtras`, merged here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.contract.rollup import Rollup
from monitor.core.review_sample import EvaluatorStats, ReviewExtras, hist_quantile


@dataclass(slots=True)
class ToolTotals:
    calls: int = 0
    errors: int = 0
    rate_limited: int = 0

    @property
    def error_share(self) -> float | None:
        return self.errors / self.calls if self.calls else None


@dataclass(slots=True)
class PeriodTotals:
    """One agent over a period."""

    hours: int = 0
    executions: int = 0
    completed: int = 0
    escalations: int = 0
    failures: int = 0
    timeouts: int = 0
    repeats: int = 0
    quality_sum: float = 0.0
    quality_count: int = 0
    cost_usd_sum: float = 0.0
    cost_count: int = 0
    unpriced: int = 0
    steps_weighted: float = 0.0
    steps_weight: int = 0
    duration_p95_weighted: float = 0.0
    duration_p95_weight: int = 0
    steps_p95_weighted: float = 0.0
    steps_p95_weight: int = 0
    tools: dict[str, ToolTotals] = field(default_factory=dict)
    outcomes: dict[str, list[float]] = field(default_factory=dict)  # metric -> [sum, count]
    # from the review extras
    reviewed_executions: int = 0
    hours_without_review: int = 0
    task_types: dict[str, list[int]] = field(default_factory=dict)  # -> [executions, escalations]
    reasons: dict[str, int] = field(default_factory=dict)
    evaluators: dict[str, list[float]] = field(default_factory=dict)  # -> [sum, count, passed, failed]
    duration_hist: dict[int, int] = field(default_factory=dict)
    steps_hist: dict[int, int] = field(default_factory=dict)

    def add(self, r: Rollup) -> None:
        self.hours += 1
        self.executions += r.executions
        self.completed += r.completed
        self.escalations += r.escalations
        self.failures += r.failures
        self.timeouts += r.timeouts
        self.repeats += r.repeats
        self.quality_sum += r.quality_sum
        self.quality_count += r.quality_count
        self.cost_usd_sum += r.cost_usd_sum
        self.cost_count += r.cost_count
        self.unpriced += r.unpriced_executions
        if r.steps_mean is not None:
            self.steps_weighted += r.steps_mean * r.executions
            self.steps_weight += r.executions
        if r.duration_ms_p95 is not None:
            self.duration_p95_weighted += r.duration_ms_p95 * r.executions
            self.duration_p95_weight += r.executions
        if r.steps_p95 is not None:
            self.steps_p95_weighted += r.steps_p95 * r.executions
            self.steps_p95_weight += r.executions
        for name, t in r.tools.items():
            tot = self.tools.setdefault(name, ToolTotals())
            tot.calls += t.calls
            tot.errors += t.errors
            tot.rate_limited += t.rate_limited
        for metric, m in r.outcomes.items():
            acc = self.outcomes.setdefault(metric, [0.0, 0.0])
            acc[0] += m.sum
            acc[1] += m.count
        if r.review is None:
            self.hours_without_review += 1
        else:
            self._add_review(r.review)

    def _add_review(self, x: ReviewExtras) -> None:
        self.reviewed_executions += x.executions_seen
        for name, c in x.task_types.items():
            acc = self.task_types.setdefault(name, [0, 0])
            acc[0] += c.executions
            acc[1] += c.escalations
        for reason, n in x.escalation_reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        for name, e in x.evaluators.items():
            _add_evaluator(self.evaluators.setdefault(name, [0.0, 0.0, 0.0, 0.0]), e)
        for b, n in x.duration_ms_hist.items():
            self.duration_hist[b] = self.duration_hist.get(b, 0) + n
        for b, n in x.steps_hist.items():
            self.steps_hist[b] = self.steps_hist.get(b, 0) + n

    # -- derived --------------------------------------------------------------------------------

    @staticmethod
    def _ratio(num: float, den: float) -> float | None:
        return num / den if den else None

    @property
    def escalation_rate(self) -> float | None:
        return self._ratio(self.escalations, self.executions)

    @property
    def repeat_rate(self) -> float | None:
        return self._ratio(self.repeats, self.executions)

    @property
    def failure_rate(self) -> float | None:
        """Failed or timed out."""
        return self._ratio(self.failures + self.timeouts, self.executions)

    @property
    def quality_mean(self) -> float | None:
        return self._ratio(self.quality_sum, self.quality_count)

    @property
    def cost_per_execution(self) -> float | None:
        return self._ratio(self.cost_usd_sum, self.cost_count)

    @property
    def steps_mean(self) -> float | None:
        return self._ratio(self.steps_weighted, self.steps_weight)

    @property
    def exact_quantiles(self) -> bool:
        """Quantiles come from merged histograms (every hour had review extras)."""
        return self.hours_without_review == 0 and bool(self.duration_hist or self.steps_hist)

    @property
    def duration_p95_ms(self) -> float | None:
        if self.exact_quantiles:
            return hist_quantile(self.duration_hist, 0.95)
        # without histograms: execution-weighted mean of the hourly p95s (an approximation)
        return self._ratio(self.duration_p95_weighted, self.duration_p95_weight)

    @property
    def steps_p95(self) -> float | None:
        if self.exact_quantiles:
            return hist_quantile(self.steps_hist, 0.95)
        return self._ratio(self.steps_p95_weighted, self.steps_p95_weight)


def _add_evaluator(acc: list[float], e: EvaluatorStats) -> None:
    acc[0] += e.score_sum
    acc[1] += e.count
    acc[2] += e.passed
    acc[3] += e.failed


def sum_rollups(rollups: Iterable[Rollup]) -> PeriodTotals:
    totals = PeriodTotals()
    for r in rollups:
        totals.add(r)
    return totals
