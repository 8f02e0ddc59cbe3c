"""Agent runs traced with the real OpenTelemetry SDK, encoded as the Collector's kafkaexporter
writes them: `otlp_proto` is a serialized `ExportTraceServiceRequest` / `ExportLogsServiceRequest`
(the SDK's own OTLP encoder builds it), `otlp_json` is OTLP/JSON (protobuf's JSON mapping with
camelCase names, enums as numbers, 64-bit integers as strings, and trace / span ids in hex)."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

MS = 1_000_000


@dataclass
class Tool:
    name: str
    error_type: str | None = None  # set: the call fails with this error.type
    http_status: int | None = None


@dataclass
class Run:
    """One agent invocation to trace."""

    agent: str = "lead-qualifier"
    version: str | None = "v3"
    start_ns: int = 1_780_000_000_000_000_000
    llm_calls: int = 2
    tools: list[Tool] = field(default_factory=lambda: [Tool("crm.lookup")])
    fail: str | None = None  # error.type of the agent span
    escalate: bool = False
    conversation: str | None = None
    task: str | None = None
    evaluation: tuple[str, float] | None = None  # (evaluator, score) as a gen_ai.evaluation.result event
    openinference: bool = False


class Traced:
    """A tracer and logger whose finished spans and log records stay in memory."""

    def __init__(self, service: str = "agents-svc", seed: int = 7) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        class _Seeded(RandomIdGenerator):
            def __init__(self, rng: random.Random) -> None:
                self.rng = rng

            def generate_span_id(self) -> int:
                return self.rng.getrandbits(64) or 1

            def generate_trace_id(self) -> int:
                return self.rng.getrandbits(128) or 1

        resource = Resource.create({"service.name": service, "service.version": "1.0.0"})
        self.spans = InMemorySpanExporter()
        self.provider = TracerProvider(resource=resource, id_generator=_Seeded(random.Random(seed)))
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = self.provider.get_tracer("agent-framework")
        self.logs = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs))
        self.logger = self.logger_provider.get_logger("agent-evals")

    def finished(self) -> tuple[list[ReadableSpan], list[ReadableLogRecord]]:
        return list(self.spans.get_finished_spans()), list(self.logs.get_finished_logs())

    def run(self, run: Run) -> str:
        """Trace one agent run; returns its trace id in hex."""
        t = run.start_ns
        oi = run.openinference
        agent_attrs: dict[str, Any] = (
            {"openinference.span.kind": "AGENT", "agent.name": run.agent} if oi else
            {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": run.agent,
             "gen_ai.provider.name": "openai"})
        if run.version and not oi:
            agent_attrs["gen_ai.agent.version"] = run.version
        if run.conversation:
            agent_attrs["session.id" if oi else "gen_ai.conversation.id"] = run.conversation
        if run.task:
            agent_attrs["agentmon.task_id"] = run.task
        root = self.tracer.start_span(f"invoke_agent {run.agent}", attributes=agent_attrs, start_time=t)
        ctx = trace_api.set_span_in_context(root)
        t += MS
        # a framework span between the agent and its calls: ancestry must be followed through it
        step = self.tracer.start_span("agent loop", context=ctx, start_time=t)
        step_ctx = trace_api.set_span_in_context(step)
        for i in range(run.llm_calls):
            attrs: dict[str, Any] = (
                {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-2024-08-06", "llm.provider": "openai",
                 "llm.token_count.prompt": 1000 + i, "llm.token_count.completion": 200, "llm.cost.total": 0.0045}
                if oi else
                {"gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                 "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 1000 + i,
                 "gen_ai.usage.output_tokens": 200, "gen_ai.usage.cache_read.input_tokens": 100,
                 "gen_ai.response.id": f"resp-{run.agent}-{t}-{i}"})
            span = self.tracer.start_span("chat gpt-4o", context=step_ctx, attributes=attrs, start_time=t)
            t += 400 * MS
            span.end(end_time=t)
        for tool in run.tools:
            attrs = ({"openinference.span.kind": "TOOL", "tool.name": tool.name} if oi else
                     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool.name,
                      "gen_ai.tool.type": "function"})
            if tool.http_status is not None:
                attrs["http.response.status_code"] = tool.http_status
            span = self.tracer.start_span(f"execute_tool {tool.name}", context=step_ctx, attributes=attrs, start_time=t)
            t += 50 * MS
            if tool.error_type is not None:
                if oi:
                    span.record_exception(RuntimeError("tool failed"), attributes={"exception.type": tool.error_type},
                                          timestamp=t)
                else:
                    span.set_attribute("error.type", tool.error_type)
                span.set_status(Status(StatusCode.ERROR, "tool failed"))
            span.end(end_time=t)
        step.end(end_time=t)
        t += MS
        if run.escalate:
            root.set_attribute("agentmon.escalated", True)
            root.set_attribute("agentmon.escalation_reason", "customer asked for a human")
        if run.fail:
            root.set_attribute("error.type", run.fail)
            root.set_status(Status(StatusCode.ERROR, run.fail))
        root.end(end_time=t)
        if run.evaluation is not None:
            name, score = run.evaluation
            self.logger.emit(event_name="gen_ai.evaluation.result", timestamp=t + 1000 * MS, context=ctx,
                             attributes={"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.value": score,
                                         "gen_ai.evaluation.score.label": "pass" if score >= 0.5 else "fail"})
        return format(root.get_span_context().trace_id, "032x")


# ---- encoding as the Collector's kafkaexporter ----------------------------------------------

def trace_requests(spans: Sequence[ReadableSpan], batches: int, rng: random.Random) -> list[ExportTraceServiceRequest]:
    """The spans shuffled into `batches` export requests (as the Collector's batch processor cuts
    them: any span in any request, so a trace spreads over several)."""
    shuffled = list(spans)
    rng.shuffle(shuffled)
    cut = [shuffled[i::batches] for i in range(batches)]
    return [encode_spans(part) for part in cut if part]


def log_requests(logs: Sequence[ReadableLogRecord]) -> list[ExportLogsServiceRequest]:
    return [encode_logs(list(logs))] if logs else []


_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def _ids_to_hex(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _ID_FIELDS and isinstance(v, str) else _ids_to_hex(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_ids_to_hex(v) for v in node]
    return node


def encode(request: ExportTraceServiceRequest | ExportLogsServiceRequest, encoding: str) -> bytes:
    if encoding == "otlp_proto":
        return request.SerializeToString()
    data = MessageToDict(request, use_integers_for_enums=True)  # camelCase, int64 as strings, ids base64
    return json.dumps(_ids_to_hex(data), separators=(",", ":")).encode()
