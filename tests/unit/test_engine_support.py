"""Helpers for the engine tests: hand-made events and small, fast engine configurations."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.contract.events import AgentEvent, validate_event
from monitor.core.config import DetectionConfig, RuleThresholds

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
_ids = itertools.count()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat()


def execution(minutes: float, agent: str = "a", *, status: str = "completed", task: str | None = None,
              xid: str | None = None, eid: str | None = None, **fields: Any) -> AgentEvent:
    n = next(_ids)
    data: dict[str, Any] = {
        "schema_version": 1, "kind": "execution", "event_id": eid or f"e{n}", "occurred_at": iso(minutes),
        "agent_id": agent, "execution_id": xid or f"x{n}", "task_id": task or f"t{n}", "status": status,
    }
    data.update(fields)
    return validate_event(data)


def evaluation(minutes: float, xid: str, score: float, agent: str = "a", eid: str | None = None) -> AgentEvent:
    n = next(_ids)
    return validate_event({
        "schema_version": 1, "kind": "evaluation", "event_id": eid or f"v{n}", "occurred_at": iso(minutes),
        "agent_id": agent, "execution_id": xid, "evaluator": "judge", "score": score,
    })


def outcome(minutes: float, metric: str, value: float, agent: str = "a", xid: str | None = None) -> AgentEvent:
    n = next(_ids)
    data: dict[str, Any] = {
        "schema_version": 1, "kind": "outcome", "event_id": f"o{n}", "occurred_at": iso(minutes),
        "agent_id": agent, "metric": metric, "value": value,
    }
    if xid:
        data["execution_id"] = xid
    return validate_event(data)


def fast_config(**rules: Any) -> DetectionConfig:
    """Baselines after 12 h from a 2-day reference: small streams exercise every rule."""
    return DetectionConfig(
        reference_days=2,
        rules=RuleThresholds(min_baseline_hours=12, **rules),
    )
