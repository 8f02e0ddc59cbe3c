"""End to end through the engine: a simulated stream with an incident in which every tool call of
one agent fails, traced with the OpenTelemetry SDK and read back by the adapter, gives the same
alerts as the same runs sent through the SDK, `tool_calls_all_failing` among them."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.trace import Status, StatusCode

from monitor.contract.alert import Alert
from monitor.contract.events import encode_event
from monitor.core.config import DetectionConfig, RuleThresholds
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.local.simulate import AgentProfile, Incident, generate
from monitor.otel.adapter import assemble
from monitor.otel.config import OtelSettings
from monitor.otel.mapping import time_of
from monitor.sdk import evaluation, execution
from tests.support.otel_traces import Traced, encode, log_requests, trace_requests

START = datetime(2026, 11, 2, tzinfo=UTC)
ONSET = START + timedelta(days=2, hours=12)
AGENT = "invoice-bot"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TOOL_ERROR = {"error": "ToolError", "timeout": "TimeoutError", "rate_limited": "RateLimitError"}
RUN_ERROR = {"failed": "AgentError", "timeout": "TimeoutError"}


def _ns(at: str) -> int:
    return (datetime.fromisoformat(at) - _EPOCH) // timedelta(microseconds=1) * 1000


def _trace(traced: Traced, ex: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Trace one simulated execution as an agent framework would; returns its trace and agent span
    ids and the fields an SDK producer would send for the same run."""
    tracer = traced.tracer
    end = _ns(ex["occurred_at"])
    start = end - int(ex["duration_ms"] * 1e6)
    attrs: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": ex["agent_id"],
                             "agentmon.task_id": ex["task_id"]}
    root = tracer.start_span(f"invoke_agent {ex['agent_id']}", attributes=attrs, start_time=start)
    ctx = trace_api.set_span_in_context(root)
    t = start
    llm_calls, tool_calls = [], []
    for call in ex["llm_calls"]:
        dur = int(call["latency_ms"] * 1e6)
        span = tracer.start_span("chat", context=ctx, start_time=t, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": call["provider"],
            "gen_ai.request.model": call["model"], "gen_ai.response.model": call["resolved_model"],
            "gen_ai.usage.input_tokens": call["input_tokens"], "gen_ai.usage.output_tokens": call["output_tokens"]})
        span.end(end_time=t + dur)
        llm_calls.append({k: call[k] for k in ("provider", "model", "resolved_model", "input_tokens",
                                               "output_tokens")} | {"latency_ms": dur / 1e6})
        t += dur
    for call in ex.get("tool_calls", ()):
        dur = int(call.get("latency_ms", 100) * 1e6)
        span = tracer.start_span(f"execute_tool {call['tool']}", context=ctx, start_time=t, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call["tool"]})
        sdk_call: dict[str, Any] = {"tool": call["tool"], "status": call["status"], "latency_ms": dur / 1e6}
        if call.get("http_status"):
            span.set_attribute("http.response.status_code", call["http_status"])
            sdk_call["http_status"] = call["http_status"]
        if call["status"] != "ok":
            error_type = call.get("error_type") or TOOL_ERROR[call["status"]]
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR))
            sdk_call["error_type"] = error_type
        span.end(end_time=t + dur)
        tool_calls.append(sdk_call)
        t += dur
    status = ex["status"]
    fields: dict[str, Any] = {"task_id": ex["task_id"], "status": status, "duration_ms": (end - start) / 1e6,
                              "agent_version": "1.0.0",  # the resource's service.version (Traced)
                              "steps": len(llm_calls), "llm_calls": llm_calls}
    if tool_calls:
        fields["tool_calls"] = tool_calls
    if status == "escalated":
        root.set_attribute("agentmon.escalated", True)
        root.set_attribute("agentmon.escalation_reason", ex["escalation_reason"])
        fields["escalation_reason"] = ex["escalation_reason"]
    elif status in RUN_ERROR:
        root.set_attribute("error.type", RUN_ERROR[status])
        root.set_status(Status(StatusCode.ERROR))
    root.end(end_time=end)
    context = root.get_span_context()
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    fields["attributes"] = {"otel_span_id": span_id}
    if status == "failed":
        fields["attributes"]["error_type"] = RUN_ERROR[status]
    return trace_id, span_id, fields


@lru_cache(maxsize=1)
def simulated_runs() -> tuple[list[Any], list[Any], list[bytes]]:
    """The simulated runs traced (spans, evaluation log records) and as an SDK producer sends
    them (events in event-time order)."""
    incident = Incident(rule="tool_calls_all_failing", onset=ONSET, agent_id=AGENT)
    simulated = list(generate([AgentProfile(AGENT, rate_per_hour=50)], START, 2.5 + 4 / 24, incidents=[incident],
                              seed=5, duplicate_share=0.0))
    traced = Traced(seed=3)
    sdk_events: list[bytes] = []
    trace_of: dict[str, tuple[str, Any]] = {}
    for ex in simulated:
        if ex["kind"] == "execution":
            trace_id, span_id, fields = _trace(traced, ex)
            trace_of[ex["execution_id"]] = (trace_id, trace_api.NonRecordingSpan(trace_api.SpanContext(
                int(trace_id, 16), int(span_id, 16), is_remote=False)))
            sdk_events.append(encode_event(execution(
                AGENT, execution_id=trace_id, occurred_at=time_of(_ns(ex["occurred_at"])),
                event_id=f"otel-{trace_id}-{span_id}", **fields)))
    for ev in simulated:
        if ev["kind"] == "evaluation" and ev["execution_id"] in trace_of:
            trace_id, span = trace_of[ev["execution_id"]]
            at = _ns(ev["occurred_at"])
            traced.logger.emit(event_name="gen_ai.evaluation.result", timestamp=at,
                               context=trace_api.set_span_in_context(span),
                               attributes={"gen_ai.evaluation.name": ev["evaluator"],
                                           "gen_ai.evaluation.score.value": ev["score"]})
            sdk_events.append(encode_event(evaluation(AGENT, execution_id=trace_id, evaluator=ev["evaluator"],
                                                      score=ev["score"], occurred_at=time_of(at))))
    spans, logs = traced.finished()
    return spans, logs, sorted(sdk_events, key=time_and_id)


@lru_cache(maxsize=1)
def streams() -> tuple[list[bytes], list[bytes]]:
    """The same runs twice: as the adapter makes them from OTLP records, and as SDK events."""
    spans, logs, sdk_events = simulated_runs()
    records = [("traces", encode(r, "otlp_proto")) for r in trace_requests(spans, len(spans) // 50, random.Random(1))]
    records += [("logs", encode(r, "otlp_proto")) for r in log_requests(logs)]
    out = assemble(records, OtelSettings(), encoding="otlp_proto")  # type: ignore[arg-type]
    assert not out.dead_letters, out.dead_letters[:3]
    # live, runs are emitted as their traces complete, in about event-time order; the in-memory
    # adapter closes them all at the end of its input: both streams in event-time order
    adapted = sorted(out.events, key=lambda e: (e.occurred_at, e.event_id))
    return [encode_event(e) for e in adapted], sdk_events


def time_and_id(line: bytes) -> tuple[datetime, str]:
    data = json.loads(line)
    return datetime.fromisoformat(data["occurred_at"]), data["event_id"]


def alerts_of(lines: list[bytes]) -> list[tuple[Any, ...]]:
    config = DetectionConfig(reference_days=2, rules=RuleThresholds(min_baseline_hours=12))
    alerts: list[Alert] = replay(iter(lines), Engine(config)).alerts
    return sorted((a.rule, a.agent_id, a.state, a.at, a.fingerprint, tuple(a.samples)) for a in alerts)


def test_the_adapter_makes_the_executions_an_sdk_producer_would_send() -> None:
    otel, sdk = streams()
    executions = sorted(e for e in otel if b'"kind":"execution"' in e)
    assert executions == sorted(e for e in sdk if b'"kind":"execution"' in e)
    assert len(executions) > 2000


def test_alerts_from_otel_traces_equal_those_from_the_sdk_and_catch_all_tools_failing() -> None:
    otel, sdk = streams()
    from_otel = alerts_of(otel)
    assert from_otel == alerts_of(sdk)
    firing = [a for a in from_otel if a[0] == "tool_calls_all_failing" and a[2] == "firing"]
    assert firing and firing[0][1] == AGENT and firing[0][3] >= ONSET
