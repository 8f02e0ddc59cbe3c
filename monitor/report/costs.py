"""Cost: the most expensive executions (the top 1 %), the daily trend and the weekly spend.

The weekly top list merges the hourly bounded top lists. It is exact unless an hour's list was
full at a cost that would still qualify for the weekly top (then executions of that hour may be
missing below it, and `outliers_complete` is false)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from monitor.contract.rollup import Rollup
from monitor.report.review import CostOutlier, CostReview, DailyCost
from monitor.report.sampling import weighted_items, weighted_quantile
from monitor.report.totals import PeriodTotals

MAX_OUTLIERS = 200


def cost_review(
    week: Sequence[Rollup],
    totals: PeriodTotals,
    start: datetime,
    top_share: float,
    weekly_spend: Mapping[str, float],
) -> CostReview:
    top_count = max(1, math.ceil(top_share * totals.cost_count)) if totals.cost_count else 0
    candidates = sorted(
        {x.execution_id: x for r in week if r.review for x in r.review.top_cost if x.cost_usd is not None}.values(),
        key=lambda x: (x.cost_usd or 0.0, x.execution_id), reverse=True,
    )
    chosen = candidates[: min(top_count, MAX_OUTLIERS)]
    threshold = chosen[-1].cost_usd if chosen else None
    complete = True
    if threshold is not None:
        for r in week:
            x = r.review
            if x and x.top_cost and x.priced_seen > len(x.top_cost) and (x.top_cost[-1].cost_usd or 0) >= threshold:
                complete = False
                break
    median = weighted_quantile([(i.cost_usd, w) for i, w in weighted_items(week) if i.cost_usd is not None], 0.5)
    outliers = [
        CostOutlier(rank=n + 1, execution=x, times_median=(x.cost_usd or 0.0) / median if median else None)
        for n, x in enumerate(chosen)
    ]
    days: dict[str, list[float]] = {(start + timedelta(days=d)).date().isoformat(): [0.0, 0, 0] for d in range(7)}
    for r in week:
        acc = days.setdefault(r.hour.date().isoformat(), [0.0, 0, 0])
        acc[0] += r.cost_usd_sum
        acc[1] += r.executions
        acc[2] += r.cost_count
    daily = [
        DailyCost(day=day, spend_usd=v[0], executions=int(v[1]), cost_per_execution=v[0] / v[2] if v[2] else None)
        for day, v in sorted(days.items())
    ]
    return CostReview(
        spend_usd=totals.cost_usd_sum, priced_executions=totals.cost_count, unpriced_executions=totals.unpriced,
        top_share=top_share, top_count=top_count, outliers=outliers, outliers_complete=complete,
        median_cost_usd=median, p99_cost_usd=threshold, daily=daily, weekly_spend_usd=dict(weekly_spend),
    )
