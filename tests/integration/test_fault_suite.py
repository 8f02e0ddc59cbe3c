"""Bad input and secrets through the real worker on the real local broker: mutated records each
reach the dead-letter topic with their reason and source offset while the valid ones around them
are applied as the backtest applies them; and the secrets a worker is given appear nowhere it
writes or serves (logs at debug level, /metrics, /state, checkpoints, dead letters)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.contract.dead_letter import DeadLetter
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.partition import PartitionEngine
from monitor.core.replay import replay
from monitor.kafka.topics import create_topics
from monitor.local.broker import LocalBroker, free_port
from monitor.local.simulate import Incident, default_agents, generate
from monitor.settings import KafkaSettings, LocalBrokerSettings, Settings
from monitor.stream.checkpointing import CHECKPOINT_TABLE
from tests.integration.test_worker import stream
from tests.support.chaos import records_of, run_chaos
from tests.support.kafka_io import applied, counter, read_topic, send
from tests.support.mutate import mutants
from tests.support.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

SECRETS = {
    "AGENTMON_SLACK__BOT_TOKEN": "xoxb-SECRET-bot-token-4f1c2a",
    "AGENTMON_KAFKA__SASL_PASSWORD": "SECRET-sasl-password-77d0",
    "AGENTMON_ALERTING__WEBHOOK_SECRET": "SECRET-webhook-hmac-9be3",
}
PAYLOAD_MARKER = "PII-customer-4711@example.com"
START = datetime(2026, 11, 2, tzinfo=UTC)


def test_mutated_records_through_the_real_worker_each_reach_the_dead_letter_topic(
    topics: Settings, app_id: str, tmp_path: Path,
) -> None:
    rng = random.Random(191)
    good = list(stream()[:1500])
    records: list[tuple[bytes, str]] = []
    for value, agent in good:
        records.append((value, agent))
        if rng.random() < 0.7:
            records.extend((raw, agent) for _, raw in mutants(json.loads(value), rng, 3))
    big = json.loads(good[0][0])
    big["attributes"] = {f"k{i}": "v" * 4000 for i in range(220)}  # ~880 KiB: over the event limit
    records.insert(700, (json.dumps(big).encode(), good[0][1]))

    # what a partition's pure pipeline dead-letters, offline, is what the live worker must
    expected = PartitionEngine("x", 0, lambda s: Engine(DetectionConfig()), max_event_bytes=512 * 1024,
                               wall_now=datetime.now(UTC).timestamp())
    now = datetime.now(UTC).timestamp()
    refused = [raw for offset, (raw, agent) in enumerate(records)
               if expected.process(raw, agent.encode(), offset, int(now * 1000), now).dead_letter is not None]
    assert len(refused) > 2000 and len(records) - len(refused) >= len(good)

    total = asyncio.run(send(topics, records))
    worker = WorkerProcess(topics, app_id, tmp_path / "worker.log")
    try:
        state = worker.wait_for(lambda s: applied(s) == total, 120, "every record applied")
        status, metrics = worker.get("/metrics")
    finally:
        assert worker.stop() == 0
    assert status == 200
    letters = [DeadLetter.model_validate_json(r.value)
               for r in asyncio.run(read_topic(topics, topics.topics.dlq, limit_s=60))]
    assert state["dead_letters"] == len(letters) == len(refused)
    # a letter carries its original whole, or (over 512 KiB) its first 512 KiB and the SHA-256
    assert sorted(letter.original_sha256 or hashlib.sha256(letter.original()).hexdigest() for letter in letters) \
        == sorted(hashlib.sha256(raw).hexdigest() for raw in refused)
    assert sum(letter.original_truncated for letter in letters) == sum(len(raw) > 512 * 1024 for raw in refused) >= 1
    seen_offsets = set()
    for letter in letters:
        assert letter.error and "\n" not in letter.error and len(letter.error) <= 400
        assert letter.source_topic == topics.topics.events
        seen_offsets.add((letter.source_partition, letter.source_offset))
    assert len(seen_offsets) == len(letters)  # one letter per source record
    assert any("over the limit" in letter.error for letter in letters)  # the 880 KiB one too
    assert counter(state, "events") == replay((v for v, _ in good), Engine(DetectionConfig())).events
    assert b"agentmon_dead_letters_total" in metrics


def test_secrets_appear_nowhere_a_worker_writes_or_serves(topics: Settings, app_id: str, tmp_path: Path) -> None:
    good = list(stream()[:400])
    marked = []
    for value, agent in good:
        event = json.loads(value)
        if event["kind"] == "execution":
            event["attributes"] = {"customer": PAYLOAD_MARKER}
        marked.append((json.dumps(event).encode(), agent))
    marked.append((b'{"not": "an event", "token": "' + PAYLOAD_MARKER.encode() + b'"}', "x"))
    total = asyncio.run(send(topics, marked))
    worker = WorkerProcess(topics, app_id, tmp_path / "worker.log", AGENTMON_WORKER__LOG_LEVEL="debug",
                           **SECRETS)
    try:
        worker.wait_for(lambda s: applied(s) == total and s["partitions"] and all(
            p["checkpoint_bytes"] for p in s["partitions"].values()), 90, "applied and checkpointed")
        served = {path: worker.get(path)[1] for path in ("/metrics", "/state", "/healthz")}
    finally:
        assert worker.stop() == 0
    log = (tmp_path / "worker.log").read_bytes()
    checkpoints = asyncio.run(read_topic(topics, f"{app_id}-{CHECKPOINT_TABLE}-changelog"))
    letters = asyncio.run(read_topic(topics, topics.topics.dlq))
    assert checkpoints and letters and len(log) > 1000
    places = {"log": log, **served, "checkpoints": b"".join(r.value or b"" for r in checkpoints),
              "dead letters": b"".join((r.value or b"") + repr(r.headers).encode() for r in letters)}
    for where, data in places.items():
        for secret in SECRETS.values():
            assert secret.encode() not in data, (where, secret)
    for path, body in served.items():  # the web port serves counts, never event payloads
        assert PAYLOAD_MARKER.encode() not in body, path


def test_chaos_replay_with_workers_killed_at_random_equals_the_backtest(
    topics: Settings, app_id: str, tmp_path: Path,
) -> None:
    """Two workers, five SIGKILLs at seeded random moments while 1,500 records a second arrive
    (checkpoints every second, so some kills land inside one; each kill and restart rebalances):
    per-agent counts, alert ids and hourly rollups equal the backtest of the same events."""
    result = run_chaos(topics, app_id, tmp_path, chaos_stream(), seed=19, kills=5, per_s=1500)
    print("\n".join(result.lines()))
    assert result.kills == 5
    assert result.events_counted == result.events_expected
    assert result.duplicates_counted == result.duplicates_expected
    assert not result.alerts_missing and not result.alerts_unexpected
    assert result.alerts_expected >= 4 and result.rollups_expected > 300
    assert not result.rollups_differing and result.rollups_delivered == result.rollups_expected


def chaos_stream() -> list[tuple[bytes, str]]:
    """Four agents, four days, three incidents that fire and resolve: ~34k records."""
    agents = default_agents(4, 50.0, seed=23)
    day = timedelta(days=1)
    incidents = [
        Incident(rule="tool_calls_all_failing", onset=START + day * 1.4, agent_id=agents[0].agent_id, duration_h=3),
        Incident(rule="quality_drop", onset=START + day * 3.3, agent_id=agents[1].agent_id, duration_h=5),
        Incident(rule="token_cost_spike", onset=START + day * 3.4, agent_id=agents[2].agent_id, duration_h=4),
    ]
    return records_of(list(generate(agents, START, 4.0, incidents=incidents, seed=23)))


def test_sigterm_during_a_broker_outage_ends_the_worker_in_time_and_a_restart_loses_nothing(
    tmp_path: Path, kafka_settings: Settings, app_id: str,
) -> None:
    """The broker stops; 10 s later a supervisor sends SIGTERM: the worker is gone within
    worker.stop_timeout_s (12 s) with one line saying why, without spinning on reconnects
    meanwhile; with the broker back, a new worker applies every record exactly once."""
    broker = LocalBroker(LocalBrokerSettings(data_dir=tmp_path / "kafka", port=free_port(),
                                             controller_port=free_port()))
    broker.start()
    try:
        settings = kafka_settings.model_copy(update={"kafka": KafkaSettings(bootstrap_servers=broker.bootstrap)})
        asyncio.run(create_topics(settings))
        records = list(stream()[:4000])
        asyncio.run(send(settings, records))
        first = WorkerProcess(settings, app_id, tmp_path / "first.log")
        try:
            first.wait_for(lambda s: applied(s) == len(records), 120, "every record applied")
            assert broker.stop() is True
            time.sleep(10)
            began = time.monotonic()
            code = first.stop(timeout_s=30)
            took = time.monotonic() - began
        finally:
            if first.proc.poll() is None:
                first.kill()
        log = first.log_path.read_text()
        assert took < 15, took
        assert code == 1 and "did not stop within 12 s of SIGTERM" in log
        attempts = len(log.splitlines()) + sum(int(n) for n in re.findall(r'"suppressed_repeats": (\d+)', log))
        assert attempts < 600, attempts  # ~1,250 client errors in 10 s before the reconnect backoff

        broker.start()
        second = WorkerProcess(settings, app_id, tmp_path / "second.log")
        try:
            state = second.wait_for(lambda s: applied(s) == len(records), 120, "every record applied after restart")
        finally:
            assert second.stop() == 0
    finally:
        broker.stop()
    assert counter(state, "events") == replay((v for v, _ in records), Engine(DetectionConfig())).events
