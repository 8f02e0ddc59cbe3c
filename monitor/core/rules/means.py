"""Rules on the mean of a per-execution quantity against its baseline: quality scores (a drop),
cost or tokens, and steps or run time (a rise). Each tests every window (Welch t-test, on
logarithms for heavy-tailed quantities) and runs accumulated evidence (`cusum.py`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from operator import methodcaller
from typing import Any

from detectors import MeanShift
from detectors.proportion import beta_binomial_sf
from monitor.core.evidence import StatResult, fmt_num, fmt_pct, fmt_window, metric_fields, relative_change, rounded
from monitor.core.rules.base import OK, Check, Evidence, Reader, RuleContext, detector, scan, window_above, window_below
from monitor.core.rules.cusum import (
    Segment,
    cusum_note,
    exceedance_floor,
    mean_cusum,
    segment_test,
    share_cusum,
    with_cusum,
)
from monitor.core.signals import Agg, hist_above, hist_quantile_bin, mean_var


def _lower_or_higher(mean: float, bmean: float) -> str:
    """'35 % lower', or '3.2 % higher' when a resolve quotes a mean back above its baseline."""
    change = relative_change(mean, bmean) or 0.0
    return f"{fmt_pct(abs(change))} {'higher' if change > 0 else 'lower'}"


def check_quality_drop(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready("means"):
        return
    thr = ctx.thr
    bn, bmean, bvar = mean_var(ctx.base.quality())
    det = detector(ctx, "quality_drop", lambda: MeanShift(
        direction="decrease", alpha=thr.alpha / len(ctx.windows), min_change=thr.quality_min_drop,
        min_n=thr.quality_min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp("quality_drop")
    ceiling = bmean * (1 - thr.quality_min_drop)
    seg = mean_cusum(ctx, fp, bmean, bvar, bn, -thr.quality_min_drop * bmean, thr.quality_min_n,
                     ctx.base.per_hour(bn), 1, Agg.quality, lambda g: g.total <= ceiling * g.n)
    if seg is None and ctx.state_of(fp) == OK and not window_below(
            ctx.windows, Agg.quality, thr.quality_min_n, ceiling):
        return

    def test(agg: Agg) -> Any:
        n, mean, var = mean_var(agg.quality())
        return det.update(n, mean, var, bn, bmean, bvar, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        n, mean, _ = mean_var(agg.quality())
        return Evidence(
            metric_fields("quality_score", mean, bmean, secs, n, res),
            f"{ctx.agent_id}: mean quality score {mean:.2f} over the last {fmt_window(secs)} "
            f"({int(n)} scored), usually {bmean:.2f} ({_lower_or_higher(mean, bmean)})",
            ctx.samples_where(secs, 1, lambda q: q < bmean * (1 - thr.quality_min_drop)),
        )

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        mean = seg.total / seg.n
        ev = Evidence(
            metric_fields("quality_score", mean, bmean, secs, seg.n, segment_test(seg, "decrease", bn, bmean, bvar),
                          test="cusum", threshold=rounded(seg.design.h), design_mean=rounded(seg.design.target)),
            f"{ctx.agent_id}: mean quality score {mean:.2f} over the last {fmt_window(secs)} "
            f"({int(seg.n)} scored), usually {bmean:.2f} ({_lower_or_higher(mean, bmean)})"
            + cusum_note(seg),
            ctx.samples_where(secs, 1, lambda q: q < bmean * (1 - thr.quality_min_drop)),
        )
    yield with_cusum(Check("quality_drop", {}, detected, clear, ev, group="quality", fp=fp), seg, window_ev)


def check_token_cost_spike(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready("means"):
        return
    thr = ctx.thr
    if ctx.base.log_cost()[0] >= thr.min_baseline_n:
        yield from _log_mean_rule(ctx, "token_cost_spike", "cost_usd", Agg.log_cost,
                                  thr.cost_min_ratio, thr.cost_min_n, "cost", " USD", 2)
    elif ctx.base.log_tokens()[0] >= thr.min_baseline_n:
        yield from _log_mean_rule(ctx, "token_cost_spike", "tokens", Agg.log_tokens,
                                  thr.cost_min_ratio, thr.cost_min_n, "cost", "", 2)


def check_task_duration_rise(ctx: RuleContext) -> Iterator[Check]:
    """Steps per task when the agent reports them, else run time per execution."""
    if not ctx.base_ready("means"):
        return
    thr = ctx.thr
    base = ctx.base
    if base.steps()[0] >= thr.min_baseline_n:
        yield from _steps_rule(ctx)
    elif base.log_duration()[0] >= thr.min_baseline_n:
        yield from _log_mean_rule(ctx, "task_duration_rise", "duration_ms", Agg.log_duration,
                                  thr.duration_min_ratio, thr.duration_min_n, "duration", " ms", 4)


def _log_mean_rule(
    ctx: RuleContext, rule: str, name: str, read: Callable[[Agg], tuple[float, float, float, float]],
    min_ratio: float, min_n: int, group: str, unit: str, sample_col: int,
) -> Iterator[Check]:
    """Mean of a heavy-tailed quantity: effect = ratio of arithmetic means, significance = Welch
    t-test on logarithms (geometric means), robust to a few huge values. `read(agg)`: `(n, sum of
    logs, sum, sum of squared logs)` (`Agg.log_cost`, `Agg.log_tokens`, `Agg.log_duration`)."""
    thr = ctx.thr
    base = ctx.base
    got = read(base)
    bn, blog, blvar = mean_var(got)
    bmean = got[2] / bn if bn else 0.0
    det = detector(ctx, rule + ":" + name, lambda: MeanShift(
        direction="increase", alpha=thr.alpha / len(ctx.windows), min_change=min_ratio - 1,
        min_n=min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp(rule)
    floor = bmean * min_ratio
    seg = mean_cusum(ctx, fp, blog, blvar, bn, math.log(min_ratio), min_n, base.per_hour(bn), 1, read,
                     lambda g: g.shown >= floor * g.n)
    if seg is None and ctx.state_of(fp) == OK and not window_above(ctx.windows, read, min_n, floor):
        return

    def test(agg: Agg) -> Any:
        got = read(agg)
        n, lmean, lvar = mean_var(got)
        if n <= 0 or bmean <= 0:
            return None
        return det.update(n, lmean, lvar, bn, blog, blvar, t=ctx.at, effect=got[2] / n / bmean - 1)

    def summary(mean: float, secs: int, n: float) -> str:
        return (f"{ctx.agent_id}: {name.replace('_', ' ')} per execution {fmt_num(mean)}{unit} over the last "
                f"{fmt_window(secs)} ({int(n)} executions), usually {fmt_num(bmean)}{unit} "
                f"(x{mean / bmean:.1f})")

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        n, _, total, _ = read(agg)
        mean = total / n if n else 0.0
        return Evidence(metric_fields(name, mean, bmean, secs, n, res, test="welch_t_on_log"),
                        summary(mean, secs, n),
                        ctx.samples_where(secs, sample_col, lambda v: v > bmean * min_ratio))

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        mean = seg.shown / seg.n
        res = segment_test(seg, "increase", bn, blog, blvar)
        res.effect = mean / bmean - 1
        ev = Evidence(
            metric_fields(name, mean, bmean, secs, seg.n, res, test="cusum_on_log", threshold=rounded(seg.design.h),
                          design_ratio=rounded(math.exp(seg.design.target - blog))),
            summary(mean, secs, seg.n) + cusum_note(seg),
            ctx.samples_where(secs, sample_col, lambda v: v > bmean * min_ratio),
        )
    yield with_cusum(Check(rule, {}, detected, clear, ev, group=group, fp=fp), seg, window_ev)


def _steps_rule(ctx: RuleContext) -> Iterator[Check]:
    """`task_duration_rise` on steps per task. Accumulated evidence on the share of tasks above the
    baseline's 3rd quartile of steps: distribution-free (step counts have a heavy right tail a
    Gaussian CUSUM would mistake for a shift); the mean ratio stays the effect size."""
    thr = ctx.thr
    base = ctx.base
    bn, bmean, bvar = mean_var(base.steps())
    det = detector(ctx, "task_duration_rise:steps", lambda: MeanShift(
        direction="increase", alpha=thr.alpha / len(ctx.windows), min_change=thr.duration_min_ratio - 1,
        min_n=thr.duration_min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp("task_duration_rise")
    floor = bmean * thr.duration_min_ratio
    q75 = hist_quantile_bin(base.steps_hist, 0.75)
    seg = None
    if q75 is not None:
        above = hist_above(base.steps_hist, q75)
        above_q75: Reader = methodcaller("steps_above", q75)
        seg = share_cusum(
            ctx, fp, above, bn, exceedance_floor((above + 0.5) / (bn + 1)), thr.duration_min_n,
            base.per_hour(bn), 1, above_q75, lambda g: g.shown >= floor * g.n, (q75,))
    if seg is None and ctx.state_of(fp) == OK and not window_above(ctx.windows, Agg.steps, thr.duration_min_n, floor):
        return

    def test(agg: Agg) -> Any:
        n, mean, var = mean_var(agg.steps())
        return det.update(n, mean, var, bn, bmean, bvar, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        n, mean, _ = mean_var(agg.steps())
        return Evidence(
            metric_fields("steps_per_task", mean, bmean, secs, n, res),
            f"{ctx.agent_id}: {mean:.1f} steps per task over the last {fmt_window(secs)} "
            f"({int(n)} executions), usually {bmean:.1f}",
            ctx.samples_where(secs, 3, lambda v: v > bmean * thr.duration_min_ratio),
        )

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        ev = _steps_cusum_evidence(ctx, seg, bn, bmean, hist_above(base.steps_hist, q75))  # type: ignore[arg-type]
    yield with_cusum(Check("task_duration_rise", {}, detected, clear, ev, group="duration", fp=fp), seg, window_ev)


def _steps_cusum_evidence(ctx: RuleContext, seg: Segment, bn: float, bmean: float, above: float) -> Evidence:
    """`above` of the `bn` baseline tasks took more steps than the usual 3rd quartile."""
    secs = int(ctx.at - seg.start)
    mean = seg.shown / seg.n
    # the p-value of the data the CUSUM ran on: how many tasks exceed the usual 3rd quartile
    res = StatResult(beta_binomial_sf(seg.total, seg.n, above + 0.5, bn - above + 0.5), seg.statistic,
                     mean / bmean - 1)
    return Evidence(
        metric_fields("steps_per_task", mean, bmean, secs, seg.n, res, test="cusum_above_q75",
                      threshold=rounded(seg.design.h), above_q75=int(seg.total),
                      above_q75_share_baseline=rounded((above + 0.5) / (bn + 1))),
        f"{ctx.agent_id}: {mean:.1f} steps per task over the last {fmt_window(secs)} "
        f"({int(seg.n)} executions, {int(seg.total)} above the usual 3rd quartile), usually {bmean:.1f}"
        + cusum_note(seg),
        ctx.samples_where(secs, 3, lambda v: v > bmean * ctx.thr.duration_min_ratio),
    )
