"""The per-event additions into an agent's bucket: executions, evaluations and outcomes.

This is the hot path (every admitted event passes here once), so the aggregates are written by
index into `Agg.s`. Quality scores count once per execution (`Ingest.score`); a bucket's repeats
and samples are resolved when it closes, in event-time order (`resolve_repeats`), so that arrival
order within the allowed lateness never changes the result.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from monitor.contract import events
from monitor.contract.events import REGRESSION_EVALUATOR_PREFIX
from monitor.contract.wire import AnyEvaluation, AnyExecution, AnyLlmCall, AnyOutcome, ToolCall
from monitor.core.config import DetectionConfig
from monitor.core.pricing import PricingTable, cost_at
from monitor.core.review_sample import ReviewAccumulator
from monitor.core.rules import OTHER, Bucket
from monitor.core.signals import (
    CN,
    COMP,
    CS,
    DN,
    DS,
    DURATION_BINS_PER_E,
    ESC,
    FAIL,
    LCQ,
    LCS,
    LDQ,
    LDS,
    LOG_EPS_USD,
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
    T_OK,
    T_RL,
    TC,
    TE,
    TEOK,
    TK,
    TKN,
    TMO,
    TOK,
    UNPRICED,
    Agg,
    N,
)
from monitor.core.state import AgentState, drop_front
from monitor.core.suspects import ExecutionKeys

_log = math.log
_log1p = math.log1p


class Ingest:
    """Adds events to an agent's bucket. Holds the settings it needs, the prices, and the engine's
    `late_folded` / `late_dropped` counters (the engine's dict, shared)."""

    def __init__(self, config: DetectionConfig, pricing: PricingTable, counters: dict[str, int]) -> None:
        self.config = config
        self.pricing = pricing
        self.counters = counters
        self.bucket_s = config.bucket_s
        self.reviews = config.emit_rollups  # review extras travel in rollups only
        self.max_scored = config.max_scored_per_agent
        self.max_models = config.max_models_per_agent
        self.max_tools = config.max_tools_per_agent
        self.max_metrics = config.max_metrics_per_agent
        self._keys = ExecutionKeys()
        self._call_info: dict[tuple[str, str | None], tuple[str, tuple[float, float, float] | None]] = {}

    def execution(self, st: AgentState, bk: Bucket, ev: AnyExecution, t: float, late: bool) -> float | None:
        """Add one execution to its bucket (and to its hour's review extras, unless it is late for
        an hour already rolled up); returns its cost in USD (None when unknown)."""
        agg = bk.agg
        s = agg.s
        xid = ev.execution_id
        keys = self._keys(ev) if not late else ()
        _status(bk, s, ev, t, xid, keys)
        q = ev.quality_score
        if q is not None:
            self.score(st, bk, xid, t, q, 0, late)
        cost = ev.cost_usd
        calls = ev.llm_calls
        if calls:
            cost = self._llm_calls(agg, calls, cost)
        if cost is not None:
            _cost(st, s, cost, t)
        elif calls:
            s[UNPRICED] += 1.0
        steps = ev.steps
        if steps is not None:
            _steps(agg, s, steps)
        dur = ev.duration_ms
        if dur is not None:
            _duration(agg, s, dur)
        tcs = ev.tool_calls
        n_err = self._tool_calls(st, bk, tcs, t, ev.event_id, xid) if tcs else 0
        if keys:
            st.suspects.execution(int(t // self.bucket_s), keys, t, ev.status, q, cost, steps, dur,
                                  len(tcs) if tcs else 0, n_err)
        bk.recs.append((t, ev.event_id, (xid, q, cost, float(steps) if steps is not None else None, dur)))
        if self.reviews and (not late or st.hour_idx == int(t // 3600)):
            acc = st.reviews.get(int(t // 3600))
            if acc is None:
                acc = self.review_of(st, t)
            acc.observe_execution(ev, cost)
        if st.last_event_at is None or t > st.last_event_at:
            st.last_event_at = t
        return cost

    def evaluation(self, st: AgentState, bk: Bucket, ev: AnyEvaluation, t: float, late: bool) -> bool:
        """Add an evaluation's score, when it is the one counted for its execution (`score`).
        Returns whether it was counted."""
        xid = ev.execution_id
        score = ev.score
        counted = False
        if ev.evaluator.startswith(REGRESSION_EVALUATOR_PREFIX):
            pass  # a regression set's test input: not a production execution's quality
        elif self.score(st, bk, xid, t, score, 1, late):
            bk.recs.append((t, ev.event_id, (xid, score, None, None, None)))
            counted = True
        if self.reviews and (not late or st.hour_idx == int(t // 3600)):
            self.review_of(st, t).observe_evaluation(ev)
        return counted

    def cost_of(self, ev: AnyExecution) -> float | None:
        """An execution's cost in USD without adding it anywhere (a shadow run's): its own
        `cost_usd`, else its calls' priced sum, None when a call cannot be priced."""
        if ev.cost_usd is not None:
            return ev.cost_usd
        if not ev.llm_calls:
            return None
        total = 0.0
        for c in ev.llm_calls:
            cc = cost_at(c, self.pricing.call_rates(c.model, c.resolved_model))
            if cc is None:
                return None
            total += cc
        return total

    def outcome(self, st: AgentState, bk: Bucket, ev: AnyOutcome) -> None:
        """Add an outcome metric's value (the agent's metric names capped, extras pooled)."""
        name = ev.metric
        metrics = bk.agg.metrics
        v = metrics.get(name)
        if v is None:
            name, v = _capped_entry(metrics, name, st.n_metrics, self.max_metrics, 3)
        x = ev.value
        v[0] += x
        v[1] += x * x
        v[2] += 1.0
        if ev.execution_id is not None and x <= 0:
            # samples of a declining metric: executions whose outcome was a zero / a loss
            bk.cands.append((ev.occurred_at.timestamp(), ev.event_id, "outcome:" + name, ev.execution_id))

    def score(self, st: AgentState, bk: Bucket, xid: str, t: float, score: float, rank: int, late: bool) -> bool:
        """Count a quality score once per execution: the inline score (rank 0) wins over
        evaluations (rank 1), then the earliest (event time, then lowest score). A better claim
        replaces a counted one only while both buckets are open, so arrival order within the
        allowed lateness does not matter. Returns whether this score is counted."""
        scored = st.scored
        prev = scored.get(xid)
        if prev is not None:
            if (rank, t, score) >= prev or late:
                return False
            old = st.open.get(int(prev[1] // self.bucket_s))
            if old is None:
                return False
            os_ = old.agg.s
            os_[QS] -= prev[2]
            os_[QQ] -= prev[2] * prev[2]
            os_[QN] -= 1.0
            old.recs = [r for r in old.recs if not (r[2][0] == xid and r[2][2] is None)]
            del scored[xid]
        s = bk.agg.s
        s[QS] += score
        s[QQ] += score * score
        s[QN] += 1.0
        scored[xid] = (rank, t, score)
        if len(scored) > self.max_scored:
            st.scored, st.scored_dead = drop_front(scored, (next(iter(scored)),), st.scored_dead)
        return True

    def fold_late(self, st: AgentState, bk: Bucket, b: int) -> None:
        """An event behind the allowed lateness (alone in bucket `bk` of index `b`): history and
        baseline only."""
        resolve_repeats(st, bk, self.config)
        h = b * self.bucket_s // 3600
        if st.hour_idx == h and st.hour_agg is not None:
            st.hour_agg.merge(bk.agg)
            self.counters["late_folded"] += 1
        elif st.hour_idx == h:
            st.hour_agg = bk.agg
            self.counters["late_folded"] += 1
        elif st.baseline.add_late(h, bk.agg):
            self.counters["late_folded"] += 1
        else:
            self.counters["late_dropped"] += 1

    def review_of(self, st: AgentState, t: float) -> ReviewAccumulator:
        """The review extras of the agent-hour holding `t` (created on first use)."""
        hour = int(t // 3600)
        acc = st.reviews.get(hour)
        if acc is None:
            acc = st.reviews[hour] = ReviewAccumulator(st.agent_id, datetime.fromtimestamp(hour * 3600, tz=UTC))
        return acc

    def _llm_calls(self, agg: Agg, calls: Sequence[AnyLlmCall], cost: float | None) -> float | None:
        """Tokens and model labels of an execution's LLM calls; returns its cost: `cost` (the
        execution's own), else the sum of the calls' costs, None when a call cannot be priced."""
        s = agg.s
        tokens = 0
        models = agg.models
        priced = cost is None
        total = 0.0
        call_info = self._call_info
        for c in calls:
            tokens += c.input_tokens + c.output_tokens
            info = call_info.get((c.model, c.resolved_model))
            if info is None:
                info = self._call_info_of(c.model, c.resolved_model)
            if priced:
                cc = cost_at(c, info[1])
                if cc is None:
                    priced = False
                else:
                    total += cc
            key = info[0]
            got = models.get(key)
            if got is None:
                if len(models) >= self.max_models:
                    key = OTHER + "\x1f"
                models[key] = models.get(key, 0.0) + 1.0
            else:
                models[key] = got + 1.0
        s[TK] += tokens
        s[TKN] += 1.0
        lt = _log1p(tokens)
        s[LTS] += lt
        s[LTQ] += lt * lt
        if cost is None and priced:
            return total
        return cost

    def _call_info_of(self, model: str, resolved: str | None) -> tuple[str, tuple[float, float, float] | None]:
        """An LLM call's key in `Agg.models` and its rates (see `PricingTable.call_rates`)."""
        info = (model + "\x1f" + (resolved or ""), self.pricing.call_rates(model, resolved))
        if len(self._call_info) < 10_000:  # bounded: model names come from producers
            self._call_info[(model, resolved)] = info
        return info

    def _tool_calls(self, st: AgentState, bk: Bucket, tcs: Sequence[ToolCall | events.ToolCall], t: float,
                    eid: str, xid: str) -> int:
        """Per-tool call counts by status, the execution's tool shares, and error samples; returns
        the execution's errors (error or timeout)."""
        s = bk.agg.s
        tools = bk.agg.tools
        n_ok = n_err = 0
        for tc in tcs:
            name = tc.tool
            v = tools.get(name)
            if v is None:
                name, v = _capped_entry(tools, name, st.n_tools, self.max_tools, 4)
            v[T_CALLS] += 1.0
            ts = tc.status
            if ts == "ok":
                v[T_OK] += 1.0
                n_ok += 1
            elif ts == "rate_limited":
                v[T_RL] += 1.0
            else:
                v[T_ERR] += 1.0
                n_err += 1
                bk.cands.append((t, eid, "tool_error:" + name, xid))
        s[TE] += 1.0
        s[TC] += len(tcs)
        if n_ok:
            s[TEOK] += 1.0
            s[TOK] += n_ok
        else:
            bk.cands.append((t, eid, "tool_all_fail", xid))
        return n_err


def _status(bk: Bucket, s: list[float], ev: AnyExecution, t: float, xid: str, keys: tuple[str, ...]) -> None:
    """The execution's count by status, its sample candidate, and its entry in the task list."""
    s[N] += 1.0
    status = ev.status
    if status == "completed":
        s[COMP] += 1.0
    elif status == "escalated":
        s[ESC] += 1.0
        bk.cands.append((t, ev.event_id, "escalated", xid))
    elif status == "failed":
        s[FAIL] += 1.0
        bk.cands.append((t, ev.event_id, "failed", xid))
    else:
        s[TMO] += 1.0
        bk.cands.append((t, ev.event_id, "failed", xid))
    bk.tasks.append((t, ev.event_id, ev.task_id, status, xid, keys))


def _cost(st: AgentState, s: list[float], cost: float, t: float) -> None:
    s[CS] += cost
    s[CN] += 1.0
    lc = _log(cost + LOG_EPS_USD)
    s[LCS] += lc
    s[LCQ] += lc * lc
    day = int(t // 86400)
    st.spend_days[day] = st.spend_days.get(day, 0.0) + cost


def _steps(agg: Agg, s: list[float], steps: int) -> None:
    s[ST] += steps
    s[STQ] += steps * steps
    s[STN] += 1.0
    sb = steps if steps < 1000 else 1000
    sh = agg.steps_hist
    sh[sb] = sh.get(sb, 0.0) + 1.0


def _duration(agg: Agg, s: list[float], dur: float) -> None:
    s[DS] += dur
    ld = _log1p(dur)
    s[LDS] += ld
    s[LDQ] += ld * ld
    s[DN] += 1.0
    hb = int(ld * DURATION_BINS_PER_E)
    dh = agg.dur_hist
    dh[hb] = dh.get(hb, 0.0) + 1.0


def _capped_entry(table: dict[str, list[float]], name: str, known: set[str], cap: int,
                  width: int) -> tuple[str, list[float]]:
    """The bucket's entry for a tool or metric name not in it yet. An agent keeps at most `cap`
    distinct names; beyond that new names are pooled under OTHER. Returns the name used."""
    if name not in known:
        if len(known) >= cap:
            name = OTHER
        known.add(name)
    entry = table.get(name)
    if entry is None:
        entry = table[name] = [0.0] * width
    return name, entry


def resolve_repeats(st: AgentState, bk: Bucket, config: DetectionConfig, idx: int | None = None) -> None:
    """Finish a bucket: repeats in event-time order, samples chosen by event time (so that
    arrival order never changes the result), the task list dropped. `idx`: the bucket's index when
    it closes in turn (not a late event's): its repeats are credited to their version (rollouts)."""
    if bk.cands:
        for _t, _eid, kind, xid in sorted(bk.cands):
            bk.sample(kind, xid)
        bk.cands = []
    if bk.recs and not isinstance(bk.recs[0][0], str):
        bk.recs = [r[2] for r in heapq.nsmallest(16, bk.recs)]
    s = bk.agg.s
    s[N_ESC] = s[N]
    s[N_REP] = s[N]
    if not bk.tasks:
        return
    window = config.repeat_window_s
    tasks = st.tasks
    rep = 0
    ro = st.rollout if idx is not None else None
    for t, _eid, task, status, xid, *keys in sorted(bk.tasks):
        last = tasks.get(task)
        if last is not None and 0 <= t - last <= window:
            rep += 1
            bk.sample("repeat", xid)
            if ro is not None:
                ro.repeat(idx, xid)  # type: ignore[arg-type]
            if keys:  # () when late; absent from snapshots taken before suspects
                st.suspects.repeat(int(t // config.bucket_s), keys[0])
        if status == "completed" and (last is None or t >= last):
            if last is not None:
                del tasks[task]
            tasks[task] = t
            if len(tasks) > config.max_tasks_per_agent:
                tasks, st.tasks_dead = drop_front(tasks, (next(iter(tasks)),), st.tasks_dead)
                st.tasks = tasks
    s[REP] += rep
    bk.tasks = []
