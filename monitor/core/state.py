"""What the engine keeps about one agent (`AgentState`), its snapshot form, and the FIFO pruning of
its insertion-ordered memories.

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
- suspects (`suspects.SuspectState`): at most `suspects_top_k` values per dimension (plus one pool),
  their sums per closed bucket of the longest window, and their executions per hour not yet in
  the baseline;
- engine-wide dedup: event ids of the last `dedup_window_s` to `2 x dedup_window_s` of event
  time, at most `max_dedup_ids` (beyond that the oldest generation is dropped early).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from monitor.core.baselines import AgentBaseline
from monitor.core.config import LEARNING_FAMILIES, DetectionConfig, RuleThresholds
from monitor.core.lifecycle import AlertTracker
from monitor.core.review_sample import ReviewAccumulator
from monitor.core.rollout import Rollout
from monitor.core.rules import Bucket, RuleContext, SpendDay
from monitor.core.signals import (
    CN,
    CS,
    DN,
    DS,
    ESC,
    FAIL,
    HOURS,
    N_ESC,
    N_REP,
    QN,
    QS,
    REP,
    ST,
    STN,
    TC,
    TMO,
    TOK,
    Agg,
    N,
)
from monitor.core.suspects import SuspectState

#: `tasks` and `scored` are insertion-ordered dicts that lose their oldest keys. A key deleted from
#: a CPython dict leaves a dead slot that `next(iter(d))` walks over until the dict is rebuilt, so
#: evicting the oldest key at the cap one at a time would cost a walk over all keys evicted before:
#: quadratic. The dict is copied (same keys, same order) after this many front deletions.
_COMPACT_AFTER = 4096


def stale_front(d: dict[str, Any], fresh: Callable[[Any], bool]) -> list[str]:
    """The oldest keys of insertion-ordered `d`, up to the first whose value is `fresh(value)`."""
    stale = []
    for key, value in d.items():
        if fresh(value):
            break
        stale.append(key)
    return stale


def drop_front(d: dict[str, Any], keys: Iterable[str], dead: int) -> tuple[dict[str, Any], int]:
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


class AgentState:
    """Everything the engine keeps about one agent (see the module docstring for the bounds)."""

    __slots__ = (
        "agent_id", "open", "recent", "windows", "hour_idx", "hour_agg", "baseline", "tasks", "scored",
        "first_at", "last_event_at", "spend_days", "models_known", "model_new", "floating", "tracker",
        "detectors", "idle_buckets", "n_tools", "n_metrics", "fp_cache", "spend_cache", "reviews",
        "tasks_dead", "scored_dead", "rollout", "suspects",
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
        self.rollout: Rollout | None = None  # version comparisons, from the first versioned execution
        self.suspects = SuspectState(config.suspects_top_k, config.bucket_s, self.recent.maxlen or 1,
                                     config.reference_exclude_recent_h)

    def signals(self, window: int, hours_in_window: float) -> dict[str, tuple[float | None, float | None]]:
        """Each signal's (current, baseline) over the detection window of index `window`."""
        cur, base = self.windows[window].s, self.baseline.base.s
        return {
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

    def rule_context(self, at: float, thr: RuleThresholds, config: DetectionConfig, idle: bool) -> RuleContext:
        """What this agent's checks see at `at` (an idle agent: no recent buckets)."""
        tracker = self.tracker
        return RuleContext(
            agent_id=self.agent_id, at=at, thr=thr,
            windows=list(zip(config.windows_s, self.windows, strict=True)),
            baseline=self.baseline, recent=self.recent if not idle else [],  # type: ignore[arg-type]
            bucket_s=config.bucket_s, has_open_alerts=bool(tracker.states),
            last_event_at=self.last_event_at, state_of=tracker.state_of,
            allowed_since=tracker.allowed_since, firing_since=tracker.firing_since, detectors=self.detectors,
            fp_cache=self.fp_cache, base=self.baseline.base,
        )

    def learning(self, thr: RuleThresholds) -> dict[str, str]:
        """Each rule family whose baseline does not yet hold the hours it needs, as "H of N h"."""
        have = self.baseline.hours_in_base()
        return {f: f"{have:.0f} of {thr.learning_hours(f)} h" for f in LEARNING_FAMILIES
                if have < thr.learning_hours(f)}

    def to_data(self) -> dict[str, Any]:
        return {
            "open": {str(b): bucket_data(bk) for b, bk in self.open.items()},
            "recent": [[b, bucket_data(bk) if bk is not None else None] for b, bk in self.recent],
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
            **({"rollout": self.rollout.to_data()} if self.rollout is not None else {}),
            "suspects": self.suspects.to_data(),
        }

    @classmethod
    def from_data(cls, agent_id: str, config: DetectionConfig, data: dict[str, Any]) -> AgentState:
        st = cls(agent_id, config, data["first_at"])
        st.open = {int(b): bucket_from(d) for b, d in data["open"].items()}
        for b, d in data["recent"]:
            st.recent.append((int(b), bucket_from(d) if d is not None else None))
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
        if data.get("rollout") is not None:  # absent in snapshots of agents never versioned (and older ones)
            st.rollout = Rollout.from_data(data["rollout"])
        if "suspects" in data:  # absent in snapshots from before suspects: they start empty
            st.suspects.load_data(data["suspects"])
        # Window sums are derived state: rebuilt from the recent buckets.
        recent = list(st.recent)
        for i, secs in enumerate(config.windows_s):
            wb = secs // config.bucket_s
            for _, bk in recent[-wb:]:
                if bk is not None:
                    st.windows[i].merge(bk.agg)
        return st


def bucket_data(bk: Bucket) -> list[Any]:
    return [bk.agg.to_data(), [list(t) for t in bk.tasks], bk.samples, [list(r) for r in bk.recs],
            [list(c) for c in bk.cands]]


def bucket_from(data: list[Any]) -> Bucket:
    bk = Bucket()
    bk.agg = Agg.from_data(data[0])
    # the sixth element, the execution's suspects keys, is a tuple again (absent before suspects)
    bk.tasks = [(*t[:5], tuple(t[5])) if len(t) > 5 else tuple(t) for t in data[1]]
    bk.samples = {k: list(v) for k, v in data[2].items()}
    bk.recs = [tuple(r) for r in data[3]]
    bk.cands = [tuple(c) for c in data[4]]
    return bk


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None
