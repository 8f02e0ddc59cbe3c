"""Test side of the weekly report: a small hour bucketer that turns events into `Rollup`s with
`ReviewExtras` (the engine will do this in production), and a simulated history with known
injected patterns.

The simulated history (3 weeks, 2026-W44..W46, report week W46 = 2026-11-09..15):

- `lead-qualifier`: tool `crm.update` fails on every call every Tuesday 03:00-04:00 UTC;
  in W46 executions of task_type `billing` escalate twice as often as before (completed billing
  runs are turned into escalations with reason `missing invoice`); one execution
  (`EXPENSIVE_ID`, Thursday of W46) costs $75.
- `support-triage`: normal, but from Wednesday 2026-11-11 10:00 the provider serves a new
  checkpoint behind the same model label.
- alerts: a tool_error_rate episode on Tuesday 03:10 -> 04:20 (70 min), a P2 escalation alert
  still firing at week end, and one episode of the previous week.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.contract.alert import Alert
from monitor.contract.catalogue import runbook_url
from monitor.contract.events import EvaluationEvent, ExecutionEvent, OutcomeEvent, validate_event
from monitor.contract.rollup import MetricRollup, Rollup, ToolRollup
from monitor.core.pricing import PricingTable
from monitor.core.review_sample import ReviewAccumulator
from monitor.local.simulate import AgentProfile, Incident, generate

HISTORY_START = datetime(2026, 10, 26, tzinfo=UTC)  # Monday of 2026-W44
REPORT_WEEK = "2026-W46"
WEEK_START = datetime(2026, 11, 9, tzinfo=UTC)
AGENT = "lead-qualifier"
OTHER_AGENT = "support-triage"
FAILING_TOOL = "crm.update"
EXPENSIVE_ID = "x-expensive-thursday"
EXPENSIVE_COST = 75.0
RISING_TYPE = "billing"
TASK_TYPES = ("billing", "onboarding", "support")
NEW_CHECKPOINT_AT = datetime(2026, 11, 11, 10, tzinfo=UTC)


# ---- bucketer ----------------------------------------------------------------------------------


@dataclass
class _Hour:
    agent_id: str
    hour: datetime
    review: ReviewAccumulator
    executions: int = 0
    completed: int = 0
    escalations: int = 0
    failures: int = 0
    timeouts: int = 0
    repeats: int = 0
    quality_sum: float = 0.0
    quality_count: int = 0
    cost_sum: float = 0.0
    cost_count: int = 0
    unpriced: int = 0
    tokens: float = 0.0
    tokens_count: int = 0
    steps: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    tools: dict[str, list[int]] = field(default_factory=dict)
    outcomes: dict[str, list[float]] = field(default_factory=dict)
    models: dict[str, set[str]] = field(default_factory=dict)


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))])


def rollups_from_events(events: Iterable[dict[str, Any]], *, with_review: bool = True) -> list[Rollup]:
    """Hourly rollups (event time, UTC) of valid events; duplicates by event_id count once."""
    pricing = PricingTable()
    parsed = []
    seen: set[str] = set()
    for raw in events:
        try:
            ev = validate_event(raw)
        except ValueError:
            continue
        if ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        parsed.append(ev)
    parsed.sort(key=lambda e: (e.occurred_at, e.event_id))
    hours: dict[tuple[str, datetime], _Hour] = {}
    last_completed: dict[tuple[str, str], datetime] = {}

    def bucket(agent: str, at: datetime) -> _Hour:
        h = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        key = (agent, h)
        if key not in hours:
            hours[key] = _Hour(agent, h, ReviewAccumulator(agent, h))
        return hours[key]

    for ev in parsed:
        b = bucket(ev.agent_id, ev.occurred_at)
        if isinstance(ev, ExecutionEvent):
            b.executions += 1
            b.completed += ev.status == "completed"
            b.escalations += ev.status == "escalated"
            b.failures += ev.status == "failed"
            b.timeouts += ev.status == "timeout"
            prev = last_completed.get((ev.agent_id, ev.task_id))
            if prev is not None and ev.occurred_at - prev <= timedelta(hours=24):
                b.repeats += 1
            if ev.status == "completed":
                last_completed[(ev.agent_id, ev.task_id)] = ev.occurred_at
            if ev.quality_score is not None:
                b.quality_sum += ev.quality_score
                b.quality_count += 1
            cost: float | None = ev.cost_usd
            if cost is None and ev.llm_calls:
                total, unpriced = pricing.calls_cost(ev.llm_calls)
                cost = None if unpriced else total
            if cost is None:
                b.unpriced += 1
            else:
                b.cost_sum += cost
                b.cost_count += 1
            if ev.llm_calls:
                b.tokens += sum(c.input_tokens + c.output_tokens for c in ev.llm_calls)
                b.tokens_count += 1
                for c in ev.llm_calls:
                    if c.resolved_model:
                        b.models.setdefault(c.model, set()).add(c.resolved_model)
            if ev.steps is not None:
                b.steps.append(ev.steps)
            if ev.duration_ms is not None:
                b.durations.append(ev.duration_ms)
            for t in ev.tool_calls or ():
                acc = b.tools.setdefault(t.tool, [0, 0, 0, 0])
                acc[0] += 1
                acc[1] += t.status in ("error", "timeout")
                acc[2] += t.status == "rate_limited"
                acc[3] += t.status == "ok"
            b.review.observe_execution(ev, cost)
        elif isinstance(ev, EvaluationEvent):
            b.quality_sum += ev.score
            b.quality_count += 1
            b.review.observe_evaluation(ev)
        elif isinstance(ev, OutcomeEvent):
            acc2 = b.outcomes.setdefault(ev.metric, [0.0, 0.0])
            acc2[0] += ev.value
            acc2[1] += 1
    out = []
    for (_, _), b in sorted(hours.items()):
        out.append(
            Rollup(
                agent_id=b.agent_id,
                hour=b.hour,
                executions=b.executions,
                completed=b.completed,
                escalations=b.escalations,
                failures=b.failures,
                timeouts=b.timeouts,
                repeats=b.repeats,
                quality_sum=b.quality_sum,
                quality_count=b.quality_count,
                cost_usd_sum=b.cost_sum,
                cost_count=b.cost_count,
                unpriced_executions=b.unpriced,
                tokens_sum=b.tokens,
                tokens_count=b.tokens_count,
                steps_mean=sum(b.steps) / len(b.steps) if b.steps else None,
                steps_p95=_p95([float(s) for s in b.steps]),
                duration_ms_mean=sum(b.durations) / len(b.durations) if b.durations else None,
                duration_ms_p95=_p95(b.durations),
                tools={
                    k: ToolRollup(calls=v[0], errors=v[1], rate_limited=v[2], ok=v[3])
                    for k, v in b.tools.items()
                },
                outcomes={k: MetricRollup(sum=v[0], count=int(v[1])) for k, v in b.outcomes.items()},
                resolved_models={k: sorted(v) for k, v in b.models.items()},
                review=b.review.result() if with_review else None,
            )
        )
    return out


# ---- the simulated history ---------------------------------------------------------------------


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


@functools.lru_cache(maxsize=2)
def _simulated_events(weeks: int, rate_per_hour: float) -> tuple[str, ...]:
    return tuple(json.dumps(e) for e in _generate_events(weeks, rate_per_hour))


def simulated_events(weeks: int = 3, rate_per_hour: float = 60.0) -> list[dict[str, Any]]:
    """The history described in the module docstring, as event dicts (fresh copies)."""
    return [json.loads(e) for e in _simulated_events(weeks, rate_per_hour)]


def _generate_events(weeks: int, rate_per_hour: float) -> list[dict[str, Any]]:
    """The history described in the module docstring, as event dicts."""
    agents = [
        AgentProfile(agent_id=AGENT, rate_per_hour=rate_per_hour, escalation=0.15, peak_hour_utc=14.0),
        AgentProfile(
            agent_id=OTHER_AGENT,
            rate_per_hour=rate_per_hour / 2,
            escalation=0.1,
            peak_hour_utc=13.0,
            model="gpt-4o",
            resolved_model="gpt-4o-2024-08-06",
            outcome_metric="ticket_resolved",
        ),
    ]
    incidents = [
        Incident(
            rule="tool_error_rate",
            agent_id=AGENT,
            onset=HISTORY_START + timedelta(days=1 + 7 * w, hours=3),
            magnitude=1.0,
            duration_h=1.0,
        )
        for w in range(weeks)
    ]
    incidents.append(Incident(rule="model_version_changed", agent_id=OTHER_AGENT, onset=NEW_CHECKPOINT_AT))
    events = list(
        generate(agents, HISTORY_START, 7.0 * weeks, incidents=incidents, seed=7, duplicate_share=0.0)
    )
    for ev in events:
        if ev.get("kind") != "execution":
            continue
        u = _unit(ev["execution_id"])
        ev["task_type"] = TASK_TYPES[int(u * len(TASK_TYPES))]
        in_week = ev["occurred_at"] >= WEEK_START.isoformat()[:19]
        # double billing escalations of lead-qualifier in the report week: P(escalated) 0.15 -> 0.30
        if (
            in_week
            and ev["agent_id"] == AGENT
            and ev["task_type"] == RISING_TYPE
            and ev["status"] == "completed"
            and _unit("flip/" + ev["execution_id"]) < 0.15 / 0.82
        ):
            ev["status"] = "escalated"
            ev["escalation_reason"] = "missing invoice"
    expensive = next(
        ev
        for ev in events
        if ev.get("kind") == "execution"
        and ev["agent_id"] == AGENT
        and ev["occurred_at"] >= "2026-11-12T15"
        and ev["status"] == "completed"
    )
    expensive["execution_id"] = EXPENSIVE_ID
    expensive["cost_usd"] = EXPENSIVE_COST
    return events


def _alert(
    fingerprint: str,
    rule: str,
    agent: str | None,
    severity: str,
    state: str,
    at: datetime,
    labels: dict[str, str] | None = None,
) -> Alert:
    return Alert.model_validate(
        {
            "alert_id": f"{fingerprint}@{at.isoformat()}/{state}",
            "fingerprint": fingerprint,
            "rule": rule,
            "agent_id": agent,
            "severity": severity,
            "state": state,
            "at": at,
            "summary": f"{rule} on {agent}",
            "labels": labels or {},
            "metric": {
                "name": rule,
                "current": 0.5,
                "baseline": 0.05,
                "change": 9.0,
                "window": "1h",
                "n": 20,
            },
            "samples": [],
            "runbook_url": runbook_url("https://example.invalid/agentmon", rule),
        }
    )


def simulated_alerts() -> list[Alert]:
    tue = WEEK_START + timedelta(days=1)
    tool_fp = f"tool_error_rate/{AGENT}/tool={FAILING_TOOL}"
    esc_fp = f"escalation_rate_rise/{AGENT}"
    return [
        # the previous week's Tuesday window
        _alert(
            tool_fp,
            "tool_error_rate",
            AGENT,
            "P1",
            "firing",
            tue - timedelta(days=7, minutes=-10),
            {"tool": FAILING_TOOL},
        ),
        _alert(
            tool_fp,
            "tool_error_rate",
            AGENT,
            "P1",
            "resolved",
            tue - timedelta(days=7, minutes=-80),
            {"tool": FAILING_TOOL},
        ),
        # this week: fired 03:10, re-notified 03:40, resolved 04:20 -> 70 minutes
        _alert(
            tool_fp,
            "tool_error_rate",
            AGENT,
            "P1",
            "firing",
            tue + timedelta(hours=3, minutes=10),
            {"tool": FAILING_TOOL},
        ),
        _alert(
            tool_fp,
            "tool_error_rate",
            AGENT,
            "P1",
            "firing",
            tue + timedelta(hours=3, minutes=40),
            {"tool": FAILING_TOOL},
        ),
        _alert(
            tool_fp,
            "tool_error_rate",
            AGENT,
            "P1",
            "resolved",
            tue + timedelta(hours=4, minutes=20),
            {"tool": FAILING_TOOL},
        ),
        # fired Friday, still firing at the end of the week
        _alert(
            esc_fp, "escalation_rate_rise", AGENT, "P2", "firing", WEEK_START + timedelta(days=4, hours=11)
        ),
        # next week (not in the report)
        _alert(esc_fp, "escalation_rate_rise", AGENT, "P2", "resolved", WEEK_START + timedelta(days=8)),
        # pipeline-wide
        _alert("invalid_events/*", "invalid_events", None, "P2", "firing", WEEK_START + timedelta(days=2)),
        _alert(
            "invalid_events/*",
            "invalid_events",
            None,
            "P2",
            "resolved",
            WEEK_START + timedelta(days=2, minutes=30),
        ),
    ]


def write_jsonl(path: Path, records: Iterable[Rollup | Alert]) -> Path:
    with path.open("wb") as out:
        for r in records:
            out.write(r.to_json() + b"\n")
    return path


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as lines:
        for line in lines:
            yield json.loads(line)


def by_agent_week(events: list[dict[str, Any]], agent: str, start: datetime) -> list[dict[str, Any]]:
    """Execution events of one agent in the week starting at `start` (ground truth for asserts)."""
    lo, hi = start.isoformat()[:19], (start + timedelta(days=7)).isoformat()[:19]
    return [
        e
        for e in events
        if e.get("kind") == "execution" and e["agent_id"] == agent and lo <= e["occurred_at"][:19] < hi
    ]


def group_count(events: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for e in events:
        out[e.get(key) or "(none)"] += 1
    return dict(out)


@functools.lru_cache(maxsize=2)
def simulated_rollups(weeks: int = 3, rate_per_hour: float = 60.0) -> tuple[Rollup, ...]:
    """Rollups (with review extras) of the simulated history; computed once per session."""
    return tuple(rollups_from_events(simulated_events(weeks, rate_per_hour)))
