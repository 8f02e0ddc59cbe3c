"""The event contract (shared/design/CONTRACT.md section 1) as pydantic v2 models.

Producers get the same models as the workers: what the SDK accepts is exactly what the
workers accept. Validation is strict where producers make mistakes (naive timestamps, tokens
sent as strings, negative costs, scores outside [0, 1], unbounded strings); unknown extra
fields are kept and ignored.

Decoding goes straight from bytes through pydantic-core's JSON parser (`decode_event`): one
pass, no intermediate `json.loads`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

SCHEMA_VERSION = 1
#: evaluations from a regression set (`agentmon regression record`): test inputs, not production
#: executions, so they never enter an agent's quality signal
REGRESSION_EVALUATOR_PREFIX = "regression:"

#: Default largest accepted encoded event. Kafka's own default message limit is 1 MB;
#: an agent event is usually under 10 KiB, so anything near this is a producer bug.
DEFAULT_MAX_EVENT_BYTES = 512 * 1024

Id = Annotated[str, Field(min_length=1, max_length=128)]
Label = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=4096)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
NonNegativeNumber = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Score = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]


def _refuse_epoch(value: Any) -> Any:
    # Epoch numbers (and digit-only strings, which pydantic would read as one) are ambiguous
    # between seconds and milliseconds: producers must send RFC 3339 text.
    if isinstance(value, int | float) or (
        isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("must be an RFC 3339 timestamp with offset, e.g. 2026-11-16T09:00:05+01:00, "
                         "not an epoch number")
    return value


#: Years of `occurred_at` (as written) the contract accepts. Outside them a time is a clock or
#: unit bug, and inside them every window, history and calendar computation stays far from the
#: limits of a datetime (years 1 and 9999), so no accepted time can crash the engine. Within the
#: range, a worker refuses more (ahead of its arrival, older than it can use: monitor/core/event_time.py).
MIN_YEAR, MAX_YEAR = 1970, 2999
#: The same range for JSON Schema validators, which read no dates: the year as written.
OCCURRED_AT_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-"


def _in_range(value: Any) -> Any:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"year {value.year} is outside {MIN_YEAR}-{MAX_YEAR}: a clock or unit bug")
    return value


# RFC 3339 with an offset: a naive timestamp is a producer bug (whose clock?).
EventTime = Annotated[AwareDatetime, BeforeValidator(_refuse_epoch), AfterValidator(_in_range)]

ExecutionStatus: TypeAlias = Literal["completed", "escalated", "failed", "timeout"]
ToolCallStatus: TypeAlias = Literal["ok", "error", "timeout", "rate_limited"]

_KEEP_EXTRAS = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)


class LlmCall(BaseModel):
    """One model call inside an execution."""

    model_config = _KEEP_EXTRAS

    provider: Label
    model: Label = Field(description="The model as requested, e.g. `gpt-4o` (may be a floating label).")
    resolved_model: Label | None = Field(
        default=None,
        description="The checkpoint the provider reports having served, e.g. `gpt-4o-2024-08-06`.",
    )
    input_tokens: NonNegativeInt = Field(description="Prompt tokens, cached ones included.")
    output_tokens: NonNegativeInt
    cached_input_tokens: NonNegativeInt | None = Field(
        default=None, description="The part of input_tokens served from the provider's prompt cache."
    )
    latency_ms: NonNegativeNumber | None = None
    cost_usd: NonNegativeNumber | None = None


class ToolCall(BaseModel):
    """One tool (API, function) call inside an execution."""

    model_config = _KEEP_EXTRAS

    tool: Label
    status: ToolCallStatus
    http_status: Annotated[StrictInt, Field(ge=100, le=599)] | None = None
    latency_ms: NonNegativeNumber | None = None
    error_type: Label | None = None


class _EventBase(BaseModel):
    model_config = _KEEP_EXTRAS

    schema_version: Literal[1] = Field(description="Contract version.")
    event_id: Id = Field(description="Unique per event; a repeated id is a duplicate and counts once.")
    occurred_at: EventTime = Field(
        description=f"Event time, RFC 3339 with offset, in the years {MIN_YEAR}-{MAX_YEAR}. A worker "
        "dead-letters an event more than a few minutes (detection.max_future_skew_s, 300 s) ahead "
        "of its arrival, or older than anything it could still change.",
        json_schema_extra={"pattern": OCCURRED_AT_PATTERN},
    )
    agent_id: Id = Field(description="The agent (a deployed workflow), e.g. `lead-qualifier`.")


class ExecutionEvent(_EventBase):
    """One finished agent run."""

    kind: Literal["execution"]
    execution_id: Id = Field(description="Trace id; reproduces the run.")
    task_id: Id = Field(description="The business task (lead, ticket, invoice).")
    task_type: Label | None = None
    agent_version: Label | None = None
    status: ExecutionStatus
    escalation_reason: Text | None = None
    duration_ms: NonNegativeNumber | None = None
    steps: NonNegativeInt | None = None
    llm_calls: Annotated[list[LlmCall], Field(max_length=1000)] | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=1000)] | None = None
    quality_score: Score | None = None
    cost_usd: NonNegativeNumber | None = None
    context_tokens: NonNegativeInt | None = None
    context_limit: NonNegativeInt | None = None
    attributes: Annotated[dict[Label, Text], Field(max_length=64)] | None = None


class EvaluationEvent(_EventBase):
    """A score that arrives after the execution (LLM-as-judge, human review)."""

    kind: Literal["evaluation"]
    execution_id: Id
    evaluator: Label
    score: Score
    passed: StrictBool | None = None


class OutcomeEvent(_EventBase):
    """A downstream business signal (CRM field correct, lead converted, ticket reopened)."""

    kind: Literal["outcome"]
    metric: Label
    value: FiniteNumber
    execution_id: Id | None = None


AgentEvent: TypeAlias = Annotated[
    ExecutionEvent | EvaluationEvent | OutcomeEvent, Field(discriminator="kind")
]

EVENT_ADAPTER: TypeAdapter[ExecutionEvent | EvaluationEvent | OutcomeEvent] = TypeAdapter(AgentEvent)


class EventError(ValueError):
    """An event that breaks the contract. `reason` is what a producer needs to fix it."""

    def __init__(self, reason: str, *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


def _describe(exc: ValidationError) -> EventError:
    parts: list[str] = []
    fields: list[str] = []
    for err in exc.errors(include_url=False)[:5]:
        kind = err["type"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            tag = err.get("ctx", {}).get("tag")
            got = "missing" if tag is None else f"got {_short(tag)}"
            fields.append("kind")
            parts.append(f"kind: must be 'execution', 'evaluation' or 'outcome' ({got})")
            continue
        loc = _field_path(err["loc"])
        fields.append(loc)
        shown = "" if kind in ("missing", "json_invalid") else f" (got {_short(err.get('input'))})"
        parts.append(f"{loc or '<event>'}: {err['msg']}{shown}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return EventError("; ".join(parts), fields=tuple(fields))


def _field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic puts the discriminator's tag ("execution") into the path: drop it, producers
    # name fields as they wrote them.
    path = [str(p) for p in loc]
    if path and path[0] in ("execution", "evaluation", "outcome"):
        path = path[1:]
    return ".".join(path)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def decode_event(raw: bytes | str, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> AgentEvent:
    """Decode and validate one encoded event, or raise `EventError` with the reason."""
    size = len(raw)
    if size > max_bytes:
        raise EventError(f"<event>: message is {size} bytes, over the limit of {max_bytes} bytes")
    try:
        return EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise _describe(exc) from None


def validate_event(data: dict[str, Any] | AgentEvent) -> AgentEvent:
    """Validate an event given as a dict (or pass a model through), raising `EventError`."""
    if isinstance(data, ExecutionEvent | EvaluationEvent | OutcomeEvent):
        return data
    try:
        return EVENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise _describe(exc) from None


def encode_event(event: AgentEvent) -> bytes:
    """The wire form of an event: compact JSON, absent optional fields left out, extras kept."""
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


def event_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one event, for producers in other languages."""
    schema = EVENT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://agentmon.dev/schemas/agent-event.v1.json"
    schema["title"] = "agentmon agent event (schema_version 1)"
    schema["description"] = (
        "One message on the `agent-events` topic, key = agent_id. "
        "Timestamps are RFC 3339 with an offset; unknown extra fields are kept and ignored."
    )
    return schema


__all__ = [
    "SCHEMA_VERSION",
    "AgentEvent",
    "EvaluationEvent",
    "EventError",
    "ExecutionEvent",
    "LlmCall",
    "OutcomeEvent",
    "ToolCall",
    "decode_event",
    "encode_event",
    "event_json_schema",
    "validate_event",
]
