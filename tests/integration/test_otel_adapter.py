"""`agentmon otel run` on the real local broker: agent runs traced with the OpenTelemetry SDK,
encoded as the Collector's kafkaexporter writes them (both encodings), cut into export requests
spread over partitions and shuffled, become the same execution and evaluation events as the pure
adapter makes, keyed by agent; an undecodable record goes to the dead-letter topic; a restart
before the runs were emitted re-reads them and emits each once. End to end: two and a half days of
one agent's runs through the broker and the adapter give the engine the alerts the same runs sent
through the SDK give, `tool_calls_all_failing` among them."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from monitor.contract.events import encode_event
from monitor.kafka.topics import create_topics
from monitor.otel.adapter import assemble
from monitor.otel.config import OtelSettings
from monitor.otel.run import OtelRuntime, run_otel
from monitor.settings import Settings
from tests.support.otel_traces import Run, Tool, Traced, encode, log_requests, trace_requests
from tests.unit.test_otel_alerts import AGENT, ONSET, alerts_of, simulated_runs, time_and_id

pytestmark = pytest.mark.integration

PARTITIONS = 3


def _settings(base: Settings, encoding: str, logs_encoding: str | None) -> Settings:
    s = uuid.uuid4().hex[:8]
    otel = OtelSettings(spans_topic=f"otlp_spans-{s}", logs_topic=f"otlp_logs-{s}", traces_topic=f"otel-traces-{s}",
                        traces_partitions=PARTITIONS, encoding=encoding, logs_encoding=logs_encoding,
                        group_id=f"otel-{s}", grace_s=2.0,
                        tick_interval_s=0.2, commit_interval_s=0.3, metrics_port=0)
    return base.model_copy(update={"otel": otel})


def _traced_runs() -> tuple[Traced, dict[str, str]]:
    traced = Traced(seed=17)
    t0 = time.time_ns() - 600 * 10**9
    step = 20 * 10**9
    runs = {
        "ok+eval": Run(start_ns=t0, evaluation=("relevance", 0.9), conversation="conv-1"),
        "escalated": Run(start_ns=t0 + step, escalate=True, task="lead-7"),
        "failed": Run(start_ns=t0 + 2 * step, fail="ValueError", tools=[Tool("crm.update", "AuthError")]),
        "all-tools-fail-1": Run(agent="invoice-bot", version="2026.12.1", start_ns=t0 + 3 * step,
                                tools=[Tool("erp.post", "AuthError", 401), Tool("erp.lookup", "AuthError", 401)]),
        "all-tools-fail-2": Run(agent="invoice-bot", version="2026.12.1", start_ns=t0 + 4 * step,
                                tools=[Tool("erp.post", "AuthError", 401)]),
        "openinference": Run(agent="researcher", start_ns=t0 + 5 * step, openinference=True,
                             tools=[Tool("web.search", "TimeoutError")]),
    }
    return traced, {name: traced.run(run) for name, run in runs.items()}


async def _create_source_topics(settings: Settings) -> None:
    await create_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.otel.spans_topic, PARTITIONS, 1),
                                   NewTopic(settings.otel.logs_topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def _produce(settings: Settings, records: list[tuple[str, int, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        for topic, partition, value in records:  # no key, as the kafkaexporter without partition_traces_by_id
            await producer.send(topic, value, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def _read(settings: Settings, topic: str, want: int, limit_s: float = 60.0) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: list[Any] = []
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                got.extend(records)
            if len(got) >= want:
                await asyncio.sleep(0.5)  # anything beyond what was expected would show here
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got.extend(records)
                break
    finally:
        await consumer.stop()
    return got


@pytest.mark.parametrize(("encoding", "logs_encoding"), [("otlp_proto", None), ("otlp_json", None),
                                                        ("otlp_json", "otlp_proto")])
async def test_traces_on_the_broker_become_the_adapters_events_keyed_by_agent(
        kafka_settings: Settings, encoding: str, logs_encoding: str | None) -> None:
    settings = _settings(kafka_settings, encoding, logs_encoding)
    traced, trace_ids = _traced_runs()
    spans, logs = traced.finished()
    rng = random.Random(5)
    requests = [encode(r, encoding) for r in trace_requests(spans, 7, rng)]
    log_records = [encode(r, logs_encoding or encoding) for r in log_requests(logs)]
    # what the pure adapter makes of the same records (one encoding for both: events do not depend on it)
    expected = assemble([("traces", r) for r in requests] + [("logs", encode(r, encoding)) for r in log_requests(logs)],
                        settings.otel, encoding=encoding)  # type: ignore[arg-type]
    assert not expected.dead_letters
    assert len(expected.events) == len(trace_ids) + 1  # six runs and one evaluation

    await _create_source_topics(settings)
    o = settings.otel
    records = [(o.spans_topic, rng.randrange(PARTITIONS), r) for r in requests]
    records += [(o.logs_topic, rng.randrange(PARTITIONS), r) for r in log_records]
    rng.shuffle(records)
    records.insert(3, (o.spans_topic, 1, b"garbage, not an export request"))
    await _produce(settings, records)

    # first run: everything read, nothing emitted yet (a long grace period); stopped then
    patient = settings.model_copy(update={"otel": o.model_copy(update={"grace_s": 60.0})})
    stop = asyncio.Event()
    runtime = OtelRuntime(patient)
    task = asyncio.create_task(run_otel(patient, stop=stop, runtime=runtime))
    deadline = time.monotonic() + 30
    while runtime.totals().get("spans", 0) < len(spans) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert runtime.totals()["spans"] == len(spans)
    assert runtime.events_sent.total() == 0 and runtime.totals()["open_traces"] == len(trace_ids)
    stop.set()
    await task

    # second run: re-reads the open traces from the committed offsets and emits each run once
    stop = asyncio.Event()
    task = asyncio.create_task(run_otel(settings, stop=stop))
    got = await _read(settings, settings.topics.events, len(expected.events))
    stop.set()
    await task

    assert sorted(r.value for r in got) == sorted(encode_event(e) for e in expected.events)
    assert all(r.key == json.loads(r.value)["agent_id"].encode() for r in got)
    by_trace = {json.loads(r.value)["execution_id"]: json.loads(r.value) for r in got
                if json.loads(r.value)["kind"] == "execution"}
    assert by_trace[trace_ids["ok+eval"]]["status"] == "completed"
    assert by_trace[trace_ids["ok+eval"]]["attributes"]["conversation_id"] == "conv-1"
    assert by_trace[trace_ids["escalated"]]["status"] == "escalated"
    assert by_trace[trace_ids["escalated"]]["task_id"] == "lead-7"
    assert by_trace[trace_ids["failed"]]["status"] == "failed"
    invoice = by_trace[trace_ids["all-tools-fail-1"]]
    assert invoice["agent_id"] == "invoice-bot" and invoice["agent_version"] == "2026.12.1"
    assert [(c["tool"], c["status"], c["error_type"], c["http_status"]) for c in invoice["tool_calls"]] == [
        ("erp.post", "error", "AuthError", 401), ("erp.lookup", "error", "AuthError", 401)]
    researcher = by_trace[trace_ids["openinference"]]
    assert researcher["tool_calls"][0]["status"] == "timeout"
    assert researcher["llm_calls"][0]["cost_usd"] == 0.0045
    (evaluation,) = [json.loads(r.value) for r in got if json.loads(r.value)["kind"] == "evaluation"]
    assert (evaluation["execution_id"], evaluation["agent_id"], evaluation["score"], evaluation["passed"]) == (
        trace_ids["ok+eval"], "lead-qualifier", 0.9, True)

    (letter,) = [json.loads(r.value) for r in await _read(settings, settings.topics.dlq, 1)]
    assert (letter["source_topic"], letter["source_partition"]) == (o.spans_topic, 1)
    assert letter["error"].startswith("not an OTLP protobuf" if encoding == "otlp_proto" else "not OTLP/JSON")


async def test_runs_through_the_broker_and_the_adapter_alert_as_the_same_runs_sent_through_the_sdk(
        kafka_settings: Settings) -> None:
    settings = _settings(kafka_settings, "otlp_proto", None)
    spans, logs, sdk_events = simulated_runs()
    rng = random.Random(9)
    o = settings.otel
    records = [(o.spans_topic, rng.randrange(PARTITIONS), encode(r, "otlp_proto"))
               for r in trace_requests(spans, len(spans) // 200, rng)]
    records += [(o.logs_topic, rng.randrange(PARTITIONS), encode(r, "otlp_proto")) for r in log_requests(logs)]
    rng.shuffle(records)
    await _create_source_topics(settings)
    await _produce(settings, records)

    stop = asyncio.Event()
    task = asyncio.create_task(run_otel(settings, stop=stop))
    got = await _read(settings, settings.topics.events, len(sdk_events), limit_s=120)
    stop.set()
    await task

    # The test sends two and a half days of spans at once, shuffled over the requests: runs close in
    # the order their last span happens to be read, days apart in event time, which a live Collector
    # (exporting as spans end) never produces. The engine gets them in event-time order, as it would.
    lines = sorted((r.value for r in got), key=time_and_id)
    assert len(lines) == len(sdk_events)
    from_kafka = alerts_of(lines)
    assert from_kafka == alerts_of(sdk_events)
    firing = [a for a in from_kafka if a[0] == "tool_calls_all_failing" and a[2] == "firing"]
    assert firing and firing[0][1] == AGENT and firing[0][3] >= ONSET
