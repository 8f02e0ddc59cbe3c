"""What a span means for agentmon: its role in an agent run and the contract fields it carries.

Two vocabularies are read, current and older names alike:

- OpenTelemetry GenAI semantic conventions: `gen_ai.operation.name` = `invoke_agent` (an agent
  run), `chat` / `text_completion` / `generate_content` (a model call), `execute_tool` (a tool
  call); `gen_ai.provider.name` (older `gen_ai.system`), `gen_ai.request.model`,
  `gen_ai.response.model`, `gen_ai.usage.input_tokens` / `output_tokens` (older `prompt_tokens` /
  `completion_tokens`), `gen_ai.usage.cache_read.input_tokens`, `gen_ai.agent.*`,
  `gen_ai.conversation.id`, `gen_ai.tool.name`; errors as span status and `error.type`.
- OpenInference: `openinference.span.kind` = AGENT / LLM / TOOL, `agent.name`, `llm.model_name`
  (the requested model from `llm.invocation_parameters` when it is there),
  `llm.provider` / `llm.system`, `llm.token_count.prompt` / `completion` /
  `prompt_details.cache_read`, `llm.cost.total`, `tool.name`, `session.id`, `exception.type`.

Which attributes name the agent, the task and an escalation is configurable (`OtelMapping`).
A span whose values break the contract raises `MappingError` with the attribute and value, for
the dead-letter topic. Pure: values in, values out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from monitor.contract.events import EvaluationEvent, EventError, ExecutionEvent, validate_event
from monitor.otel.config import OtelMapping
from monitor.otel.decode import STATUS_ERROR, LogEvent, Span

EVALUATION_EVENT = "gen_ai.evaluation.result"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

AGENT_OPERATIONS = frozenset({"invoke_agent"})
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
TOOL_OPERATIONS = frozenset({"execute_tool"})

PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
REQUEST_MODEL = ("gen_ai.request.model", "llm.model_name", "gen_ai.response.model")
RESPONSE_MODEL = ("gen_ai.response.model",)
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
CACHED_TOKENS = ("gen_ai.usage.cache_read.input_tokens", "llm.token_count.prompt_details.cache_read")
COST = ("llm.cost.total",)
TOOL_NAME = ("gen_ai.tool.name", "tool.name")
ERROR_TYPE = ("error.type", "exception.type")
HTTP_STATUS = ("http.response.status_code", "http.status_code")
RESPONSE_ID = ("gen_ai.response.id",)
PASSED_LABELS = frozenset({"pass", "passed", "true", "yes", "ok", "good", "correct"})
FAILED_LABELS = frozenset({"fail", "failed", "false", "no", "bad", "incorrect"})


class Role(StrEnum):
    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    OTHER = "other"


class MappingError(ValueError):
    """A span or log event whose values break the event contract; `reason` names where and what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AgentFacts:
    agent_id: str
    agent_version: str | None
    task_id: str | None
    task_type: str | None
    conversation_id: str | None
    error_type: str | None
    failed: bool


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """The part of a span that agent runs are built from (all an open trace holds of it)."""

    span_id: str
    parent_id: str
    role: Role
    start_ns: int
    end_ns: int
    agent: AgentFacts | None = None
    llm_call: dict[str, Any] | None = None
    tool_call: dict[str, Any] | None = None
    response_id: str | None = None
    agent_hint: str | None = None  # an agent named on a span that is not the agent span
    escalated: bool = False
    escalation_reason: str | None = None


@dataclass(frozen=True, slots=True)
class EvaluationFacts:
    trace_id: str
    span_id: str
    response_id: str | None
    evaluator: str
    score: float
    passed: bool | None
    time_ns: int
    event_id: str


def role_of(attributes: dict[str, Any]) -> Role:
    operation = attributes.get("gen_ai.operation.name")
    kind = attributes.get("openinference.span.kind")
    kind = kind.upper() if isinstance(kind, str) else None
    if operation in AGENT_OPERATIONS or kind == "AGENT":
        return Role.AGENT
    if operation in LLM_OPERATIONS or kind == "LLM":
        return Role.LLM
    if operation in TOOL_OPERATIONS or kind == "TOOL":
        return Role.TOOL
    return Role.OTHER


def _first(attributes: dict[str, Any], names: tuple[str, ...] | list[str]) -> tuple[str, Any] | None:
    for name in names:
        value = attributes.get(name)
        if value is not None and value != "":
            return name, value
    return None


def _text(attributes: dict[str, Any], names: tuple[str, ...] | list[str]) -> str | None:
    found = _first(attributes, names)
    return None if found is None else str(found[1])


def _count(attributes: dict[str, Any], names: tuple[str, ...], where: str) -> int | None:
    found = _first(attributes, names)
    if found is None:
        return None
    name, value = found
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise MappingError(f"{where}: {name} must be a whole number >= 0 (got {value!r})")
    return int(value)


def _number(attributes: dict[str, Any], names: tuple[str, ...], where: str) -> float | None:
    found = _first(attributes, names)
    if found is None:
        return None
    name, value = found
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != value:
        raise MappingError(f"{where}: {name} must be a number >= 0 (got {value!r})")
    return float(value)


def _invocation_model(parameters: Any) -> str | None:
    if not isinstance(parameters, str):
        return None
    try:
        model = json.loads(parameters).get("model")
    except (ValueError, AttributeError):
        return None
    return model if isinstance(model, str) and model else None


def time_of(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def execution_id_of(trace_id: str) -> str:
    return trace_id


def _is_timeout(error_type: str | None) -> bool:
    return error_type is not None and "timeout" in error_type.lower().replace("_", "")


def _is_rate_limit(error_type: str | None, http_status: int | None) -> bool:
    if http_status == 429:
        return True
    if error_type is None:
        return False
    flat = error_type.lower().replace("_", "").replace(" ", "")
    return "ratelimit" in flat or "toomanyrequests" in flat


class SpanMapper:
    """Turns spans and log events into `SpanFacts` / `EvaluationFacts` by the configured mapping."""

    def __init__(self, mapping: OtelMapping) -> None:
        self.mapping = mapping
        self._escalation_values = frozenset(v.lower() for v in mapping.escalation_values)
        self._agent_names = tuple(dict.fromkeys([*mapping.agent_id_attributes, "gen_ai.agent.name", "agent.name"]))

    def facts(self, span: Span) -> SpanFacts:
        a = span.attributes
        where = f"trace {span.trace_id} span {span.span_id} ({span.name!r})"
        if not span.span_id or not span.trace_id:
            raise MappingError(f"{where}: a span without a trace or span id")
        role = role_of(a)
        escalated, reason = self._escalation(a)
        common: dict[str, Any] = {
            "span_id": span.span_id, "parent_id": span.parent_id, "role": role,
            "start_ns": span.start_ns, "end_ns": max(span.end_ns, span.start_ns),
            "escalated": escalated, "escalation_reason": reason,
        }
        if role is Role.AGENT:
            return SpanFacts(**common, agent=self._agent(span, where))
        hint = _text(a, self._agent_names)
        if role is Role.LLM:
            return SpanFacts(**common, llm_call=self._llm_call(span, where), response_id=_text(a, RESPONSE_ID),
                             agent_hint=hint)
        if role is Role.TOOL:
            return SpanFacts(**common, tool_call=self._tool_call(span, where), agent_hint=hint)
        return SpanFacts(**common, agent_hint=hint)

    def _escalation(self, a: dict[str, Any]) -> tuple[bool, str | None]:
        value = a.get(self.mapping.escalation_attribute)
        if value is None or str(value).lower() not in self._escalation_values:
            return False, None
        reason = a.get(self.mapping.escalation_reason_attribute)
        return True, None if reason is None else str(reason)[:4096]

    def _agent(self, span: Span, where: str) -> AgentFacts:
        a, m = span.attributes, self.mapping
        agent_id = _text(a, m.agent_id_attributes) or _text(span.resource, m.agent_id_resource_attributes)
        if agent_id is None:
            raise MappingError(f"{where}: an agent span naming no agent (looked for {', '.join(m.agent_id_attributes)}"
                               f" and the resource's {', '.join(m.agent_id_resource_attributes)})")
        error_type = _text(a, ERROR_TYPE) or span.exception_type
        return AgentFacts(
            agent_id=agent_id,
            agent_version=(_text(a, m.agent_version_attributes)
                           or _text(span.resource, m.agent_version_resource_attributes)),
            task_id=_text(a, m.task_id_attributes), task_type=_text(a, m.task_type_attributes),
            conversation_id=_text(a, m.conversation_id_attributes), error_type=error_type,
            failed=span.status_code == STATUS_ERROR or error_type is not None)

    def _llm_call(self, span: Span, where: str) -> dict[str, Any]:
        a = span.attributes
        requested = _text(a, REQUEST_MODEL)
        resolved = _text(a, RESPONSE_MODEL)
        if "gen_ai.request.model" not in a and "llm.model_name" in a:
            # OpenInference: llm.model_name is what the provider answered with; the request's
            # model, when recorded, is in the JSON of llm.invocation_parameters
            requested = _invocation_model(a.get("llm.invocation_parameters")) or requested
            if resolved is None and requested != a["llm.model_name"]:
                resolved = str(a["llm.model_name"])
        call: dict[str, Any] = {
            "provider": _text(a, PROVIDER) or "unknown",
            "model": requested or "unknown",
            "input_tokens": _count(a, INPUT_TOKENS, where) or 0,
            "output_tokens": _count(a, OUTPUT_TOKENS, where) or 0,
            "latency_ms": max(span.end_ns - span.start_ns, 0) / 1e6,
        }
        if resolved is not None:
            call["resolved_model"] = resolved
        cached = _count(a, CACHED_TOKENS, where)
        if cached is not None:
            call["cached_input_tokens"] = cached
        cost = _number(a, COST, where)
        if cost is not None:
            call["cost_usd"] = cost
        return call

    def _tool_call(self, span: Span, where: str) -> dict[str, Any]:
        a = span.attributes
        error_type = _text(a, ERROR_TYPE) or span.exception_type
        http = _first(a, HTTP_STATUS)
        http_status = http[1] if http is not None and isinstance(http[1], int) and 100 <= http[1] <= 599 else None
        if span.status_code == STATUS_ERROR or error_type is not None:
            status = ("timeout" if _is_timeout(error_type)
                      else "rate_limited" if _is_rate_limit(error_type, http_status) else "error")
        else:
            status = "ok"
        call: dict[str, Any] = {"tool": _text(a, TOOL_NAME) or span.name or "unknown", "status": status,
                                "latency_ms": max(span.end_ns - span.start_ns, 0) / 1e6}
        if http_status is not None:
            call["http_status"] = http_status
        if error_type is not None:
            call["error_type"] = error_type[:256]
        return call

    def evaluation(self, log: LogEvent) -> EvaluationFacts | None:
        """The facts of a `gen_ai.evaluation.result` event; None for any other log record, or an
        evaluation that itself failed (`error.type` set: there is no score)."""
        if log.event_name != EVALUATION_EVENT:
            return None
        a = log.attributes
        where = f"evaluation in trace {log.trace_id or '-'} span {log.span_id or '-'}"
        if a.get("error.type") is not None:
            return None
        evaluator = _text(a, ("gen_ai.evaluation.name",))
        if evaluator is None:
            raise MappingError(f"{where}: gen_ai.evaluation.name is missing")
        if not log.trace_id:
            raise MappingError(f"{where}: the record is outside any trace, so it names no agent run")
        label = _text(a, ("gen_ai.evaluation.score.label",))
        passed = None
        if label is not None:
            passed = True if label.lower() in PASSED_LABELS else False if label.lower() in FAILED_LABELS else None
        value = a.get("gen_ai.evaluation.score.value")
        if value is None:
            if passed is None:
                raise MappingError(f"{where}: no gen_ai.evaluation.score.value and a label ({label!r}) "
                                   "that is neither pass nor fail")
            score = 1.0 if passed else 0.0
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise MappingError(f"{where}: gen_ai.evaluation.score.value must be a number (got {value!r})")
            scale = self.mapping.evaluation_score_max
            score = float(value) / scale if scale else float(value)
            if not 0.0 <= score <= 1.0:
                raise MappingError(f"{where}: score {value!r} is outside [0, 1]"
                                   + (f" after dividing by {scale}" if scale else
                                      "; set otel.mapping.evaluation_score_max to the evaluator's scale"))
        if log.time_ns <= 0:
            raise MappingError(f"{where}: the record has no time")
        digest = hashlib.sha1(f"{evaluator}\x00{log.time_ns}".encode()).hexdigest()[:12]
        return EvaluationFacts(
            trace_id=log.trace_id, span_id=log.span_id, response_id=_text(a, RESPONSE_ID), evaluator=evaluator,
            score=score, passed=passed, time_ns=log.time_ns,
            event_id=f"otel-eval-{log.trace_id}-{log.span_id or '0'}-{digest}")


# ---- events ---------------------------------------------------------------------------------

def _ordered(members: list[SpanFacts], field: str) -> list[dict[str, Any]]:
    chosen = [m for m in members if getattr(m, field) is not None]
    chosen.sort(key=lambda m: (m.start_ns, m.span_id))
    return [getattr(m, field) for m in chosen]


def execution_event(trace_id: str, agent_span: SpanFacts, members: list[SpanFacts]) -> ExecutionEvent:
    """The execution event of one agent run: its agent span and the spans it holds (those whose
    nearest agent ancestor it is). Raises `MappingError` when the result breaks the contract."""
    agent = agent_span.agent
    assert agent is not None
    escalations = [s for s in (agent_span, *members) if s.escalated]
    if escalations:
        status = "escalated"
    elif agent.failed:
        status = "timeout" if _is_timeout(agent.error_type) else "failed"
    else:
        status = "completed"
    llm_calls = _ordered(members, "llm_call")
    data: dict[str, Any] = {
        "schema_version": 1, "kind": "execution", "event_id": f"otel-{trace_id}-{agent_span.span_id}",
        "occurred_at": time_of(agent_span.end_ns), "agent_id": agent.agent_id,
        "execution_id": execution_id_of(trace_id), "task_id": agent.task_id or execution_id_of(trace_id),
        "status": status, "duration_ms": (agent_span.end_ns - agent_span.start_ns) / 1e6,
        "steps": len(llm_calls), "llm_calls": llm_calls, "tool_calls": _ordered(members, "tool_call"),
        "attributes": {"otel_span_id": agent_span.span_id},
    }
    if agent.agent_version:
        data["agent_version"] = agent.agent_version
    if agent.task_type:
        data["task_type"] = agent.task_type
    if agent.conversation_id:
        data["attributes"]["conversation_id"] = agent.conversation_id[:4096]
    reason = next((s.escalation_reason for s in escalations if s.escalation_reason), None)
    if reason:
        data["escalation_reason"] = reason
    elif status == "failed" and agent.error_type:
        data["attributes"]["error_type"] = agent.error_type[:4096]
    return _execution(data, f"trace {trace_id} agent span {agent_span.span_id}")


def timeout_event(trace_id: str, agent_id: str, spans: list[SpanFacts]) -> ExecutionEvent:
    """A run whose agent span never arrived: status `timeout`, with the calls that did."""
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    llm_calls = _ordered(spans, "llm_call")
    data: dict[str, Any] = {
        "schema_version": 1, "kind": "execution", "event_id": f"otel-{trace_id}-timeout",
        "occurred_at": time_of(end), "agent_id": agent_id, "execution_id": execution_id_of(trace_id),
        "task_id": execution_id_of(trace_id), "status": "timeout", "duration_ms": (end - start) / 1e6,
        "steps": len(llm_calls), "llm_calls": llm_calls, "tool_calls": _ordered(spans, "tool_call"),
    }
    return _execution(data, f"trace {trace_id} (timed out)")


def _execution(data: dict[str, Any], where: str) -> ExecutionEvent:
    if not data["llm_calls"]:
        del data["llm_calls"]
    if not data["tool_calls"]:
        del data["tool_calls"]
    try:
        event = validate_event(data)
    except EventError as exc:
        raise MappingError(f"{where}: {exc.reason}") from None
    assert isinstance(event, ExecutionEvent)
    return event


def evaluation_event(facts: EvaluationFacts, agent_id: str) -> EvaluationEvent:
    data: dict[str, Any] = {
        "schema_version": 1, "kind": "evaluation", "event_id": facts.event_id, "occurred_at": time_of(facts.time_ns),
        "agent_id": agent_id, "execution_id": execution_id_of(facts.trace_id), "evaluator": facts.evaluator[:256],
        "score": facts.score,
    }
    if facts.passed is not None:
        data["passed"] = facts.passed
    try:
        event = validate_event(data)
    except EventError as exc:
        raise MappingError(f"evaluation {facts.event_id}: {exc.reason}") from None
    assert isinstance(event, EvaluationEvent)
    return event
