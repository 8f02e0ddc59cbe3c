"""Topics are created idempotently; events go producer -> real broker -> consumer, keyed by agent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import murmur2

from monitor.cli.main import main
from monitor.contract.events import EventError, decode_event
from monitor.kafka.emit import emit_lines
from monitor.kafka.producer import AgentEventProducer, BufferFullError, SyncAgentEventProducer
from monitor.kafka.topics import create_topics
from monitor.sdk import execution
from monitor.settings import ProducerSettings, Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def consume(settings: Settings, expected: int, timeout_s: float = 20.0) -> list:
    consumer = AIOKafkaConsumer(settings.topics.events, bootstrap_servers=settings.kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(records) < expected and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            records.extend(m for msgs in batches.values() for m in msgs)
    finally:
        await consumer.stop()
    return records


def expected_partition(agent_id: str, partitions: int) -> int:
    # Kafka's default partitioner (Java and aiokafka alike): murmur2 of the key, positive, mod n.
    return (murmur2(agent_id.encode()) & 0x7FFFFFFF) % partitions


async def test_topics_are_created_once_with_retention_and_a_second_run_changes_nothing(
    kafka_settings: Settings,
) -> None:
    first = await create_topics(kafka_settings)
    assert all(r.created for r in first)
    second = await create_topics(kafka_settings)
    assert not any(r.created for r in second)
    assert {r.name: r.partitions for r in second} == {
        kafka_settings.topics.events: 3, kafka_settings.topics.dlq: 1, kafka_settings.topics.alerts: 3,
        kafka_settings.topics.rollups: 3, kafka_settings.topics.silences: 1,
        kafka_settings.topics.baseline_control: 1, kafka_settings.topics.notifications: 3,
        kafka_settings.report.notes_topic: 1, kafka_settings.report.records_topic: 1,
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka_settings.topics.events),
             ConfigResource(ConfigResourceType.TOPIC, kafka_settings.topics.silences),
             ConfigResource(ConfigResourceType.TOPIC, kafka_settings.topics.baseline_control),
             ConfigResource(ConfigResourceType.TOPIC, kafka_settings.topics.notifications),
             ConfigResource(ConfigResourceType.TOPIC, kafka_settings.report.records_topic)])
    finally:
        await admin.close()
    configs = {r[3]: {e[0]: e[1] for e in r[4]} for resp in described for r in resp.resources}
    assert configs[kafka_settings.topics.events]["retention.ms"] == str(7 * 24 * 3_600_000)
    assert configs[kafka_settings.topics.silences]["cleanup.policy"] == "compact"
    assert configs[kafka_settings.topics.baseline_control]["cleanup.policy"] == "compact"
    assert configs[kafka_settings.topics.notifications]["cleanup.policy"] == "compact"
    assert configs[kafka_settings.report.records_topic]["cleanup.policy"] == "compact"


async def test_events_round_trip_through_the_broker_keyed_by_agent(kafka_settings: Settings) -> None:
    await create_topics(kafka_settings)
    agents = [f"agent-{i}" for i in range(12)]
    sent = []
    async with AgentEventProducer(kafka_settings) as producer:
        for n in range(240):
            event = execution(agents[n % len(agents)], execution_id=f"tr-{n}", task_id=f"task-{n}",
                              status="completed", steps=n % 7)
            await producer.send(event)
            sent.append(event)
        await producer.flush()
        assert producer.stats.acked == 240 and producer.stats.failed == 0

    records = await consume(kafka_settings, 240)
    assert len(records) == 240
    received = {decode_event(r.value).event_id: (r.key.decode(), r.partition) for r in records}
    assert set(received) == {e.event_id for e in sent}
    for event in sent:
        key, partition = received[event.event_id]
        assert key == event.agent_id
        assert partition == expected_partition(event.agent_id, 3)
    assert len({p for _, p in received.values()}) > 1  # twelve agents spread over the partitions
    # One agent's events keep their order on its partition.
    offsets_of_agent0 = [r.offset for r in records if r.key == b"agent-0"]
    ids_of_agent0 = [decode_event(r.value).event_id for r in records if r.key == b"agent-0"]
    by_offset = [i for _, i in sorted(zip(offsets_of_agent0, ids_of_agent0, strict=True))]
    assert by_offset == [e.event_id for e in sent if e.agent_id == "agent-0"]


async def test_invalid_event_is_refused_before_sending_with_the_field_named(kafka_settings: Settings) -> None:
    async with AgentEventProducer(kafka_settings) as producer:
        with pytest.raises(EventError, match="quality_score"):
            await producer.send({"schema_version": 1, "kind": "execution", "event_id": "e",
                                 "occurred_at": "2026-11-16T09:00:00Z", "agent_id": "a", "execution_id": "x",
                                 "task_id": "t", "status": "completed", "quality_score": 7})
        assert producer.stats.sent == 0


async def test_full_buffer_drops_and_counts_when_configured_to_drop(kafka_settings: Settings) -> None:
    await create_topics(kafka_settings)
    drop = ProducerSettings(max_pending=1, when_full="drop", linger_ms=50)
    async with AgentEventProducer(kafka_settings, producer=drop) as producer:
        results = [await producer.send(execution("a", execution_id=f"x{i}", task_id="t", status="completed"))
                   for i in range(20)]
        await producer.flush()
    assert results[0] is not None
    assert producer.stats.dropped == sum(r is None for r in results) >= 1
    assert producer.stats.acked == 20 - producer.stats.dropped


async def test_full_buffer_blocks_then_raises_when_configured_to_block(kafka_settings: Settings) -> None:
    await create_topics(kafka_settings)
    block = ProducerSettings(max_pending=1, when_full="block", block_timeout_s=0.0, linger_ms=200)
    async with AgentEventProducer(kafka_settings, producer=block) as producer:
        await producer.send(execution("a", execution_id="x1", task_id="t", status="completed"))
        with pytest.raises(BufferFullError, match="waiting for the broker"):
            await producer.send(execution("a", execution_id="x2", task_id="t", status="completed"))
        await producer.flush()
    assert producer.stats.acked == 1 and producer.stats.dropped == 0


def test_sync_producer_delivers_from_code_without_an_event_loop(kafka_settings: Settings) -> None:
    asyncio.run(create_topics(kafka_settings))
    with SyncAgentEventProducer(kafka_settings) as producer:
        for i in range(10):
            assert producer.send(execution("sync-agent", execution_id=f"x{i}", task_id=f"t{i}", status="failed"))
        with pytest.raises(EventError, match="status"):
            producer.send({"schema_version": 1, "kind": "execution", "event_id": "e",
                           "occurred_at": "2026-11-16T09:00:00Z", "agent_id": "a", "execution_id": "x",
                           "task_id": "t", "status": "exploded"})
        producer.flush()
        assert producer.stats.acked == 10
    records = asyncio.run(consume(kafka_settings, 10))
    assert sorted(decode_event(r.value).execution_id for r in records) == sorted(f"x{i}" for i in range(10))


def test_emit_command_sends_valid_lines_and_reports_invalid_ones_by_line(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AGENTMON_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.kafka.bootstrap_servers)
    monkeypatch.setenv("AGENTMON_TOPICS__EVENTS", kafka_settings.topics.events)
    lines = (ROOT / "examples" / "events.jsonl").read_text().splitlines()
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([*lines, "", "{broken json", json.dumps({"kind": "outcome"})]) + "\n")
    asyncio.run(create_topics(kafka_settings))

    assert main(["emit", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sent 5 events from 8 lines: 3 invalid" in out
    assert "line 6: occurred_at: Input should have timezone info" in out
    assert "line 8: <event>: Invalid JSON" in out
    assert "line 9: schema_version: Field required" in out
    records = asyncio.run(consume(kafka_settings, 5))
    assert len(records) == 5


def test_emit_refuses_a_missing_topic_and_topics_create_warns_about_one_made_otherwise(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Sending first would have made `agent-events` with the broker's defaults (1 partition), which
    `topics create` then silently left as it was."""
    monkeypatch.setenv("AGENTMON_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.kafka.bootstrap_servers)
    monkeypatch.setenv("AGENTMON_TOPICS__EVENTS", kafka_settings.topics.events)
    monkeypatch.setenv("AGENTMON_TOPICS__EVENTS_PARTITIONS", "3")
    example = str(ROOT / "examples" / "events.jsonl")
    assert main(["emit", example]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"agentmon emit: topic '{kafka_settings.topics.events}' does not exist: "
                   "run `agentmon topics create` first"]

    async def make_it_by_hand() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(kafka_settings.topics.events, 1, 1,
                                                topic_configs={"retention.ms": "3600000"})])
        finally:
            await admin.close()

    asyncio.run(make_it_by_hand())
    assert main(["topics", "create"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {kafka_settings.topics.events} exists with 1 partitions, the settings say 3" in err
    assert f"warning: {kafka_settings.topics.events} exists with retention.ms=3600000, the settings say" in err
    assert main(["emit", example]) == 0


def test_a_worker_refuses_a_missing_events_topic_with_one_line(
    kafka_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Started before `topics create`, faust would wait for the topic without a word."""
    monkeypatch.delenv("AGENTMON_CONFIG", raising=False)
    monkeypatch.setenv("AGENTMON_KAFKA__BOOTSTRAP_SERVERS", kafka_settings.kafka.bootstrap_servers)
    monkeypatch.setenv("AGENTMON_TOPICS__EVENTS", kafka_settings.topics.events)
    assert main(["worker"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"agentmon worker: topic '{kafka_settings.topics.events}' does not exist: run `agentmon topics create` first"]


def test_emit_lines_sends_a_list_of_lines_as_the_demo_does(kafka_settings: Settings) -> None:
    asyncio.run(create_topics(kafka_settings))
    lines = [line.encode() for line in (ROOT / "examples" / "events.jsonl").read_text().splitlines()]
    summary = asyncio.run(emit_lines(kafka_settings, [*lines, b""], total=len(lines) + 1, progress=False))
    assert (summary.sent, summary.invalid, summary.gave_up) == (5, 1, None)
    assert len(asyncio.run(consume(kafka_settings, 5))) == 5
