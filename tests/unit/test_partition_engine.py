"""The live pipeline's pure core per partition: each record applied exactly once across
checkpoints and restarts, broken records dead-lettered, silence noticed by the idle tick."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.contract.alert import Alert
from monitor.core.checkpoint import decode_checkpoint, encode_checkpoint
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.partition import PartitionEngine
from monitor.local.simulate import Incident, default_agents, generate

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
WALL = (START + timedelta(days=30)).timestamp()  # a wall clock after every event of the stream


@lru_cache(maxsize=1)
def records() -> tuple[bytes, ...]:
    agents = default_agents(2, 40.0, seed=3)
    incident = Incident(rule="tool_calls_all_failing", onset=START + timedelta(days=2.4),
                        agent_id=agents[0].agent_id)
    events = generate(agents, START, 4.0, incidents=[incident], seed=3)
    return tuple(json.dumps(e, separators=(",", ":")).encode() for e in events)


def make_engine(snapshot: dict[str, Any] | None) -> Engine:
    config = DetectionConfig()
    return Engine.restore(snapshot, config) if snapshot is not None else Engine(config)


def new_partition(restored: Any = None, idle_after_s: float = 0.0) -> PartitionEngine:
    return PartitionEngine("agent-events", 0, make_engine, restored=restored, max_event_bytes=512 * 1024,
                           idle_after_s=idle_after_s, wall_now=WALL)


def canonical(snapshot: dict[str, Any]) -> Any:
    """Snapshots are JSON data: compare them as JSON (a tuple in memory is a list once stored)."""
    return json.loads(json.dumps(snapshot))


def feed(part: PartitionEngine, first: int, last: int, alerts: list[Alert]) -> None:
    data = records()
    for offset in range(first, last):
        out = part.process(data[offset], b"k", offset, None, WALL + offset / 1000)
        alerts.extend(out.alerts)


@lru_cache(maxsize=1)
def uninterrupted() -> tuple[dict[str, Any], tuple[Alert, ...]]:
    part = new_partition()
    alerts: list[Alert] = []
    feed(part, 0, len(records()), alerts)
    return part.engine.snapshot(), tuple(alerts)


def test_the_stream_used_here_fires_alerts() -> None:
    _, alerts = uninterrupted()
    assert {a.rule for a in alerts} >= {"tool_calls_all_failing"}


@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_crash_and_restore_from_checkpoint_gives_the_uninterrupted_state_and_alerts(data: st.DataObject) -> None:
    n = len(records())
    checkpoint_at = data.draw(st.integers(1, n - 1), label="checkpoint after record")
    crash_at = data.draw(st.integers(checkpoint_at, n), label="crash after record")
    committed = data.draw(st.integers(0, checkpoint_at), label="offset the consumer resumes from")

    alerts: list[Alert] = []
    first = new_partition()
    feed(first, 0, checkpoint_at, alerts)
    store = dict(encode_checkpoint(first.checkpoint()))
    feed(first, checkpoint_at, crash_at, alerts)  # applied, published, then lost with the process

    second = new_partition(restored=decode_checkpoint(0, store.get))
    assert second.next_offset == checkpoint_at
    feed(second, committed, n, alerts)  # Kafka redelivers from the committed offset

    snapshot, expected = uninterrupted()
    assert canonical(second.engine.snapshot()) == canonical(snapshot)  # nothing lost, nothing counted twice
    assert second.skipped_replays == checkpoint_at - committed
    # Replayed outputs repeat with the same ids: deduplicated, they are exactly the expected ones.
    unique = list({a.alert_id: a for a in alerts}.values())
    assert sorted(a.alert_id for a in unique) == sorted(a.alert_id for a in expected)
    assert len(unique) == len(expected)


def test_a_record_below_next_offset_is_skipped() -> None:
    part = new_partition()
    feed(part, 0, 100, [])
    before = canonical(part.engine.snapshot())
    feed(part, 50, 100, [])
    assert part.skipped_replays == 50
    assert canonical(part.engine.snapshot()) == before


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "Invalid JSON"),
    (b'{"schema_version":1,"kind":"execution"}', "event_id: Field required"),
    (None, "Invalid JSON"),
])
def test_broken_record_becomes_a_dead_letter_with_reason_and_source(value: bytes | None, reason: str) -> None:
    part = new_partition()
    feed(part, 0, 10, [])
    out = part.process(value, b"agent-x", 10, 1_763_283_605_000, WALL)
    letter = out.dead_letter
    assert letter is not None
    assert reason in letter.error
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("agent-events", 0, 10)
    assert letter.original() == (value or b"")
    assert letter.key == "agent-x"
    assert part.engine.counters["invalid"] == 1
    assert part.next_offset == 11  # the stream moves on


def test_idle_tick_moves_event_time_with_the_wall_clock_so_silence_is_noticed() -> None:
    part = new_partition(idle_after_s=120)
    feed(part, 0, len(records()), [])
    last_wall = WALL + (len(records()) - 1) / 1000
    assert not part.tick(last_wall + 60)  # not idle long enough
    fired: list[Alert] = []
    for minutes in range(5, 6 * 60, 5):  # six wall-clock hours of nothing, ticked every 5 minutes
        fired.extend(part.tick(last_wall + minutes * 60).alerts)
    silent = [a for a in fired if a.rule == "agent_silent" and a.state == "firing"]
    assert {a.agent_id for a in silent} == set(part.engine.agent_ids())


def test_idle_tick_does_nothing_while_records_flow() -> None:
    part = new_partition(idle_after_s=120)
    feed(part, 0, 1000, [])
    before = canonical(part.engine.snapshot())
    assert not part.tick(WALL + 1)
    assert canonical(part.engine.snapshot()) == before


def test_a_dead_letter_always_fits_in_a_kafka_record() -> None:
    """An event under the topic's 1 MiB limit but over the event limit, with a huge key: its dead
    letter keeps the first 512 KiB, the size and the SHA-256 of the whole, and stays under the
    producer's 1 MB request size (a larger one crashed the worker on every restart)."""
    import hashlib

    from monitor.contract.dead_letter import MAX_ORIGINAL_BYTES

    part = new_partition()
    value = b'{"schema_version":1,"attributes":"' + b"v" * 1_000_000 + b'"}'
    out = part.process(value, b"k" * 100_000, 0, 1_763_283_605_000, WALL)
    letter = out.dead_letter
    assert letter is not None and "over the limit" in letter.error
    assert len(letter.to_json()) < 900_000
    assert letter.original_truncated and letter.original_size == len(value)
    assert letter.original() == value[:MAX_ORIGINAL_BYTES]
    assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.key is not None and len(letter.key) <= 1024
    small = part.process(b"{", None, 1, 1_763_283_605_000, WALL).dead_letter
    assert small is not None and not small.original_truncated and small.original_sha256 is None
