"""Shared fixtures. Integration tests run against a real Kafka broker that this session starts
(temporary data folder, free ports) and stops by PID at the end. If it cannot start, the tests
that need it fail: they never skip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from monitor.broker import BrokerError, LocalBroker, free_port
from monitor.settings import KafkaSettings, LocalBrokerSettings, Settings, TopicSettings


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A throwaway single-node KRaft broker; `.bootstrap` is its "host:port"."""
    broker = LocalBroker(
        LocalBrokerSettings(
            data_dir=tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port()
        )
    )
    try:
        broker.start()
    except BrokerError as exc:
        pytest.fail(f"the local Kafka broker could not start: {exc}", pytrace=False)
    yield broker
    broker.stop()


@pytest.fixture
def kafka_settings(kafka_broker: LocalBroker) -> Settings:
    """Settings pointing at the test broker, with topic names unique to this test."""
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_broker.bootstrap),
        topics=TopicSettings(
            events=f"agent-events-{suffix}",
            dlq=f"agent-events-dlq-{suffix}",
            alerts=f"agent-alerts-{suffix}",
            rollups=f"agent-rollups-{suffix}",
            silences=f"agent-silences-{suffix}",
            events_partitions=3,
        ),
    )
