"""Settings of the OpenTelemetry adapter (`agentmon otel run`): topics, the arrival rules of trace
assembly, and which span attributes name the agent, the task and an escalation.

A leaf section like `alerts/config.py`: the root `monitor/settings.py` aggregates it as `otel`.
Defaults follow the OpenTelemetry GenAI semantic conventions (current and v1.36-era names) and
OpenInference; every list is searched in order and the first attribute present wins.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OtelMapping(_Section):
    """Which attributes mean what. Span attributes first, then the resource's (where said)."""

    agent_id_attributes: list[str] = Field(
        default=["gen_ai.agent.name", "agent.name", "gen_ai.agent.id"],
        description="on the agent span; the first present names the agent (agent_id)")
    agent_id_resource_attributes: list[str] = Field(
        default=["service.name"], description="fallback: resource attributes naming the agent")
    agent_version_attributes: list[str] = Field(
        default=["gen_ai.agent.version", "agentmon.agent_version"], description="on the agent span")
    agent_version_resource_attributes: list[str] = Field(
        default=["service.version"], description="fallback: resource attributes giving the agent version")
    task_id_attributes: list[str] = Field(
        default=["agentmon.task_id"],
        description="on the agent span; the business task. Absent: the trace id (each run its own task). "
        "Add gen_ai.conversation.id or session.id when a conversation is the task (then each turn after a "
        "completed one counts as a repeat)")
    task_type_attributes: list[str] = Field(default=["agentmon.task_type"])
    conversation_id_attributes: list[str] = Field(
        default=["gen_ai.conversation.id", "session.id"],
        description="kept as the execution's attributes.conversation_id")
    escalation_attribute: str = Field(
        default="agentmon.escalated",
        description="on the agent span (or any span of the run): a value listed in escalation_values "
        "makes the execution `escalated`")
    escalation_values: list[str] = Field(
        default=["true", "1", "yes"], description="compared case-insensitively with the attribute's text")
    escalation_reason_attribute: str = "agentmon.escalation_reason"
    evaluation_score_max: float | None = Field(
        default=None, gt=0,
        description="scores of gen_ai.evaluation.result are divided by this; unset: they must already be in [0, 1]")


class OtelSettings(_Section):
    spans_topic: str = Field(default="otlp_spans", description="the Collector kafkaexporter's traces topic")
    logs_topic: str = Field(default="otlp_logs", description="the Collector kafkaexporter's logs topic")
    traces_topic: str = Field(
        default="agentmon-otel-traces",
        description="internal: spans and evaluation log records re-keyed by trace id, so all of a trace "
        "reaches one assembler")
    traces_partitions: int = Field(default=6, ge=1)
    traces_retention_hours: int = Field(default=24, ge=1)
    encoding: Literal["otlp_proto", "otlp_json"] = Field(
        default="otlp_proto", description="the kafkaexporter's `encoding` (otlp_json: ids in hex)")
    logs_encoding: Literal["otlp_proto", "otlp_json"] | None = Field(
        default=None, description="the logs topic's encoding when it differs from `encoding` (the kafkaexporter sets "
        "them per signal)")
    group_id: str = Field(default="agentmon-otel", description="consumer group prefix of the two stages")
    grace_s: float = Field(
        default=5.0, ge=0, description="an agent run is emitted once its trace received nothing for this long "
        "(children that arrive after the root span)")
    trace_timeout_s: float = Field(
        default=600.0, gt=0, description="a trace still without its agent span this long after its first span is "
        "closed (on_timeout)")
    on_timeout: Literal["emit", "drop"] = Field(
        default="emit", description="emit: an execution with status `timeout` when the agent is known from its "
        "spans; drop: count it only")
    max_open_traces: int = Field(
        default=50_000, ge=1,
        description="open traces per assembler; the oldest is closed early (counted as an eviction)")
    closed_traces_remembered: int = Field(
        default=50_000, ge=0, description="closed traces whose ids are kept: their late spans and Collector "
        "retries are dropped, their late evaluations joined")
    commit_interval_s: float = Field(default=2.0, gt=0)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=6067, ge=0, le=65535, description="Prometheus /metrics of `agentmon otel run` "
                              "(0: none)")
    tick_interval_s: float = Field(default=0.5, gt=0, description="how often open traces are checked for grace/timeout")
    mapping: OtelMapping = OtelMapping()
