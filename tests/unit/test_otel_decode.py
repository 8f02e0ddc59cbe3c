"""Decoding kafkaexporter records: both encodings give the same spans and log events."""

from __future__ import annotations

import json
import random

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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


def _reference(raw: bytes, kind: type) -> object:
    """What protobuf's own JSON mapping makes of an OTLP/JSON record (the fast path must agree)."""
    from google.protobuf.json_format import ParseDict

    from monitor.otel.decode import _hex_ids_of_logs, _hex_ids_of_traces

    data = json.loads(raw)
    (_hex_ids_of_traces if kind is ExportTraceServiceRequest else _hex_ids_of_logs)(data)
    message = kind()
    ParseDict(data, message, ignore_unknown_fields=True)
    return message


def _all_value_kinds() -> ExportTraceServiceRequest:
    traced = Traced()
    traced.run(Run(openinference=True, tools=[Tool("web", "TimeoutError")]))  # an exception event
    spans, _ = traced.finished()
    request = trace_requests(spans, 1, random.Random(0))[0]
    span = request.resource_spans[0].scope_spans[0].spans[0]
    kv = span.attributes.add()
    kv.key = "every.kind"
    arr = kv.value.array_value.values
    arr.add().int_value = -(2**62)
    arr.add().double_value = 0.25
    arr.add().bool_value = False
    arr.add().bytes_value = b"\x00\xffab"
    inner = arr.add().kvlist_value.values.add()
    inner.key, inner.value.string_value = "k", "ünïcode"
    link = span.links.add()
    link.trace_id, link.span_id, link.flags = b"\x01" * 16, b"\x02" * 8, 1
    return request


def test_the_fast_otlp_json_path_agrees_with_protobufs_json_mapping() -> None:
    traced, _ = _traced()
    spans, logs = traced.finished()
    for request in (*trace_requests(spans, 3, random.Random(2)), _all_value_kinds()):
        raw = encode(request, "otlp_json")
        assert parse_traces(raw, "otlp_json") == _reference(raw, ExportTraceServiceRequest) == request
    raw = encode(log_requests(logs)[0], "otlp_json")
    assert parse_logs(raw, "otlp_json") == _reference(raw, ExportLogsServiceRequest) == log_requests(logs)[0]


@pytest.mark.parametrize("change", [
    lambda s: s.__setitem__("kind", "SPAN_KIND_INTERNAL"),  # enum by name: valid protobuf JSON
    lambda s: s.__setitem__("someFutureField", 1),  # unknown fields are ignored
    lambda s: s.__setitem__("trace_id", s.pop("traceId")),  # the proto field name: valid protobuf JSON
])
def test_unusual_but_valid_otlp_json_is_decoded_by_protobufs_json_mapping(change: object) -> None:
    traced, _ = _traced()
    spans, _ = traced.finished()
    request = trace_requests(spans, 1, random.Random(0))[0]
    data = json.loads(encode(request, "otlp_json"))
    span = data["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    change(span)  # type: ignore[operator]
    raw = json.dumps(data).encode()
    assert parse_traces(raw, "otlp_json") == _reference(raw, ExportTraceServiceRequest)
    assert len(list(spans_of(parse_traces(raw, "otlp_json")))) == len(spans)


def test_collector_shaped_otlp_json_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.otel.decode as decode

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("ParseDict used for a record the fast path knows")

    monkeypatch.setattr(decode, "ParseDict", refuse)
    traced, _ = _traced()
    spans, logs = traced.finished()
    assert parse_traces(encode(_all_value_kinds(), "otlp_json"), "otlp_json").resource_spans
    assert parse_logs(encode(log_requests(logs)[0], "otlp_json"), "otlp_json").resource_logs
