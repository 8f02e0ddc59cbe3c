"""`business_metric_decline`: the mean of an outcome metric the agent reports (revenue, resolved
tickets, ...) drops against its baseline; one test per metric, Bonferroni over the metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from detectors import MeanShift
from monitor.core.evidence import StatResult, fmt_num, fmt_window, metric_fields, rounded
from monitor.core.rules.base import OK, Check, Evidence, RuleContext, detector, scan
from monitor.core.rules.cusum import Extract, cusum_note, mean_cusum, segment_test, with_cusum
from monitor.core.signals import HOURS, Agg, triple_mean_var


def check_business_metric_decline(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready():
        return
    thr = ctx.thr
    longest = ctx.windows[-1][1]
    k = max(1, sum(1 for v in ctx.base.metrics.values() if v[2] >= thr.min_baseline_n))
    for metric, bv in ctx.base.metrics.items():
        bn, bmean, bvar = triple_mean_var(bv)
        if bn < thr.min_baseline_n or metric not in longest.metrics:
            continue
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
    seg = mean_cusum(ctx, fp, bmean, bvar, bn, -abs(bmean) * thr.business_min_drop, thr.business_min_n,
                     bn / max(ctx.base.s[HOURS], 1.0), k, _metric_values(metric),
                     lambda g: g.total <= ceiling * g.n)
    if seg is None and ctx.state_of(fp) == OK and not any(
        (v := agg.metrics.get(metric)) is not None and v[2] >= thr.business_min_n
        and v[0] <= ceiling * v[2] for _, agg in ctx.windows
    ):
        return None

    def test(agg: Agg) -> Any:
        v = agg.metrics.get(metric)
        if v is None:
            return None
        n, mean, var = triple_mean_var(v)
        return det.update(n, mean, var, bn, bmean, bvar, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        n, mean, _ = triple_mean_var(agg.metrics.get(metric, [0.0, 0.0, 0.0]))
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


def _metric_values(metric: str) -> Extract:
    def extract(agg: Agg) -> tuple[float, float, float, float] | None:
        v = agg.metrics.get(metric)
        return None if v is None else (v[2], v[0], v[0], v[1])

    return extract
