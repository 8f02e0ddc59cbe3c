"""Fast decoding of the event contract (shared/design/CONTRACT.md section 1) with msgspec.

`monitor.contract.events` (pydantic) stays the source of truth. `read_event` accepts exactly what
`decode_event` accepts, with equal values, at a fraction of the cost (see tests/unit/test_wire.py):

- The msgspec `Struct`s below mirror the pydantic models field by field (same names, defaults
  None, the same bounds). A decoded event is one of these structs; downstream code reads events
  by attribute name only (`kind`, `event_id`, `occurred_at`, ... - nothing reads the extras or
  `attributes`, and nothing calls pydantic methods on a decoded event), so either form works.
- Whenever msgspec refuses an event, for any reason, `read_event` falls back to `decode_event`:
  the error is pydantic's (same `reason`), and an event that pydantic accepts but msgspec does not
  (`schema_version: true`, `"value": "5"`, `NaN` in an extra, a bad first copy of a duplicated
  key, lowercase `t`/`z` in a timestamp, ...) comes back as the pydantic model.
- Where msgspec alone would be more lenient than pydantic, the fast path is closed:

  * `occurred_at`: msgspec rounds fractional seconds beyond 6 digits where pydantic truncates
    (`.9999995Z` would be the next second), and takes naive times. The struct reads the text
    instead, checks the RFC 3339 shape both parsers read alike (`_RFC3339`) and converts it
    with `datetime.fromisoformat`, which truncates like pydantic; the shape check is needed as
    `fromisoformat` alone takes `...05xZ`, `+00:60`, `+01:00:00`, any date/time separator.
    Spellings outside the shape that pydantic accepts (`_` or lowercase `t`, `z`, no seconds)
    take the fallback. The tzinfo is a `datetime.timezone`, not pydantic's `TzInfo`: the same
    `utcoffset()`, so the same instant, comparisons, `isoformat()` and JSON; only `tzname()`
    differs for non-UTC offsets (`UTC+01:00` vs `+01:00`), and nothing formats `%Z`.
  * `inf` / `nan` (`allow_inf_nan=False`): msgspec reads no `NaN` / `Infinity` tokens and refuses
    a literal that overflows (`1e400`: "Number out of range"); the bounds +-sys.float_info.max
    (scores: [0, 1]) say the same again should that ever change.
  * Input types: msgspec reads any buffer (memoryview, ...), pydantic str, bytes and bytearray
    only; anything else goes straight to `decode_event`.
  * Unknown fields: msgspec skips them without the checks pydantic's parser makes on every
    value. Inside skipped values it takes invalid UTF-8, nesting beyond pydantic's limit (201
    levels counting the event object; msgspec goes to ~1000) and integers of more than 4300
    digits. So the first decoder forbids unknown fields: an event without extras has had every
    byte read into a typed, validated field, and needs no further check. Only an event with
    extras goes to the second decoder, after cheap checks on the raw text: valid UTF-8, at most
    200 `{` and `[` in all (so at most 200 levels), no run of 4301 digits; else the fallback.

  Checked and equal in both (pinned by the tests): strict ints (no `5.0`, `true`, `"5"`; big
  ints), floats given as ints, string lengths in code points (not bytes), no whitespace
  stripping, lone surrogates, escapes, last duplicate key wins for fields and `attributes` keys
  (msgspec also validates the overwritten copy: stricter, so the fallback), `kind` missing /
  unknown / duplicated, non-object top level, trailing data, BOM, JSON whitespace.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

import msgspec
from msgspec import Meta
from msgspec.structs import force_setattr

from monitor.contract import events
from monitor.contract.events import DEFAULT_MAX_EVENT_BYTES, EventError, decode_event

_MAX_FLOAT = sys.float_info.max

Id = Annotated[str, Meta(min_length=1, max_length=128)]
Label = Annotated[str, Meta(min_length=1, max_length=256)]
Text = Annotated[str, Meta(max_length=4096)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
# Finite, as allow_inf_nan=False (msgspec already refuses `1e400`; the bound says it again).
NonNegativeNumber = Annotated[float, Meta(ge=0, le=_MAX_FLOAT)]
Score = Annotated[float, Meta(ge=0, le=1)]
FiniteNumber = Annotated[float, Meta(ge=-_MAX_FLOAT, le=_MAX_FLOAT)]
HttpStatus = Annotated[int, Meta(ge=100, le=599)]
ExecutionStatus: TypeAlias = Literal["completed", "escalated", "failed", "timeout"]
ToolCallStatus: TypeAlias = Literal["ok", "error", "timeout", "rate_limited"]

# The RFC 3339 shape both parsers read alike: date, `T` or space, time with seconds, an optional
# fraction (`fromisoformat` truncates beyond 6 digits, as pydantic does), `Z` or a numeric offset
# whose minutes are below 60. `fromisoformat` then refuses the values pydantic refuses: month,
# day (leap years), year 0, hour > 23, minute or second > 59, an offset of 24 h or more.
_RFC3339 = r"\d\d\d\d-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?[0-5]\d)"
_is_rfc3339 = re.compile(_RFC3339, re.ASCII).fullmatch
_MIN_YEAR, _MAX_YEAR = events.MIN_YEAR, events.MAX_YEAR
_fromisoformat = datetime.fromisoformat

# `gc=False`: a decoded event holds only strings, numbers, and lists / dicts of those and of
# other gc=False structs, all fresh from the decoder; events are frozen and nothing mutates their
# lists, so they cannot be part of a reference cycle (which is what gc=False gives up on).


class LlmCall(msgspec.Struct, frozen=True, gc=False):
    """One model call inside an execution (mirrors `monitor.contract.events.LlmCall`)."""

    provider: Label
    model: Label
    input_tokens: NonNegativeInt
    output_tokens: NonNegativeInt
    resolved_model: Label | None = None
    cached_input_tokens: NonNegativeInt | None = None
    latency_ms: NonNegativeNumber | None = None
    cost_usd: NonNegativeNumber | None = None


class ToolCall(msgspec.Struct, frozen=True, gc=False):
    """One tool call inside an execution (mirrors `monitor.contract.events.ToolCall`)."""

    tool: Label
    status: ToolCallStatus
    http_status: HttpStatus | None = None
    latency_ms: NonNegativeNumber | None = None
    error_type: Label | None = None


class _EventBase(msgspec.Struct, frozen=True, gc=False, tag_field="kind"):
    schema_version: Literal[1]
    event_id: Id
    if TYPE_CHECKING:
        occurred_at: datetime
    else:
        # read as text, made a datetime in __post_init__ (see the module docstring)
        occurred_at: Annotated[str, Meta(min_length=20, max_length=64)]
    agent_id: Id

    def __post_init__(self) -> None:
        text: Any = self.occurred_at
        if text.__class__ is str:  # decoded; already a datetime when copied or unpickled
            if _is_rfc3339(text) is None:
                raise ValueError("occurred_at: not in the RFC 3339 shape read here")
            value = _fromisoformat(text)
            if not _MIN_YEAR <= value.year <= _MAX_YEAR:
                raise ValueError("occurred_at: outside the contract's years")  # pydantic gives the reason
            force_setattr(self, "occurred_at", value)


class ExecutionEvent(_EventBase, frozen=True, gc=False, tag="execution"):
    """One finished agent run (mirrors `monitor.contract.events.ExecutionEvent`)."""

    kind: ClassVar[Literal["execution"]] = "execution"
    execution_id: Id
    task_id: Id
    status: ExecutionStatus
    task_type: Label | None = None
    agent_version: Label | None = None
    escalation_reason: Text | None = None
    duration_ms: NonNegativeNumber | None = None
    steps: NonNegativeInt | None = None
    llm_calls: Annotated[list[LlmCall], Meta(max_length=1000)] | None = None
    tool_calls: Annotated[list[ToolCall], Meta(max_length=1000)] | None = None
    quality_score: Score | None = None
    cost_usd: NonNegativeNumber | None = None
    context_tokens: NonNegativeInt | None = None
    context_limit: NonNegativeInt | None = None
    attributes: Annotated[dict[Label, Text], Meta(max_length=64)] | None = None


class EvaluationEvent(_EventBase, frozen=True, gc=False, tag="evaluation"):
    """A later score (mirrors `monitor.contract.events.EvaluationEvent`)."""

    kind: ClassVar[Literal["evaluation"]] = "evaluation"
    execution_id: Id
    evaluator: Label
    score: Score
    passed: bool | None = None


class OutcomeEvent(_EventBase, frozen=True, gc=False, tag="outcome"):
    """A downstream business signal (mirrors `monitor.contract.events.OutcomeEvent`)."""

    kind: ClassVar[Literal["outcome"]] = "outcome"
    metric: Label
    value: FiniteNumber
    execution_id: Id | None = None


#: What the fast decoder returns.
WireEvent: TypeAlias = ExecutionEvent | EvaluationEvent | OutcomeEvent
#: What `read_event` returns: a struct above, or (fallback) the pydantic model. Both have the
#: contract's fields under the same names with equal values.
DecodedEvent: TypeAlias = (
    ExecutionEvent | EvaluationEvent | OutcomeEvent
    | events.ExecutionEvent | events.EvaluationEvent | events.OutcomeEvent
)

#: Either form of one event kind (or of one LLM call), for code that reads events by attribute.
AnyExecution: TypeAlias = ExecutionEvent | events.ExecutionEvent
AnyEvaluation: TypeAlias = EvaluationEvent | events.EvaluationEvent
AnyOutcome: TypeAlias = OutcomeEvent | events.OutcomeEvent
AnyLlmCall: TypeAlias = LlmCall | events.LlmCall


def _no_extras(cls: type[msgspec.Struct], *fields: tuple[str, Any, Any]) -> Any:
    """A subclass of `cls` that refuses unknown fields (`fields` overrides field types), bound to
    a module name of its own so that its instances pickle."""
    name = f"_{cls.__name__}NoExtras"
    sub = globals()[name] = msgspec.defstruct(name, list(fields), bases=(cls,), module=__name__,
                                              forbid_unknown_fields=True, frozen=True, gc=False)
    return sub


_LlmCallNoExtras = _no_extras(LlmCall)
_ToolCallNoExtras = _no_extras(ToolCall)
_LLM_CALLS = Annotated[list[_LlmCallNoExtras], Meta(max_length=1000)] | None  # type: ignore[valid-type]
_TOOL_CALLS = Annotated[list[_ToolCallNoExtras], Meta(max_length=1000)] | None  # type: ignore[valid-type]
_NO_EXTRAS_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
    _no_extras(ExecutionEvent, ("llm_calls", _LLM_CALLS, None), ("tool_calls", _TOOL_CALLS, None))
    | _no_extras(EvaluationEvent)
    | _no_extras(OutcomeEvent)
)
_DECODER: msgspec.json.Decoder[WireEvent] = msgspec.json.Decoder(WireEvent)

# pydantic's JSON parser (jiter) refuses nesting deeper than 200 levels and integers of more than 4300
# digits anywhere, msgspec not inside skipped (unknown) fields.
_MAX_DEPTH = 200
_MAX_INT_DIGITS = 4300
_long_digits_bytes = re.compile(rb"[0-9]{%d}" % (_MAX_INT_DIGITS + 1)).search
_long_digits_str = re.compile(f"[0-9]{{{_MAX_INT_DIGITS + 1}}}").search


def _extras_are_safe(raw: bytes | str) -> bool:
    """Whether msgspec skipping the unknown fields of `raw` cannot accept what pydantic refuses."""
    if isinstance(raw, str):
        if raw.count("{") + raw.count("[") > _MAX_DEPTH:
            return False
        return len(raw) <= _MAX_INT_DIGITS or _long_digits_str(raw) is None
    if not raw.isascii():
        raw.decode()  # invalid UTF-8 raises: pydantic refuses it anywhere in the message
    if raw.count(b"{") + raw.count(b"[") > _MAX_DEPTH:
        return False
    return len(raw) <= _MAX_INT_DIGITS or _long_digits_bytes(raw) is None


def read_event(raw: bytes | str, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> DecodedEvent:
    """Decode and validate one encoded event like `monitor.contract.events.decode_event` (same acceptance,
    equal values, the same `EventError.reason`), fast: a msgspec struct, or the pydantic model."""
    size = len(raw)
    if size > max_bytes:
        raise EventError(f"<event>: message is {size} bytes, over the limit of {max_bytes} bytes")
    if raw.__class__ is not bytes and not isinstance(raw, (str, bytes, bytearray)):
        return decode_event(raw, max_bytes=max_bytes)  # msgspec would read any buffer, pydantic not
    try:
        return _NO_EXTRAS_DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        if str(exc).startswith("Object contains unknown field"):
            try:
                if _extras_are_safe(raw):
                    return _DECODER.decode(raw)
            except Exception:  # any refusal: pydantic decides, and explains
                pass
    except Exception:  # any refusal (DecodeError, RecursionError, UnicodeDecodeError, ...)
        pass
    return decode_event(raw, max_bytes=max_bytes)


__all__ = [
    "AnyEvaluation",
    "AnyExecution",
    "AnyLlmCall",
    "AnyOutcome",
    "DecodedEvent",
    "EvaluationEvent",
    "ExecutionEvent",
    "LlmCall",
    "OutcomeEvent",
    "ToolCall",
    "WireEvent",
    "read_event",
]
