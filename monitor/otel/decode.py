"""Decoding the Collector kafkaexporter's records: `ExportTraceServiceRequest` and
`ExportLogsServiceRequest`, as `otlp_proto` (protobuf) or `otlp_json` (OTLP/JSON: camelCase
fields, trace and span ids in hex), with the official `opentelemetry-proto` message types.

A record holds a whole request: many resources, many spans, often many traces. `split_traces` and
`split_logs` cut it into one request per trace id (the adapter re-keys those by trace id), and
`spans_of` / `log_events_of` flatten a request into plain `Span` / `LogEvent` values for mapping.
Pure: bytes in, values out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Encoding = Literal["otlp_proto", "otlp_json"]
Attributes = dict[str, Any]

#: OTLP span status codes (opentelemetry.proto.trace.v1.Status.StatusCode)
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2


class OtlpDecodeError(ValueError):
    """A record that is not an OTLP request in the configured encoding; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Span:
    """One span, flattened: ids in lowercase hex ("" for no parent), times in ns since the epoch."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: Attributes
    resource: Attributes
    exception_type: str | None = None  # of the span's first `exception` event


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One log record: an event when `event_name` is set (or the `event.name` attribute of older SDKs)."""

    trace_id: str
    span_id: str
    event_name: str
    time_ns: int
    attributes: Attributes
    resource: Attributes


# ---- requests -----------------------------------------------------------------------------

def parse_traces(raw: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = _parse(ExportTraceServiceRequest, raw, encoding, _hex_ids_of_traces)
    return request


def parse_logs(raw: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    request: ExportLogsServiceRequest = _parse(ExportLogsServiceRequest, raw, encoding, _hex_ids_of_logs)
    return request


def _parse(kind: Any, raw: bytes, encoding: Encoding, fix_ids: Any) -> Any:
    what = kind.__name__
    if encoding == "otlp_proto":
        request = kind()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            raise OtlpDecodeError(f"not an OTLP protobuf {what} ({exc})") from None
        return request
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpDecodeError(f"not OTLP/JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpDecodeError(f"not OTLP/JSON: a {type(data).__name__}, not an object")
    try:
        return kind(**_fast(data, _REQUESTS[what]))
    except (_Unusual, KeyError, TypeError, ValueError, binascii.Error):
        pass  # anything unusual: protobuf's own (slower, pure Python) JSON mapping decides
    request = kind()
    fix_ids(data)
    try:
        ParseDict(data, request, ignore_unknown_fields=True)
    except ParseError as exc:
        raise OtlpDecodeError(f"not an OTLP/JSON {what}: {exc}") from None
    return request


# ---- OTLP/JSON, the common case without protobuf's JSON parser ---------------------------------
# protobuf's ParseDict walks descriptors in Python (~200 us a span); building the messages from
# keyword arguments is done by upb in C (~12 us). The fast path knows the OTLP/JSON shape the
# Collector writes (camelCase, hex ids, 64-bit integers as strings, enums as numbers); any other
# key or value form raises `_Unusual` or a conversion error and falls back to ParseDict, so the
# result is always ParseDict's. tests/unit/test_otel_decode.py pins the two to each other.

class _Unusual(Exception):
    pass


def _hex(value: Any) -> bytes:
    return bytes.fromhex(value)


def _b64(value: Any) -> bytes:
    return base64.b64decode(value, validate=True)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Unusual
    return int(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Unusual
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _Unusual
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Unusual
    return value


def _any(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) > 1:
        raise _Unusual
    for key, v in value.items():
        if key == "stringValue":
            return {"string_value": _str(v)}
        if key == "intValue":
            return {"int_value": _int(v)}
        if key == "doubleValue":
            return {"double_value": _float(v)}
        if key == "boolValue":
            return {"bool_value": _bool(v)}
        if key == "bytesValue":
            return {"bytes_value": _b64(v)}
        if key == "arrayValue":
            return {"array_value": {"values": [_any(x) for x in _list(v, "values")]}}
        if key == "kvlistValue":
            return {"kvlist_value": {"values": _kvs(_list(v, "values"))}}
        raise _Unusual
    return {}


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, dict) or set(value) - {key}:
        raise _Unusual
    items = value.get(key) or []
    if not isinstance(items, list):
        raise _Unusual
    return items


def _kvs(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise _Unusual
    out = []
    for kv in items:
        if not isinstance(kv, dict) or set(kv) - {"key", "value"}:
            raise _Unusual
        out.append({"key": _str(kv.get("key", "")), "value": _any(kv.get("value") or {})})
    return out


# JSON key -> (field name, conversion); a nested message's conversion is its own table
_Shape = dict[str, tuple[str, Any]]
_RESOURCE: _Shape = {"attributes": ("attributes", _kvs), "droppedAttributesCount": ("dropped_attributes_count", _int)}
_SCOPE: _Shape = {"name": ("name", _str), "version": ("version", _str), **_RESOURCE}
_STATUS: _Shape = {"message": ("message", _str), "code": ("code", _int)}
_EVENT: _Shape = {"timeUnixNano": ("time_unix_nano", _int), "name": ("name", _str), **_RESOURCE}
_LINK: _Shape = {"traceId": ("trace_id", _hex), "spanId": ("span_id", _hex), "traceState": ("trace_state", _str),
                 "flags": ("flags", _int), **_RESOURCE}
_SPAN: _Shape = {
    "traceId": ("trace_id", _hex), "spanId": ("span_id", _hex), "traceState": ("trace_state", _str),
    "parentSpanId": ("parent_span_id", _hex), "flags": ("flags", _int), "name": ("name", _str),
    "kind": ("kind", _int), "startTimeUnixNano": ("start_time_unix_nano", _int),
    "endTimeUnixNano": ("end_time_unix_nano", _int), **_RESOURCE,
    "events": ("events", [_EVENT]), "droppedEventsCount": ("dropped_events_count", _int),
    "links": ("links", [_LINK]), "droppedLinksCount": ("dropped_links_count", _int), "status": ("status", _STATUS),
}
_LOG: _Shape = {
    "timeUnixNano": ("time_unix_nano", _int), "observedTimeUnixNano": ("observed_time_unix_nano", _int),
    "severityNumber": ("severity_number", _int), "severityText": ("severity_text", _str),
    "body": ("body", _any), **_RESOURCE, "flags": ("flags", _int), "traceId": ("trace_id", _hex),
    "spanId": ("span_id", _hex), "eventName": ("event_name", _str),
}
_REQUESTS: dict[str, _Shape] = {
    "ExportTraceServiceRequest": {"resourceSpans": ("resource_spans", [{
        "resource": ("resource", _RESOURCE), "schemaUrl": ("schema_url", _str),
        "scopeSpans": ("scope_spans", [{"scope": ("scope", _SCOPE), "schemaUrl": ("schema_url", _str),
                                        "spans": ("spans", [_SPAN])}])}])},
    "ExportLogsServiceRequest": {"resourceLogs": ("resource_logs", [{
        "resource": ("resource", _RESOURCE), "schemaUrl": ("schema_url", _str),
        "scopeLogs": ("scope_logs", [{"scope": ("scope", _SCOPE), "schemaUrl": ("schema_url", _str),
                                      "logRecords": ("log_records", [_LOG])}])}])},
}


def _fast(data: Any, shape: _Shape) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _Unusual
    out: dict[str, Any] = {}
    for key, value in data.items():
        name, convert = shape[key]  # KeyError: a field this path does not know
        if value is None:
            continue
        if isinstance(convert, dict):
            out[name] = _fast(value, convert)
        elif isinstance(convert, list):
            if not isinstance(value, list):
                raise _Unusual
            out[name] = [_fast(item, convert[0]) for item in value]
        else:
            out[name] = convert(value)
    return out


def _hex_to_b64(item: dict[str, Any], field: str, where: str) -> None:
    # OTLP/JSON writes ids in hex, protobuf's JSON mapping expects base64 for bytes
    value = item.get(field)
    if not value:
        return
    try:
        item[field] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except (ValueError, TypeError, binascii.Error):
        raise OtlpDecodeError(f"{where}.{field}: {value!r} is not a hex id") from None


def _hex_ids_of_traces(data: dict[str, Any]) -> None:
    for r, rs in enumerate(data.get("resourceSpans") or ()):
        for s, ss in enumerate(rs.get("scopeSpans") or ()):
            for i, span in enumerate(ss.get("spans") or ()):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                for field in ("traceId", "spanId", "parentSpanId"):
                    _hex_to_b64(span, field, where)
                for j, link in enumerate(span.get("links") or ()):
                    for field in ("traceId", "spanId"):
                        _hex_to_b64(link, field, f"{where}.links[{j}]")


def _hex_ids_of_logs(data: dict[str, Any]) -> None:
    for r, rl in enumerate(data.get("resourceLogs") or ()):
        for s, sl in enumerate(rl.get("scopeLogs") or ()):
            for i, record in enumerate(sl.get("logRecords") or ()):
                for field in ("traceId", "spanId"):
                    _hex_to_b64(record, field, f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]")


# ---- splitting by trace -------------------------------------------------------------------

def split_traces(request: ExportTraceServiceRequest) -> dict[str, ExportTraceServiceRequest]:
    """One request per trace id (hex), each span under a copy of its resource and scope."""
    out: dict[str, ExportTraceServiceRequest] = {}
    for rs in request.resource_spans:
        resources: dict[str, Any] = {}
        for ss in rs.scope_spans:
            scopes: dict[str, Any] = {}
            for span in ss.spans:
                trace = span.trace_id.hex()
                target = scopes.get(trace)
                if target is None:
                    resource = resources.get(trace)
                    if resource is None:
                        part = out.setdefault(trace, ExportTraceServiceRequest())
                        resource = resources[trace] = part.resource_spans.add()
                        resource.resource.CopyFrom(rs.resource)
                        resource.schema_url = rs.schema_url
                    target = scopes[trace] = resource.scope_spans.add()
                    target.scope.CopyFrom(ss.scope)
                    target.schema_url = ss.schema_url
                target.spans.append(span)
    return out


def split_logs(request: ExportLogsServiceRequest) -> dict[str, ExportLogsServiceRequest]:
    """One request per trace id (hex; "" for records outside any trace)."""
    out: dict[str, ExportLogsServiceRequest] = {}
    for rl in request.resource_logs:
        resources: dict[str, Any] = {}
        for sl in rl.scope_logs:
            scopes: dict[str, Any] = {}
            for record in sl.log_records:
                trace = record.trace_id.hex()
                target = scopes.get(trace)
                if target is None:
                    resource = resources.get(trace)
                    if resource is None:
                        part_logs = out.setdefault(trace, ExportLogsServiceRequest())
                        resource = resources[trace] = part_logs.resource_logs.add()
                        resource.resource.CopyFrom(rl.resource)
                        resource.schema_url = rl.schema_url
                    target = scopes[trace] = resource.scope_logs.add()
                    target.scope.CopyFrom(sl.scope)
                    target.schema_url = sl.schema_url
                target.log_records.append(record)
    return out


# ---- flattening ---------------------------------------------------------------------------

def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def attributes_of(pairs: Any) -> Attributes:
    out: Attributes = {}
    kv: KeyValue
    for kv in pairs:
        out[kv.key] = value_of(kv.value)
    return out


def spans_of(request: ExportTraceServiceRequest) -> Iterator[Span]:
    for rs in request.resource_spans:
        resource = attributes_of(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                exception_type = None
                for event in span.events:
                    if event.name == "exception":
                        exception_type = attributes_of(event.attributes).get("exception.type")
                        if exception_type is not None:
                            exception_type = str(exception_type)
                            break
                yield Span(
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(),
                    name=span.name, start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
                    status_code=span.status.code, status_message=span.status.message,
                    attributes=attributes_of(span.attributes), resource=resource, exception_type=exception_type)


def log_events_of(request: ExportLogsServiceRequest) -> Iterator[LogEvent]:
    for rl in request.resource_logs:
        resource = attributes_of(rl.resource.attributes)
        for sl in rl.scope_logs:
            for record in sl.log_records:
                attributes = attributes_of(record.attributes)
                name = record.event_name or str(attributes.get("event.name") or "")
                yield LogEvent(
                    trace_id=record.trace_id.hex(), span_id=record.span_id.hex(), event_name=name,
                    time_ns=record.time_unix_nano or record.observed_time_unix_nano,
                    attributes=attributes, resource=resource)
