"""The local Kafka: start, idempotent start, stop, restart with data kept, clear errors."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from monitor.local.broker import BrokerError, LocalBroker, free_port
from monitor.settings import LocalBrokerSettings

pytestmark = pytest.mark.integration


async def produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000)
        return [m.value for msgs in batches.values() for m in msgs if m.value is not None]
    finally:
        await consumer.stop()


def test_broker_starts_is_idempotent_stops_and_restarts_with_its_data(tmp_path: Path) -> None:
    broker = LocalBroker(LocalBrokerSettings(data_dir=tmp_path / "k", port=free_port(),
                                             controller_port=free_port()))
    try:
        first = broker.start()
        assert first.running and first.answering
        again = broker.start()
        assert again.pid == first.pid  # a second start is a no-op, not a second JVM

        asyncio.run(produce(broker.bootstrap, "kept", b"before-restart"))
        assert broker.stop() is True
        assert broker.status().running is False
        assert broker.stop() is False

        restarted = broker.start()
        assert restarted.answering and restarted.pid != first.pid
        assert asyncio.run(read_all(broker.bootstrap, "kept")) == [b"before-restart"]
    finally:
        broker.stop()
    assert broker.status().running is False


def test_start_on_a_taken_port_says_which_port(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        broker = LocalBroker(LocalBrokerSettings(data_dir=tmp_path / "k", port=taken,
                                                 controller_port=free_port()))
        with pytest.raises(BrokerError, match=f"port 127.0.0.1:{taken} is taken"):
            broker.start()
    assert broker.status().running is False


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    broker = LocalBroker(LocalBrokerSettings(data_dir=tmp_path / "k", port=free_port(),
                                             controller_port=free_port()))
    with pytest.raises(BrokerError, match="Java is not on PATH"):
        broker.start()


def test_missing_maven_is_a_clear_error_when_jars_are_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kafka_dir = tmp_path / "kafka"
    kafka_dir.mkdir()
    (kafka_dir / "pom.xml").write_text("<project/>")
    monkeypatch.setenv("PATH", str(tmp_path))
    broker = LocalBroker(LocalBrokerSettings(kafka_dir=kafka_dir, data_dir=tmp_path / "k",
                                             port=free_port(), controller_port=free_port()))
    with pytest.raises(BrokerError, match="Maven"):
        broker.start()
