"""Shared fixtures. Integration tests run against a real Kafka broker that this session starts
(temporary data folder, free ports) and stops by PID at the end. If it cannot start, the tests
that need it fail: they never skip."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.kafka.topics import create_topics
from monitor.local.broker import BrokerError, LocalBroker, free_port
from monitor.report.config import ReportSettings
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
            notifications=f"agentmon-alerts-notifications-{suffix}",
            baseline_control=f"agent-baseline-control-{suffix}",
            events_partitions=3,
        ),
        report=ReportSettings(notes_topic=f"agent-notes-{suffix}", records_topic=f"agent-review-records-{suffix}"),
    )


@pytest.fixture
def topics(kafka_settings: Settings) -> Settings:
    """`kafka_settings` with agentmon's topics created."""
    asyncio.run(create_topics(kafka_settings))
    return kafka_settings


@pytest.fixture
def app_id() -> str:
    """A consumer group of its own for the test's workers."""
    return f"agentmon-test-{uuid.uuid4().hex[:8]}"


# ---- CI guard: integration tests must run there, never skip --------------------------------

_integration_outcomes = {"passed": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "integration" not in report.keywords:
        return
    if report.skipped:
        _integration_outcomes["skipped"] += 1
    elif report.when == "call" and report.passed:
        _integration_outcomes["passed"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") != "true" or session.config.option.collectonly:
        return
    if _integration_outcomes["skipped"] or not _integration_outcomes["passed"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if os.environ.get("CI") != "true":
        return
    passed, skipped = _integration_outcomes["passed"], _integration_outcomes["skipped"]
    terminalreporter.write_line(f"integration tests (tests/integration): {passed} passed, {skipped} skipped")
    if skipped or not passed:
        terminalreporter.write_line("FAILED: under CI integration tests must run (none may skip)", red=True)
