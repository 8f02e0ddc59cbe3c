"""What happens to one agent when the watermark passes a bucket's end: the bucket closes (repeats
resolved), the detection windows slide, and at each full hour the hour enters history and
baseline, its `Rollup` is made, and the bounded memories are pruned by event time.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from typing import Any

from monitor.contract.rollup import MetricRollup, RolloutRollup, Rollup, ToolRollup
from monitor.core.config import DetectionConfig
from monitor.core.ingest import resolve_repeats
from monitor.core.review_sample import ReviewAccumulator
from monitor.core.rules import baseline_group
from monitor.core.signals import (
    CN,
    COMP,
    CS,
    DN,
    DS,
    ESC,
    FAIL,
    QN,
    QS,
    REP,
    ST,
    STN,
    T_CALLS,
    T_ERR,
    T_OK,
    T_RL,
    TK,
    TKN,
    TMO,
    UNPRICED,
    Agg,
    N,
    hist_quantile,
)
from monitor.core.state import AgentState, drop_front, stale_front


def close_bucket(st: AgentState, idx: int, config: DetectionConfig, window_buckets: list[int],
                 rollups: list[Rollup]) -> None:
    """Close bucket `idx` of one agent (present or not): windows slide by one bucket; at an hour's
    end, `close_hour` (its rollup, if any, goes to `rollups`)."""
    B = config.bucket_s
    bk = st.open.pop(idx, None)
    if bk is not None:
        resolve_repeats(st, bk, config, idx)
        st.suspects.close_bucket(idx)
        st.idle_buckets = 0
    else:
        st.idle_buckets += 1
    if st.rollout is not None:
        st.rollout.close(idx, B, config.rollout_end_after_s, config.rollout_max_versions)
    recent = st.recent
    recent.append((idx, bk))
    if bk is not None or st.idle_buckets <= window_buckets[-1] + 1:
        n = len(recent)
        for agg, wb in zip(st.windows, window_buckets, strict=True):
            if bk is not None:
                agg.merge(bk.agg, full=False)
            if n > wb:
                leaving = recent[n - 1 - wb][1]
                if leaving is not None:
                    agg.merge(leaving.agg, sign=-1.0, full=False)
    if bk is not None:
        if st.hour_agg is None:
            st.hour_agg = bk.agg.copy()
            st.hour_idx = idx * B // 3600
        else:
            st.hour_agg.merge(bk.agg)
        # recs and samples are kept for alert samples; the task list is done
    if ((idx + 1) * B) % 3600 == 0:
        close_hour(st, (idx + 1) * B // 3600 - 1, config, rollups)


def close_hour(st: AgentState, hour: int, cfg: DetectionConfig, rollups: list[Rollup]) -> None:
    """The hour enters history and baseline (hours with firing alerts excluded from their
    groups), the baseline may freeze, the hour's rollup is made, memories are pruned."""
    agg = st.hour_agg
    st.baseline.close_hour(hour, agg, cfg.for_agent(st.agent_id).silent_min_reference_days)
    st.suspects.close_hour(hour, st.baseline.frozen)
    firing = st.tracker.firing()
    if firing:
        for fp in firing:
            group = baseline_group(fp)
            if group:
                st.baseline.exclude(group, hour, hour)
    if cfg.frozen_baseline_after_h is not None and not st.baseline.frozen and not st.baseline.by_operator and \
            (hour + 1) * 3600 - st.first_at >= cfg.frozen_baseline_after_h * 3600:
        st.baseline.frozen = True
    review = st.reviews.pop(hour, None)
    for older in [h for h in st.reviews if h < hour]:
        del st.reviews[older]
    if agg is not None and cfg.emit_rollups:
        rollouts = st.rollout.hour_rollups(hour, cfg.for_agent(st.agent_id)) if st.rollout is not None else []
        rollups.append(rollup(st.agent_id, hour, agg, firing, review, rollouts))
    for wagg in st.windows:
        wagg.prune()
    st.hour_agg = None
    st.hour_idx = hour + 1
    # bounded memories, pruned by event time: oldest first, up to the first one still fresh.
    # One pass collects the stale keys, then they go (deleting the first key and looking up the
    # next with next(iter(d)) would walk over every slot deleted before: quadratic).
    horizon = (hour + 1) * 3600
    task_cutoff = horizon - cfg.repeat_window_s
    st.tasks, st.tasks_dead = drop_front(
        st.tasks, stale_front(st.tasks, lambda last: last >= task_cutoff), st.tasks_dead)
    score_cutoff = horizon - cfg.score_join_window_s
    st.scored, st.scored_dead = drop_front(
        st.scored, stale_front(st.scored, lambda claim: claim[1] >= score_cutoff), st.scored_dead)
    if len(st.spend_days) > 40:
        for d in sorted(st.spend_days)[:-40]:
            del st.spend_days[d]


def forget(st: AgentState, hour: int, config: DetectionConfig, idle_buckets: int) -> None:
    """Drop an agent's windows, history and baseline sums after a gap longer than all of them:
    the state closing every bucket of the gap would have reached."""
    st.recent.clear()
    st.windows = [Agg() for _ in config.windows_s]
    st.idle_buckets = idle_buckets
    st.hour_agg = None
    st.hour_idx = hour
    st.baseline.hours = {}
    st.baseline.base = Agg()
    st.baseline.profile = {}
    st.suspects.closed.clear()
    st.suspects.pend.clear()


def rollup(agent_id: str, hour: int, agg: Agg, firing: list[str], review: ReviewAccumulator | None,
           rollouts: list[dict[str, Any]] = ()) -> Rollup:  # type: ignore[assignment]
    """One agent-hour's `Rollup` (the weekly review's input)."""
    s = agg.s
    steps_p95 = _steps_quantile(agg.steps_hist, 0.95)
    resolved: dict[str, set[str]] = {}
    for key in agg.models:
        model, _, res = key.partition("\x1f")
        if res:
            resolved.setdefault(model, set()).add(res)
    return Rollup(
        agent_id=agent_id,
        hour=datetime.fromtimestamp(hour * 3600, tz=UTC),
        executions=int(s[N]), completed=int(s[COMP]), escalations=int(s[ESC]), failures=int(s[FAIL]),
        timeouts=int(s[TMO]), repeats=int(s[REP]),
        quality_sum=s[QS], quality_count=int(round(s[QN])),
        cost_usd_sum=s[CS], cost_count=int(s[CN]), unpriced_executions=int(s[UNPRICED]),
        tokens_sum=s[TK], tokens_count=int(s[TKN]),
        steps_mean=s[ST] / s[STN] if s[STN] else None, steps_p95=steps_p95,
        duration_ms_mean=s[DS] / s[DN] if s[DN] else None,
        duration_ms_p95=hist_quantile(agg.dur_hist, 0.95),
        tools={k: ToolRollup(calls=int(v[T_CALLS]), errors=int(v[T_ERR]), rate_limited=int(v[T_RL]),
                             ok=int(v[T_OK])) for k, v in agg.tools.items() if v[T_CALLS] > 0},
        outcomes={k: MetricRollup(sum=v[0], count=int(v[2])) for k, v in agg.metrics.items() if v[2] > 0},
        resolved_models={k: sorted(v) for k, v in resolved.items()},
        alerts_firing=sorted(firing),
        review=review.result() if review is not None else None,
        rollouts=[RolloutRollup(**r) for r in rollouts],
    )


def _steps_quantile(hist: dict[int, float], q: float) -> float | None:
    total = sum(hist.values())
    if total <= 0:
        return None
    keys = sorted(hist)
    cum = []
    acc = 0.0
    for k in keys:
        acc += hist[k]
        cum.append(acc)
    i = bisect.bisect_left(cum, q * total)
    return float(keys[min(i, len(keys) - 1)])
