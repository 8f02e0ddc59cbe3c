"""The producer SDK in one import: typed event models, builders, and the producers.

    from monitor.sdk import SyncAgentEventProducer, execution, load_settings

    with SyncAgentEventProducer(load_settings()) as producer:
        producer.send(execution("lead-qualifier", execution_id=trace_id, task_id=lead_id,
                                status="completed", steps=4, quality_score=0.9))
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from monitor.contract.events import (
    EvaluationEvent,
    EventError,
    ExecutionEvent,
    ExecutionStatus,
    LlmCall,
    OutcomeEvent,
    ToolCall,
    encode_event,
    validate_event,
)
from monitor.kafka.producer import AgentEventProducer, BufferFullError, SyncAgentEventProducer
from monitor.settings import load_settings


def new_event_id() -> str:
    return uuid.uuid4().hex


def _envelope(kind: str, agent_id: str, occurred_at: datetime | None, event_id: str | None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": kind,
        "event_id": event_id or new_event_id(),
        "occurred_at": occurred_at or datetime.now(UTC),
        "agent_id": agent_id,
    }


def execution(agent_id: str, *, execution_id: str, task_id: str, status: ExecutionStatus,
              occurred_at: datetime | None = None, event_id: str | None = None,
              **fields: Any) -> ExecutionEvent:
    """An execution event stamped now (UTC) with a fresh event id; raises EventError if invalid."""
    data = _envelope("execution", agent_id, occurred_at, event_id)
    data.update(execution_id=execution_id, task_id=task_id, status=status, **fields)
    event = validate_event(data)
    assert isinstance(event, ExecutionEvent)
    return event


def evaluation(agent_id: str, *, execution_id: str, evaluator: str, score: float,
               passed: bool | None = None, occurred_at: datetime | None = None,
               event_id: str | None = None) -> EvaluationEvent:
    data = _envelope("evaluation", agent_id, occurred_at, event_id)
    data.update(execution_id=execution_id, evaluator=evaluator, score=score, passed=passed)
    event = validate_event(data)
    assert isinstance(event, EvaluationEvent)
    return event


def outcome(agent_id: str, *, metric: str, value: float, execution_id: str | None = None,
            occurred_at: datetime | None = None, event_id: str | None = None) -> OutcomeEvent:
    data = _envelope("outcome", agent_id, occurred_at, event_id)
    data.update(metric=metric, value=value, execution_id=execution_id)
    event = validate_event(data)
    assert isinstance(event, OutcomeEvent)
    return event


__all__ = [
    "AgentEventProducer", "BufferFullError", "EvaluationEvent", "EventError", "ExecutionEvent",
    "LlmCall", "OutcomeEvent", "SyncAgentEventProducer", "ToolCall", "encode_event", "evaluation",
    "execution", "load_settings", "new_event_id", "outcome",
]
