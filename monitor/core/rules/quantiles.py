"""`latency_spike`: the 95th percentile of run time rises against its baseline (a quantile test
on the duration histograms; accumulated evidence on the share above the usual p95)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from operator import methodcaller
from typing import Any

from detectors import QuantileExceedance
from monitor.core.evidence import StatResult, fmt_window, metric_fields, relative_change, rounded
from monitor.core.rules.base import OK, Check, Evidence, Reader, RuleContext, detector, scan, window_above
from monitor.core.rules.cusum import Segment, cusum_note, exceedance_floor, share_cusum, share_metric, with_cusum
from monitor.core.signals import DURATION_BINS_PER_E, Agg, bin_upper, hist_quantile


def check_latency_spike(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready("quantiles") or ctx.base.log_duration()[0] < ctx.thr.min_baseline_n:
        return
    thr = ctx.thr
    b95 = ctx.baseline.p95_bin()
    if b95 is None:
        return
    base_p95 = bin_upper(b95)
    det = detector(ctx, "latency_spike", lambda: QuantileExceedance(
        q=0.95, alpha=thr.alpha / len(ctx.windows), min_ratio=thr.latency_p95_min_ratio,
        min_n=thr.latency_min_n))
    fp = ctx.fp("latency_spike")
    # p95 >= ratio x baseline p95 needs >= 5 % of the window above ratio x baseline p95
    gate_bin = int(math.log1p(base_p95 * thr.latency_p95_min_ratio) * DURATION_BINS_PER_E) - 1
    # accumulated evidence on the share above the baseline p95; the p95 ratio is the effect size
    bn, above, _, _ = ctx.base.durations_above(b95)  # type: ignore[misc]  # no minimum: never None
    seg = share_cusum(
        ctx, fp, above, bn, exceedance_floor((above + 0.5) / (bn + 1)), thr.latency_min_n,
        ctx.base.per_hour(bn), 1, methodcaller("durations_above", b95),
        lambda g: (hist_quantile(_segment_hist(ctx, g.start), 0.95) or 0.0) >= thr.latency_p95_min_ratio * base_p95,
        (b95,))
    over_gate: Reader = methodcaller("durations_above", gate_bin, thr.latency_min_n)
    if seg is None and ctx.state_of(fp) == OK and not window_above(ctx.windows, over_gate, thr.latency_min_n, 0.05):
        return

    def test(agg: Agg) -> Any:
        got = agg.durations_above(b95, thr.latency_min_n)
        if got is None:
            return None
        cur = hist_quantile(agg.dur_hist, 0.95) or 0.0
        return det.update(got[1], got[0], cur, base_p95, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: StatResult) -> Evidence:
        cur = hist_quantile(agg.dur_hist, 0.95) or 0.0
        n, above, _, _ = agg.durations_above(b95)  # type: ignore[misc]  # no minimum: never None
        return Evidence(
            metric_fields("duration_ms_p95", cur, base_p95, secs, n, res, above_baseline_p95=int(above)),
            f"{ctx.agent_id}: p95 run time {cur / 1000:.1f} s over the last {fmt_window(secs)} "
            f"({int(n)} executions, {int(above)} slower than the usual p95), "
            f"usually {base_p95 / 1000:.1f} s",
            ctx.samples_where(secs, 4, lambda v: v > base_p95),
        )

    detected, clear, ev = scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        ev = _cusum_evidence(ctx, seg, base_p95, above, bn)
    yield with_cusum(Check("latency_spike", {}, detected, clear, ev, group="duration", fp=fp), seg, window_ev)


def _cusum_evidence(ctx: RuleContext, seg: Segment, base_p95: float, above: float, bn: float) -> Evidence:
    """The segment's p95 against the usual one (`above` of `bn` baseline executions exceeded it)."""
    secs = int(ctx.at - seg.start)
    cur = hist_quantile(_segment_hist(ctx, seg.start), 0.95) or 0.0
    ev = Evidence(
        share_metric("duration_ms_p95", seg, (above + 0.5) / (bn + 1), above, bn, secs,
                     above_baseline_p95=int(seg.total)),
        f"{ctx.agent_id}: p95 run time {cur / 1000:.1f} s over the last {fmt_window(secs)} "
        f"({int(seg.n)} executions, {int(seg.total)} slower than the usual p95), "
        f"usually {base_p95 / 1000:.1f} s" + cusum_note(seg),
        ctx.samples_where(secs, 4, lambda v: v > base_p95),
    )
    ev.metric.update(current=rounded(cur), baseline=rounded(base_p95), change=rounded(relative_change(cur, base_p95)))
    return ev


def _segment_hist(ctx: RuleContext, start: float) -> dict[int, float]:
    """The duration histogram of the closed buckets from `start` on."""
    hist: dict[int, float] = {}
    for idx, bucket in ctx.recent:
        if bucket is not None and idx * ctx.bucket_s >= start:
            for b, c in bucket.agg.dur_hist.items():
                hist[b] = hist.get(b, 0.0) + c
    return hist
