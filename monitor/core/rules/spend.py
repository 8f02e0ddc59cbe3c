"""`spend_budget`: an agent's spend today or this month is over its budget, or forecast to end
over it. Budgets are configured, or automatic: a multiple of the usual daily spend."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.core.baselines import slot_of_hour
from monitor.core.evidence import metric_fields, rounded
from monitor.core.rules.base import OK, Check, Evidence, RuleContext


@dataclass(slots=True)
class SpendView:
    day_spent: float
    month_spent: float
    day_elapsed_h: float
    day_remaining_expected_execs: float | None
    recent_cost_per_exec: float | None
    usual_daily: float | None
    month_days: int
    month_day_index: int  # days elapsed in month (fraction included)
    last_24h_spend: float


@dataclass(frozen=True, slots=True)
class SpendDay:
    """What `spend_view` derives once per UTC day (not persisted; kept by the caller)."""

    day: int  # UTC day index
    usual: float | None  # the usual daily spend, None before a week of history
    month_days: int
    first_day: int  # day index of the month's first day
    before: float  # spent this month before today


def spend_view(
    ctx: RuleContext, spend_days: dict[int, float], first_at: float, cached: SpendDay | None,
) -> tuple[SpendView | None, SpendDay | None]:
    """The spend figures `check_spend_budget` judges (None: no budget to judge against), from the
    agent's spend per UTC day and the time it was first seen; and the per-day derivation to pass
    back in as `cached` at the next check."""
    thr = ctx.thr
    at = ctx.at
    if thr.daily_budget_usd is None and thr.monthly_budget_usd is None and thr.auto_budget_factor is None:
        return None, cached
    if not spend_days:
        return None, cached
    day = int((at - 1) // 86400)
    if cached is None or cached.day != day:
        cached = _spend_day(day, at, spend_days, first_at)
    usual, month_days, first_day = cached.usual, cached.month_days, cached.first_day
    if usual is None and thr.daily_budget_usd is None and thr.monthly_budget_usd is None:
        return None, cached
    month_spent = cached.before + spend_days.get(day, 0.0)
    elapsed_h = (at - day * 86400) / 3600
    remaining: float | None = None
    baseline = ctx.baseline
    if baseline.profile:
        remaining = baseline.expected_between(at, (day + 1) * 86400)
    # cost per execution lately: the shortest window of 1 h or more with 30 priced executions
    # (costs are heavy-tailed: a handful of runs at night would make any forecast), else usual
    recent_cost = None
    for secs, agg in ctx.windows:
        if secs >= 3600:
            priced, _, cost, _ = agg.log_cost()
            if priced >= 30:
                recent_cost = cost / priced
                break
    if recent_cost is None:
        priced, _, cost, _ = baseline.base.log_cost()
        if priced > 0:
            recent_cost = cost / priced
    last_24h = sum(v for d, v in spend_days.items() if d == day or d == day - 1) / 2
    return SpendView(
        day_spent=spend_days.get(day, 0.0), month_spent=month_spent, day_elapsed_h=elapsed_h,
        day_remaining_expected_execs=remaining, recent_cost_per_exec=recent_cost, usual_daily=usual,
        month_days=month_days, month_day_index=day - first_day + 1, last_24h_spend=last_24h,
    ), cached


def _spend_day(day: int, at: float, spend_days: dict[int, float], first_at: float) -> SpendDay:
    # the usual daily spend: the median of the last 7 whole days of today's type (weekday or
    # weekend, UTC; a day without executions spent 0), once the agent has 7 of them. A median
    # over all 7 days is the second-lowest weekday's, and a 3x surge of an agent whose days
    # vary by +-15 % reached 4x that; with fewer days, a weekend's, and a normal weekday
    # over 4x that
    days = [d for d in range(day - 7, day) if d * 86400 >= first_at]
    usual = statistics.median(
        spend_days.get(d, 0.0) for d in days if _is_weekend(d) == _is_weekend(day)
    ) if len(days) >= 7 else None
    when = datetime.fromtimestamp(at - 1, tz=UTC)
    month_start = datetime(when.year, when.month, 1, tzinfo=UTC)
    next_month = datetime(when.year + (when.month == 12), when.month % 12 + 1, 1, tzinfo=UTC)
    month_days = (next_month - month_start).days
    first_day = int(month_start.timestamp() // 86400)
    before = sum(v for d, v in spend_days.items() if first_day <= d < day)
    return SpendDay(day, usual, month_days, first_day, before)


def _is_weekend(day: int) -> bool:
    """Whether a UTC day index (days since the epoch) is a Saturday or a Sunday."""
    return slot_of_hour(day * 24) >= 24


def check_spend_budget(ctx: RuleContext, view: SpendView) -> Iterator[Check]:
    thr = ctx.thr
    daily = thr.daily_budget_usd
    monthly = thr.monthly_budget_usd
    auto = False
    if daily is None and thr.auto_budget_factor is not None and view.usual_daily:
        daily = thr.auto_budget_factor * view.usual_daily
        auto = True
    if monthly is None and thr.auto_budget_factor is not None and view.usual_daily:
        monthly = thr.auto_budget_factor * view.usual_daily * view.month_days
    for period, budget, spent in (("day", daily, view.day_spent), ("month", monthly, view.month_spent)):
        fp = ctx.fp("spend_budget", {"period": period})
        if budget is None:
            continue
        forecast = _forecast(ctx, view, period, spent)
        over = spent > budget
        detected = over or forecast > budget
        clear = not over and forecast < budget * thr.budget_resolve_below  # hysteresis
        state = ctx.state_of(fp)
        if not detected and state == OK:
            continue
        kind = "over" if over else "forecast over" if detected else "forecast under"
        src = f"auto budget (x{thr.auto_budget_factor or 0:.0f} usual daily spend)" if auto and \
            period == "day" else "budget"
        # the number the decision is about against the budget: the spend once over, else the forecast
        name, shown = (f"spend_usd_{period}", spent) if over else (f"spend_usd_{period}_forecast", forecast)
        ev = Evidence(
            metric_fields(name, shown, budget, 86400 if period == "day" else 30 * 86400, 0,
                          None, spent_usd=rounded(spent), forecast_usd=rounded(forecast), budget_usd=rounded(budget)),
            f"{ctx.agent_id}: {period} spend {spent:.2f} USD, forecast {forecast:.2f} USD: {kind} its "
            f"{src} of {budget:.2f} USD",
        )
        # over budget: at once; only forecast over: confirmed by the usual pending checks
        yield Check("spend_budget", {"period": period}, detected, clear, ev,
                    pending_checks=1 if over else None, fp=fp)


def _forecast(ctx: RuleContext, view: SpendView, period: str, spent: float) -> float:
    """Spend at the end of the day (from the expected executions left, or the pace so far) or month
    (the last two days' daily average for each day left)."""
    if period == "day":
        forecast = spent
        if view.day_elapsed_h >= ctx.thr.budget_forecast_min_elapsed_h and view.recent_cost_per_exec:
            remaining = view.day_remaining_expected_execs
            if remaining is None:
                remaining_spend = spent / view.day_elapsed_h * (24 - view.day_elapsed_h)
            else:
                remaining_spend = remaining * view.recent_cost_per_exec
            forecast = spent + remaining_spend
        return forecast
    return spent + view.last_24h_spend * max(view.month_days - view.month_day_index, 0)
