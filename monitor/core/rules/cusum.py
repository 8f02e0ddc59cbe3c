"""Accumulated evidence: a bank of CUSUMs over the closed buckets of the longest window.

Most statistical rules run, besides their window tests, a few CUSUMs per entry (agent, tool,
metric), each designed for a shift of a share or a mean (the catalogue's floor and larger ones),
over the last `cusum_memory_h` (48) hours (closed hours of the history, then the buckets),
with a threshold from a false-alarm run length of `cusum_false_alarm_years` per rule and agent
(`detectors.cusum_threshold`). A CUSUM at its threshold fires at once when the segment since its
estimated onset shows the effect size. docs/benchmarks-detection.md derives the thresholds and
what they can detect how fast. The designs follow the baseline on a coarse grid, so that they
are rarely rebuilt.

The CUSUM itself (designs, thresholds, the recursion) is `detectors.cusum`; this module chooses
what it runs on (the rule's baseline, its memory of buckets, its cooldown) and words the result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from detectors import MeanShift
from detectors.cusum import (
    Batch,
    CusumBank,
    Design,
    Segment,
    grid_near,
    grid_up,
    mean_designs,
    mean_null,
    rate_designs,
    share_null,
)
from detectors.proportion import beta_binomial_sf
from monitor.core.evidence import StatResult, metric_fields, rounded
from monitor.core.rules.base import Check, Evidence, RuleContext
from monitor.core.signals import Agg

_HOURS_PER_YEAR = 8766.0

#: a bucket's `(n, tested sum, shown sum, tested sum of squares)`, or None: the shape of `Agg`'s
#: readers (`Agg.quality`, `Agg.escalations`, ...), which the rules pass as they are
Extract = Callable[[Agg], tuple[float, float, float, float] | None]


class _Bank(CusumBank):
    """One fingerprint's bank, kept in `ctx.detectors` (not persisted), and what its designs and
    bounds were made for."""

    __slots__ = ("raw", "allowed", "params", "idx")

    def __init__(self, raw: tuple[Any, ...], allowed: float, params: tuple[Any, ...],
                 designs: list[Design]) -> None:
        super().__init__(designs)
        self.raw = raw  # the baseline values the designs were built from
        self.allowed = allowed  # the cooldown start the bounds assume
        self.params = params  # the designs' parameters, rounded to the grid
        self.idx: int | None = None  # the newest bucket the bounds include


def _arl_observations(ctx: RuleContext, per_hour: float, entries: int) -> float:
    """In-control run length, in observations, that each design of one entry (tool, metric) must
    reach so that the rule's whole bank stays above `cusum_false_alarm_years` (union bound). The
    volume is rounded up (10 % grid): a higher volume means more observations a year."""
    years = ctx.thr.cusum_false_alarm_years
    return years * _HOURS_PER_YEAR * grid_up(max(per_hour, 1.0), 0.1) * max(entries, 1)


def run_cusums(
    ctx: RuleContext, fp: str, raw: tuple[Any, ...],
    prepare: Callable[[], tuple[tuple[Any, ...], Callable[[], list[Design]]]],
    extract: Extract,
) -> list[Segment]:
    """The designs whose CUSUM over its memory (`_batches`; from the rule's cooldown on) is at or
    above its threshold now, strongest first.

    `raw`: the baseline values the designs depend on; `prepare()` turns them into the designs'
    parameters (rounded to the design grid) and a factory of the bank; `extract(agg)`: a bucket's
    `(n, tested sum, shown sum, tested sum of squares)`, or None.

    The statistic is recomputed from the buckets in `ctx.recent` (persisted), so a restored engine
    decides exactly as an uninterrupted one. To keep checks cheap, `ctx.detectors` (not persisted)
    carries the bank's upper bounds (`CusumBank.advance`) over the newest bucket: while every one
    is below its threshold nothing can fire and nothing is recomputed. A missing or stale bound
    (restore, designs moved with the baseline, cooldown moved, a check skipped) means: recompute."""
    if not ctx.recent:
        return []
    idx, newest = ctx.recent[-1]
    allowed = ctx.allowed_since(fp)
    key = "cusum:" + fp
    bank: _Bank | None = ctx.detectors.get(key)
    if bank is None or bank.raw != raw or bank.allowed != allowed:
        params, designs = prepare()
        if bank is not None and bank.params == params and bank.allowed == allowed:
            bank.raw = raw  # the baseline moved, the designs did not: the bounds hold
        else:
            bank = ctx.detectors[key] = _Bank(raw, allowed, params, designs())
    if not bank.designs:
        return []
    if bank.idx == idx - 1:
        below = bank.advance(extract(newest.agg) if newest is not None else None)
        bank.idx = idx
        if below:
            return []
    hits = bank.recompute(_batches(ctx, allowed, extract))
    bank.idx = idx
    return hits


def _batches(ctx: RuleContext, allowed: float, extract: Extract) -> list[Batch]:
    """A CUSUM's memory: the closed hours of the agent's history from `cusum_memory_h` back (whole
    hours before the longest window), then the buckets of the longest window, from the cooldown
    start `allowed` on, as `(start, n, tested sum, shown sum, tested sum of squares)`."""
    first = ctx.at - ctx.windows[-1][0]
    batches: list[Batch] = []
    oldest = max(ctx.at - ctx.thr.cusum_memory_h * 3600, allowed)
    if oldest < first:
        hours = ctx.baseline.hours
        for h in sorted(h for h in hours if h * 3600 >= oldest and (h + 1) * 3600 <= first):
            agg = hours[h].agg
            got = extract(agg) if agg is not None else None
            if got is not None and got[0] > 0:
                batches.append((float(h * 3600), *got))
    for b_idx, bucket in ctx.recent:
        b_start = float(b_idx * ctx.bucket_s)
        if b_start < first or b_start < allowed or bucket is None:
            continue
        got = extract(bucket.agg)
        if got is not None and got[0] > 0:
            batches.append((b_start, *got))
    return batches


def share_cusum(
    ctx: RuleContext, fp: str, bx: float, bn: float, floor: float, min_n: int, per_hour: float,
    entries: int, extract: Extract, effect: Callable[[Segment], bool] | None = None, key: tuple[Any, ...] = (),
) -> Segment | None:
    """The strongest CUSUM detection of a rise of a share to `floor` or more (see `run_cusums`), if
    its segment holds `min_n` trials and shows the effect size: a share of at least `floor`, or what
    `effect` says (`key`: what else, besides the baseline counts, `extract` depends on)."""
    if bn < ctx.thr.min_baseline_n:
        return None

    def prepare() -> tuple[tuple[Any, ...], Callable[[], list[Design]]]:
        p0c = share_null((bx + 0.5) / (bn + 1), bn)
        target = grid_near(floor)
        arl = _arl_observations(ctx, per_hour, entries)
        return (p0c, target, arl, *key), lambda: rate_designs(p0c, target, arl)

    for seg in run_cusums(ctx, fp, (bx, bn, floor, per_hour, entries, *key), prepare, extract):
        if seg.n >= min_n and (seg.total >= floor * seg.n if effect is None else effect(seg)):
            return seg
    return None


def mean_cusum(
    ctx: RuleContext, fp: str, mu0: float, var: float, bn: float, shift: float, min_n: int, per_hour: float,
    entries: int, extract: Extract, effect: Callable[[Segment], bool],
) -> Segment | None:
    """The strongest CUSUM detection of a shift of a mean by `shift` or more (see `run_cusums`), if
    its segment holds `min_n` observations and passes the rule's `effect` size gate."""
    if bn < ctx.thr.min_baseline_n or not var > 0 or not shift:
        return None  # no baseline, no spread, or a zero mean that a relative drop cannot leave

    def prepare() -> tuple[tuple[Any, ...], Callable[[], list[Design]]]:
        mu0c, var_q, shift_q = mean_null(mu0, var, bn, shift)
        arl = _arl_observations(ctx, per_hour, entries)
        return (mu0c, var_q, shift_q, arl), lambda: mean_designs(mu0c, var_q, shift_q, arl)

    for seg in run_cusums(ctx, fp, (mu0, var, bn, shift, per_hour, entries), prepare, extract):
        if seg.n >= min_n and effect(seg):
            return seg
    return None


def exceedance_floor(p0: float) -> float:
    """Designed share for a test on how many observations exceed a baseline quantile (share `p0`
    above it): 2.5 times the odds. The rule's own effect size (a mean or quantile ratio) gates it."""
    odds = 2.5 * p0 / (1 - p0)
    return odds / (1 + odds)


def share_metric(name: str, seg: Segment, p0: float, bx: float, bn: float, secs: float,
                 **extra: Any) -> dict[str, Any]:
    """The alert metric of a share CUSUM's segment (p-value: beta-binomial against the baseline)."""
    share = seg.total / seg.n
    res = StatResult(beta_binomial_sf(seg.total, seg.n, bx + 0.5, bn - bx + 0.5), seg.statistic, share / p0 - 1)
    return metric_fields(name, share, p0, secs, seg.n, res, **extra, test="cusum", threshold=rounded(seg.design.h),
                         design_share=rounded(seg.design.target))


def segment_test(seg: Segment, direction: str, bn: float, bmean: float, bvar: float) -> StatResult:
    """Welch t-test (baseline variance as a floor) of the segment's mean, for the evidence; the
    statistic shown is the CUSUM's."""
    n = seg.n
    mean = seg.total / n
    var = max(seg.sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    det = MeanShift(direction=direction, alpha=0.5, min_change=0.0, min_n=2, min_baseline_n=2)  # type: ignore[arg-type]
    det.update(n, mean, var, bn, bmean, bvar)
    return StatResult(det.p_value, seg.statistic, det.effect)


def cusum_note(seg: Segment) -> str:
    """The accumulated evidence in words: how many times likelier the data since the estimated
    onset are with the change than without it (the CUSUM statistic is the log of that ratio; its
    threshold comes from the false-alarm budget)."""
    return f"; strong evidence since the change began: the data are {likelihood_words(seg.statistic)} " \
        "times likelier with the change than without it"


def likelihood_words(log_ratio: float) -> str:
    """A likelihood ratio given by its logarithm, in words: "about 40,000", "about 3 million".

    >>> likelihood_words(math.log(4.2e4)), likelihood_words(math.log(3.1e6)), likelihood_words(40.0)
    ('about 42,000', 'about 3 million', 'more than a trillion')
    """
    if log_ratio >= math.log(1e12):
        return "more than a trillion"
    ratio = math.exp(log_ratio)
    for size, name in ((1e9, "billion"), (1e6, "million")):
        if ratio >= size:
            return f"about {ratio / size:.0f} {name}"
    digits = max(0, len(str(int(ratio))) - 2)
    return f"about {round(ratio, -digits):,.0f}"


def with_cusum(check: Check, seg: Segment | None, window_ev: Evidence | None) -> Check:
    """A CUSUM at its threshold (calibrated by its own run length) detects at once. It does not
    hold a firing alert open: its segment reaches back to the onset and stays above threshold for
    hours after the change has gone, so whether the signal is clear again is judged on the recent
    windows alone."""
    if seg is not None:
        check.detected, check.pending_checks = True, 1
        check.resolved_evidence = window_ev
    return check
