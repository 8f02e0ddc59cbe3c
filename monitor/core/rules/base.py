"""What every rule shares: the per-check view of an agent (`RuleContext`), a rule's finding
(`Check`, with its `Evidence`), the storage of one event-time bucket (`Bucket`), the alert states a
rule can ask about, and the scan of the detection windows most statistical rules use."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.contract.alert import alert_fingerprint
from monitor.core.baselines import AgentBaseline
from monitor.core.config import RuleThresholds
from monitor.core.evidence import StatResult, stat_result
from monitor.core.signals import Agg

#: the lifecycle states of a fingerprint (`monitor.core.lifecycle.AlertTracker`)
OK, PENDING, FIRING = 0, 1, 2
#: the name under which a bucket pools tools, outcome metrics and model labels beyond an agent's caps
OTHER = "__other__"


@dataclass(slots=True)
class Evidence:
    metric: dict[str, Any]
    summary: str
    samples: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Check:
    """One rule's finding on one fingerprint at one check: `detected` (effect size and
    significance on some window), `clear` (None: not enough data to tell) and the evidence."""

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
    # called with the check time when this check resolves its alert (a rule's own memory to update)
    on_resolve: Callable[[float], None] | None = None


class Bucket:
    """One event-time bucket of one agent while it is open, and after, for samples."""

    __slots__ = ("agg", "tasks", "samples", "recs", "cands")

    def __init__(self) -> None:
        self.agg = Agg()
        # t, event_id, task_id, status, exec id, its suspects keys (monitor/core/suspects.py)
        self.tasks: list[tuple[float, str, str, str, str, tuple[str, ...]]] = []
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
    firing_since: Callable[[str], float]  # a firing alert's return is judged on windows from here
    detectors: dict[str, Any]  # per agent, not persisted: detectors and caches derived from state
    fp_cache: dict[Any, str]
    base: Agg  # `baseline.base`, the baseline's sums (a field: rules read it often)
    has_open_alerts: bool = False

    def base_ready(self, family: str) -> bool:
        """Whether the baseline holds the hours of data the rule family needs (`LEARNING_FAMILIES`)."""
        return self.baseline.hours_in_base() >= self.thr.learning_hours(family)

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


def detector(ctx: RuleContext, key: str, factory: Callable[[], Any]) -> Any:
    """The agent's detector under `key`, made by `factory` the first time."""
    det = ctx.detectors.get(key)
    if det is None:
        det = ctx.detectors[key] = factory()
    return det


#: an `Agg` reader of the CUSUM's shape, `(n, tested sum, shown sum, tested sum of squares)` or None
Reader = Callable[[Agg], tuple[float, float, float, float] | None]


def window_above(windows: list[tuple[int, Agg]], read: Reader, min_n: float, floor: float) -> bool:
    """Whether a window holds `min_n` observations whose shown sum reaches `floor` per observation:
    the cheap effect-size gate before a rule tests anything (an explicit loop: it runs per check)."""
    for _, agg in windows:
        got = read(agg)
        if got is not None and got[0] >= min_n and got[2] >= floor * got[0]:
            return True
    return False


def window_below(windows: list[tuple[int, Agg]], read: Reader, min_n: float, ceiling: float) -> bool:
    """As `window_above`, for a drop: the shown sum at most `ceiling` per observation."""
    for _, agg in windows:
        got = read(agg)
        if got is not None and got[0] >= min_n and got[2] <= ceiling * got[0]:
            return True
    return False


def scan(
    ctx: RuleContext,
    fp: str,
    test: Callable[[Agg], Any],
    evidence: Callable[[int, Agg, StatResult], Evidence],
) -> tuple[bool, bool | None, Evidence | None]:
    """Run `test` over the windows, shortest first: detected on an allowed window -> its evidence
    (the shortest such). A firing alert is judged by `back_to_normal` instead."""
    state = ctx.state_of(fp)
    if state == FIRING:
        return back_to_normal(ctx, fp, test, evidence)
    hit: Evidence | None = None
    shown: tuple[int, Agg, Any] | None = None  # the window a pending alert quotes
    for secs, agg in ctx.windows:
        det = test(agg)
        if det is None or det.effect is None:
            continue
        if shown is None:
            shown = (secs, agg, stat_result(det))
        if det.drift_detected and ctx.at - secs >= ctx.allowed_since(fp):
            hit = evidence(secs, agg, stat_result(det))
            break
    if hit is None and state != OK and shown is not None:
        secs, agg, res = shown
        return False, None, evidence(secs, agg, res)
    return hit is not None, None, hit


def back_to_normal(
    ctx: RuleContext,
    fp: str,
    test: Callable[[Agg], Any],
    evidence: Callable[[int, Agg, StatResult], Evidence],
) -> tuple[bool, bool | None, Evidence | None]:
    """Whether a firing alert's signal is back to normal: a sequential test of a return, on the
    closed buckets since the alert fired (`firing_since`), newest first.

    Each span that ends now (one bucket, two, ...) is tested by `DriftDetector.normal_llr`: the
    log-likelihood ratio of its data under the baseline against the effect gate. The largest
    over the spans is a CUSUM of "back to normal" run forward from the firing: it finds the end
    of the incident by itself, whatever the detection windows. Clear (True) when it reaches
    `log(resolve_likelihood_ratio)` on a span of at least `resolve_min_n_factor` times the rule's
    minimum sample (for means and quantiles also with the estimate under
    `resolve_effect_fraction` of the gate); not clear (False) while the shortest span with that
    sample still reaches the gate; undecided (None) otherwise: a thin night decides nothing,
    neither counting towards the resolve nor resetting it."""
    thr = ctx.thr
    log_lr = math.log(thr.resolve_likelihood_ratio)
    first = max(ctx.firing_since(fp), ctx.at - ctx.windows[-1][0])
    clear: bool | None = None
    shown: tuple[int, Agg, Any] | None = None
    span = Agg()
    decidable = False
    for b_idx, bucket in reversed(ctx.recent):
        b_start = float(b_idx * ctx.bucket_s)
        if b_start < first:
            break
        if bucket is None:
            continue
        span.merge(bucket.agg, full=False)
        det = test(span)
        if det is None or det.effect is None:
            continue
        secs = int(ctx.at - b_start)
        if shown is None:
            shown = (secs, span.copy(), stat_result(det))
        llr = det.normal_llr(thr.resolve_min_n_factor * det.min_n)
        if llr is None:
            continue  # too few observations to decide
        if not decidable:
            decidable = True
            if det.at_gate():
                clear, shown = False, (secs, span.copy(), stat_result(det))
                break  # the change is still there on enough data
        if llr >= log_lr and not det.reaches(thr.resolve_effect_fraction):
            clear, shown = True, (secs, span.copy(), stat_result(det))
            break
    if shown is None:
        for secs, agg in ctx.windows:  # nothing since the firing: quote the shortest window
            det = test(agg)
            if det is not None and det.effect is not None:
                shown = (secs, agg, stat_result(det))
                break
    if shown is None:
        return False, clear, None
    secs, agg, res = shown
    return False, clear, evidence(secs, agg, res)


#: the baseline field group each rule excludes from the baseline while its alert fires
_GROUP_OF_RULE = {
    "escalation_rate_rise": "escalation",
    "repeat_task_rate_rise": "repeat",
    "quality_drop": "quality",
    "token_cost_spike": "cost",
    "task_duration_rise": "duration",
    "latency_spike": "duration",
    "tool_calls_all_failing": "tools",
    "agent_silent": "volume",
}


def baseline_group(fp: str) -> str | None:
    """The baseline field group a firing alert's fingerprint keeps out of the hour's baseline."""
    parts = fp.split("/")
    rule = parts[0]
    if rule == "tool_error_rate" or rule == "business_metric_decline":
        labels = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
        if rule == "tool_error_rate":
            return "tool:" + labels.get("tool", "")
        return "metric:" + labels.get("metric", "")
    return _GROUP_OF_RULE.get(rule)
