"""`agentmon otel run`: the Kafka shell around the adapter's two pure stages (adapter.py).

    otlp_spans, otlp_logs ──split──► agentmon-otel-traces (key trace id) ──assemble──► agent-events (key agent_id)
                              │                                               │
                              └──── undecodable records ───► agent-events-dlq ◄┘ unmappable spans

Two consumer groups in one process (`{group_id}-split`, `{group_id}-assemble`); more processes
with the same settings split the partitions of both. Why two stages: the kafkaexporter writes
whole export requests, unkeyed unless `partition_traces_by_id` is set, so one trace's spans land
on several partitions; re-keying by trace id brings every span (and evaluation) of a trace to
one assembler, whatever the Collector's settings.

Delivery: the split stage commits a record after the pieces it produced are acknowledged
(at least once; a repeat is a duplicate span, dropped by the assembler). The assemble stage
commits, per partition, the first offset an open trace still needs (never beyond an event not
yet acknowledged), so a restart or a rebalance re-reads every open trace and nothing is lost;
what it emits again has the same event ids and counts once downstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitor.contract.dead_letter import DeadLetter
from monitor.contract.events import encode_event
from monitor.otel.adapter import SIGNAL_HEADER, Output, Signal, TracePartition, split_record
from monitor.otel.decode import OtlpDecodeError
from monitor.settings import Settings

log = logging.getLogger("agentmon.otel")
HOUR_MS = 3_600_000


class OtelRuntime:
    """The live state of both stages: what /metrics reports and tests inspect."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.partitions: dict[int, TracePartition] = {}
        self.next_offsets: dict[int, int] = {}
        self.split_records: Counter[str] = Counter()  # by signal
        self.split_pieces = 0
        self.split_dead_letters = 0
        self.events_sent: Counter[str] = Counter()  # by kind
        self.dead_letters_sent = 0

    def partition(self, p: int) -> TracePartition:
        part = self.partitions.get(p)
        if part is None:
            part = self.partitions[p] = TracePartition(self.settings.otel, self.settings.otel.traces_topic, p)
        return part

    def commit_offsets(self) -> dict[TopicPartition, int]:
        topic = self.settings.otel.traces_topic
        return {TopicPartition(topic, p): self.partitions[p].committable(n)
                for p, n in self.next_offsets.items() if p in self.partitions}

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)
            self.next_offsets.pop(p, None)

    def totals(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for part in self.partitions.values():
            out.update(part.assembler.counters.as_dict())
            out["open_traces"] += part.assembler.open_traces
        return dict(out)


class _Metrics:
    """Prometheus metrics read from the live runtime at scrape time."""

    def __init__(self, runtime: OtelRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Any]:
        rt = self.runtime
        open_traces = GaugeMetricFamily("agentmon_otel_open_traces", "traces held until their agent runs are "
                                        "emitted", labels=["partition"])
        counters = {name: CounterMetricFamily(f"agentmon_otel_{name}", help_, labels=["partition"]) for name, help_ in (
            ("spans", "spans received by the assembler"),
            ("duplicate_spans", "spans received again (Collector retries, re-reads)"),
            ("late_spans", "spans of a trace already closed, dropped"),
            ("executions", "execution events emitted"),
            ("evaluations", "evaluation events emitted"),
            ("timed_out", "runs emitted with status timeout (agent span never arrived)"),
            ("dropped_timeouts", "traces with GenAI spans but no agent run, dropped"),
            ("ignored_traces", "traces without any GenAI span"),
            ("evicted", "traces closed early because max_open_traces was reached"),
            ("rejected", "runs or evaluations that broke the contract (dead-lettered)"),
        )}
        for p, part in sorted(rt.partitions.items()):
            label = [str(p)]
            open_traces.add_metric(label, part.assembler.open_traces)
            values = part.assembler.counters.as_dict()
            for name, family in counters.items():
                family.add_metric(label, values[name])
        split = CounterMetricFamily("agentmon_otel_split_records", "exporter records split by trace", labels=["signal"])
        for signal, n in sorted(rt.split_records.items()):
            split.add_metric([signal], n)
        dlq = CounterMetricFamily("agentmon_otel_dead_letters", "records sent to the dead-letter topic",
                                  labels=["stage"])
        dlq.add_metric(["split"], rt.split_dead_letters)
        dlq.add_metric(["assemble"], rt.dead_letters_sent)
        yield open_traces
        yield from counters.values()
        yield split
        yield dlq


async def ensure_traces_topic(settings: Settings) -> None:
    """Create the internal traces topic unless it exists (idempotent)."""
    o = settings.otel
    admin = AIOKafkaAdminClient(**settings.kafka.client_options())
    await admin.start()
    try:
        if o.traces_topic in set(await admin.list_topics()):
            return
        response = await admin.create_topics([NewTopic(
            o.traces_topic, o.traces_partitions, settings.topics.replication_factor,
            topic_configs={"retention.ms": str(o.traces_retention_hours * HOUR_MS)})])
        for name, code, message in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"could not create topic {name!r}: error {code}: {message}")
    finally:
        await admin.close()


def _dead_letter(producer: AIOKafkaProducer, topic: str, letter: DeadLetter) -> Any:
    return producer.send(topic, letter.to_json(), key=None, headers=letter.headers())


async def split_stage(settings: Settings, producer: AIOKafkaProducer, runtime: OtelRuntime,
                      stop: asyncio.Event) -> None:
    o = settings.otel
    consumer = AIOKafkaConsumer(
        o.spans_topic, o.logs_topic, **settings.kafka.client_options(), group_id=f"{o.group_id}-split",
        enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            deliveries = []
            commit: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                signal: Signal = "traces" if tp.topic == o.spans_topic else "logs"
                for record in records:
                    runtime.split_records[signal] += 1
                    try:
                        encoding = o.encoding if signal == "traces" else o.logs_encoding or o.encoding
                        pieces = split_record(record.value or b"", signal, encoding)
                    except OtlpDecodeError as exc:
                        runtime.split_dead_letters += 1
                        letter = DeadLetter.of(record.value, record.key, exc.reason, topic=tp.topic,
                                               partition=tp.partition, offset=record.offset,
                                               timestamp_ms=record.timestamp)
                        deliveries.append(await _dead_letter(producer, settings.topics.dlq, letter))
                        continue
                    for trace, piece in pieces:
                        runtime.split_pieces += 1
                        deliveries.append(await producer.send(o.traces_topic, piece, key=trace.encode(),
                                                              headers=[(SIGNAL_HEADER, signal.encode())]))
                commit[tp] = records[-1].offset + 1
            if deliveries:
                await asyncio.gather(*deliveries)
            if commit:
                await consumer.commit(commit)
    finally:
        await consumer.stop()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, runtime: OtelRuntime, consumer: AIOKafkaConsumer) -> None:
        self.runtime = runtime
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        offsets = {tp: n for tp, n in self.runtime.commit_offsets().items() if tp in set(revoked)}
        if offsets:
            await self.consumer.commit(offsets)
        self.runtime.forget(tp.partition for tp in revoked)  # the next owner re-reads their open traces

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


async def assemble_stage(settings: Settings, producer: AIOKafkaProducer, runtime: OtelRuntime,
                         stop: asyncio.Event) -> None:
    o = settings.otel
    consumer = AIOKafkaConsumer(
        **settings.kafka.client_options(), group_id=f"{o.group_id}-assemble", enable_auto_commit=False,
        auto_offset_reset="earliest")
    consumer.subscribe([o.traces_topic], listener=_Rebalance(runtime, consumer))
    await consumer.start()
    last_tick = last_commit = time.monotonic()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=int(o.tick_interval_s * 1000), max_records=1000)
            now = time.monotonic()
            outputs: list[Output] = []
            for tp, records in batch.items():
                part = runtime.partition(tp.partition)
                for record in records:
                    headers = dict(record.headers or ())
                    signal: Signal = "logs" if headers.get(SIGNAL_HEADER) == b"logs" else "traces"
                    outputs.append(part.process(record.value or b"", record.key, signal, record.offset,
                                                record.timestamp, now))
                    runtime.next_offsets[tp.partition] = record.offset + 1
            if now - last_tick >= o.tick_interval_s:
                last_tick = now
                outputs.extend(part.tick(now) for part in list(runtime.partitions.values()))
            deliveries = []
            # in event-time order: a backlog (a restart, a lagging Collector) closes many runs in one
            # tick, and the workers' windows take events best in about the order they happened
            events = sorted((e for out in outputs for e in out.events), key=lambda e: (e.occurred_at, e.event_id))
            for event in events:
                runtime.events_sent[event.kind] += 1
                deliveries.append(await producer.send(settings.topics.events, encode_event(event),
                                                      key=event.agent_id.encode()))
            for out in outputs:
                for letter in out.dead_letters:
                    runtime.dead_letters_sent += 1
                    deliveries.append(await _dead_letter(producer, settings.topics.dlq, letter))
            if deliveries:
                await asyncio.gather(*deliveries)
            if now - last_commit >= o.commit_interval_s:
                last_commit = now
                offsets = runtime.commit_offsets()
                if offsets:
                    await consumer.commit(offsets)
        offsets = runtime.commit_offsets()
        if offsets:
            await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def run_otel(settings: Settings, *, stop: asyncio.Event | None = None,
                   runtime: OtelRuntime | None = None) -> OtelRuntime:
    """Run both stages until `stop` is set (or the task is cancelled)."""
    stop = stop or asyncio.Event()
    runtime = runtime or OtelRuntime(settings)
    await ensure_traces_topic(settings)
    if settings.otel.metrics_port:
        registry = CollectorRegistry()
        registry.register(_Metrics(runtime))
        start_http_server(settings.otel.metrics_port, addr=settings.otel.metrics_host, registry=registry)
    producer = AIOKafkaProducer(**settings.kafka.client_options(), acks="all", enable_idempotence=True,
                                linger_ms=settings.producer.linger_ms,
                                compression_type=None if settings.producer.compression == "none"
                                else settings.producer.compression)
    await producer.start()
    try:
        stages = [asyncio.create_task(split_stage(settings, producer, runtime, stop), name="otel-split"),
                  asyncio.create_task(assemble_stage(settings, producer, runtime, stop), name="otel-assemble")]
        done, pending = await asyncio.wait(stages, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            if not stop.is_set():  # one stage failed: stop the other and raise
                stop.set()
            await task
        for task in done:
            task.result()
    finally:
        await producer.stop()
    return runtime
