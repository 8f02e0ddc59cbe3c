"""The week's signals over time, per agent: quality, escalation rate, cost per execution and tool
error share in bins of a few hours, each with the range the baseline weeks had at the same time
of week (their lowest and highest bin value), so a reader sees when in the week a signal left its
usual range, and the incidents (shaded in the chart) beside it. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from monitor.contract.rollup import Rollup
from monitor.report.review import SeriesLine, SignalSeries
from monitor.report.week import IsoWeek

BIN_HOURS = 6

# name, label, unit, worse, (numerator, denominator) of one rollup
_SIGNALS: tuple[tuple[str, str, str, Literal["up", "down"], Callable[[Rollup], tuple[float, float]]], ...] = (
    ("quality_mean", "Quality (mean score)", "score", "down", lambda r: (r.quality_sum, r.quality_count)),
    ("escalation_rate", "Escalation rate", "%", "up", lambda r: (r.escalations, r.executions)),
    ("cost_per_execution", "Cost per execution", "USD", "up", lambda r: (r.cost_usd_sum, r.cost_count)),
    ("tool_error_share", "Tool error share", "%", "up",
     lambda r: (sum(t.errors for t in r.tools.values()), sum(t.calls for t in r.tools.values()))),
)


def _bins(rollups: Sequence[Rollup], start: datetime, n: int,
          fn: Callable[[Rollup], tuple[float, float]]) -> list[float | None]:
    sums: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rollups:
        i = int((r.hour - start) / timedelta(hours=BIN_HOURS))
        if 0 <= i < n:
            num, den = fn(r)
            sums[i][0] += num
            sums[i][1] += den
    return [sums[i][0] / sums[i][1] if i in sums and sums[i][1] else None for i in range(n)]


def signal_series(week: IsoWeek, this: Sequence[Rollup], baseline: dict[IsoWeek, list[Rollup]]) -> SignalSeries:
    n = 7 * 24 // BIN_HOURS
    starts = [week.start + timedelta(hours=BIN_HOURS * i) for i in range(n)]
    lines = {}
    for name, label, unit, worse, fn in _SIGNALS:
        values = _bins(this, week.start, n, fn)
        earlier = [_bins(rs, w.start, n, fn) for w, rs in sorted(baseline.items()) if rs]
        low: list[float | None] = []
        high: list[float | None] = []
        for i in range(n):
            seen = [b[i] for b in earlier if b[i] is not None]
            low.append(min(seen) if seen else None)  # type: ignore[type-var]
            high.append(max(seen) if seen else None)  # type: ignore[type-var]
        if any(v is not None for v in values):
            lines[name] = SeriesLine(label=label, unit=unit, worse=worse, values=values, low=low, high=high)
    return SignalSeries(bin_hours=BIN_HOURS, starts=starts, lines=lines)
