"""The detection engine: events in, alert state changes (and hourly rollups) out.

Pure: no Kafka, no asyncio, no wall clock. Time is event time; the watermark is the newest event
time seen, or a later time passed to `advance` (the live worker calls it from a wall-clock tick so
that a silent agent is noticed without events). The same events in any arrival order within the
allowed lateness give the same alerts.

Per event (`observe`): dedup by `event_id`, then a few additions into the agent's open bucket of
`bucket_s` seconds of event time. Per bucket boundary (when the watermark passes bucket end +
`allowed_lateness_s`): the bucket closes (repeats resolved in event-time order), the detection
windows slide, every rule is checked for every agent, and the alert lifecycle emits state changes
stamped with the bucket end. Per hour: the hour enters the agent's history and, six hours later,
its baseline; a `Rollup` is emitted.

Late events: inside the allowed lateness they land in their (still open) bucket. Later ones are
folded into the hour history and baseline they belong to (so baselines stay complete) but never
into windows already checked: decisions are not rewritten.

Memory bounds (all per agent unless said, independent of the number of events):
- open buckets: `allowed_lateness_s / bucket_s + 2`; closed buckets kept for windows and samples:
  `max(windows_s) / bucket_s + 1` (73 at defaults), each an `Agg` plus <= 16 sample records;
- hourly history: `reference_days * 24 + reference_exclude_recent_h` records (174 at defaults);
- repeat-window task memory: tasks completed within `repeat_window_s`, at most
  `max_tasks_per_agent` (FIFO eviction beyond: a repeat of an evicted task is missed);
- one-score-per-execution memory: executions scored within `score_join_window_s`, at most
  `max_scored_per_agent`;
- tools, outcome metrics and model labels: capped (`max_tools_per_agent`, ...), extras pooled
  under `__other__`;
- engine-wide dedup: event ids of the last `dedup_window_s` to `2 x dedup_window_s` of event
  time, at most `max_dedup_ids` (beyond that the oldest generation is dropped early).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from monitor.contract.alert import Alert
from monitor.contract.rollup import MetricRollup, Rollup, ToolRollup
from monitor.contract.wire import AnyEvaluation, AnyExecution, AnyOutcome, DecodedEvent
from monitor.core.baselines import AgentBaseline, slot_of_hour
from monitor.core.config import DetectionConfig
from monitor.core.lifecycle import AlertTracker
from monitor.core.pricing import PricingTable
from monitor.core.review_sample import ReviewAccumulator
from monitor.core.rules import (
    OK,
    OTHER,
    STATISTICAL_CHECKS,
    Bucket,
    Check,
    RuleContext,
    SpendDay,
    baseline_group,
    check_agent_silent,
    check_floating_model_label,
    check_invalid_events,
    check_model_version_changed,
    check_spend_budget,
    note_models,
    spend_view,
)
from monitor.core.signals import (
    CN,
    COMP,
    CS,
    DN,
    DS,
    DURATION_BINS_PER_E,
    ESC,
    FAIL,
    HOURS,
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
    hist_quantile,
)

SNAPSHOT_VERSION = 1
#: `tasks` and `scored` are insertion-ordered dicts that lose their oldest keys. A key deleted from
#: a CPython dict leaves a dead slot that `next(iter(d))` walks over until the dict is rebuilt, so
#: evicting the oldest key at the cap one at a time would cost a walk over all keys evicted before:
#: quadratic. The dict is copied (same keys, same order) after this many front deletions.
_COMPACT_AFTER = 4096


def _stale_front(d: dict[str, Any], fresh: Any) -> list[str]:
    """The oldest keys of insertion-ordered `d`, up to the first whose value is `fresh(value)`."""
    stale = []
    for key, value in d.items():
        if fresh(value):
            break
        stale.append(key)
    return stale


def _drop_front(d: dict[str, Any], keys: Iterable[str], dead: int) -> tuple[dict[str, Any], int]:
    """Delete `keys`, the oldest of `d`; `dead` counts such deletions since `d` was last compacted.
    Returns `d` and the new count, or a compacted copy of `d` (same order) and 0 once the count
    reaches _COMPACT_AFTER."""
    n = 0
    for key in keys:
        del d[key]
        n += 1
    dead += n
    if dead >= _COMPACT_AFTER:
        return dict(d), 0
    return d, dead
DEFAULT_RUNBOOK_BASE = "https://github.com/agentmon/agentmon/blob/main"
_log = math.log
_log1p = math.log1p


class AgentState:
    """Everything the engine keeps about one agent (see the module docstring for the bounds)."""

    __slots__ = (
        "agent_id", "open", "recent", "windows", "hour_idx", "hour_agg", "baseline", "tasks", "scored",
        "first_at", "last_event_at", "spend_days", "models_known", "model_new", "floating", "tracker",
        "detectors", "idle_buckets", "n_tools", "n_metrics", "fp_cache", "spend_cache", "reviews",
        "tasks_dead", "scored_dead",
    )

    def __init__(self, agent_id: str, config: DetectionConfig, first_at: float) -> None:
        self.agent_id = agent_id
        self.open: dict[int, Bucket] = {}
        self.recent: deque[tuple[int, Bucket | None]] = deque(
            maxlen=max(config.windows_s) // config.bucket_s + 1
        )
        self.windows: list[Agg] = [Agg() for _ in config.windows_s]
        self.hour_idx: int | None = None
        self.hour_agg: Agg | None = None
        self.baseline = AgentBaseline(config.reference_days, config.reference_exclude_recent_h)
        self.tasks: dict[str, float] = {}  # task_id -> event time of its last completed execution
        self.scored: dict[str, tuple[Any, ...]] = {}  # execution_id -> (rank, t, score); rank 0 inline
        # keys deleted from the front of `tasks` / `scored` since they were last compacted (not
        # persisted): see _COMPACT_AFTER
        self.tasks_dead = 0
        self.scored_dead = 0
        self.first_at = first_at
        self.last_event_at: float | None = None
        self.spend_days: dict[int, float] = {}  # UTC day index -> USD
        self.models_known: dict[str, dict[str, float]] = {}  # model -> resolved -> first seen
        self.model_new: dict[str, list[float]] = {}  # "model\x1fresolved" -> [calls, first seen]
        self.floating: dict[str, float] = {}  # floating model label -> last seen
        self.tracker = AlertTracker()
        self.detectors: dict[str, Any] = {}
        self.idle_buckets = 0
        self.n_tools: set[str] = set()
        self.n_metrics: set[str] = set()
        # review extras of the agent-hours still open (at most allowed lateness / 1 h + 2)
        self.reviews: dict[int, ReviewAccumulator] = {}
        self.fp_cache: dict[Any, str] = {}
        self.spend_cache: SpendDay | None = None  # derived per day, not persisted

    def to_data(self) -> dict[str, Any]:
        return {
            "open": {str(b): _bucket_data(bk) for b, bk in self.open.items()},
            "recent": [[b, _bucket_data(bk) if bk is not None else None] for b, bk in self.recent],
            "hour_idx": self.hour_idx,
            "hour_agg": self.hour_agg.to_data() if self.hour_agg is not None else None,
            "baseline": self.baseline.to_data(),
            "tasks": self.tasks,
            "scored": self.scored,
            "first_at": self.first_at,
            "last_event_at": self.last_event_at,
            "spend_days": {str(k): v for k, v in self.spend_days.items()},
            "models_known": self.models_known,
            "model_new": self.model_new,
            "floating": self.floating,
            "tracker": self.tracker.to_data(),
            "idle_buckets": self.idle_buckets,
            "tools": sorted(self.n_tools),
            "metrics": sorted(self.n_metrics),
            "reviews": {str(h): acc.snapshot() for h, acc in self.reviews.items()},
        }

    @classmethod
    def from_data(cls, agent_id: str, config: DetectionConfig, data: dict[str, Any]) -> AgentState:
        st = cls(agent_id, config, data["first_at"])
        st.open = {int(b): _bucket_from(d) for b, d in data["open"].items()}
        for b, d in data["recent"]:
            st.recent.append((int(b), _bucket_from(d) if d is not None else None))
        st.hour_idx = data["hour_idx"]
        st.hour_agg = Agg.from_data(data["hour_agg"]) if data["hour_agg"] is not None else None
        st.baseline.load_data(data["baseline"])
        st.tasks = dict(data["tasks"])
        st.scored = {k: tuple(v) for k, v in data["scored"].items()}
        st.last_event_at = data["last_event_at"]
        st.spend_days = {int(k): v for k, v in data["spend_days"].items()}
        st.models_known = {k: dict(v) for k, v in data["models_known"].items()}
        st.model_new = {k: list(v) for k, v in data["model_new"].items()}
        st.floating = dict(data["floating"])
        st.tracker.load_data(data["tracker"])
        st.idle_buckets = data["idle_buckets"]
        st.n_tools = set(data["tools"])
        st.n_metrics = set(data["metrics"])
        st.reviews = {int(h): ReviewAccumulator.restore(d) for h, d in data.get("reviews", {}).items()}
        # Window sums are derived state: rebuilt from the recent buckets.
        recent = list(st.recent)
        for i, secs in enumerate(config.windows_s):
            wb = secs // config.bucket_s
            for _, bk in recent[-wb:]:
                if bk is not None:
                    st.windows[i].merge(bk.agg)
        return st


def _bucket_data(bk: Bucket) -> list[Any]:
    return [bk.agg.to_data(), [list(t) for t in bk.tasks], bk.samples, [list(r) for r in bk.recs],
            [list(c) for c in bk.cands]]


def _bucket_from(data: list[Any]) -> Bucket:
    bk = Bucket()
    bk.agg = Agg.from_data(data[0])
    bk.tasks = [tuple(t) for t in data[1]]
    bk.samples = {k: list(v) for k, v in data[2].items()}
    bk.recs = [tuple(r) for r in data[3]]
    bk.cands = [tuple(c) for c in data[4]]
    return bk


class Engine:
    """Detection engine over a stream of agent events (see the module docstring).

    Parameters
    ----------
    config
        Detection settings (`Settings.detection`).
    pricing
        Prices for executions without `cost_usd` (`PricingTable(settings.pricing)`).
    runbook_base_url
        Base of the runbook links in alerts (`Settings.runbook_base_url`).
    """

    def __init__(
        self,
        config: DetectionConfig | None = None,
        *,
        pricing: PricingTable | None = None,
        runbook_base_url: str = DEFAULT_RUNBOOK_BASE,
    ) -> None:
        self.config = config or DetectionConfig()
        self.pricing = pricing or PricingTable()
        self.runbook_base_url = runbook_base_url
        cfg = self.config
        self._B = cfg.bucket_s
        self._L = cfg.allowed_lateness_s
        self._window_buckets = [w // cfg.bucket_s for w in cfg.windows_s]
        self._reviews = cfg.emit_rollups  # review extras travel in rollups only
        self._agents: dict[str, AgentState] = {}
        self._order: list[AgentState] = []  # by agent id: output order never depends on arrival
        self._max_t = -math.inf
        self._closed_until: int | None = None  # buckets with a lower index are closed
        self._next_close = math.inf
        self._seen: set[str] = set()
        self._seen_prev: set[str] = set()
        self._seen_rotate_at = -math.inf
        self._invalid: dict[int, list[float]] = {}  # bucket -> [valid, invalid]
        self._tracker = AlertTracker()  # pipeline-wide rules
        self._rollups: list[Rollup] = []
        self._floating_cache: dict[str, bool] = {}
        self._call_info: dict[tuple[str, str | None], tuple[str, tuple[float, float, float] | None]] = {}
        self._n_events = 0
        self._n_duplicates = 0
        self._counters: dict[str, int] = {
            "late_folded": 0, "late_dropped": 0, "invalid": 0, "checks": 0,
        }
        self._dedup_half = cfg.max_dedup_ids // 2
        # a gap longer than the whole history changes nothing more than this many buckets do
        self._max_gap_buckets = ((cfg.reference_days * 24 + cfg.reference_exclude_recent_h + 25) * 3600
                                 // cfg.bucket_s)

    @property
    def counters(self) -> dict[str, int]:
        """events (unique), duplicates, late_folded (behind the lateness, baseline only),
        late_dropped (older than the history), invalid, checks (agent x bucket evaluations)."""
        return {"events": self._n_events, "duplicates": self._n_duplicates, **self._counters}

    # =============================================================================================
    # Input
    # =============================================================================================
    @property
    def watermark(self) -> datetime | None:
        return datetime.fromtimestamp(self._max_t, tz=UTC) if self._max_t > -math.inf else None

    @property
    def watermark_s(self) -> float | None:
        """The watermark as epoch seconds (None before the first event): cheap, for the hot path."""
        return self._max_t if self._max_t > -math.inf else None

    @property
    def history_floor_s(self) -> float | None:
        """The oldest event time that could still change any state (history, baselines, windows):
        the watermark less the whole history span. None before the first event."""
        if self._max_t == -math.inf:
            return None
        return self._max_t - self._max_gap_buckets * self._B

    def observe(self, event: DecodedEvent, t: float | None = None) -> list[Alert]:
        """Feed one decoded event; returns the alert state changes it caused (bucket closes).
        `t`: the event's `occurred_at` as epoch seconds, when the caller has it already."""
        eid = event.event_id
        seen = self._seen
        if eid in seen or eid in self._seen_prev:
            self._n_duplicates += 1
            return []
        if t is None:
            t = event.occurred_at.timestamp()
        out: list[Alert] = _NO_ALERTS
        if t > self._max_t:
            if self._closed_until is None:
                self._start(t)
            self._max_t = t
            if t >= self._seen_rotate_at or len(seen) >= self._dedup_half:
                self._rotate_dedup(t)
                seen = self._seen
            if t >= self._next_close:
                out = self._close_until(t)
        seen.add(eid)
        self._n_events += 1
        b = int(t // self._B)
        st = self._agents.get(event.agent_id)
        if st is None:
            st = self._agents[event.agent_id] = AgentState(event.agent_id, self.config, t)
            self._order = [self._agents[a] for a in sorted(self._agents)]
        late = b < self._closed_until  # type: ignore[operator]
        if late:
            bk = Bucket()
        else:
            bk = st.open.get(b)  # type: ignore[assignment]
            if bk is None:
                bk = st.open[b] = Bucket()
        kind = event.kind
        if kind == "execution":
            cost = self._fill_execution(st, bk, event, t, late)  # type: ignore[arg-type]
            if not late and self._reviews:
                acc = st.reviews.get(int(t // 3600))
                if acc is None:
                    acc = self._review_of(st, t)
                acc.observe_execution(event, cost)  # type: ignore[arg-type]
            if st.last_event_at is None or t > st.last_event_at:
                st.last_event_at = t
        elif kind == "evaluation":
            ev: AnyEvaluation = event  # type: ignore[assignment]
            self._score(st, bk, b, ev.execution_id, t, ev.score, 1, eid, late)
            if not late and self._reviews:
                self._review_of(st, t).observe_evaluation(ev)
        else:
            oc: AnyOutcome = event  # type: ignore[assignment]
            self._fill_outcome(st, bk, oc)
        if late:
            self._fold_late(st, bk, b)
        else:
            inv = self._invalid.get(b)
            if inv is None:
                self._invalid[b] = [1.0, 0.0]
            else:
                inv[0] += 1.0
        return out

    def observe_many(self, events: Iterable[DecodedEvent]) -> list[Alert]:
        out: list[Alert] = []
        for ev in events:
            got = self.observe(ev)
            if got:
                out.extend(got)
        return out

    def observe_invalid(self, at: datetime | float | None = None) -> list[Alert]:
        """Count one event that broke the contract (sent to the DLQ). `at`: when it was received
        (event time is unknown for a broken event), default the watermark."""
        self._counters["invalid"] += 1
        t = at.timestamp() if isinstance(at, datetime) else at
        if t is None:
            t = self._max_t
        if t == -math.inf:
            return []
        b = int(t // self._B)
        if self._closed_until is not None and b < self._closed_until:
            b = self._closed_until
        inv = self._invalid.setdefault(b, [0.0, 0.0])
        inv[1] += 1.0
        return []

    def advance(self, watermark: datetime | float) -> list[Alert]:
        """Move event time forward without events (the worker's tick); closes due buckets."""
        t = watermark.timestamp() if isinstance(watermark, datetime) else float(watermark)
        if self._closed_until is None or t <= self._max_t:
            return []
        self._max_t = t
        if t >= self._next_close:
            return self._close_until(t)
        return []

    def flush(self) -> list[Alert]:
        """End of input (backtest): close every bucket up to the newest event time."""
        if self._closed_until is None:
            return []
        return self.advance(self._max_t + self._L + self._B)

    def freeze_baselines(self, agent_id: str | None = None, frozen: bool = True) -> list[str]:
        """Freeze (or unfreeze) the learned baselines of one agent, or of all: after a launch, an
        operator can keep "normal" as it was instead of letting the trailing window move on.
        Returns the agents affected. New hours still enter the history (profiles, rollups). The
        operator's choice stands: `detection.frozen_baseline_after_h` no longer changes it."""
        agents = [agent_id] if agent_id is not None else list(self._agents)
        done = []
        for a in agents:
            st = self._agents.get(a)
            if st is not None:
                st.baseline.frozen = frozen
                st.baseline.by_operator = True
                done.append(a)
        return done

    def baseline_flags(self) -> dict[str, bool]:
        """Agent id -> whether its learned baseline is frozen."""
        return {a: st.baseline.frozen for a, st in self._agents.items()}

    def take_rollups(self) -> list[Rollup]:
        out, self._rollups = self._rollups, []
        return out

    # =============================================================================================
    # Per event
    # =============================================================================================
    def _review_of(self, st: AgentState, t: float) -> ReviewAccumulator:
        hour = int(t // 3600)
        acc = st.reviews.get(hour)
        if acc is None:
            acc = st.reviews[hour] = ReviewAccumulator(st.agent_id, datetime.fromtimestamp(hour * 3600, tz=UTC))
        return acc

    def _fill_execution(self, st: AgentState, bk: Bucket, ev: AnyExecution, t: float, late: bool) -> float | None:
        """Add one execution to its bucket; returns its cost in USD (None when unknown)."""
        agg = bk.agg
        s = agg.s
        s[N] += 1.0
        xid = ev.execution_id
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
        bk.tasks.append((t, ev.event_id, ev.task_id, status, xid))
        q = ev.quality_score
        if q is not None:
            scored = st.scored
            if xid in scored:
                self._score(st, bk, int(t // self._B), xid, t, q, 0, ev.event_id, late, in_fill=True)
            else:  # _score's path for a first claim, inline
                s[QS] += q
                s[QQ] += q * q
                s[QN] += 1.0
                scored[xid] = (0, t, q)
                if len(scored) > self.config.max_scored_per_agent:
                    st.scored, st.scored_dead = _drop_front(scored, (next(iter(scored)),), st.scored_dead)
        cost = ev.cost_usd
        calls = ev.llm_calls
        if calls:
            tokens = 0
            models = agg.models
            priced = cost is None
            total = 0.0
            call_info = self._call_info
            for c in calls:
                input_tokens = c.input_tokens
                tokens += input_tokens + c.output_tokens
                info = call_info.get((c.model, c.resolved_model))
                if info is None:
                    info = self._call_info_of(c.model, c.resolved_model)
                if priced:  # PricingTable.call_cost, inline
                    cc = c.cost_usd
                    if cc is not None:
                        total += cc
                    elif (rates := info[1]) is None:
                        priced = False
                    else:
                        cached = min(c.cached_input_tokens or 0, input_tokens)
                        total += ((input_tokens - cached) * rates[0] + cached * rates[1]
                                  + c.output_tokens * rates[2]) / 1_000_000
                key = info[0]
                got = models.get(key)
                if got is None:
                    if len(models) >= self.config.max_models_per_agent:
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
                cost = total
        if cost is not None:
            s[CS] += cost
            s[CN] += 1.0
            lc = _log(cost + LOG_EPS_USD)
            s[LCS] += lc
            s[LCQ] += lc * lc
            day = int(t // 86400)
            st.spend_days[day] = st.spend_days.get(day, 0.0) + cost
        elif calls:
            s[UNPRICED] += 1.0
        steps = ev.steps
        if steps is not None:
            s[ST] += steps
            s[STQ] += steps * steps
            s[STN] += 1.0
            sb = steps if steps < 1000 else 1000
            sh = agg.steps_hist
            sh[sb] = sh.get(sb, 0.0) + 1.0
        dur = ev.duration_ms
        if dur is not None:
            s[DS] += dur
            ld = _log1p(dur)
            s[LDS] += ld
            s[LDQ] += ld * ld
            s[DN] += 1.0
            hb = int(ld * DURATION_BINS_PER_E)
            dh = agg.dur_hist
            dh[hb] = dh.get(hb, 0.0) + 1.0
        tcs = ev.tool_calls
        if tcs:
            tools = agg.tools
            n_ok = 0
            for tc in tcs:
                name = tc.tool
                v = tools.get(name)
                if v is None:
                    name, v = _capped_entry(tools, name, st.n_tools, self.config.max_tools_per_agent, 4)
                v[T_CALLS] += 1.0
                ts = tc.status
                if ts == "ok":
                    v[T_OK] += 1.0
                    n_ok += 1
                elif ts == "rate_limited":
                    v[T_RL] += 1.0
                else:
                    v[T_ERR] += 1.0
                    bk.cands.append((t, ev.event_id, "tool_error:" + name, xid))
            s[TE] += 1.0
            s[TC] += len(tcs)
            if n_ok:
                s[TEOK] += 1.0
                s[TOK] += n_ok
            else:
                bk.cands.append((t, ev.event_id, "tool_all_fail", xid))
        bk.recs.append((t, ev.event_id, (xid, q, cost, float(steps) if steps is not None else None, dur)))
        return cost

    def _call_info_of(self, model: str, resolved: str | None) -> tuple[str, tuple[float, float, float] | None]:
        """An LLM call's key in `Agg.models` and its rates (see `PricingTable.call_rates`)."""
        info = (model + "\x1f" + (resolved or ""), self.pricing.call_rates(model, resolved))
        if len(self._call_info) < 10_000:  # bounded: model names come from producers
            self._call_info[(model, resolved)] = info
        return info

    def _fill_outcome(self, st: AgentState, bk: Bucket, ev: AnyOutcome) -> None:
        name = ev.metric
        metrics = bk.agg.metrics
        v = metrics.get(name)
        if v is None:
            name, v = _capped_entry(metrics, name, st.n_metrics, self.config.max_metrics_per_agent, 3)
        x = ev.value
        v[0] += x
        v[1] += x * x
        v[2] += 1.0
        if ev.execution_id is not None and x <= 0:
            # samples of a declining metric: executions whose outcome was a zero / a loss
            bk.cands.append((ev.occurred_at.timestamp(), ev.event_id, "outcome:" + name, ev.execution_id))

    def _score(
        self, st: AgentState, bk: Bucket, b: int, xid: str, t: float, score: float, rank: int, eid: str,
        late: bool, in_fill: bool = False,
    ) -> None:
        """Count a quality score once per execution: the inline score wins over evaluations, then
        the earliest (event time, then lowest score). A better claim replaces a counted one only
        while both buckets are open, so arrival order within the allowed lateness does not matter."""
        prev = st.scored.get(xid)
        if prev is not None:
            if (rank, t, score) >= prev or late:
                return
            old = st.open.get(int(prev[1] // self._B))
            if old is None:
                return
            os_ = old.agg.s
            os_[QS] -= prev[2]
            os_[QQ] -= prev[2] * prev[2]
            os_[QN] -= 1.0
            old.recs = [r for r in old.recs if not (r[2][0] == xid and r[2][2] is None)]
            del st.scored[xid]
        s = bk.agg.s
        s[QS] += score
        s[QQ] += score * score
        s[QN] += 1.0
        scored = st.scored
        scored[xid] = (rank, t, score)
        if len(scored) > self.config.max_scored_per_agent:
            st.scored, st.scored_dead = _drop_front(scored, (next(iter(scored)),), st.scored_dead)
        if not in_fill:
            bk.recs.append((t, eid, (xid, score, None, None, None)))

    def _fold_late(self, st: AgentState, bk: Bucket, b: int) -> None:
        """An event behind the allowed lateness: history and baseline only."""
        self._resolve_repeats(st, bk)
        h = b * self._B // 3600
        if st.hour_idx == h and st.hour_agg is not None:
            st.hour_agg.merge(bk.agg)
            self._counters["late_folded"] += 1
        elif st.hour_idx == h:
            st.hour_agg = bk.agg
            self._counters["late_folded"] += 1
        elif st.baseline.add_late(h, bk.agg):
            self._counters["late_folded"] += 1
        else:
            self._counters["late_dropped"] += 1

    def _resolve_repeats(self, st: AgentState, bk: Bucket) -> None:
        """Finish a bucket: repeats in event-time order, samples chosen by event time (so that
        arrival order never changes the result), the task list dropped."""
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
        window = self.config.repeat_window_s
        tasks = st.tasks
        s = bk.agg.s
        rep = 0
        for t, _eid, task, status, xid in sorted(bk.tasks):
            last = tasks.get(task)
            if last is not None and 0 <= t - last <= window:
                rep += 1
                bk.sample("repeat", xid)
            if status == "completed" and (last is None or t >= last):
                if last is not None:
                    del tasks[task]
                tasks[task] = t
                if len(tasks) > self.config.max_tasks_per_agent:
                    tasks, st.tasks_dead = _drop_front(tasks, (next(iter(tasks)),), st.tasks_dead)
                    st.tasks = tasks
        s[REP] += rep
        bk.tasks = []

    # =============================================================================================
    # Per bucket boundary
    # =============================================================================================
    def _start(self, t: float) -> None:
        self._closed_until = int((t - self._L) // self._B)
        self._next_close = (self._closed_until + 1) * self._B + self._L

    def _rotate_dedup(self, t: float) -> None:
        self._seen_prev = self._seen
        self._seen = set()
        self._seen_rotate_at = t + self.config.dedup_window_s

    def _close_until(self, watermark: float) -> list[Alert]:
        assert self._closed_until is not None
        target = int((watermark - self._L) // self._B)
        out: list[Alert] = []
        skip_from = self._closed_until + self._max_gap_buckets
        while self._closed_until < target:
            if self._closed_until == skip_from and target - skip_from > 1:
                # fast-forward: everything before has left every window, history and baseline
                self._fast_forward(target - 1)
                continue
            idx = self._closed_until
            at = (idx + 1) * self._B
            for st in self._order:
                self._close_bucket(st, idx)
            for st in self._order:
                self._check_agent(st, at, out)
            self._check_pipeline(idx, at, out)
            self._closed_until = idx + 1
        self._next_close = (self._closed_until + 1) * self._B + self._L
        return out

    def _fast_forward(self, idx: int) -> None:
        """Jump over a long stretch without events (only reached after the whole history has
        already rolled out): bounded work whatever the gap."""
        hour = idx * self._B // 3600
        for st in self._order:
            st.recent.clear()
            st.windows = [Agg() for _ in self.config.windows_s]
            st.idle_buckets = self._window_buckets[-1] + 2
            st.hour_agg = None
            st.hour_idx = hour
            st.baseline.hours = {}
            st.baseline.base = Agg()
            st.baseline.profile = {}
        self._invalid.clear()
        self._closed_until = idx

    def _close_bucket(self, st: AgentState, idx: int) -> None:
        bk = st.open.pop(idx, None)
        if bk is not None:
            self._resolve_repeats(st, bk)
            st.idle_buckets = 0
        else:
            st.idle_buckets += 1
        recent = st.recent
        recent.append((idx, bk))
        if bk is not None or st.idle_buckets <= self._window_buckets[-1] + 1:
            n = len(recent)
            for agg, wb in zip(st.windows, self._window_buckets, strict=True):
                if bk is not None:
                    agg.merge(bk.agg, full=False)
                if n > wb:
                    leaving = recent[n - 1 - wb][1]
                    if leaving is not None:
                        agg.merge(leaving.agg, sign=-1.0, full=False)
        if bk is not None:
            if st.hour_agg is None:
                st.hour_agg = bk.agg.copy()
                st.hour_idx = idx * self._B // 3600
            else:
                st.hour_agg.merge(bk.agg)
            # recs and samples are kept for alert samples; the task list is done
        if ((idx + 1) * self._B) % 3600 == 0:
            self._close_hour(st, (idx + 1) * self._B // 3600 - 1)

    def _close_hour(self, st: AgentState, hour: int) -> None:
        agg = st.hour_agg
        cfg = self.config
        st.baseline.close_hour(hour, agg, cfg.for_agent(st.agent_id).silent_min_reference_days)
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
            self._rollups.append(_rollup(st.agent_id, hour, agg, firing, review))
        for wagg in st.windows:
            wagg.prune()
        st.hour_agg = None
        st.hour_idx = hour + 1
        # bounded memories, pruned by event time: oldest first, up to the first one still fresh.
        # One pass collects the stale keys, then they go (deleting the first key and looking up the
        # next with next(iter(d)) would walk over every slot deleted before: quadratic).
        horizon = (hour + 1) * 3600
        task_cutoff = horizon - cfg.repeat_window_s
        st.tasks, st.tasks_dead = _drop_front(
            st.tasks, _stale_front(st.tasks, lambda last: last >= task_cutoff), st.tasks_dead)
        score_cutoff = horizon - cfg.score_join_window_s
        st.scored, st.scored_dead = _drop_front(
            st.scored, _stale_front(st.scored, lambda claim: claim[1] >= score_cutoff), st.scored_dead)
        if len(st.spend_days) > 40:
            for d in sorted(st.spend_days)[:-40]:
                del st.spend_days[d]

    def _check_agent(self, st: AgentState, at: float, out: list[Alert]) -> None:
        thr = self.config.for_agent(st.agent_id)
        tracker = st.tracker
        idle = st.idle_buckets > self._window_buckets[-1]
        if idle and not tracker.states and (st.last_event_at is None or st.baseline.hours_in_base() == 0):
            return
        self._counters["checks"] += 1
        ctx = RuleContext(
            agent_id=st.agent_id, at=at, thr=thr,
            windows=list(zip(self.config.windows_s, st.windows, strict=True)),
            baseline=st.baseline, recent=st.recent if not idle else [],  # type: ignore[arg-type]
            bucket_s=self._B, has_open_alerts=bool(tracker.states),
            last_event_at=st.last_event_at, state_of=tracker.state_of,
            allowed_since=tracker.allowed_since, detectors=st.detectors, fp_cache=st.fp_cache,
        )
        checks: list[Check] = []
        if not idle:
            for fn in STATISTICAL_CHECKS:
                checks.extend(fn(ctx))
        checks.extend(check_agent_silent(ctx))
        note_models(ctx, st.recent[-1][1] if st.recent else None, st.first_at, st.models_known, st.model_new,
                    st.floating, self._floating_cache)
        checks.extend(check_model_version_changed(ctx, st.models_known, st.model_new))
        checks.extend(check_floating_model_label(ctx, st.floating))
        view, st.spend_cache = spend_view(ctx, st.spend_days, st.first_at, st.spend_cache)
        if view is not None:
            checks.extend(check_spend_budget(ctx, view))
        for check in checks:
            alert = tracker.step(check, st.agent_id, at, thr, self.runbook_base_url)
            if alert is not None:
                out.append(alert)
                if alert.state == "resolved" and check.on_resolve is not None:
                    check.on_resolve(at)
            if check.group and tracker.state_of(ctx.fp(check.rule, check.labels)) != OK:
                longest = self.config.windows_s[-1]
                st.baseline.exclude(check.group, int((at - longest) // 3600), int(at // 3600))

    def _check_pipeline(self, idx: int, at: float, out: list[Alert]) -> None:
        """`invalid_events` over the last hour's buckets (older counts are dropped here)."""
        thr = self.config.rules
        inv = self._invalid
        lo = idx - 3600 // self._B + 1
        for b in [b for b in inv if b < lo - 1]:
            del inv[b]
        valid = invalid = 0.0
        for b in range(lo, idx + 1):
            v = inv.get(b)
            if v is not None:
                valid += v[0]
                invalid += v[1]
        for check in check_invalid_events(thr, valid, invalid, self._tracker.state_of):
            alert = self._tracker.step(check, None, at, thr, self.runbook_base_url)
            if alert is not None:
                out.append(alert)

    # =============================================================================================
    # Snapshot
    # =============================================================================================
    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-compatible data (versioned). Restore with `restore`."""
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config.fingerprint(),
            "max_t": self._max_t if self._max_t > -math.inf else None,
            "closed_until": self._closed_until,
            "seen": sorted(self._seen),
            "seen_prev": sorted(self._seen_prev),
            "seen_rotate_at": self._seen_rotate_at if self._seen_rotate_at > -math.inf else None,
            "invalid": {str(b): v for b, v in self._invalid.items()},
            "tracker": self._tracker.to_data(),
            "counters": self.counters,
            "agents": {a: st.to_data() for a, st in self._agents.items()},
        }

    @classmethod
    def restore(
        cls,
        data: dict[str, Any],
        config: DetectionConfig | None = None,
        *,
        pricing: PricingTable | None = None,
        runbook_base_url: str = DEFAULT_RUNBOOK_BASE,
    ) -> Engine:
        """An engine continuing from `snapshot()` data. Raises `SnapshotError` when the snapshot's
        version or state-shaping parameters differ (then start fresh rather than reuse stale state)."""
        eng = cls(config, pricing=pricing, runbook_base_url=runbook_base_url)
        if data.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(f"snapshot version {data.get('version')!r}, this engine reads {SNAPSHOT_VERSION}")
        if data.get("config") != eng.config.fingerprint():
            raise SnapshotError(
                f"snapshot taken with {data.get('config')!r}, engine configured as {eng.config.fingerprint()!r}"
            )
        eng._max_t = data["max_t"] if data["max_t"] is not None else -math.inf
        eng._closed_until = data["closed_until"]
        if eng._closed_until is not None:
            eng._next_close = (eng._closed_until + 1) * eng._B + eng._L
        eng._seen = set(data["seen"])
        eng._seen_prev = set(data["seen_prev"])
        eng._seen_rotate_at = data["seen_rotate_at"] if data["seen_rotate_at"] is not None else -math.inf
        eng._invalid = {int(b): list(v) for b, v in data["invalid"].items()}
        eng._tracker.load_data(data["tracker"])
        counters = dict(data["counters"])
        eng._n_events = counters.pop("events", 0)
        eng._n_duplicates = counters.pop("duplicates", 0)
        eng._counters.update(counters)
        eng._agents = {a: AgentState.from_data(a, eng.config, d) for a, d in data["agents"].items()}
        eng._order = [eng._agents[a] for a in sorted(eng._agents)]
        return eng

    def signal_view(self, window_s: int = 3600) -> dict[str, dict[str, tuple[float | None, float | None]]]:
        """Per agent: each signal's (current, baseline) over the detection window closest to
        `window_s` (the worker exports it as metrics). Read-only, derived from the window sums."""
        windows = self.config.windows_s
        i = min(range(len(windows)), key=lambda k: abs(windows[k] - window_s))
        hours_in_window = windows[i] / 3600
        view: dict[str, dict[str, tuple[float | None, float | None]]] = {}
        for agent_id, st in self._agents.items():
            cur, base = st.windows[i].s, st.baseline.base.s
            view[agent_id] = {
                "executions_per_hour": (cur[N] / hours_in_window, _ratio(base[N], base[HOURS])),
                "escalation_rate": (_ratio(cur[ESC], cur[N_ESC]), _ratio(base[ESC], base[N_ESC])),
                "repeat_task_rate": (_ratio(cur[REP], cur[N_REP]), _ratio(base[REP], base[N_REP])),
                "failure_rate": (_ratio(cur[FAIL] + cur[TMO], cur[N]), _ratio(base[FAIL] + base[TMO], base[N])),
                "quality_mean": (_ratio(cur[QS], cur[QN]), _ratio(base[QS], base[QN])),
                "cost_per_execution_usd": (_ratio(cur[CS], cur[CN]), _ratio(base[CS], base[CN])),
                "tool_call_success_share": (_ratio(cur[TOK], cur[TC]), _ratio(base[TOK], base[TC])),
                "steps_mean": (_ratio(cur[ST], cur[STN]), _ratio(base[ST], base[STN])),
                "duration_ms_mean": (_ratio(cur[DS], cur[DN]), _ratio(base[DS], base[DN])),
            }
        return view

    def agent_ids(self) -> list[str]:
        return sorted(self._agents)


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


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


class SnapshotError(ValueError):
    pass


_NO_ALERTS: list[Alert] = []


def _rollup(agent_id: str, hour: int, agg: Agg, firing: list[str], review: ReviewAccumulator | None) -> Rollup:
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


__all__ = ["Engine", "SnapshotError", "SNAPSHOT_VERSION", "slot_of_hour"]
