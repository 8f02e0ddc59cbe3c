"""Decoding kafkaexporter records: both encodings give the same spans and log events."""

from __future__ import annotations

import json
import random

import pytest

from monitor.otel.decode import (
    OtlpDecodeError,
    log_events_of,
    parse_logs,
    parse_traces,
    spans_of,
    split_logs,
    split_traces,
)
from tests.support.otel_traces import Run, Tool, Traced, encode, log_requests, trace_requests


def _traced() -> tuple[Traced, list[str]]:
    traced = Traced()
    ids = [traced.run(Run(agent="a", tools=[Tool("crm.update", "AuthError")], evaluation=("relevance", 0.8))),
           traced.run(Run(agent="b", start_ns=1_780_000_100_000_000_000))]
    return traced, ids


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_both_encodings_decode_to_the_same_spans(encoding: str) -> None:
    traced, ids = _traced()
    spans, _ = traced.finished()
    requests = trace_requests(spans, 1, random.Random(1))
    decoded = list(spans_of(parse_traces(encode(requests[0], encoding), encoding)))  # type: ignore[arg-type]
    reference = list(spans_of(requests[0]))
    assert decoded == reference
    assert {s.trace_id for s in decoded} == set(ids)
    assert all(len(s.span_id) == 16 and len(s.trace_id) == 32 for s in decoded)
    tool = next(s for s in decoded if s.attributes.get("gen_ai.tool.name") == "crm.update")
    assert tool.status_code == 2 and tool.attributes["error.type"] == "AuthError"
    assert tool.resource["service.name"] == "agents-svc"


def test_otlp_json_ids_are_hex_as_the_collector_writes_them() -> None:
    traced, ids = _traced()
    spans, _ = traced.finished()
    data = json.loads(encode(trace_requests(spans, 1, random.Random(1))[0], "otlp_json"))
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert span["traceId"] in ids
    assert isinstance(span["startTimeUnixNano"], str)


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_evaluation_log_events_decode_with_their_trace_and_event_name(encoding: str) -> None:
    traced, ids = _traced()
    _, logs = traced.finished()
    raw = encode(log_requests(logs)[0], encoding)
    events = list(log_events_of(parse_logs(raw, encoding)))  # type: ignore[arg-type]
    assert len(events) == 1
    assert events[0].event_name == "gen_ai.evaluation.result"
    assert events[0].trace_id == ids[0]
    assert events[0].attributes["gen_ai.evaluation.score.value"] == 0.8


def test_split_by_trace_keeps_every_span_once_under_its_resource() -> None:
    traced, ids = _traced()
    spans, logs = traced.finished()
    request = trace_requests(spans, 1, random.Random(3))[0]
    parts = split_traces(request)
    assert set(parts) == set(ids)
    got = sorted((s.trace_id, s.span_id) for p in parts.values() for s in spans_of(p))
    assert got == sorted((s.trace_id, s.span_id) for s in spans_of(request))
    assert all(s.resource["service.name"] == "agents-svc" for p in parts.values() for s in spans_of(p))
    assert set(split_logs(log_requests(logs)[0])) == {ids[0]}


@pytest.mark.parametrize(("raw", "encoding", "says"), [
    (b"\xff\xff\xff", "otlp_proto", "not an OTLP protobuf"),
    (b"{not json", "otlp_json", "not OTLP/JSON"),
    (b"[1, 2]", "otlp_json", "not an object"),
    (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}', "otlp_json",
     "resourceSpans[0].scopeSpans[0].spans[0].traceId: 'zz' is not a hex id"),
])
def test_undecodable_records_say_why(raw: bytes, encoding: str, says: str) -> None:
    with pytest.raises(OtlpDecodeError, match=r".*") as caught:
        parse_traces(raw, encoding)  # type: ignore[arg-type]
    assert says in caught.value.reason
