"""The rule catalogue (CONTRACT.md section 3) as checks over an agent's detection windows, and the
alert lifecycle (pending -> firing -> resolved) that turns checks into alert state changes.

A check yields one `Check` per fingerprint it looks at: `detected` (effect size and significance
on some window), `clear` (the shortest window with enough data no longer shows the effect, and for
a firing alert of a mean or quantile rule its effect is under half the gate; `None` when there is not
enough data to tell, or such an effect is between half the gate and the gate) and, when needed, the
evidence. `AlertTracker` applies pending checks and hysteresis and emits each firing / resolved
change once.

Multiplicity: every statistical rule tests `len(windows)` windows per check at `alpha / len(windows)`
(Bonferroni), needs the effect size first, and must hold on `pending_checks` consecutive checks;
after an alert resolves, windows reaching back into its firing period are not used again. `alpha`
is per check, so it is set from a yearly budget (~105,000 checks per agent and rule a year).

Accumulated evidence: besides the windows, most statistical rules run a small bank of CUSUMs over
the closed buckets of the longest window (`_cusum`), each with a threshold from a false-alarm run
length of `cusum_false_alarm_years` per rule and agent (`detectors.cusum_threshold`); a CUSUM at
its threshold fires at once when the segment since its estimated onset shows the effect size.
docs/benchmarks-detection.md derives the thresholds and what they can detect how fast.
"""

from __future__ import annotations

import math
import re
import statistics
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detectors import MeanShift, PoissonSilence, ProportionRise, QuantileExceedance
from detectors.cusum import bernoulli_kl, cusum_threshold
from detectors.proportion import beta_binomial_sf
from monitor.contract.alert import Alert, AlertMetric, alert_fingerprint
from monitor.contract.catalogue import runbook_url
from monitor.core.baselines import AgentBaseline, slot_of_hour
from monitor.core.config import RuleThresholds
from monitor.core.signals import (
    CN,
    CS,
    DN,
    DS,
    DURATION_BINS_PER_E,
    ESC,
    HOURS,
    LCQ,
    LCS,
    LDQ,
    LDS,
    LTQ,
    LTS,
    N_ESC,
    N_REP,
    QN,
    QQ,
    QS,
    REP,
    ST,
    STN,
    STQ,
    T_CALLS,
    T_ERR,
    TC,
    TE,
    TK,
    TKN,
    TOK,
    Agg,
    N,
    hist_above,
    hist_quantile,
    hist_quantile_bin,
    triple_mean_var,
)

OK, PENDING, FIRING = 0, 1, 2
_ALERT_NS = uuid.UUID("5b0c1d52-6f0e-4c1e-9d55-6a6d6f6e0001")


@dataclass(slots=True)
class Evidence:
    metric: dict[str, Any]
    summary: str
    samples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Check:
    rule: str
    labels: dict[str, str]
    detected: bool
    clear: bool | None
    evidence: Evidence | None
    group: str | None = None  # baseline field group to exclude while pending / firing
    pending_checks: int | None = None  # None: the thresholds' pending_checks
    fp: str = ""  # the fingerprint, when the rule already computed it
    # evidence for a resolution when it differs from `evidence`: the recent window that judged the
    # signal clear, rather than a CUSUM segment that still reaches back into the incident
    resolved_evidence: Evidence | None = None


class Bucket:
    """One event-time bucket of one agent while it is open, and after, for samples."""

    __slots__ = ("agg", "tasks", "samples", "recs", "cands")

    def __init__(self) -> None:
        self.agg = Agg()
        self.tasks: list[tuple[float, str, str, str, str]] = []  # t, event_id, task_id, status, exec id
        self.samples: dict[str, list[str]] = {}  # kind -> execution ids (<= 10), set at close
        # open: (t, event_id, record); closed: the 16 earliest records
        # (execution_id, quality, cost, steps, duration)
        self.recs: list[Any] = []
        self.cands: list[tuple[float, str, str, str]] = []  # open: (t, event_id, kind, execution id)

    def sample(self, kind: str, execution_id: str) -> None:
        lst = self.samples.get(kind)
        if lst is None:
            self.samples[kind] = [execution_id]
        elif len(lst) < 10 and execution_id not in lst:
            lst.append(execution_id)


@dataclass(slots=True)
class RuleContext:
    """What a rule sees of one agent at one check (time `at`, the end of the bucket just closed)."""

    agent_id: str
    at: float
    thr: RuleThresholds
    windows: list[tuple[int, Agg]]  # (seconds, sums), shortest first
    baseline: AgentBaseline
    recent: list[tuple[int, Bucket | None]]  # closed buckets, oldest first
    bucket_s: int
    last_event_at: float | None
    state_of: Callable[[str], int]
    allowed_since: Callable[[str], float]  # windows must start at or after this (cooldown)
    detectors: dict[str, Any]
    fp_cache: dict[Any, str]
    has_open_alerts: bool = False

    @property
    def base(self) -> Agg:
        return self.baseline.base

    def base_ready(self) -> bool:
        return self.baseline.hours_in_base() >= self.thr.min_baseline_hours

    def fp(self, rule: str, labels: dict[str, str] | None = None) -> str:
        key: Any = (rule, *sorted(labels.items())) if labels else rule
        got = self.fp_cache.get(key)
        if got is None:
            if len(self.fp_cache) > 1000:
                self.fp_cache.clear()
            got = self.fp_cache[key] = alert_fingerprint(rule, self.agent_id, labels)
        return got

    def samples(self, window_s: int, kind: str) -> list[str]:
        out: list[str] = []
        start = self.at - window_s
        for idx, bucket in reversed(self.recent):
            if idx * self.bucket_s < start:
                break
            if bucket is not None:
                out.extend(x for x in bucket.samples.get(kind, ()) if x not in out)
                if len(out) >= 10:
                    break
        return out[:10]

    def samples_where(self, window_s: int, col: int, pred: Callable[[float], bool]) -> list[str]:
        out: list[str] = []
        start = self.at - window_s
        for idx, bucket in reversed(self.recent):
            if idx * self.bucket_s < start:
                break
            if bucket is not None:
                for rec in bucket.recs:
                    value = rec[col]
                    if value is not None and pred(value) and rec[0] not in out:
                        out.append(rec[0])
                if len(out) >= 10:
                    break
        return out[:10]


def _det(ctx: RuleContext, key: str, factory: Callable[[], Any]) -> Any:
    det = ctx.detectors.get(key)
    if det is None:
        det = ctx.detectors[key] = factory()
    return det


def _fmt_window(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds)}s"


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %" if x >= 0.1 else f"{100 * x:.1f} %"


def _change(current: float, baseline: float) -> float | None:
    return (current - baseline) / baseline if baseline else None


def _scan(
    ctx: RuleContext,
    fp: str,
    test: Callable[[Agg], Any],
    evidence: Callable[[int, Agg, Any], Evidence],
) -> tuple[bool, bool | None, Evidence | None]:
    """Run `test` over the windows. Detected on an allowed window -> its evidence (shortest such).
    `clear` is judged on the shortest window with enough data: True when p > 0.1 or the effect is
    under its gate, and for a firing alert also under `resolve_effect_fraction` of the gate; None
    (undecided: neither counts toward resolving nor resets the count) between the two."""
    state = ctx.state_of(fp)
    allowed_since = ctx.allowed_since(fp)
    clear: bool | None = None
    hit: Evidence | None = None
    first_with_data: tuple[int, Agg, Any] | None = None
    for secs, agg in ctx.windows:
        det = test(agg)
        if det is None or det.effect is None:
            continue
        if first_with_data is None:
            first_with_data = (secs, agg, _result(det))
            if det.p_value is not None:
                clear = det.p_value > 0.1
            else:
                clear = None if state == FIRING and det.reaches(ctx.thr.resolve_effect_fraction) else True
        if det.drift_detected and ctx.at - secs >= allowed_since:
            hit = evidence(secs, agg, _result(det))
            break
        if state == FIRING:
            break
    if hit is None and state != OK and first_with_data is not None:
        secs, agg, res = first_with_data
        return False, clear, evidence(secs, agg, res)
    return hit is not None, clear, hit


@dataclass(slots=True)
class _Res:
    p_value: float | None
    statistic: float | None
    effect: float | None


def _result(det: Any) -> _Res:
    return _Res(det.p_value, det.statistic, det.effect)


def _metric(name: str, current: float | None, baseline: float | None, window_s: float, n: float,
            res: _Res | None = None, **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "name": name,
        "current": _r(current),
        "baseline": _r(baseline),
        "change": _r(_change(current, baseline)) if current is not None and baseline is not None else None,
        "window": _fmt_window(window_s),
        "n": int(round(n)),
    }
    if res is not None:
        if res.statistic is not None and math.isfinite(res.statistic):
            m["statistic"] = _r(res.statistic)
        if res.p_value is not None:
            m["p_value"] = float(f"{res.p_value:.3g}")
    m.update(extra)
    return m


def _r(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


# =================================================================================================
# Accumulating evidence: a bank of CUSUMs over the closed buckets
# =================================================================================================
_HOURS_PER_YEAR = 8766.0
_RATE_DESIGN_ODDS = (1.0, 2.5, 6.25)  # designed shares: the catalogue floor, and larger rises (odds x)
_MEAN_DESIGN_STEPS = (1.0, 2.0, 4.0)  # designed means: the catalogue floor, and 2 and 4 times that shift
_EPS = 1e-9  # float slack of the incremental upper bound
_GRID = 0.05  # designs follow the baseline in steps of 5 %, not every hour (no recomputation)


@dataclass(slots=True)
class _Design:
    """One CUSUM of a bank: the log-likelihood ratio of a bucket holding `n` observations that sum
    to `total` is `a * total + b * n`; it fires at `h`."""

    target: float  # the designed share or mean (in the tested scale)
    a: float
    b: float
    h: float


@dataclass(slots=True)
class _Segment:
    """A design whose CUSUM is at or above its threshold now, and the buckets since it left 0."""

    design: _Design
    statistic: float
    start: float  # event time of the first bucket of the run (the estimated onset)
    n: float
    total: float
    shown: float  # sum of the quantity the evidence shows (e.g. cost in USD for a log-cost test)
    sq: float  # sum of squares of the tested quantity


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


def _rate_designs(p0c: float, floor: float, arl: float) -> list[_Design]:
    """Designs for a rise of a share from the null `p0c`: `floor`, then larger rises in odds."""
    targets: list[float] = []
    odds = floor / (1 - floor) if floor < 1 else math.inf
    for m in _RATE_DESIGN_ODDS:
        p1 = odds * m / (1 + odds * m)
        if p0c < p1 < 0.98:
            targets.append(p1)
    out = []
    for p1 in targets:
        b = math.log((1 - p1) / (1 - p0c))
        a = math.log(p1 / p0c) - b
        out.append(_Design(p1, a, b, cusum_threshold(arl * len(targets), bernoulli_kl(p0c, p1))))
    return out


def _mean_null(mu0: float, var: float, bn: float, shift: float) -> tuple[float, float, float]:
    """(null mean, variance, shift) of a mean CUSUM: as for shares, the baseline mean one standard
    error towards the shift; on a grid of 5 % of the shift (rounded towards it), the variance
    rounded up and the shift to the nearest step (5 %)."""
    shift_q = math.copysign(_grid_near(abs(shift)), shift)
    step = _GRID * abs(shift_q)
    mu0c = (mu0 + math.copysign(math.sqrt(var / bn), shift)) / step
    return (math.ceil(mu0c) if shift > 0 else math.floor(mu0c)) * step, _grid_up(var), shift_q


def _mean_designs(mu0c: float, var: float, shift: float, arl: float) -> list[_Design]:
    """Designs for a shift of a mean from the null `mu0c` by `shift` (signed, in the tested
    scale) and by multiples of it."""
    out = []
    for m in _MEAN_DESIGN_STEPS:
        d = m * shift
        out.append(_Design(mu0c + d, d / var, -(d * mu0c + d * d / 2) / var,
                           cusum_threshold(arl * len(_MEAN_DESIGN_STEPS), d * d / (2 * var))))
    return out


def _cusum(
    ctx: RuleContext, fp: str, raw: tuple[Any, ...],
    prepare: Callable[[], tuple[tuple[Any, ...], Callable[[], list[_Design]]]],
    extract: Callable[[Agg], tuple[float, float, float, float] | None],
) -> list[_Segment]:
    """The designs whose CUSUM over the buckets of the longest window (those starting at or after
    the rule's cooldown) is at or above its threshold now, strongest first.

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
    cache = ctx.detectors.get(key)  # [raw, allowed, params, bank, bucket index, bounds]
    if cache is None or cache[0] != raw or cache[1] != allowed:
        params, designs = prepare()
        if cache is not None and cache[2] == params and cache[1] == allowed:
            cache[0] = raw  # the baseline moved, the designs did not: the bounds hold
        else:
            cache = ctx.detectors[key] = [raw, allowed, params, designs(), None, []]
    bank: list[_Design] = cache[3]
    if not bank:
        return []
    if cache[4] == idx - 1:
        got = extract(newest.agg) if newest is not None else None
        bounds = cache[5]
        below = True
        if got is not None and got[0] > 0:
            n, total = got[0], got[1]
            for i, d in enumerate(bank):
                u = bounds[i] + d.a * total + d.b * n
                bounds[i] = u = u if u > 0.0 else 0.0
                if u >= d.h - _EPS:
                    below = False
        else:
            below = all(u < d.h - _EPS for u, d in zip(bounds, bank, strict=True))
        cache[4] = idx
        if below:
            return []
    # from scratch over the window
    first = ctx.at - ctx.windows[-1][0]
    batches: list[tuple[float, float, float, float, float]] = []
    for b_idx, bucket in ctx.recent:
        b_start = float(b_idx * ctx.bucket_s)
        if b_start < first or b_start < allowed or bucket is None:
            continue
        got = extract(bucket.agg)
        if got is not None and got[0] > 0:
            batches.append((b_start, *got))
    hits: list[_Segment] = []
    bounds = []
    for d in bank:
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
            hits.append(_Segment(d, s, seg[0], seg[1], seg[2], seg[3], seg[4]))
    cache[4], cache[5] = idx, bounds
    hits.sort(key=lambda g: g.statistic / g.design.h, reverse=True)
    return hits


# =================================================================================================
# Rate rules
# =================================================================================================
def _share_cusum(
    ctx: RuleContext, fp: str, bx: float, bn: float, floor: float, min_n: int, per_hour: float,
    entries: int, extract: Callable[[Agg], tuple[float, float, float, float] | None],
    effect: Callable[[_Segment], bool] | None = None, key: tuple[Any, ...] = (),
) -> _Segment | None:
    """The strongest CUSUM detection of a rise of a share to `floor` or more (see `_cusum`), if its
    segment holds `min_n` trials and shows the effect size: a share of at least `floor`, or what
    `effect` says (`key`: what else, besides the baseline counts, `extract` depends on)."""
    if bn < ctx.thr.min_baseline_n:
        return None

    def prepare() -> tuple[tuple[Any, ...], Callable[[], list[_Design]]]:
        p0c = _share_null((bx + 0.5) / (bn + 1), bn)
        target = _grid_near(floor)
        arl = _arl_observations(ctx, per_hour, entries)
        return (p0c, target, arl, *key), lambda: _rate_designs(p0c, target, arl)

    for seg in _cusum(ctx, fp, (bx, bn, floor, per_hour, entries, *key), prepare, extract):
        if seg.n >= min_n and (seg.total >= floor * seg.n if effect is None else effect(seg)):
            return seg
    return None


def _exceedance_floor(p0: float) -> float:
    """Designed share for a test on how many observations exceed a baseline quantile (share `p0`
    above it): 2.5 times the odds. The rule's own effect size (a mean or quantile ratio) gates it."""
    odds = 2.5 * p0 / (1 - p0)
    return odds / (1 + odds)


def _share_metric(name: str, seg: _Segment, p0: float, bx: float, bn: float, secs: float,
                  **extra: Any) -> dict[str, Any]:
    share = seg.total / seg.n
    res = _Res(beta_binomial_sf(seg.total, seg.n, bx + 0.5, bn - bx + 0.5), seg.statistic, share / p0 - 1)
    return _metric(name, share, p0, secs, seg.n, res, **extra, test="cusum", threshold=_r(seg.design.h),
                   design_share=_r(seg.design.target))


def _rate_rule(
    ctx: RuleContext, rule: str, num: int, den: int, base_num: int, base_den: int,
    ratio: float, increase: float, min_n: int, what: str, sample_kind: str, group: str,
) -> Iterator[Check]:
    if not ctx.base_ready():
        return
    thr = ctx.thr
    bx, bn = ctx.base.s[base_num], ctx.base.s[base_den]
    det = _det(ctx, rule, lambda: ProportionRise(
        alpha=thr.alpha / len(ctx.windows), min_ratio=ratio, min_increase=increase,
        min_n=min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp(rule)
    p0 = (bx + 0.5) / (bn + 1) if bn else 0.0
    floor = max(p0 * ratio, p0 + increase)
    seg = _share_cusum(ctx, fp, bx, bn, floor, min_n, bn / max(ctx.base.s[HOURS], 1.0), 1,
                       lambda agg: (agg.s[den], agg.s[num], agg.s[num], 0.0))
    if seg is None and ctx.state_of(fp) == OK and not any(
        agg.s[den] >= min_n and agg.s[num] >= floor * agg.s[den] for _, agg in ctx.windows
    ):
        return  # cheap effect-size gate: nothing to test

    def test(agg: Agg) -> Any:
        return det.update(agg.s[num], agg.s[den], bx, bn, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: _Res) -> Evidence:
        share = agg.s[num] / agg.s[den] if agg.s[den] else 0.0
        return Evidence(
            _metric(f"{what}_rate", share, p0, secs, agg.s[den], res, count=int(agg.s[num])),
            f"{ctx.agent_id}: {what} rate {_pct(share)} over the last {_fmt_window(secs)} "
            f"({int(agg.s[num])} of {int(agg.s[den])}), usually {_pct(p0)}",
            ctx.samples(secs, sample_kind),
        )

    detected, clear, ev = _scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        ev = Evidence(
            _share_metric(f"{what}_rate", seg, p0, bx, bn, secs, count=int(seg.total)),
            f"{ctx.agent_id}: {what} rate {_pct(seg.total / seg.n)} over the last {_fmt_window(secs)} "
            f"({int(seg.total)} of {int(seg.n)}), usually {_pct(p0)}" + _cusum_note(seg),
            ctx.samples(secs, sample_kind),
        )
    yield _with_cusum(Check(rule, {}, detected, clear, ev, group=group, fp=fp), seg, window_ev)


def _with_cusum(check: Check, seg: _Segment | None, window_ev: Evidence | None) -> Check:
    """A CUSUM at its threshold (calibrated by its own run length) detects at once. It does not
    hold a firing alert open: its segment reaches back to the onset and stays above threshold for
    hours after the change has gone, so whether the signal is clear again is judged on the recent
    windows alone."""
    if seg is not None:
        check.detected, check.pending_checks = True, 1
        check.resolved_evidence = window_ev
    return check


def _mean_cusum(
    ctx: RuleContext, fp: str, mu0: float, var: float, bn: float, shift: float, min_n: int, per_hour: float,
    entries: int, extract: Callable[[Agg], tuple[float, float, float, float] | None],
    effect: Callable[[_Segment], bool],
) -> _Segment | None:
    """The strongest CUSUM detection of a shift of a mean by `shift` or more (see `_cusum`), if its
    segment holds `min_n` observations and passes the rule's `effect` size gate."""
    if bn < ctx.thr.min_baseline_n or not var > 0 or not shift:
        return None  # no baseline, no spread, or a zero mean that a relative drop cannot leave

    def prepare() -> tuple[tuple[Any, ...], Callable[[], list[_Design]]]:
        mu0c, var_q, shift_q = _mean_null(mu0, var, bn, shift)
        arl = _arl_observations(ctx, per_hour, entries)
        return (mu0c, var_q, shift_q, arl), lambda: _mean_designs(mu0c, var_q, shift_q, arl)

    for seg in _cusum(ctx, fp, (mu0, var, bn, shift, per_hour, entries), prepare, extract):
        if seg.n >= min_n and effect(seg):
            return seg
    return None


def _segment_test(seg: _Segment, direction: str, bn: float, bmean: float, bvar: float) -> _Res:
    """Welch t-test (baseline variance as a floor) of the segment's mean, for the evidence; the
    statistic shown is the CUSUM's."""
    n = seg.n
    mean = seg.total / n
    var = max(seg.sq - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    det = MeanShift(direction=direction, alpha=0.5, min_change=0.0, min_n=2, min_baseline_n=2)  # type: ignore[arg-type]
    det.update(n, mean, var, bn, bmean, bvar)
    return _Res(det.p_value, seg.statistic, det.effect)


def _cusum_note(seg: _Segment) -> str:
    return (f"; evidence accumulated since the change began: {seg.statistic:.1f} nats "
            f"(threshold {seg.design.h:.1f})")


def check_escalation_rate_rise(ctx: RuleContext) -> Iterator[Check]:
    t = ctx.thr
    yield from _rate_rule(ctx, "escalation_rate_rise", ESC, N, ESC, N_ESC, t.escalation_min_ratio,
                          t.escalation_min_increase, t.escalation_min_n, "escalation", "escalated",
                          "escalation")


def check_repeat_task_rate_rise(ctx: RuleContext) -> Iterator[Check]:
    t = ctx.thr
    yield from _rate_rule(ctx, "repeat_task_rate_rise", REP, N, REP, N_REP, t.repeat_min_ratio,
                          t.repeat_min_increase, t.repeat_min_n, "repeat-task", "repeat", "repeat")


def check_tool_error_rate(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready():
        return
    thr = ctx.thr
    longest = ctx.windows[-1][1]
    # one test per tool: Bonferroni over the tools that have a baseline, too
    k = max(1, sum(1 for v in ctx.base.tools.values() if v[T_CALLS] >= thr.min_baseline_n))
    for tool, bv in ctx.base.tools.items():
        if bv[T_CALLS] < thr.min_baseline_n:
            continue
        cur = longest.tools.get(tool)
        if (cur is None or cur[T_ERR] < thr.tool_error_min_share * thr.tool_error_min_calls) \
                and not ctx.has_open_alerts:
            continue
        fp = ctx.fp("tool_error_rate", {"tool": tool})
        bx, bn = bv[T_ERR], bv[T_CALLS]
        p0 = (bx + 0.5) / (bn + 1)
        floor = max(p0 * thr.tool_error_min_ratio, thr.tool_error_min_share)
        seg = _share_cusum(ctx, fp, bx, bn, floor, thr.tool_error_min_calls,
                           bn / max(ctx.base.s[HOURS], 1.0), k, _tool_errors(tool))
        if seg is None and ctx.state_of(fp) == OK and not any(
            (v := agg.tools.get(tool)) is not None and v[T_CALLS] >= thr.tool_error_min_calls
            and v[T_ERR] >= floor * v[T_CALLS] for _, agg in ctx.windows
        ):
            continue
        det = _det(ctx, f"tool_error_rate:{k}", lambda: ProportionRise(
            alpha=thr.alpha / len(ctx.windows) / k, min_ratio=thr.tool_error_min_ratio,
            min_share=thr.tool_error_min_share, min_n=thr.tool_error_min_calls,
            min_baseline_n=thr.min_baseline_n))

        def test(agg: Agg, tool: str = tool, bx: float = bx, bn: float = bn) -> Any:
            v = agg.tools.get(tool)
            if v is None:
                return None
            return det.update(v[T_ERR], v[T_CALLS], bx, bn, t=ctx.at)  # noqa: B023 - used in this iteration

        def evidence(secs: int, agg: Agg, res: _Res, tool: str = tool, p0: float = p0) -> Evidence:
            v = agg.tools.get(tool, [0.0, 0.0, 0.0, 0.0])
            share = v[T_ERR] / v[T_CALLS] if v[T_CALLS] else 0.0
            return Evidence(
                _metric("tool_error_share", share, p0, secs, v[T_CALLS], res, errors=int(v[T_ERR])),
                f"{ctx.agent_id}: tool {tool} fails {_pct(share)} of calls over the last "
                f"{_fmt_window(secs)} ({int(v[T_ERR])} of {int(v[T_CALLS])}), usually {_pct(p0)}",
                ctx.samples(secs, "tool_error:" + tool),
            )

        detected, clear, ev = _scan(ctx, fp, test, evidence)
        window_ev = ev  # what decided `clear`: quoted when resolving
        if seg is not None:
            secs = int(ctx.at - seg.start)
            share = seg.total / seg.n
            ev = Evidence(
                _share_metric("tool_error_share", seg, p0, bx, bn, secs, errors=int(seg.total)),
                f"{ctx.agent_id}: tool {tool} fails {_pct(share)} of calls over the last {_fmt_window(secs)} "
                f"({int(seg.total)} of {int(seg.n)}), usually {_pct(p0)}" + _cusum_note(seg),
                ctx.samples(secs, "tool_error:" + tool),
            )
        yield _with_cusum(Check("tool_error_rate", {"tool": tool}, detected, clear, ev, group="tool:" + tool,
                                fp=fp), seg, window_ev)


def _tool_errors(tool: str) -> Callable[[Agg], tuple[float, float, float, float] | None]:
    def extract(agg: Agg) -> tuple[float, float, float, float] | None:
        v = agg.tools.get(tool)
        return None if v is None else (v[T_CALLS], v[T_ERR], v[T_ERR], 0.0)

    return extract


def check_tool_calls_all_failing(ctx: RuleContext) -> Iterator[Check]:
    """None of the tool calls since the newest bucket with a successful one succeeded (within the
    window). Counted from there rather than over the whole window, an outage is seen at the end of
    its first whole bucket, where `tool_error_rate` usually sees it too: one group, in which the
    inhibition mutes that one, instead of two pages a bucket or two apart."""
    thr = ctx.thr
    base = ctx.base.s
    if base[TC] < thr.min_baseline_n or base[TOK] < thr.all_failing_baseline_ok_share * base[TC]:
        return
    start = ctx.at - thr.all_failing_window_s
    calls = execs = 0.0  # in the buckets after the newest one with a successful call
    run_start = ctx.at
    w_calls = w_ok = w_execs = 0.0  # in the whole window: what a resolving alert quotes
    in_run = True
    for idx, bucket in reversed(ctx.recent):
        if idx * ctx.bucket_s < start:
            break
        if bucket is None or not bucket.agg.s[TC]:
            continue  # no tool call: neither a success nor a failure
        s = bucket.agg.s
        w_calls += s[TC]
        w_ok += s[TOK]
        w_execs += s[TE]
        in_run = in_run and not s[TOK]
        if in_run:
            calls += s[TC]
            execs += s[TE]
            run_start = idx * ctx.bucket_s
    fp = ctx.fp("tool_calls_all_failing")
    detected = calls >= thr.all_failing_min_calls and execs >= thr.all_failing_min_executions
    clear = calls == 0 if w_calls > 0 else None  # the newest calls include a success
    ev = None
    if detected or ctx.state_of(fp) != OK:
        usual = base[TOK] / base[TC]
        if not clear:
            secs = int(ctx.at - run_start) or thr.all_failing_window_s  # no call at all: the window
            ev = Evidence(
                _metric("tool_call_success_share", 0.0, usual, secs, calls, executions=int(execs)),
                f"{ctx.agent_id}: none of {int(calls)} tool calls in {int(execs)} executions succeeded "
                f"over the last {_fmt_window(secs)} (usually {_pct(usual)} succeed)",
                ctx.samples(secs, "tool_all_fail"),
            )
        else:  # calls succeed again: the window's record, as the alert resolves
            share = w_ok / w_calls
            ev = Evidence(
                _metric("tool_call_success_share", share, usual, thr.all_failing_window_s, w_calls,
                        executions=int(w_execs)),
                f"{ctx.agent_id}: {int(w_ok)} of {int(w_calls)} tool calls in {int(w_execs)} executions "
                f"succeeded over the last {_fmt_window(thr.all_failing_window_s)} ({_pct(share)}; usually "
                f"{_pct(usual)} succeed)",
                ctx.samples(thr.all_failing_window_s, "tool_all_fail"),
            )
    yield Check("tool_calls_all_failing", {}, detected, clear, ev, group="tools", pending_checks=1, fp=fp)


# =================================================================================================
# Mean rules
# =================================================================================================
def check_quality_drop(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready():
        return
    thr = ctx.thr
    bn, bmean, bvar = ctx.base.mean_var(QS, QQ, QN)
    det = _det(ctx, "quality_drop", lambda: MeanShift(
        direction="decrease", alpha=thr.alpha / len(ctx.windows), min_change=thr.quality_min_drop,
        min_n=thr.quality_min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp("quality_drop")
    ceiling = bmean * (1 - thr.quality_min_drop)
    seg = _mean_cusum(ctx, fp, bmean, bvar, bn, -thr.quality_min_drop * bmean, thr.quality_min_n,
                      bn / max(ctx.base.s[HOURS], 1.0), 1, lambda agg: (agg.s[QN], agg.s[QS], agg.s[QS], agg.s[QQ]),
                      lambda g: g.total <= ceiling * g.n)
    if seg is None and ctx.state_of(fp) == OK and not any(
        agg.s[QN] >= thr.quality_min_n and agg.s[QS] <= ceiling * agg.s[QN] for _, agg in ctx.windows
    ):
        return

    def test(agg: Agg) -> Any:
        n, mean, var = agg.mean_var(QS, QQ, QN)
        return det.update(n, mean, var, bn, bmean, bvar, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: _Res) -> Evidence:
        n, mean, _ = agg.mean_var(QS, QQ, QN)
        return Evidence(
            _metric("quality_score", mean, bmean, secs, n, res),
            f"{ctx.agent_id}: mean quality score {mean:.2f} over the last {_fmt_window(secs)} "
            f"({int(n)} scored), usually {bmean:.2f} ({_pct(abs(_change(mean, bmean) or 0))} lower)",
            ctx.samples_where(secs, 1, lambda q: q < bmean * (1 - thr.quality_min_drop)),
        )

    detected, clear, ev = _scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        mean = seg.total / seg.n
        ev = Evidence(
            _metric("quality_score", mean, bmean, secs, seg.n, _segment_test(seg, "decrease", bn, bmean, bvar),
                    test="cusum", threshold=_r(seg.design.h), design_mean=_r(seg.design.target)),
            f"{ctx.agent_id}: mean quality score {mean:.2f} over the last {_fmt_window(secs)} "
            f"({int(seg.n)} scored), usually {bmean:.2f} ({_pct(abs(_change(mean, bmean) or 0))} lower)"
            + _cusum_note(seg),
            ctx.samples_where(secs, 1, lambda q: q < bmean * (1 - thr.quality_min_drop)),
        )
    yield _with_cusum(Check("quality_drop", {}, detected, clear, ev, group="quality", fp=fp), seg, window_ev)


def _log_mean_rule(
    ctx: RuleContext, rule: str, name: str, fields: tuple[int, int, int, int, int],
    min_ratio: float, min_n: int, group: str, unit: str, sample_col: int,
) -> Iterator[Check]:
    """Mean of a heavy-tailed quantity: effect = ratio of arithmetic means, significance = Welch
    t-test on logarithms (geometric means), robust to a few huge values."""
    thr = ctx.thr
    total, log_sum, log_sq, count = fields[0], fields[1], fields[2], fields[3]
    base = ctx.base
    bn, blog, blvar = base.mean_var(log_sum, log_sq, count)
    bmean = base.s[total] / bn if bn else 0.0
    det = _det(ctx, rule + ":" + name, lambda: MeanShift(
        direction="increase", alpha=thr.alpha / len(ctx.windows), min_change=min_ratio - 1,
        min_n=min_n, min_baseline_n=thr.min_baseline_n))
    fp = ctx.fp(rule)
    floor = bmean * min_ratio
    seg = _mean_cusum(ctx, fp, blog, blvar, bn, math.log(min_ratio), min_n, bn / max(base.s[HOURS], 1.0), 1,
                      lambda agg: (agg.s[count], agg.s[log_sum], agg.s[total], agg.s[log_sq]),
                      lambda g: g.shown >= floor * g.n)
    if seg is None and ctx.state_of(fp) == OK and not any(
        agg.s[count] >= min_n and agg.s[total] >= floor * agg.s[count] for _, agg in ctx.windows
    ):
        return

    def test(agg: Agg) -> Any:
        n, lmean, lvar = agg.mean_var(log_sum, log_sq, count)
        if n <= 0 or bmean <= 0:
            return None
        return det.update(n, lmean, lvar, bn, blog, blvar, t=ctx.at, effect=agg.s[total] / n / bmean - 1)

    def evidence(secs: int, agg: Agg, res: _Res) -> Evidence:
        n = agg.s[count]
        mean = agg.s[total] / n if n else 0.0
        return Evidence(
            _metric(name, mean, bmean, secs, n, res, test="welch_t_on_log"),
            f"{ctx.agent_id}: {name.replace('_', ' ')} per execution {_num(mean)}{unit} over the last "
            f"{_fmt_window(secs)} ({int(n)} executions), usually {_num(bmean)}{unit} "
            f"(x{mean / bmean:.1f})",
            ctx.samples_where(secs, sample_col, lambda v: v > bmean * min_ratio),
        )

    detected, clear, ev = _scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        mean = seg.shown / seg.n
        res = _segment_test(seg, "increase", bn, blog, blvar)
        res.effect = mean / bmean - 1
        ev = Evidence(
            _metric(name, mean, bmean, secs, seg.n, res, test="cusum_on_log", threshold=_r(seg.design.h),
                    design_ratio=_r(math.exp(seg.design.target - blog))),
            f"{ctx.agent_id}: {name.replace('_', ' ')} per execution {_num(mean)}{unit} over the last "
            f"{_fmt_window(secs)} ({int(seg.n)} executions), usually {_num(bmean)}{unit} "
            f"(x{mean / bmean:.1f})" + _cusum_note(seg),
            ctx.samples_where(secs, sample_col, lambda v: v > bmean * min_ratio),
        )
    yield _with_cusum(Check(rule, {}, detected, clear, ev, group=group, fp=fp), seg, window_ev)


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.4f}"


def check_token_cost_spike(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready():
        return
    thr = ctx.thr
    if ctx.base.s[CN] >= thr.min_baseline_n:
        yield from _log_mean_rule(ctx, "token_cost_spike", "cost_usd", (CS, LCS, LCQ, CN, 0),
                                  thr.cost_min_ratio, thr.cost_min_n, "cost", " USD", 2)
    elif ctx.base.s[TKN] >= thr.min_baseline_n:
        yield from _log_mean_rule(ctx, "token_cost_spike", "tokens", (TK, LTS, LTQ, TKN, 0),
                                  thr.cost_min_ratio, thr.cost_min_n, "cost", "", 2)


def check_task_duration_rise(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready():
        return
    thr = ctx.thr
    base = ctx.base
    if base.s[STN] >= thr.min_baseline_n:
        bn, bmean, bvar = base.mean_var(ST, STQ, STN)
        det = _det(ctx, "task_duration_rise:steps", lambda: MeanShift(
            direction="increase", alpha=thr.alpha / len(ctx.windows), min_change=thr.duration_min_ratio - 1,
            min_n=thr.duration_min_n, min_baseline_n=thr.min_baseline_n))
        fp = ctx.fp("task_duration_rise")
        floor = bmean * thr.duration_min_ratio
        # Accumulated evidence on the share of tasks above the baseline's 3rd quartile of steps:
        # distribution-free (step counts have a heavy right tail a Gaussian CUSUM would mistake
        # for a shift); the mean ratio stays the effect size.
        q75 = hist_quantile_bin(base.steps_hist, 0.75)
        seg = None
        if q75 is not None:
            above = hist_above(base.steps_hist, q75)
            seg = _share_cusum(
                ctx, fp, above, bn, _exceedance_floor((above + 0.5) / (bn + 1)), thr.duration_min_n,
                bn / max(base.s[HOURS], 1.0), 1,
                lambda agg: (agg.s[STN], hist_above(agg.steps_hist, q75), agg.s[ST], agg.s[STQ]),
                lambda g: g.shown >= floor * g.n, (q75,))
        if seg is None and ctx.state_of(fp) == OK and not any(
            agg.s[STN] >= thr.duration_min_n and agg.s[ST] >= floor * agg.s[STN] for _, agg in ctx.windows
        ):
            return

        def test(agg: Agg) -> Any:
            n, mean, var = agg.mean_var(ST, STQ, STN)
            return det.update(n, mean, var, bn, bmean, bvar, t=ctx.at)

        def evidence(secs: int, agg: Agg, res: _Res) -> Evidence:
            n, mean, _ = agg.mean_var(ST, STQ, STN)
            return Evidence(
                _metric("steps_per_task", mean, bmean, secs, n, res),
                f"{ctx.agent_id}: {mean:.1f} steps per task over the last {_fmt_window(secs)} "
                f"({int(n)} executions), usually {bmean:.1f}",
                ctx.samples_where(secs, 3, lambda v: v > bmean * thr.duration_min_ratio),
            )

        detected, clear, ev = _scan(ctx, fp, test, evidence)
        window_ev = ev  # what decided `clear`: quoted when resolving
        if seg is not None:
            secs = int(ctx.at - seg.start)
            mean = seg.shown / seg.n
            above = hist_above(base.steps_hist, q75)  # type: ignore[arg-type]
            # the p-value of the data the CUSUM ran on: how many tasks exceed the usual 3rd quartile
            res = _Res(beta_binomial_sf(seg.total, seg.n, above + 0.5, bn - above + 0.5), seg.statistic,
                       mean / bmean - 1)
            ev = Evidence(
                _metric("steps_per_task", mean, bmean, secs, seg.n, res, test="cusum_above_q75",
                        threshold=_r(seg.design.h), above_q75=int(seg.total),
                        above_q75_share_baseline=_r((above + 0.5) / (bn + 1))),
                f"{ctx.agent_id}: {mean:.1f} steps per task over the last {_fmt_window(secs)} "
                f"({int(seg.n)} executions, {int(seg.total)} above the usual 3rd quartile), usually {bmean:.1f}"
                + _cusum_note(seg),
                ctx.samples_where(secs, 3, lambda v: v > bmean * thr.duration_min_ratio),
            )
        yield _with_cusum(Check("task_duration_rise", {}, detected, clear, ev, group="duration", fp=fp), seg, window_ev)
    elif base.s[DN] >= thr.min_baseline_n:
        yield from _log_mean_rule(ctx, "task_duration_rise", "duration_ms", (DS, LDS, LDQ, DN, 0),
                                  thr.duration_min_ratio, thr.duration_min_n, "duration", " ms", 4)


def check_latency_spike(ctx: RuleContext) -> Iterator[Check]:
    if not ctx.base_ready() or ctx.base.s[DN] < ctx.thr.min_baseline_n:
        return
    thr = ctx.thr
    b95 = ctx.baseline.p95_bin()
    if b95 is None:
        return
    from monitor.core.signals import bin_upper

    base_p95 = bin_upper(b95)
    det = _det(ctx, "latency_spike", lambda: QuantileExceedance(
        q=0.95, alpha=thr.alpha / len(ctx.windows), min_ratio=thr.latency_p95_min_ratio,
        min_n=thr.latency_min_n))
    fp = ctx.fp("latency_spike")
    # p95 >= ratio x baseline p95 needs >= 5 % of the window above ratio x baseline p95
    gate_bin = int(math.log1p(base_p95 * thr.latency_p95_min_ratio) * DURATION_BINS_PER_E) - 1
    # accumulated evidence on the share above the baseline p95; the p95 ratio is the effect size
    bn = ctx.base.s[DN]
    above = hist_above(ctx.base.dur_hist, b95)
    seg = _share_cusum(
        ctx, fp, above, bn, _exceedance_floor((above + 0.5) / (bn + 1)), thr.latency_min_n,
        bn / max(ctx.base.s[HOURS], 1.0), 1, lambda agg: (agg.s[DN], hist_above(agg.dur_hist, b95), 0.0, 0.0),
        lambda g: (hist_quantile(_segment_hist(ctx, g.start), 0.95) or 0.0) >= thr.latency_p95_min_ratio * base_p95,
        (b95,))
    if seg is None and ctx.state_of(fp) == OK and not any(
        agg.s[DN] >= thr.latency_min_n and hist_above(agg.dur_hist, gate_bin) >= 0.05 * agg.s[DN]
        for _, agg in ctx.windows
    ):
        return

    def test(agg: Agg) -> Any:
        n = agg.s[DN]
        if n < thr.latency_min_n:
            return None
        cur = hist_quantile(agg.dur_hist, 0.95) or 0.0
        return det.update(hist_above(agg.dur_hist, b95), n, cur, base_p95, t=ctx.at)

    def evidence(secs: int, agg: Agg, res: _Res) -> Evidence:
        cur = hist_quantile(agg.dur_hist, 0.95) or 0.0
        above = hist_above(agg.dur_hist, b95)
        return Evidence(
            _metric("duration_ms_p95", cur, base_p95, secs, agg.s[DN], res, above_baseline_p95=int(above)),
            f"{ctx.agent_id}: p95 run time {cur / 1000:.1f} s over the last {_fmt_window(secs)} "
            f"({int(agg.s[DN])} executions, {int(above)} slower than the usual p95), "
            f"usually {base_p95 / 1000:.1f} s",
            ctx.samples_where(secs, 4, lambda v: v > base_p95),
        )

    detected, clear, ev = _scan(ctx, fp, test, evidence)
    window_ev = ev  # what decided `clear`: quoted when resolving
    if seg is not None:
        secs = int(ctx.at - seg.start)
        cur = hist_quantile(_segment_hist(ctx, seg.start), 0.95) or 0.0
        ev = Evidence(
            _share_metric("duration_ms_p95", seg, (above + 0.5) / (bn + 1), above, bn, secs,
                          above_baseline_p95=int(seg.total)),
            f"{ctx.agent_id}: p95 run time {cur / 1000:.1f} s over the last {_fmt_window(secs)} "
            f"({int(seg.n)} executions, {int(seg.total)} slower than the usual p95), "
            f"usually {base_p95 / 1000:.1f} s" + _cusum_note(seg),
            ctx.samples_where(secs, 4, lambda v: v > base_p95),
        )
        ev.metric.update(current=_r(cur), baseline=_r(base_p95), change=_r(_change(cur, base_p95)))
    yield _with_cusum(Check("latency_spike", {}, detected, clear, ev, group="duration", fp=fp), seg, window_ev)


def _segment_hist(ctx: RuleContext, start: float) -> dict[int, float]:
    """The duration histogram of the closed buckets from `start` on."""
    hist: dict[int, float] = {}
    for idx, bucket in ctx.recent:
        if bucket is not None and idx * ctx.bucket_s >= start:
            for b, c in bucket.agg.dur_hist.items():
                hist[b] = hist.get(b, 0.0) + c
    return hist


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
        det = _det(ctx, f"business_metric_decline:{k}", lambda: MeanShift(
            direction="decrease", alpha=thr.alpha / len(ctx.windows) / k, min_change=thr.business_min_drop,
            min_n=thr.business_min_n, min_baseline_n=thr.min_baseline_n))
        fp = ctx.fp("business_metric_decline", {"metric": metric})
        ceiling = bmean - abs(bmean) * thr.business_min_drop
        seg = _mean_cusum(ctx, fp, bmean, bvar, bn, -abs(bmean) * thr.business_min_drop, thr.business_min_n,
                          bn / max(ctx.base.s[HOURS], 1.0), k, _metric_values(metric),
                          lambda g, ceiling=ceiling: g.total <= ceiling * g.n)  # type: ignore[misc]
        if seg is None and ctx.state_of(fp) == OK and not any(
            (v := agg.metrics.get(metric)) is not None and v[2] >= thr.business_min_n
            and v[0] <= ceiling * v[2] for _, agg in ctx.windows
        ):
            continue

        def test(agg: Agg, metric: str = metric, bn: float = bn, bmean: float = bmean,
                 bvar: float = bvar) -> Any:
            v = agg.metrics.get(metric)
            if v is None:
                return None
            n, mean, var = triple_mean_var(v)
            return det.update(n, mean, var, bn, bmean, bvar, t=ctx.at)  # noqa: B023 - used in this iteration

        def evidence(secs: int, agg: Agg, res: _Res, metric: str = metric, bmean: float = bmean) -> Evidence:
            n, mean, _ = triple_mean_var(agg.metrics.get(metric, [0.0, 0.0, 0.0]))
            return Evidence(
                _metric(metric, mean, bmean, secs, n, res),
                f"{ctx.agent_id}: outcome {metric} averages {_num(mean)} over the last "
                f"{_fmt_window(secs)} ({int(n)} outcomes), usually {_num(bmean)}",
                ctx.samples(secs, "outcome:" + metric),
            )

        detected, clear, ev = _scan(ctx, fp, test, evidence)
        window_ev = ev  # what decided `clear`: quoted when resolving
        if seg is not None:
            secs = int(ctx.at - seg.start)
            mean = seg.total / seg.n
            ev = Evidence(
                _metric(metric, mean, bmean, secs, seg.n, _segment_test(seg, "decrease", bn, bmean, bvar),
                        test="cusum", threshold=_r(seg.design.h), design_mean=_r(seg.design.target)),
                f"{ctx.agent_id}: outcome {metric} averages {_num(mean)} over the last {_fmt_window(secs)} "
                f"({int(seg.n)} outcomes), usually {_num(bmean)}" + _cusum_note(seg),
                ctx.samples(secs, "outcome:" + metric),
            )
        yield _with_cusum(Check("business_metric_decline", {"metric": metric}, detected, clear, ev,
                                group="metric:" + metric, fp=fp), seg, window_ev)


def _metric_values(metric: str) -> Callable[[Agg], tuple[float, float, float, float] | None]:
    def extract(agg: Agg) -> tuple[float, float, float, float] | None:
        v = agg.metrics.get(metric)
        return None if v is None else (v[2], v[0], v[0], v[1])

    return extract


# =================================================================================================
# Traffic, spend and models
# =================================================================================================
def check_agent_silent(ctx: RuleContext) -> Iterator[Check]:
    thr = ctx.thr
    fp = ctx.fp("agent_silent")
    last = ctx.last_event_at
    if last is None:
        return
    gap = ctx.at - last
    state = ctx.state_of(fp)
    if gap < thr.silent_min_gap_s:
        if state != OK:
            yield Check("agent_silent", {}, False, True, _silent_evidence(ctx, gap, 0.0), group="volume",
                        pending_checks=1, fp=fp)
        return
    expected, var = _expected_in_gap(ctx, max(last, ctx.at - 24 * 3600), ctx.at)
    det = _det(ctx, "agent_silent", lambda: PoissonSilence(alpha=thr.silent_alpha))
    det.update(0, expected, t=ctx.at, expected_var=var)
    if det.drift_detected or state != OK:
        yield Check("agent_silent", {}, det.drift_detected, False,
                    _silent_evidence(ctx, gap, expected, det.p_value), group="volume", pending_checks=1, fp=fp)


def _expected_in_gap(ctx: RuleContext, start: float, end: float) -> tuple[float, float]:
    """Executions the volume profile expects in [start, end), and the variance of that estimate.

    The profile is the baseline's (per day type and hour of day, the median count over the
    reference days of that type, only where every such day had traffic), but built from the hours
    before the silence began: the silent hours themselves must not count as days without traffic,
    or each hour of an outage would erase its own expectation. Each slot's median of `k` days'
    counts has a variance of about (pi / 2) x count / k; pieces of the gap in one slot share it."""
    baseline = ctx.baseline
    newest = max(baseline.hours) if baseline.hours else None
    silent_from = int(start // 3600)  # the hour of the last event and later: not a reference
    key = (newest, silent_from)
    cached = ctx.detectors.get("agent_silent:profile")
    if cached is None or cached[0] != key:
        by_slot: dict[int, list[float]] = {}
        if newest is not None:
            first = newest - baseline.reference_h + 1
            for h, rec in baseline.hours.items():
                if first <= h < silent_from and "volume" not in rec.excluded:
                    by_slot.setdefault(slot_of_hour(h), []).append(rec.count())
        min_days = ctx.thr.silent_min_reference_days
        profile = {slot: (statistics.median(c), len(c)) for slot, c in by_slot.items()
                   if len(c) >= min_days and min(c) > 0}
        cached = ctx.detectors["agent_silent:profile"] = (key, profile)
    profile = cached[1]
    share: dict[int, float] = {}
    t = start
    while t < end:
        h = int(t // 3600)
        nxt = min(end, (h + 1) * 3600.0)
        slot = slot_of_hour(h)
        share[slot] = share.get(slot, 0.0) + (nxt - t) / 3600.0
        t = nxt
    expected = var = 0.0
    for slot, frac in share.items():
        got = profile.get(slot)
        if got is not None:
            expected += got[0] * frac
            var += frac * frac * (math.pi / 2) * got[0] / got[1]
    return expected, var


def _silent_evidence(ctx: RuleContext, gap: float, expected: float, p_value: float | None = None) -> Evidence:
    if p_value is None:
        p_value = math.exp(-expected) if expected else 1.0
    return Evidence(
        _metric("executions", 0.0, expected, gap, 0, None, silent_for_s=int(gap),
                p_value=float(f"{p_value:.3g}")),
        f"{ctx.agent_id}: no executions for {_fmt_window(gap - gap % 60)} where about "
        f"{expected:.0f} are usual at this time",
    )


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
        if period == "day":
            forecast = spent
            if view.day_elapsed_h >= thr.budget_forecast_min_elapsed_h and view.recent_cost_per_exec:
                remaining = view.day_remaining_expected_execs
                if remaining is None:
                    remaining_spend = spent / view.day_elapsed_h * (24 - view.day_elapsed_h)
                else:
                    remaining_spend = remaining * view.recent_cost_per_exec
                forecast = spent + remaining_spend
        else:
            forecast = spent + view.last_24h_spend * max(view.month_days - view.month_day_index, 0)
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
            _metric(name, shown, budget, 86400 if period == "day" else 30 * 86400, 0,
                    None, spent_usd=_r(spent), forecast_usd=_r(forecast), budget_usd=_r(budget)),
            f"{ctx.agent_id}: {period} spend {spent:.2f} USD, forecast {forecast:.2f} USD: {kind} its "
            f"{src} of {budget:.2f} USD",
        )
        # over budget: at once; only forecast over: confirmed by the usual pending checks
        yield Check("spend_budget", {"period": period}, detected, clear, ev,
                    pending_checks=1 if over else None, fp=fp)


_PINNED = re.compile(r"(\d{4}-\d{2}-\d{2}|\d{8}|-\d{3,4}$|@\d|:\d{3,}|-v\d+(\.\d+)*$|-\d{4}$)")


def is_floating_label(model: str) -> bool:
    """A model label that the provider may point at a new checkpoint any day (e.g. `gpt-4o`,
    `claude-3-5-sonnet-latest`), as opposed to a pinned one (`gpt-4o-2024-08-06`,
    `claude-3-5-sonnet-20241022`, `gemini-1.5-pro-002`)."""
    return "latest" in model or not _PINNED.search(model)


# =================================================================================================
# Lifecycle
# =================================================================================================
#: a flapping alert's resolve needs at most 2**this times `resolve_checks` clear checks
MAX_FLAP_DOUBLINGS = 2


class AlertTracker:
    """Pending -> firing -> resolved per fingerprint; emits each state change once.

    State per fingerprint: `[state, positives, clears, since, resolved_at, refires]`. `refires`
    counts firings that came within `flap_window_h` of the previous resolve (at most
    `MAX_FLAP_DOUBLINGS`): each doubles the clear checks the next resolve needs, so an alert whose
    signal hovers around its gate pages about twice, not at every crossing.
    """

    def __init__(self) -> None:
        self.states: dict[str, list[Any]] = {}

    def state_of(self, fp: str) -> int:
        st = self.states.get(fp)
        return OK if st is None else st[0]

    def allowed_since(self, fp: str) -> float:
        st = self.states.get(fp)
        return -math.inf if st is None or st[4] is None else st[4]

    def step(
        self, check: Check, agent_id: str | None, at: float, thr: RuleThresholds, runbook_base: str
    ) -> Alert | None:
        fp = check.fp or alert_fingerprint(check.rule, agent_id, check.labels)
        st = self.states.get(fp)
        if st is None:
            if not check.detected:
                return None
            st = self.states[fp] = [OK, 0, 0, at, None, 0]
        state = st[0]
        need = check.pending_checks or thr.pending_checks
        if check.pending_checks is None and check.detected and check.evidence is not None:
            p = check.evidence.metric.get("p_value")
            if p is not None and p < thr.alpha * thr.strong_evidence_factor:
                need = 1  # overwhelming evidence: no pending period
        if state != FIRING:
            if check.detected:
                st[1] += 1
                if st[1] == 1:
                    st[3] = at
                if st[1] >= need:
                    st[0], st[2] = FIRING, 0
                    flapping = st[4] is not None and at - st[4] <= thr.flap_window_h * 3600
                    st[5] = min(st[5] + 1, MAX_FLAP_DOUBLINGS) if flapping else 0
                    return self._alert(check, agent_id, fp, "firing", at, thr, runbook_base)
                st[0] = PENDING
            else:
                st[0], st[1] = OK, 0
                if st[4] is None:
                    del self.states[fp]
            return None
        if check.clear:
            st[2] += 1
            if st[2] >= thr.resolve_checks << st[5]:
                st[0], st[1], st[2], st[4] = OK, 0, 0, at
                return self._alert(check, agent_id, fp, "resolved", at, thr, runbook_base)
        elif check.clear is False:
            st[2] = 0
        return None

    def firing(self) -> list[str]:
        return [fp for fp, st in self.states.items() if st[0] == FIRING]

    def _alert(
        self, check: Check, agent_id: str | None, fp: str, state: str, at: float, thr: RuleThresholds,
        runbook_base: str,
    ) -> Alert:
        ev = (check.resolved_evidence if state == "resolved" else None) or check.evidence or \
            Evidence(_metric(check.rule, None, None, 0, 0), f"{agent_id}: {check.rule}")
        when = datetime.fromtimestamp(at, tz=UTC)
        summary = ev.summary if state == "firing" else f"resolved: {ev.summary}"
        return Alert(
            alert_id=str(uuid.uuid5(_ALERT_NS, f"{fp}|{state}|{at}")),
            fingerprint=fp,
            rule=check.rule,
            agent_id=agent_id,
            severity=thr.severity_of(check.rule),
            state=state,
            at=when,
            summary=summary,
            metric=AlertMetric(**ev.metric),
            labels=dict(check.labels),
            samples=ev.samples[:10],
            runbook_url=runbook_url(runbook_base, check.rule),
        )

    def to_data(self) -> dict[str, list[Any]]:
        return {fp: list(st) for fp, st in self.states.items()}

    def load_data(self, data: dict[str, list[Any]]) -> None:
        # snapshots from before `refires` have 5 fields
        self.states = {fp: list(st) + [0] * (6 - len(st)) for fp, st in data.items()}
