"""Every rule of the event contract (CONTRACT.md section 1): valid examples of each kind pass,
each invalid case is rejected with a message naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.contract.events import (
    DEFAULT_MAX_EVENT_BYTES,
    EvaluationEvent,
    EventError,
    ExecutionEvent,
    OutcomeEvent,
    decode_event,
    encode_event,
    event_json_schema,
    validate_event,
)

ROOT = Path(__file__).resolve().parents[2]


def execution(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1,
        "kind": "execution",
        "event_id": "ev-1",
        "occurred_at": "2026-11-16T09:00:05+01:00",
        "agent_id": "lead-qualifier",
        "execution_id": "tr-1",
        "task_id": "lead-1",
        "status": "completed",
    }
    event.update(overrides)
    return event


def evaluation(**overrides: Any) -> dict[str, Any]:
    event = execution(kind="evaluation", evaluator="judge", score=0.5)
    for field in ("task_id", "status"):
        del event[field]
    event.update(overrides)
    return event


def outcome(**overrides: Any) -> dict[str, Any]:
    event = execution(kind="outcome", metric="lead_converted", value=1)
    for field in ("task_id", "status", "execution_id"):
        del event[field]
    event.update(overrides)
    return event


FULL_EXECUTION = execution(
    task_type="billing",
    agent_version="v7",
    status="escalated",
    escalation_reason="refund over limit",
    duration_ms=1234.5,
    steps=6,
    llm_calls=[{"provider": "openai", "model": "gpt-4o", "resolved_model": "gpt-4o-2024-08-06",
                "input_tokens": 1000, "output_tokens": 200, "cached_input_tokens": 500,
                "latency_ms": 900, "cost_usd": 0.004}],
    tool_calls=[{"tool": "crm.update", "status": "error", "http_status": 503, "latency_ms": 30,
                 "error_type": "ServiceUnavailable"}],
    quality_score=0.7,
    cost_usd=0.01,
    context_tokens=1000,
    context_limit=128000,
    attributes={"tier": "gold"},
)


def encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("data", "model"),
    [
        (execution(), ExecutionEvent),
        (FULL_EXECUTION, ExecutionEvent),
        (evaluation(), EvaluationEvent),
        (evaluation(passed=False), EvaluationEvent),
        (outcome(), OutcomeEvent),
        (outcome(value=-3.5, execution_id="tr-1"), OutcomeEvent),
    ],
)
def test_valid_event_of_each_kind_decodes_to_its_model(data: dict[str, Any], model: type) -> None:
    event = decode_event(encode(data))
    assert type(event) is model
    assert event.occurred_at.utcoffset() is not None


def test_decoded_timestamp_keeps_its_offset_and_instant() -> None:
    event = decode_event(encode(execution(occurred_at="2026-11-16T09:00:05+01:00")))
    assert event.occurred_at == datetime(2026, 11, 16, 8, 0, 5, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(hours=1)


def test_unknown_extra_fields_are_kept() -> None:
    event = decode_event(encode(execution(trace_url="https://x", nested={"a": 1})))
    assert event.model_extra == {"trace_url": "https://x", "nested": {"a": 1}}
    assert json.loads(encode_event(event))["nested"] == {"a": 1}


INVALID = [
    # (case, overrides or whole event, field the message must name)
    ("naive timestamp", execution(occurred_at="2026-11-16T09:00:05"), "occurred_at"),
    ("epoch number as timestamp", execution(occurred_at=1763283605), "occurred_at"),
    ("date without time", execution(occurred_at="2026-11-16"), "occurred_at"),
    ("epoch as a digit string", execution(occurred_at="1763283605"), "occurred_at"),
    ("missing agent_id", {k: v for k, v in execution().items() if k != "agent_id"}, "agent_id"),
    ("empty agent_id", execution(agent_id=""), "agent_id"),
    ("agent_id over 128 chars", execution(agent_id="a" * 129), "agent_id"),
    ("event_id over 128 chars", execution(event_id="e" * 129), "event_id"),
    ("missing event_id", {k: v for k, v in execution().items() if k != "event_id"}, "event_id"),
    ("schema_version 2", execution(schema_version=2), "schema_version"),
    ("unknown kind", execution(kind="heartbeat"), "kind"),
    ("missing kind", {k: v for k, v in execution().items() if k != "kind"}, "kind"),
    ("unknown status", execution(status="done"), "status"),
    ("missing task_id", {k: v for k, v in execution().items() if k != "task_id"}, "task_id"),
    ("negative duration", execution(duration_ms=-1), "duration_ms"),
    ("steps as string", execution(steps="5"), "steps"),
    ("steps as float", execution(steps=2.5), "steps"),
    ("negative steps", execution(steps=-1), "steps"),
    ("quality above 1", execution(quality_score=1.01), "quality_score"),
    ("quality below 0", execution(quality_score=-0.1), "quality_score"),
    ("negative cost", execution(cost_usd=-0.01), "cost_usd"),
    ("negative input tokens",
     execution(llm_calls=[{"provider": "p", "model": "m", "input_tokens": -1, "output_tokens": 1}]),
     "llm_calls.0.input_tokens"),
    ("tokens as string",
     execution(llm_calls=[{"provider": "p", "model": "m", "input_tokens": "10", "output_tokens": 1}]),
     "llm_calls.0.input_tokens"),
    ("llm call without model",
     execution(llm_calls=[{"provider": "p", "input_tokens": 1, "output_tokens": 1}]), "llm_calls.0.model"),
    ("unknown tool status", execution(tool_calls=[{"tool": "t", "status": "boom"}]), "tool_calls.0.status"),
    ("http status 42", execution(tool_calls=[{"tool": "t", "status": "ok", "http_status": 42}]),
     "tool_calls.0.http_status"),
    ("attribute value not a string", execution(attributes={"tier": 3}), "attributes.tier"),
    ("score above 1", evaluation(score=2), "score"),
    ("passed as string", evaluation(passed="yes"), "passed"),
    ("evaluation without execution_id",
     {k: v for k, v in evaluation().items() if k != "execution_id"}, "execution_id"),
    ("outcome value as string", outcome(value="high"), "value"),
    ("outcome without metric", {k: v for k, v in outcome().items() if k != "metric"}, "metric"),
]


@pytest.mark.parametrize(("case", "data", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_event_is_rejected_with_message_naming_the_field(
    case: str, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(EventError) as info:
        decode_event(encode(data))
    assert info.value.reason.startswith(f"{field}:") or f"; {field}:" in info.value.reason, info.value.reason
    assert field in info.value.fields


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(value: str) -> None:
    raw = encode(execution()).replace(b'"status"', f'"cost_usd": {value}, "status"'.encode())
    with pytest.raises(EventError, match="cost_usd"):
        decode_event(raw)


@pytest.mark.parametrize("raw", [b"", b"not json", b"{\"schema_version\": 1,", b"[1, 2]", b"null", b"\xff\xfe"])
def test_bytes_that_are_not_a_json_object_are_rejected_with_a_reason(raw: bytes) -> None:
    with pytest.raises(EventError) as info:
        decode_event(raw)
    assert info.value.reason


def test_oversize_message_is_rejected_before_parsing() -> None:
    raw = encode(execution(escalation_reason="x" * 4000, attributes={f"k{i}": "v" * 4000 for i in range(40)}))
    assert len(raw) > 100_000
    with pytest.raises(EventError, match="over the limit of 100000 bytes"):
        decode_event(raw, max_bytes=100_000)
    assert len(raw) < DEFAULT_MAX_EVENT_BYTES
    decode_event(raw)


def test_validate_event_accepts_dicts_and_passes_models_through() -> None:
    model = validate_event(execution())
    assert validate_event(model) is model
    with pytest.raises(EventError, match="status"):
        validate_event(execution(status="nope"))


def test_encoded_event_leaves_out_absent_optionals_and_decodes_to_an_equal_event() -> None:
    event = decode_event(encode(FULL_EXECUTION))
    again = decode_event(encode_event(event))
    assert again == event
    assert b"null" not in encode_event(decode_event(encode(execution())))


identifiers = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=128)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                   timezone(timedelta(hours=-8))]))


@settings(max_examples=200, deadline=None)
@given(agent_id=identifiers, task_id=identifiers, at=instants,
       status=st.sampled_from(["completed", "escalated", "failed", "timeout"]),
       steps=st.none() | st.integers(0, 10_000), quality=st.none() | st.floats(0, 1),
       cost=st.none() | st.floats(0, 1e6, allow_infinity=False))
def test_any_valid_execution_survives_encode_decode_unchanged(
    agent_id: str, task_id: str, at: datetime, status: str, steps: int | None,
    quality: float | None, cost: float | None,
) -> None:
    event = validate_event(execution(agent_id=agent_id, task_id=task_id, occurred_at=at, status=status,
                                     steps=steps, quality_score=quality, cost_usd=cost))
    assert decode_event(encode_event(event)) == event


# ---- the published JSON Schema agrees with the models ---------------------------------------

SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(
    event_json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


@pytest.mark.parametrize("data", [execution(), FULL_EXECUTION, evaluation(), outcome()])
def test_json_schema_accepts_the_valid_examples(data: dict[str, Any]) -> None:
    SCHEMA_VALIDATOR.validate(data)


@pytest.mark.parametrize(
    ("case", "data", "field"),
    [c for c in INVALID if c[0] not in ("naive timestamp", "date without time", "steps as float",
                                        "epoch as a digit string")],
    ids=lambda c: c if isinstance(c, str) else "",
)
def test_json_schema_rejects_what_the_models_reject(case: str, data: dict[str, Any], field: str) -> None:
    # JSON Schema's date-time format check needs an optional package, so timestamp cases are
    # pinned by the model tests alone (as is 2.5 for an integer).
    assert not SCHEMA_VALIDATOR.is_valid(data), case


def test_committed_json_schema_file_is_up_to_date() -> None:
    from monitor.cli.main import SCHEMA_FILE, schema_text

    assert SCHEMA_FILE == ROOT / "schemas" / "agent-event.v1.schema.json"
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "schemas/agent-event.v1.schema.json is stale: run `agentmon schema --out "
        "schemas/agent-event.v1.schema.json` and commit it"
    )


def test_examples_file_has_one_valid_event_of_each_kind_and_one_naive_timestamp() -> None:
    kinds = []
    errors = []
    for line in (ROOT / "examples" / "events.jsonl").read_bytes().splitlines():
        try:
            kinds.append(decode_event(line).kind)
        except EventError as exc:
            errors.append(exc.reason)
    assert set(kinds) == {"execution", "evaluation", "outcome"}
    assert len(errors) == 1 and errors[0].startswith("occurred_at:")
