"""The adapter's two pure stages, records in and records out (the Kafka shell is `run.py`).

1. `split_record`: a kafkaexporter record (a whole export request, many traces) becomes one
   record per trace id, re-encoded as an OTLP protobuf request holding only that trace's spans
   (or evaluation log records). The shell writes them to the internal traces topic keyed by trace
   id, so every span of a trace reaches one partition, whatever partition the Collector chose.
2. `TracePartition`: one partition of the internal topic. Maps each span (`SpanMapper`), feeds the
   `Assembler`, and returns execution / evaluation events for `agent-events` and dead letters for
   what cannot be mapped. `committable` is the offset a consumer may commit: the first one an open
   trace still needs, so a restart re-reads every open trace (and re-emits nothing new: event ids
   are derived from trace and span ids).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from monitor.contract.dead_letter import DeadLetter
from monitor.otel.assembly import Assembler, Emitted, Event
from monitor.otel.config import OtelSettings
from monitor.otel.decode import (
    Encoding,
    OtlpDecodeError,
    log_events_of,
    parse_logs,
    parse_traces,
    spans_of,
    split_logs,
    split_traces,
)
from monitor.otel.mapping import EVALUATION_EVENT, MappingError, SpanMapper

Signal = Literal["traces", "logs"]
SIGNAL_HEADER = "agentmon.otel.signal"


def split_record(value: bytes, signal: Signal, encoding: Encoding) -> list[tuple[str, bytes]]:
    """(trace id, OTLP protobuf request) per trace of one exporter record; for logs only the
    evaluation events (every other log record is not ours). Raises `OtlpDecodeError`."""
    if signal == "traces":
        parts = split_traces(parse_traces(value, encoding))
        return [(trace, part.SerializeToString()) for trace, part in parts.items()]
    request = parse_logs(value, encoding)
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            keep = [r for r in sl.log_records if _is_evaluation(r)]
            if len(keep) != len(sl.log_records):
                del sl.log_records[:]
                sl.log_records.extend(keep)
    return [(trace, part.SerializeToString()) for trace, part in split_logs(request).items()]


def _is_evaluation(record: object) -> bool:
    if getattr(record, "event_name", "") == EVALUATION_EVENT:
        return True
    return any(kv.key == "event.name" and kv.value.string_value == EVALUATION_EVENT
               for kv in getattr(record, "attributes", ()))


@dataclass
class Output:
    events: list[Event] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class TracePartition:
    """One partition of the internal traces topic: its open traces and their assembly."""

    def __init__(self, settings: OtelSettings, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.mapper = SpanMapper(settings.mapping)
        self.assembler = Assembler(settings)
        self.records = 0
        self.dead_letters = 0

    def process(self, value: bytes, key: bytes | None, signal: Signal, offset: int, timestamp_ms: int | None,
                now: float) -> Output:
        self.records += 1
        out = Output()
        errors: list[str] = []
        emitted = Emitted()
        try:
            if signal == "traces":
                for span in spans_of(parse_traces(value, "otlp_proto")):
                    try:
                        facts = self.mapper.facts(span)
                    except MappingError as exc:
                        errors.append(exc.reason)
                        continue
                    emitted.extend(self.assembler.add_span(span.trace_id, facts, offset, now))
            else:
                for log in log_events_of(parse_logs(value, "otlp_proto")):
                    try:
                        evaluation = self.mapper.evaluation(log)
                    except MappingError as exc:
                        errors.append(exc.reason)
                        continue
                    if evaluation is not None:
                        emitted.extend(self.assembler.add_evaluation(evaluation, offset, now))
        except OtlpDecodeError as exc:
            errors.append(exc.reason)
        if errors:
            self.dead_letters += 1
            more = f"; ... and {len(errors) - 3} more" if len(errors) > 3 else ""
            out.dead_letters.append(DeadLetter.of(value, key, "; ".join(errors[:3]) + more, topic=self.topic,
                                                  partition=self.partition, offset=offset, timestamp_ms=timestamp_ms))
        self._collect(emitted, out)
        return out

    def tick(self, now: float) -> Output:
        out = Output()
        self._collect(self.assembler.tick(now), out)
        return out

    def flush(self) -> Output:
        out = Output()
        self._collect(self.assembler.flush(), out)
        return out

    def committable(self, next_offset: int) -> int:
        """The offset to commit when `next_offset` is the next record to read."""
        held = self.assembler.lowest_held_offset()
        return next_offset if held is None else min(held, next_offset)

    def _collect(self, emitted: Emitted, out: Output) -> None:
        out.events.extend(emitted.events)
        for r in emitted.rejected:
            self.dead_letters += 1
            out.dead_letters.append(DeadLetter.of(r.payload, r.trace_id.encode(), r.reason, topic=self.topic,
                                                  partition=self.partition, offset=r.offset, timestamp_ms=None))


def assemble(records: Iterable[tuple[Signal, bytes]], settings: OtelSettings, *, encoding: Encoding) -> Output:
    """The whole adapter over a bounded input, in one process (benchmarks, tests): split each
    exporter record by trace, assemble, and close every trace at the end."""
    part = TracePartition(settings, "in-memory", 0)
    out = Output()
    offset = 0
    for signal, value in records:
        try:
            pieces = split_record(value, signal, encoding)
        except OtlpDecodeError as exc:
            out.dead_letters.append(DeadLetter.of(value, None, exc.reason, topic="in-memory", partition=0,
                                                  offset=offset, timestamp_ms=None))
            offset += 1
            continue
        for trace, piece in pieces:
            got = part.process(piece, trace.encode(), signal, offset, None, 0.0)
            out.events.extend(got.events)
            out.dead_letters.extend(got.dead_letters)
            offset += 1
    got = part.flush()
    out.events.extend(got.events)
    out.dead_letters.extend(got.dead_letters)
    return out
