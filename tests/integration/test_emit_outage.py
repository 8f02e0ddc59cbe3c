"""`agentmon emit` and the SDK producer through a broker outage, on a real broker of their own that
the test stops and starts (the session's shared broker stays up): a 30 s stop is ridden out with
every line in the topic exactly once; a longer one ends in a summary whose `--from-line` resumes
with nothing lost, and the only repeats are the ones the summary announced; Ctrl-C says the same;
the SDK producer delivers again after a stop longer than its request timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from monitor.contract.events import decode_event, encode_event
from monitor.kafka.producer import AgentEventProducer
from monitor.kafka.topics import create_topics
from monitor.local.broker import LocalBroker, free_port
from monitor.sdk import execution
from monitor.settings import KafkaSettings, LocalBrokerSettings, ProducerSettings, Settings, TopicSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RATE = 1_500  # lines per second, as in the outage the issue reports


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(LocalBrokerSettings(data_dir=tmp_path / "kafka", port=free_port(),
                                             controller_port=free_port()))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def settings_for(broker: LocalBroker) -> Settings:
    return Settings(kafka=KafkaSettings(bootstrap_servers=broker.bootstrap),
                    topics=TopicSettings(events_partitions=3))


def event_lines(count: int) -> list[bytes]:
    agents = [f"agent-{i}" for i in range(8)]
    return [encode_event(execution(agents[n % 8], execution_id=f"x-{n}", task_id=f"t-{n}", status="completed",
                                   steps=n % 5)) for n in range(count)]


def start_emit(settings: Settings, *args: str, topic: str = "agent-events") -> subprocess.Popen[bytes]:
    env = {**os.environ, "AGENTMON_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "AGENTMON_TOPICS__EVENTS_PARTITIONS": "3", "AGENTMON_TOPICS__EVENTS": topic}
    env.pop("AGENTMON_CONFIG", None)
    # SIGINT as a terminal gives it: a test run started in the background (nohup, `&`) inherits
    # SIGINT ignored, and Python then installs no Ctrl-C handler in the child
    return subprocess.Popen([sys.executable, "-m", "monitor.cli.main", "emit", *args], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def feed(proc: subprocess.Popen[bytes], lines: list[bytes], written: list[int],
         hold_open: bool = False) -> threading.Thread:
    """Write the lines at RATE per second (blocking when emit stops reading), then close stdin.
    `hold_open`: keep stdin open until emit exits, so that it cannot end on its own first."""

    def run() -> None:
        assert proc.stdin is not None
        started = time.monotonic()
        try:
            for n, line in enumerate(lines):
                proc.stdin.write(line + b"\n")
                written[0] = n + 1
                if n % 150 == 0:
                    proc.stdin.flush()
                    ahead = n / RATE - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            proc.stdin.flush()
            if hold_open:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=170)
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # emit gave up and stopped reading

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def outputs(proc: subprocess.Popen[bytes], feeder: threading.Thread) -> tuple[bytes, bytes]:
    """emit's stdout and stderr once it ends; the feeder owns stdin (and closes it, or meets a
    broken pipe when emit gives up), so communicate() must not touch it."""
    feeder.join(timeout=180)
    assert not feeder.is_alive(), "emit stopped reading its input without ending"
    proc.stdin = None
    return proc.communicate(timeout=120)


def event_ids_in_topic(settings: Settings) -> Counter[str]:
    async def read() -> Counter[str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = [TopicPartition(settings.topics.events, p) for p in range(settings.topics.events_partitions)]
            consumer.assign(parts)
            end = await consumer.end_offsets(parts)
            ids: Counter[str] = Counter()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                behind = [tp for tp in parts if await consumer.position(tp) < end[tp]]
                if not behind:
                    break
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    ids.update(decode_event(r.value).event_id for r in records)
            return ids
        finally:
            await consumer.stop()

    return asyncio.run(read())


def wait_until_read(written: list[int], lines: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while written[0] < lines and time.monotonic() < deadline:
        time.sleep(0.1)
    assert written[0] >= lines, f"emit read only {written[0]} lines"


def test_emit_rides_out_a_30_s_broker_stop_and_sends_every_line_once(own_broker: LocalBroker) -> None:
    settings = settings_for(own_broker)
    asyncio.run(create_topics(settings))
    lines = event_lines(RATE * 12)
    proc = start_emit(settings, "-")
    written = [0]
    feeder = feed(proc, lines, written)
    try:
        wait_until_read(written, RATE * 3)
        own_broker.stop()
        stopped = time.monotonic()
        time.sleep(30)
        own_broker.start()
        restarted_after = time.monotonic() - stopped
        out, err = outputs(proc, feeder)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    feeder.join(timeout=10)
    stderr = err.decode().strip().splitlines()
    assert proc.returncode == 0, (out, err)
    assert f"sent {len(lines)} events from {len(lines)} lines: 0 invalid" in out.decode()
    assert "every event was delivered" in out.decode()
    # thinned: one line when the wait starts and one per 10 s, not one per event
    assert 2 <= len(stderr) <= restarted_after / 10 + 3, stderr
    assert all(line.startswith("agentmon emit: ") for line in stderr), stderr
    assert any("Kafka answers again" in line for line in stderr), stderr
    ids = event_ids_in_topic(settings)
    assert set(ids) == {decode_event(line).event_id for line in lines}
    assert max(ids.values()) == 1


def test_emit_gives_up_with_a_summary_and_from_line_resumes_with_nothing_lost(
    own_broker: LocalBroker, tmp_path: Path,
) -> None:
    settings = settings_for(own_broker)
    asyncio.run(create_topics(settings))
    lines = event_lines(RATE * 8)
    proc = start_emit(settings, "-", "--give-up-after", "8")
    written = [0]
    feeder = feed(proc, lines, written)
    try:
        wait_until_read(written, RATE * 3)
        own_broker.stop()
        out, err = outputs(proc, feeder)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    feeder.join(timeout=10)
    summary = out.decode()
    assert proc.returncode == 1, (summary, err)
    assert "Traceback" not in err.decode() and "Unclosed" not in err.decode(), err
    found = re.search(r"Last line sent: (\d+) .*Resume with: agentmon emit - --from-line (\d+)", summary)
    assert found, summary
    last, resume = int(found[1]), int(found[2])
    assert resume == last + 1 and RATE * 3 <= last < len(lines)
    repeats = re.search(r"(\d+) events after line \d+ reached Kafka too", summary)
    announced = int(repeats[1]) if repeats else 0

    own_broker.start()
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    resumed = start_emit(settings, str(path), "--from-line", str(resume))
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, (out, err)
    assert f"sent {len(lines) - last} events from {len(lines) - last} lines (from line {resume})" in out.decode()

    ids = event_ids_in_topic(settings)
    assert set(ids) == {decode_event(line).event_id for line in lines}  # nothing lost
    assert sum(ids.values()) - len(ids) == announced  # the only repeats are the ones announced


def test_ctrl_c_during_emit_prints_where_to_resume_and_the_resume_completes_the_topic(
    kafka_settings: Settings, tmp_path: Path,
) -> None:
    settings = kafka_settings.model_copy(update={"topics": kafka_settings.topics.model_copy(
        update={"events_partitions": 3})})
    asyncio.run(create_topics(settings))
    lines = event_lines(RATE * 6)
    proc = start_emit(settings, "-", topic=settings.topics.events)
    written = [0]
    feeder = feed(proc, lines, written, hold_open=True)
    try:
        wait_until_read(written, RATE * 2)
        proc.send_signal(signal.SIGINT)
        out, err = outputs(proc, feeder)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = out.decode()
    assert proc.returncode == 130, (summary, err)
    assert "Traceback" not in err.decode(), err
    found = re.search(r"stopped: interrupted.*Last line sent: (\d+) .*--from-line (\d+)", summary)
    assert found, summary
    last, resume = int(found[1]), int(found[2])
    assert resume == last + 1 and last < len(lines)
    repeats = re.search(r"(\d+) events after line \d+ reached Kafka too", summary)
    announced = int(repeats[1]) if repeats else 0

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    resumed = start_emit(settings, str(path), "--from-line", str(resume), topic=settings.topics.events)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, (out, err)
    ids = event_ids_in_topic(settings)
    assert set(ids) == {decode_event(line).event_id for line in lines}
    assert sum(ids.values()) - len(ids) == announced


def test_the_sdk_producer_delivers_again_after_an_outage_longer_than_its_request_timeout(
    own_broker: LocalBroker,
) -> None:
    """Agent code sending through a broker stop longer than `request_timeout_s`: the batches that
    waited past it fail, and used to leave the idempotent producer's sequence broken for good
    (every later event refused with OutOfOrderSequenceNumber until the agent restarted)."""
    settings = settings_for(own_broker).model_copy(update={"producer": ProducerSettings(
        request_timeout_s=3.0, block_timeout_s=60.0)})
    asyncio.run(create_topics(settings))

    async def run() -> tuple[list[tuple[float, asyncio.Future[Any]]], float, int]:
        sent: list[tuple[float, asyncio.Future[Any]]] = []
        back_at = float("inf")

        async def outage() -> None:
            nonlocal back_at
            await asyncio.sleep(2)
            await asyncio.to_thread(own_broker.stop)
            await asyncio.sleep(8)
            await asyncio.to_thread(own_broker.start)
            back_at = time.monotonic()

        async with AgentEventProducer(settings) as producer:
            broker_stop = asyncio.ensure_future(outage())
            n = 0
            while not broker_stop.done() or time.monotonic() < back_at + 8:
                event = execution(f"agent-{n % 8}", execution_id=f"x-{n}", task_id=f"t-{n}", status="completed")
                delivery = await producer.send(event)
                assert delivery is not None
                sent.append((time.monotonic(), delivery))
                n += 1
                await asyncio.sleep(0.002)
            await broker_stop
            await asyncio.wait([d for _, d in sent], timeout=60)
            return sent, back_at, producer.stats.restarts

    sent, back_at, restarts = asyncio.run(run())
    settled_again = [d for at, d in sent if at > back_at + 3]  # the first seconds back may still refuse some
    assert len(settled_again) > 500
    refused = [repr(d.exception()) for d in settled_again if not d.done() or d.exception() is not None]
    assert not refused, (len(refused), refused[:2], f"producer restarts: {restarts}")
