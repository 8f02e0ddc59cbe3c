"""Mapping spans to contract fields: GenAI conventions (current and older names), OpenInference,
configurable attributes, and the reasons a span is refused."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.otel.config import OtelMapping
from monitor.otel.decode import STATUS_ERROR, STATUS_UNSET, LogEvent, Span
from monitor.otel.mapping import MappingError, Role, SpanMapper, execution_event

T0 = 1_780_000_000_000_000_000


def span(attrs: dict[str, Any], *, span_id: str = "00000000000000a1", parent: str = "", status: int = STATUS_UNSET,
         resource: dict[str, Any] | None = None, exception_type: str | None = None, dur_ms: int = 100) -> Span:
    return Span(trace_id="0" * 31 + "1", span_id=span_id, parent_id=parent, name="s", start_ns=T0,
                end_ns=T0 + dur_ms * 1_000_000, status_code=status, status_message="", attributes=attrs,
                resource=resource or {"service.name": "svc"}, exception_type=exception_type)


MAPPER = SpanMapper(OtelMapping())


@pytest.mark.parametrize(("attrs", "role"), [
    ({"gen_ai.operation.name": "invoke_agent"}, Role.AGENT),
    ({"openinference.span.kind": "AGENT"}, Role.AGENT),
    ({"gen_ai.operation.name": "chat"}, Role.LLM),
    ({"gen_ai.operation.name": "text_completion"}, Role.LLM),
    ({"gen_ai.operation.name": "generate_content"}, Role.LLM),
    ({"openinference.span.kind": "LLM"}, Role.LLM),
    ({"gen_ai.operation.name": "execute_tool"}, Role.TOOL),
    ({"openinference.span.kind": "tool"}, Role.TOOL),
    ({"gen_ai.operation.name": "embeddings"}, Role.OTHER),
    ({"openinference.span.kind": "CHAIN"}, Role.OTHER),
    ({"http.request.method": "GET"}, Role.OTHER),
])
def test_span_roles_from_both_conventions(attrs: dict[str, Any], role: Role) -> None:
    assert MAPPER.facts(span(attrs)).role is role


@pytest.mark.parametrize("attrs", [
    # current GenAI names
    {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
     "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 1200,
     "gen_ai.usage.output_tokens": 300, "gen_ai.usage.cache_read.input_tokens": 1000},
    # v1.36-era and older names
    {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
     "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.prompt_tokens": 1200,
     "gen_ai.usage.completion_tokens": 300, "gen_ai.usage.cache_read.input_tokens": 1000},
])
def test_llm_calls_from_genai_names_old_and_new(attrs: dict[str, Any]) -> None:
    call = MAPPER.facts(span(attrs)).llm_call
    assert call == {"provider": "openai", "model": "gpt-4o", "resolved_model": "gpt-4o-2024-08-06",
                    "input_tokens": 1200, "output_tokens": 300, "cached_input_tokens": 1000, "latency_ms": 100.0}


def test_llm_calls_from_openinference_with_cost() -> None:
    call = MAPPER.facts(span({"openinference.span.kind": "LLM", "llm.model_name": "claude-sonnet-4",
                              "llm.provider": "anthropic", "llm.token_count.prompt": 50,
                              "llm.token_count.completion": 7, "llm.cost.total": 0.0012})).llm_call
    assert call == {"provider": "anthropic", "model": "claude-sonnet-4", "input_tokens": 50, "output_tokens": 7,
                    "cost_usd": 0.0012, "latency_ms": 100.0}


def test_openinference_requested_model_comes_from_the_invocation_parameters() -> None:
    call = MAPPER.facts(span({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-2024-08-06",
                              "llm.invocation_parameters": '{"model": "gpt-4o", "temperature": 0}'})).llm_call
    assert call is not None and (call["model"], call["resolved_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    bare = MAPPER.facts(span({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-2024-08-06",
                              "llm.invocation_parameters": "not json"})).llm_call
    assert bare is not None and (bare["model"], bare.get("resolved_model")) == ("gpt-4o-2024-08-06", None)


@pytest.mark.parametrize(("attrs", "status", "exception_type", "want"), [
    ({"gen_ai.tool.name": "crm.update"}, STATUS_UNSET, None, {"tool": "crm.update", "status": "ok"}),
    ({"gen_ai.tool.name": "crm.update", "error.type": "AuthError"}, STATUS_ERROR, None,
     {"tool": "crm.update", "status": "error", "error_type": "AuthError"}),
    ({"tool.name": "search"}, STATUS_ERROR, "TimeoutError", {"tool": "search", "status": "timeout",
                                                            "error_type": "TimeoutError"}),
    ({"gen_ai.tool.name": "crm", "http.response.status_code": 429}, STATUS_ERROR, None,
     {"tool": "crm", "status": "rate_limited", "http_status": 429}),
    ({"gen_ai.tool.name": "crm", "error.type": "RateLimitError"}, STATUS_UNSET, None,
     {"tool": "crm", "status": "rate_limited", "error_type": "RateLimitError"}),
])
def test_tool_call_status_and_error_type(attrs: dict[str, Any], status: int, exception_type: str | None,
                                         want: dict[str, Any]) -> None:
    kind = {"gen_ai.operation.name": "execute_tool"} if "gen_ai.tool.name" in attrs else {
        "openinference.span.kind": "TOOL"}
    call = MAPPER.facts(span({**kind, **attrs}, status=status, exception_type=exception_type)).tool_call
    assert call is not None
    assert {k: v for k, v in call.items() if k != "latency_ms"} == want


def test_agent_facts_from_attributes_and_resource_fallback() -> None:
    facts = MAPPER.facts(span({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage",
                               "gen_ai.agent.version": "v7", "gen_ai.conversation.id": "conv-1"}))
    assert facts.agent is not None
    assert (facts.agent.agent_id, facts.agent.agent_version, facts.agent.conversation_id) == ("triage", "v7", "conv-1")
    fallback = MAPPER.facts(span({"openinference.span.kind": "AGENT"},
                                 resource={"service.name": "billing-bot", "service.version": "2.1"}))
    assert fallback.agent is not None
    assert (fallback.agent.agent_id, fallback.agent.agent_version) == ("billing-bot", "2.1")


def test_agent_and_task_attributes_are_configurable() -> None:
    mapper = SpanMapper(OtelMapping(agent_id_attributes=["app.agent"], task_id_attributes=["app.ticket"],
                                    escalation_attribute="app.outcome", escalation_values=["handoff"]))
    facts = mapper.facts(span({"gen_ai.operation.name": "invoke_agent", "app.agent": "support",
                               "gen_ai.agent.name": "ignored", "app.ticket": "T-9", "app.outcome": "HANDOFF"}))
    assert facts.agent is not None
    assert (facts.agent.agent_id, facts.agent.task_id, facts.escalated) == ("support", "T-9", True)


def test_an_agent_span_naming_no_agent_is_refused_with_the_attributes_looked_for() -> None:
    mapper = SpanMapper(OtelMapping(agent_id_resource_attributes=[]))
    with pytest.raises(MappingError, match="naming no agent.*gen_ai.agent.name"):
        mapper.facts(span({"gen_ai.operation.name": "invoke_agent"}))


@pytest.mark.parametrize("value", ["12", -1, 1.5, True])
def test_token_counts_that_are_not_whole_numbers_are_refused(value: object) -> None:
    with pytest.raises(MappingError, match="gen_ai.usage.input_tokens must be a whole number"):
        MAPPER.facts(span({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": value}))


def _agent_run(agent_attrs: dict[str, Any], status: int = STATUS_UNSET) -> str:
    root = MAPPER.facts(span({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a", **agent_attrs},
                             status=status))
    return execution_event("0" * 31 + "1", root, []).status


def test_execution_status_from_span_status_error_type_and_escalation() -> None:
    assert _agent_run({}) == "completed"
    assert _agent_run({}, STATUS_ERROR) == "failed"
    assert _agent_run({"error.type": "ValueError"}) == "failed"
    assert _agent_run({"error.type": "asyncio.TimeoutError"}) == "timeout"
    assert _agent_run({"agentmon.escalated": True}, STATUS_ERROR) == "escalated"
    assert _agent_run({"agentmon.escalated": "false"}) == "completed"


def _log(attrs: dict[str, Any], trace: str = "ab" * 16) -> LogEvent:
    return LogEvent(trace_id=trace, span_id="cd" * 8, event_name="gen_ai.evaluation.result", time_ns=T0,
                    attributes=attrs, resource={})


def test_evaluations_scores_labels_and_scale() -> None:
    ev = MAPPER.evaluation(_log({"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.7,
                                 "gen_ai.evaluation.score.label": "pass"}))
    assert ev is not None and (ev.evaluator, ev.score, ev.passed) == ("relevance", 0.7, True)
    only_label = MAPPER.evaluation(_log({"gen_ai.evaluation.name": "safety", "gen_ai.evaluation.score.label": "fail"}))
    assert only_label is not None and (only_label.score, only_label.passed) == (0.0, False)
    scaled = SpanMapper(OtelMapping(evaluation_score_max=5)).evaluation(
        _log({"gen_ai.evaluation.name": "r", "gen_ai.evaluation.score.value": 4}))
    assert scaled is not None and scaled.score == 0.8
    with pytest.raises(MappingError, match="outside \\[0, 1\\]; set otel.mapping.evaluation_score_max"):
        MAPPER.evaluation(_log({"gen_ai.evaluation.name": "r", "gen_ai.evaluation.score.value": 4}))
    with pytest.raises(MappingError, match="outside any trace"):
        MAPPER.evaluation(_log({"gen_ai.evaluation.name": "r", "gen_ai.evaluation.score.value": 1}, trace=""))
    assert MAPPER.evaluation(_log({"gen_ai.evaluation.name": "r", "error.type": "judge_down"})) is None


def test_evaluation_event_ids_are_stable() -> None:
    attrs = {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.7}
    first, again = MAPPER.evaluation(_log(attrs)), MAPPER.evaluation(_log(dict(attrs)))
    assert first is not None and again is not None and first.event_id == again.event_id
