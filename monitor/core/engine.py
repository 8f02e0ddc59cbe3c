"""The detection engine: events in, alert state changes (and hourly rollups) out.

Pure: no Kafka, no asyncio, no wall clock. Time is event time; the watermark is the newest event
time seen, or a later time passed to `advance` (the live worker calls it from a wall-clock tick so
that a silent agent is noticed without events). The same events in any arrival order within the
allowed lateness give the same alerts.

Per event (`observe`): dedup by `event_id`, then a few additions into the agent's open bucket of
`bucket_s` seconds of event time (`ingest`). Per bucket boundary (when the watermark passes bucket
end + `allowed_lateness_s`): the bucket closes (repeats resolved in event-time order), the
detection windows slide (`closing`), every rule is checked for every agent, and the alert
lifecycle emits state changes stamped with the bucket end. Per hour: the hour enters the agent's
history and, six hours later, its baseline; a `Rollup` is emitted.

Late events: inside the allowed lateness they land in their (still open) bucket. Later ones are
folded into the hour history and baseline they belong to (so baselines stay complete) but never
into windows already checked: decisions are not rewritten.

An event counts at most once (`event_ids.EventIdMemory`): a late event older than the ids still
remembered could be a resend, so it is dropped and counted (`late_unverifiable`) rather than
folded a second time; a producer that resends a fortnight after a partial failure moves nothing.

What is kept per agent, and its memory bounds: `state.AgentState`.
"""

from __future__ import annotations

import bisect
import math
from datetime import UTC, datetime
from typing import Any

from monitor.contract.alert import Alert
from monitor.contract.events import REGRESSION_EVALUATOR_PREFIX
from monitor.contract.rollup import Rollup
from monitor.contract.wire import AnyEvaluation, AnyExecution, DecodedEvent
from monitor.core.baselines import slot_of_hour
from monitor.core.closing import close_bucket, forget
from monitor.core.config import DetectionConfig
from monitor.core.event_ids import EventIdMemory
from monitor.core.ingest import Ingest
from monitor.core.lifecycle import AlertTracker
from monitor.core.pricing import PricingTable
from monitor.core.rollout import UNVERSIONED, Rollout
from monitor.core.rules import (
    OK,
    STATISTICAL_CHECKS,
    Bucket,
    Check,
    check_agent_silent,
    check_floating_model_label,
    check_invalid_events,
    check_model_version_changed,
    check_spend_budget,
    note_models,
    spend_view,
)
from monitor.core.state import AgentState
from monitor.core.suspects import enrich

SNAPSHOT_VERSION = 1
DEFAULT_RUNBOOK_BASE = "https://github.com/agentmon/agentmon/blob/main"


def _agent_id(st: AgentState) -> str:
    return st.agent_id


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
        self._agents: dict[str, AgentState] = {}
        self._order: list[AgentState] = []  # by agent id: output order never depends on arrival
        self._max_t = -math.inf
        self._closed_until: int | None = None  # buckets with a lower index are closed
        self._next_close = math.inf
        self._ids = EventIdMemory(cfg.dedup_window_s, cfg.max_dedup_ids)
        self._invalid: dict[int, list[float]] = {}  # bucket -> [valid, invalid]
        self._tracker = AlertTracker()  # pipeline-wide rules
        self._rollups: list[Rollup] = []
        self._floating_cache: dict[str, bool] = {}
        self._n_events = 0
        self._n_duplicates = 0
        self._counters: dict[str, int] = {
            "late_folded": 0, "late_dropped": 0, "late_unverifiable": 0, "agents_refused": 0, "invalid": 0,
            "checks": 0,
        }
        self._ingest = Ingest(cfg, self.pricing, self._counters)
        self._max_agents = cfg.max_agents
        self._shadow_key = cfg.rollout_shadow_attribute
        self._shadow_value = cfg.rollout_shadow_value
        # a gap longer than the whole history changes nothing more than this many buckets do
        self._max_gap_buckets = ((cfg.reference_days * 24 + cfg.reference_exclude_recent_h + 25) * 3600
                                 // cfg.bucket_s)

    @property
    def counters(self) -> dict[str, int]:
        """events (unique), duplicates, late_folded (behind the lateness, baseline only),
        late_dropped (older than the history), late_unverifiable (older than the event-id memory,
        dropped: it could be a resend), agents_refused (events of new agents beyond `max_agents`),
        invalid, checks (agent x bucket evaluations)."""
        return {"events": self._n_events, "duplicates": self._n_duplicates, **self._counters}

    # -- input --------------------------------------------------------------------------------
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
        ids = self._ids
        seen = ids.seen
        if eid in seen or eid in ids.prev:
            self._n_duplicates += 1
            return []
        if t is None:
            t = event.occurred_at.timestamp()
        if t < ids.floor:
            self._counters["late_unverifiable"] += 1
            return _NO_ALERTS
        st = self._agents.get(event.agent_id)
        if st is None and len(self._agents) >= self._max_agents:
            self._counters["agents_refused"] += 1
            return _NO_ALERTS
        out: list[Alert] = _NO_ALERTS
        if t > self._max_t:
            if self._closed_until is None:
                self._start(t)
            self._max_t = t
            if t >= ids.rotate_at or len(seen) >= ids.half:
                ids.rotate(t)
                seen = ids.seen
            if t >= self._next_close:
                out = self._close_until(t)
        seen.add(eid)
        self._n_events += 1
        b = int(t // self._B)
        if st is None:
            st = self._agents[event.agent_id] = AgentState(event.agent_id, self.config, t)
            # kept sorted by agent id with one insertion: re-sorting every agent on every new
            # one made the n-th new agent cost O(n log n) (20,000 agents took 30 s)
            bisect.insort(self._order, st, key=_agent_id)
        late = b < self._closed_until  # type: ignore[operator]
        if late:
            bk = Bucket()
        else:
            bk = st.open.get(b)  # type: ignore[assignment]
            if bk is None:
                bk = st.open[b] = Bucket()
        kind = event.kind
        ingest = self._ingest
        ro = st.rollout
        if kind == "execution":
            if event.agent_version is not None or (ro is not None and ro.shadow_seen) or (  # type: ignore[union-attr]
                    self._shadow_key is not None and event.attributes is not None  # type: ignore[union-attr]
                    and event.attributes.get(self._shadow_key) == self._shadow_value):  # type: ignore[union-attr]
                if self._versioned(st, event, b, t, late, bk):  # type: ignore[arg-type]
                    return out  # a shadow run: compared, never in production state
            else:
                ingest.execution(st, bk, event, t, late)  # type: ignore[arg-type]
        elif kind == "evaluation":
            if ro is not None and ro.xids and event.execution_id in ro.xids:
                if self._versioned_score(ro, st, bk, event, b, t, late):  # type: ignore[arg-type]
                    return out
            else:
                ingest.evaluation(st, bk, event, t, late)  # type: ignore[arg-type]
        else:
            xid = event.execution_id
            if ro is not None and xid is not None and xid in ro.xids:
                if not late:
                    ro.outcome(b, xid, event.metric, event.value)  # type: ignore[union-attr]
                if ro.is_shadow(xid):
                    return out
            ingest.outcome(st, bk, event)  # type: ignore[arg-type]
        if late:
            ingest.fold_late(st, bk, b)
        else:
            inv = self._invalid.get(b)
            if inv is None:
                self._invalid[b] = [1.0, 0.0]
            else:
                inv[0] += 1.0
        return out

    def _versioned(self, st: AgentState, ev: AnyExecution, b: int, t: float, late: bool, bk: Bucket) -> bool:
        """An execution that carries `agent_version` or the shadow mark: into production state
        (unless shadow) and into the agent's version comparisons. Returns whether it is a shadow run."""
        attrs = ev.attributes
        key = self._shadow_key
        shadow = key is not None and attrs is not None and attrs.get(key) == self._shadow_value
        cost = None if shadow else self._ingest.execution(st, bk, ev, t, late)
        if late:
            return shadow  # behind the lateness: its bucket's comparison is done
        ro = st.rollout
        if ro is None:
            ro = st.rollout = Rollout()
        if shadow:
            cost = self._ingest.cost_of(ev)
            ro.shadow_seen = True  # from now on production runs without a version are compared as UNVERSIONED
        version = ev.agent_version or UNVERSIONED
        xid = ev.execution_id
        tcs = ev.tool_calls
        tool_error = any(tc.status in ("error", "timeout") for tc in tcs) if tcs else None
        ro.execution(b, version, xid, ev.status, tool_error, ev.quality_score, cost, ev.steps, ev.duration_ms, shadow)
        if shadow or ro.needs_ids():
            ro.remember(xid, version, shadow, ev.quality_score is not None, self.config.rollout_max_executions)
        return shadow

    def _versioned_score(self, ro: Rollout, st: AgentState, bk: Bucket, ev: AnyEvaluation, b: int, t: float,
                         late: bool) -> bool:
        """An evaluation of an execution the comparisons remember. Returns whether it is a shadow
        run's (kept out of production state)."""
        xid = ev.execution_id
        shadow = ro.is_shadow(xid)
        counted = shadow or self._ingest.evaluation(st, bk, ev, t, late)
        if counted and not late and not ev.evaluator.startswith(REGRESSION_EVALUATOR_PREFIX):
            ro.score(b, xid, ev.score)
        return shadow

    def rollout_status(self, agent_id: str, baseline: str | None = None,
                       candidate: str | None = None) -> dict[str, Any]:
        """The version comparisons of one agent as of the last closed bucket (`agentmon rollout
        status`): each running comparison's per-signal table and verdict, and the ended ones.
        `baseline` / `candidate` pick one comparison. Raises KeyError (with a reason) when there is
        nothing to show."""
        st = self._agents.get(agent_id)
        if st is None:
            raise KeyError(f"agent {agent_id!r} is unknown here")
        ro = st.rollout
        if ro is None:
            raise KeyError(f"agent {agent_id!r} sends no agent_version: no versions to compare")
        if self._closed_until is None:
            raise KeyError("no bucket has closed yet")
        at = float(self._closed_until * self._B)
        thr = self.config.for_agent(agent_id)
        running = [ro.status(c, thr, at) for _, c in sorted(ro.comparisons.items())
                   if (candidate is None or c.candidate == candidate) and (baseline is None or c.baseline == baseline)]
        if (baseline or candidate) and not running:
            pairs = ", ".join(f"{c.candidate} vs {c.baseline}" for c in ro.comparisons.values()) or "none"
            raise KeyError(f"no comparison of {candidate or 'any version'} against {baseline or 'the incumbent'} "
                           f"is running for {agent_id!r} (running: {pairs})")
        return {
            "agent_id": agent_id, "at": datetime.fromtimestamp(at, tz=UTC).isoformat(),
            "versions": {v: {"first_seen": _iso(a), "last_seen": _iso(z), "executions": int(n)}
                         for v, (a, z, n, *_) in sorted(ro.versions.items())},
            "comparisons": running,
            "ended": [{**h, "started_at": _iso(h["started_at"]), "ended_at": _iso(h["ended_at"])} for h in ro.history],
        }

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

    # -- per bucket boundary ------------------------------------------------------------------
    def _start(self, t: float) -> None:
        self._closed_until = int((t - self._L) // self._B)
        self._next_close = (self._closed_until + 1) * self._B + self._L

    @property
    def dedup_floor_s(self) -> float | None:
        """Event time below which a late event is dropped as possibly already counted (None: every
        id seen is still remembered)."""
        return self._ids.floor_s()

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
                close_bucket(st, idx, self.config, self._window_buckets, self._rollups)
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
            forget(st, hour, self.config, self._window_buckets[-1] + 2)
        self._invalid.clear()
        self._closed_until = idx

    def _check_agent(self, st: AgentState, at: float, out: list[Alert]) -> None:
        thr = self.config.for_agent(st.agent_id)
        tracker = st.tracker
        idle = st.idle_buckets > self._window_buckets[-1]
        if idle and not tracker.states and (st.last_event_at is None or st.baseline.hours_in_base() == 0):
            return
        self._counters["checks"] += 1
        ctx = st.rule_context(at, thr, self.config, idle)
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
        if st.rollout is not None:
            checks.extend(st.rollout.checks(ctx.fp, thr, at, tracker.state_of))
        n0 = len(out)
        for check in checks:
            alert = tracker.step(check, st.agent_id, at, thr, self.runbook_base_url)
            if alert is not None:
                out.append(alert)
                if alert.state == "resolved" and check.on_resolve is not None:
                    check.on_resolve(at)
            if check.group and tracker.state_of(ctx.fp(check.rule, check.labels)) != OK:
                longest = self.config.windows_s[-1]
                st.baseline.exclude(check.group, int((at - longest) // 3600), int(at // 3600))
        if len(out) > n0:  # pages going out: what explains them, what else is firing
            out[n0:] = enrich(out[n0:], st.suspects, tracker, st.baseline.base, at, self.config.related_window_s)

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

    # -- snapshot -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-compatible data (versioned). Restore with `restore`."""
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config.fingerprint(),
            "max_t": self._max_t if self._max_t > -math.inf else None,
            "closed_until": self._closed_until,
            **self._ids.to_data(),
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
        eng._ids.load(data)
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
            view[agent_id] = st.signals(i, hours_in_window)
        return view

    def admits(self, agent_id: str) -> bool:
        """Whether an event of this agent would be applied: a known agent, or room for a new one."""
        return agent_id in self._agents or len(self._agents) < self._max_agents

    def agent_ids(self) -> list[str]:
        return sorted(self._agents)

    def learning(self) -> dict[str, dict[str, str]]:
        """Per agent still learning: each rule family whose baseline does not yet hold the hours it
        needs (`learning_hours_*`), as "H of N h". Those families' rules do not page yet."""
        out: dict[str, dict[str, str]] = {}
        for agent_id, st in self._agents.items():
            fams = st.learning(self.config.for_agent(agent_id))
            if fams:
                out[agent_id] = fams
        return out


class SnapshotError(ValueError):
    pass


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


_NO_ALERTS: list[Alert] = []


__all__ = ["Engine", "SnapshotError", "SNAPSHOT_VERSION", "slot_of_hour"]
