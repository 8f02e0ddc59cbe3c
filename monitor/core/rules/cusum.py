"""Accumulated evidence: a bank of CUSUMs over the closed buckets of the longest window.

Most statistical rules run, besides their window tests, a few CUSUMs per entry (agent, tool,
metric), each designed for a shift of a share or a mean (the catalogue's floor and larger ones),
over the last `cusum_memory_h` (48) hours (closed hours of the history, then the buckets),
with a threshold from a false-alarm run length of `cusum_false_alarm_years` per rule and agent
(`detectors.cusum_threshold`). A CUSUM at its threshold fires at once when the segment since its
estimated onset shows the effect size. docs/benchmarks-detection.md derives the thresholds and
what they can detect how fast. The designs follow the baseline on a coarse grid, so that they
are rarely rebuilt.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detectors import MeanShift
from detectors.cusum import bernoulli_kl, cusum_threshold
from detectors.proportion import beta_binomial_sf
from monitor.core.evidence import StatResult, metric_fields, rounded
from monitor.core.rules.base import Check, Evidence, RuleContext
from monitor.core.signals import Agg

_HOURS_PER_YEAR = 8766.0
_RATE_DESIGN_ODDS = (1.0, 2.5, 6.25)  # designed shares: the catalogue floor, and larger rises (odds x)
_MEAN_DESIGN_STEPS = (1.0, 2.0, 4.0)  # designed means: the catalogue floor, and 2 and 4 times that shift
_EPS = 1e-9  # float slack of the incremental upper bound
_GRID = 0.05  # designs follow the baseline in steps of 5 %, not every hour (no recomputation)

#: a bucket's `(n, tested sum, shown sum, tested sum of squares)`, or None
Extract = Callable[[Agg], tuple[float, float, float, float] | None]


@dataclass(slots=True)
class Design:
    """One CUSUM of a bank: the log-likelihood ratio of a bucket holding `n` observations that sum
    to `total` is `a * total + b * n`; it fires at `h`."""

    target: float  # the designed share or mean (in the tested scale)
    a: float
    b: float
    h: float


@dataclass(slots=True)
class Segment:
    """A design whose CUSUM is at or above its threshold now, and the buckets since it left 0."""

    design: Design
    statistic: float
    start: float  # event time of the first bucket of the run (the estimated onset)
    n: float
    total: float
    shown: float  # sum of the quantity the evidence shows (e.g. cost in USD for a log-cost test)
    sq: float  # sum of squares of the tested quantity


class _Bank:
    """One fingerprint's bank and its upper bounds, kept in `ctx.detectors` (not persisted)."""

    __slots__ = ("raw", "allowed", "params", "designs", "idx", "bounds")

    def __init__(self, raw: tuple[Any, ...], allowed: float, params: tuple[Any, ...],
                 designs: list[Design]) -> None:
        self.raw = raw  # the baseline values the designs were built from
        self.allowed = allowed  # the cooldown start the bounds assume
        self.params = params  # the designs' parameters, rounded to the grid
        self.designs = designs
        self.idx: int | None = None  # the newest bucket the bounds include
        self.bounds: list[float] = []


def _grid_up(x: float, step: float = _GRID) -> float:
    """`x > 0` rounded up on a logarithmic grid (steps of `step`, relative)."""
    return math.exp(math.ceil(math.log(x) / step) * step)


def _grid_near(x: float, step: float = _GRID) -> float:
    return math.exp(round(math.log(x) / step) * step)


def _arl_observations(ctx: RuleContext, per_hour: float, entries: int) -> float:
    """In-control run length, in observations, that each design of one entry (tool, metric) must
    reach so that the rule's whole bank stays above `cusum_false_alarm_years` (union bound). The
    volume is rounded up (10 % grid): a higher volume means more observations a year."""
    years = ctx.thr.cusum_false_alarm_years
    return years * _HOURS_PER_YEAR * _grid_up(max(per_hour, 1.0), 0.1) * max(entries, 1)


def _share_null(p0: float, bn: float) -> float:
    """The null share of a CUSUM: the baseline share one standard error higher (its false alarm
    rate is very sensitive to a null share set too low; one standard error brings its average over
    the uncertainty of the estimate back to about nominal), rounded up on the design grid."""
    return min(_grid_up(p0 + math.sqrt(p0 * (1 - p0) / (bn + 1))), 0.97)


def _rate_designs(p0c: float, floor: float, arl: float) -> list[Design]:
    """Designs for a rise of a share from the null `p0c`: `floor`, then larger rises in odds."""
    targets: list[float] = []
    odds = floor / (1 - floor) if floor < 1 else math.inf
    for m in _RATE_DESIGN_ODDS:
        p1 = odds * m / (1 + odds * m)
        if p0c < p1 < 0.98:
            targets.append(p1)
    out = []
    for p1 in targets:
        kl = bernoulli_kl(p0c, p1)
        if kl <= 0:  # a target a rounding error above the null (degenerate shares, e.g. steps always 3)
            continue
        b = math.log((1 - p1) / (1 - p0c))
        a = math.log(p1 / p0c) - b
        out.append(Design(p1, a, b, cusum_threshold(arl * len(targets), kl)))
    return out


def _mean_null(mu0: float, var: float, bn: float, shift: float) -> tuple[float, float, float]:
    """(null mean, variance, shift) of a mean CUSUM: as for shares, the baseline mean one standard
    error towards the shift; on a grid of 5 % of the shift (rounded towards it), the variance
    rounded up and the shift to the nearest step (5 %)."""
    shift_q = math.copysign(_grid_near(abs(shift)), shift)
    step = _GRID * abs(shift_q)
    mu0c = (mu0 + math.copysign(math.sqrt(var / bn), shift)) / step
    return (math.ceil(mu0c) if shift > 0 else math.floor(mu0c)) * step, _grid_up(var), shift_q


def _mean_designs(mu0c: float, var: float, shift: float, arl: float) -> list[Design]:
    """Designs for a shift of a mean from the null `mu0c` by `shift` (signed, in the tested
    scale) and by multiples of it."""
    out = []
    for m in _MEAN_DESIGN_STEPS:
        d = m * shift
        out.append(Design(mu0c + d, d / var, -(d * mu0c + d * d / 2) / var,
                          cusum_threshold(arl * len(_MEAN_DESIGN_STEPS), d * d / (2 * var))))
    return out


def run_cusums(
    ctx: RuleContext, fp: str, raw: tuple[Any, ...],
    prepare: Callable[[], tuple[tuple[Any, ...], Callable[[], list[Design]]]],
    extract: Extract,
) -> list[Segment]:
    """The designs whose CUSUM over its memory (`_recompute`; from the rule's cooldown on) is at or
    above its threshold now, strongest first.

    `raw`: the baseline values the designs depend on; `prepare()` turns them into the designs'
    parameters (rounded to the design grid) and a factory of the bank; `extract(agg)`: a bucket's
    `(n, tested sum, shown sum, tested sum of squares)`, or None.

    The statistic is recomputed from the buckets in `ctx.recent` (persisted), so a restored engine
    decides exactly as an uninterrupted one. To keep checks cheap, `ctx.detectors` (not persisted)
    carries an upper bound per design, `U <- max(0, U + z)` over the newest bucket: a CUSUM over
    a window that slides by one bucket is at most that, so while every `U` is below its threshold
    nothing can fire and nothing is recomputed. A missing or stale bound (restore, designs moved
    with the baseline, cooldown moved, a check skipped) means: recompute."""
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
        below = _bounds_below(bank, extract(newest.agg) if newest is not None else None)
        bank.idx = idx
        if below:
            return []
    hits, bank.bounds = _recompute(ctx, bank.designs, allowed, extract)
    bank.idx = idx
    hits.sort(key=lambda g: g.statistic / g.design.h, reverse=True)
    return hits


def _bounds_below(bank: _Bank, got: tuple[float, float, float, float] | None) -> bool:
    """Move the upper bounds over the newest bucket (`got`); whether all stay under threshold."""
    bounds = bank.bounds
    if got is None or not got[0] > 0:
        return all(u < d.h - _EPS for u, d in zip(bounds, bank.designs, strict=True))
    below = True
    n, total = got[0], got[1]
    for i, d in enumerate(bank.designs):
        u = bounds[i] + d.a * total + d.b * n
        bounds[i] = u = u if u > 0.0 else 0.0
        if u >= d.h - _EPS:
            below = False
    return below


def _recompute(
    ctx: RuleContext, designs: list[Design], allowed: float, extract: Extract,
) -> tuple[list[Segment], list[float]]:
    """Every design's CUSUM from scratch over its memory: the closed hours of the agent's history
    from `cusum_memory_h` back (whole hours before the longest window), then the buckets of the
    longest window. The segments at threshold, the statistics."""
    first = ctx.at - ctx.windows[-1][0]
    batches: list[tuple[float, float, float, float, float]] = []
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
    hits: list[Segment] = []
    bounds = []
    for d in designs:
        s = 0.0
        seg = [0.0, 0.0, 0.0, 0.0, 0.0]  # start, n, total, shown, sq of the current run
        for start, n, total, shown, sq in batches:
            z = d.a * total + d.b * n
            if s + z <= 0.0:
                s = 0.0
                continue
            if s == 0.0:
                seg = [start, 0.0, 0.0, 0.0, 0.0]
            s += z
            seg[1] += n
            seg[2] += total
            seg[3] += shown
            seg[4] += sq
        bounds.append(s)
        if s >= d.h:
            hits.append(Segment(d, s, seg[0], seg[1], seg[2], seg[3], seg[4]))
    return hits, bounds


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
        p0c = _share_null((bx + 0.5) / (bn + 1), bn)
        target = _grid_near(floor)
        arl = _arl_observations(ctx, per_hour, entries)
        return (p0c, target, arl, *key), lambda: _rate_designs(p0c, target, arl)

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
        mu0c, var_q, shift_q = _mean_null(mu0, var, bn, shift)
        arl = _arl_observations(ctx, per_hour, entries)
        return (mu0c, var_q, shift_q, arl), lambda: _mean_designs(mu0c, var_q, shift_q, arl)

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
