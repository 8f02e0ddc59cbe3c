"""`business_metric_decline`: the mean of an outcome metric the agent reports (revenue, resolved
tickets, ...) drops against its baseline; one test per metric, Bonferroni over the metrics.

A metric whose baseline values are all 0 or 1 (converted, resolved, correct) is a share, and a
Gaussian test of its mean would be wrong exactly where it matters: near 0 or 1 (at 95 % success,
16 of 23 is a 1-in-10,000 event, not the 1-in-10^8 a t-test says). Its decline is tested as a rise
of the failure share (`rates.py`'s beta-binomial test and Bernoulli CUSUM)."""

from __future__ import annotations

from collections.abc import Iterator
from operator import methodcaller
from typing import Any

from detectors import MeanShift, ProportionRise
from monitor.core.evidence import StatResult, fmt_num, fmt_pct, fmt_window, metric_fields, relative_change, rounded
from monitor.core.rules.base import OK, Check, Evidence, Reader, RuleContext, detector, scan, window_above, window_below
from monitor.core.rules.cusum import cusum_note, mean_cusum, segment_test, share_cusum, share_metric, with_cusum
from monitor.core.signals import Agg, mean_var


def check_business_metric_decline(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready("outcomes"):
        return
    thr = ctx.thr
    longest = ctx.windows[-1][1]
    base = ctx.base
    reported = base.metrics_reported(thr.min_baseline_n)
    k = max(1, len(reported))
    for metric in reported:
        if longest.metric_values(metric) is None:
            continue
        got = base.metric_values(metric)
        bn, bmean, bvar = mean_var(got)
        if is_binary(got):  # type: ignore[arg-type]  # a metric of the baseline
            check = _binary_metric_check(ctx, metric, got, k)  # type: ignore[arg-type]
        else:
            check = _metric_check(ctx, metric, bn, bmean, bvar, k)
        if check is not None:
            yield check


def _metric_check(ctx: RuleContext, metric: str, bn: float, bmean: float, bvar: float, k: int) -> Check | None:
    """The rule for one metric (baseline: `bn` outcomes, mean `bmean`, variance `bvar`)."""
    thr = ctx.thr
    det = detector(ctx, f"business_metric_decline:{k}", lambda: MeanShift(
        direction="decrease", alpha=thr.alpha / len(ctx.windows) / k, min_change=thr.business_min_drop,
        min_n=thr.business_min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp("business_metric_decline", {"metric": metric})
    ceiling = bmean - abs(bmean) * thr.business_min_drop
    values: Reader = methodcaller("metric_values", metric)
    seg = mean_cusum(ctx, fp, bmean, bvar, bn, -abs(bmean) * thr.business_min_drop, thr.business_min_n,
                     ctx.base.per_hour(bn), k, values, lambda g: g.total <= ceiling * g.n)
    if seg is None and ctx.state_of(fp) == OK and not window_below(ctx.windows, values, thr.business_min_n, ceiling):
        return None

    def test(agg: Agg) -> Any:
        got = agg.metric_values(metric)
        if got is None:
            return None
        n, mean, var = mean_var(got)
        return det.update(n, mean, var, bn, bmean, bvar, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        n, mean, _ = mean_var(agg.metric_values(metric))
        return Evidence(
            metric_fields(metric, mean, bmean, secs, n, res),
            f"{ctx.agent_id}: outcome {metric} averages {fmt_num(mean)} over the last "
            f"{fmt_window(secs)} ({int(n)} outcomes), usually {fmt_num(bmean)}",
            ctx.samples(secs, "outcome:" + metric),
        )

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        mean = seg.total / seg.n
        ev = Evidence(
            metric_fields(metric, mean, bmean, secs, seg.n, segment_test(seg, "decrease", bn, bmean, bvar),
                          test="cusum", threshold=rounded(seg.design.h), design_mean=rounded(seg.design.target)),
            f"{ctx.agent_id}: outcome {metric} averages {fmt_num(mean)} over the last {fmt_window(secs)} "
            f"({int(seg.n)} outcomes), usually {fmt_num(bmean)}" + cusum_note(seg),
            ctx.samples(secs, "outcome:" + metric),
        )
    return with_cusum(Check("business_metric_decline", {"metric": metric}, detected, clear, ev,
                            group="metric:" + metric, fp=fp), seg, window_ev)


def is_binary(got: tuple[float, float, float, float]) -> bool:
    """Whether a metric's `(count, sum, sum, sum of squares)` (`Agg.metric_values`) holds only 0s
    and 1s (for values in [0, 1], x^2 = x exactly at 0 and 1 and x^2 < x between)."""
    return got[0] > 0 and 0.0 <= got[1] <= got[0] and abs(got[1] - got[3]) <= 1e-9 * got[0]


def _binary_metric_check(ctx: RuleContext, metric: str, got: tuple[float, float, float, float],
                         k: int) -> Check | None:
    """A 0/1 metric's decline as a rise of its failure share: `bn - bsum` failures in `bn`."""
    thr = ctx.thr
    bn, bsum = got[0], got[1]
    bx = bn - bsum  # baseline failures
    bmean = bsum / bn
    drop = thr.business_min_drop * bmean  # the catalogue's relative drop, as an absolute rise
    det = detector(ctx, f"business_metric_decline:binary:{k}", lambda: ProportionRise(
        alpha=thr.alpha / len(ctx.windows) / k, min_ratio=1.0, min_increase=min(drop, 0.999),
        min_n=thr.business_min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp("business_metric_decline", {"metric": metric})
    p0 = (bx + 0.5) / (bn + 1)
    floor = min(p0 + drop, 0.999)
    failures: Reader = methodcaller("metric_failures", metric)
    seg = share_cusum(ctx, fp, bx, bn, floor, thr.business_min_n, ctx.base.per_hour(bn), k, failures)
    if seg is None and ctx.state_of(fp) == OK and not window_above(ctx.windows, failures, thr.business_min_n, floor):
        return None

    def test(agg: Agg) -> Any:
        got = agg.metric_failures(metric)
        if got is None:
            return None
        return det.update(got[1], got[0], bx, bn, t=ctx.at)

    def summary(mean: float, secs: float, n: float) -> str:
        return (f"{ctx.agent_id}: outcome {metric} {fmt_pct(mean)} over the last {fmt_window(secs)} "
                f"({int(round(mean * n))} of {int(n)} outcomes), usually {fmt_pct(bmean)}")

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        n, total, _, _ = agg.metric_values(metric) or (0.0, 0.0, 0.0, 0.0)
        mean = total / n if n else 0.0
        res = StatResult(res.p_value, res.statistic, relative_change(mean, bmean))
        return Evidence(metric_fields(metric, mean, bmean, secs, n, res, test="beta_binomial_failures"),
                        summary(mean, secs, n), ctx.samples(secs, "outcome:" + metric))

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev
    if seg is not None:
        secs = int(ctx.at - seg.start)
        mean = 1 - seg.total / seg.n
        metric_ = share_metric(metric, seg, p0, bx, bn, secs)
        metric_.update(current=rounded(mean), baseline=rounded(bmean), change=rounded(relative_change(mean, bmean)))
        ev = Evidence(metric_, summary(mean, secs, seg.n) + cusum_note(seg), ctx.samples(secs, "outcome:" + metric))
    return with_cusum(Check("business_metric_decline", {"metric": metric}, detected, clear, ev,
                            group="metric:" + metric, fp=fp), seg, window_ev)
