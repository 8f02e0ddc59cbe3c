"""`agent_silent`: no executions for longer than the agent's usual traffic makes likely (a Poisson
test against the volume the baseline's time-of-day profile expects in the gap)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator

from detectors import PoissonSilence
from monitor.core.baselines import slot_of_hour
from monitor.core.evidence import fmt_window, metric_fields
from monitor.core.rules.base import OK, Check, Evidence, RuleContext, detector


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
    if thr.silent_after_s is not None and gap >= thr.silent_after_s:
        # an explicit expectation: no baseline, no test
        yield Check("agent_silent", {}, True, False, _explicit_evidence(ctx, gap, thr.silent_after_s),
                    group="volume", pending_checks=1, fp=fp)
        return
    expected, var = _expected_in_gap(ctx, max(last, ctx.at - 24 * 3600), ctx.at)
    det = detector(ctx, "agent_silent", lambda: PoissonSilence(alpha=thr.silent_alpha))
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
    profile = _profile_before(ctx, int(start // 3600))
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


def _profile_before(ctx: RuleContext, silent_from: int) -> dict[int, tuple[float, int]]:
    """Per slot, (median count, days) over the reference hours before `silent_from` (the hour of the
    last event); cached in `ctx.detectors` until the baseline gains an hour or the silence moves."""
    baseline = ctx.baseline
    newest = max(baseline.hours) if baseline.hours else None
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
    got: dict[int, tuple[float, int]] = cached[1]
    return got


def _explicit_evidence(ctx: RuleContext, gap: float, limit: float) -> Evidence:
    return Evidence(
        metric_fields("executions", 0.0, None, gap, 0, None, silent_for_s=int(gap), expected_within_s=int(limit)),
        f"{ctx.agent_id}: no executions for {fmt_window(gap - gap % 60)}; it is expected to run at least "
        f"every {fmt_window(limit)}",
    )


def _silent_evidence(ctx: RuleContext, gap: float, expected: float, p_value: float | None = None) -> Evidence:
    if p_value is None:
        p_value = math.exp(-expected) if expected else 1.0
    return Evidence(
        metric_fields("executions", 0.0, expected, gap, 0, None, silent_for_s=int(gap),
                      p_value=float(f"{p_value:.3g}")),
        f"{ctx.agent_id}: no executions for {fmt_window(gap - gap % 60)} where about "
        f"{expected:.0f} are usual at this time",
    )
