"""`agentmon alerts run` end to end: alert state changes on the real `agent-alerts` topic, through
the Kafka adapter and the pipeline, to the local Slack server; a replay posts nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from alerts.config import AlertingConfig, RetryConfig
from alerts.runner import run_alerts_from_kafka
from monitor.contract.alert import Alert
from monitor.kafka.table import ensure_table_topic
from monitor.kafka.topics import create_topics
from monitor.settings import Settings, SlackSettings
from tests.support.alert_factory import make_alert
from tests.support.fake_slack import FakeSlack

pytestmark = pytest.mark.integration
TOKEN = "xoxb-kafka-test-token"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack(token=TOKEN).start()
    yield server
    server.stop()


async def produce(settings: Settings, alerts: list[Alert]) -> None:
    producer = AIOKafkaProducer(**settings.kafka.client_options())
    await producer.start()
    try:
        for alert in alerts:  # keyed by agent id, as the worker writes them
            await producer.send_and_wait(settings.topics.alerts, alert.to_json(), key=(alert.agent_id or "*").encode())
    finally:
        await producer.stop()


async def run_until(settings: Settings, group: str, done: Callable[[], bool], timeout_s: float = 30) -> bool:
    stop = asyncio.Event()
    task = asyncio.create_task(run_alerts_from_kafka(settings, group_id=group, stop=stop, tick_s=0.2))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline and not done() and not task.done():
        await asyncio.sleep(0.1)
    reached = done()
    stop.set()
    assert await asyncio.wait_for(task, 30) == 0
    return reached


async def test_alerts_topic_to_slack_once_even_when_replayed(
    kafka_settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = kafka_settings.model_copy(
        update={
            "slack": SlackSettings(bot_token=SecretStr(TOKEN), channel="#agent-alerts", api_url=slack.url),
            "alerting": AlertingConfig(
                group_wait_s=0,
                http_port=0,  # /metrics on any free port: never collide with a pipeline on 6068
                notification_log_path=tmp_path / "nflog.sqlite3",
                runbooks_dir=REPO / "runbooks",
                retry=RetryConfig(base_delay_s=0.05, max_delay_s=0.2, request_timeout_s=2),
            ),
        }
    )
    await create_topics(settings)
    alerts = [
        make_alert("quality_drop", "support-bot", minutes=0),
        make_alert("agent_silent", "lead-qualifier", minutes=1),
        make_alert("quality_drop", "support-bot", "resolved", minutes=30),
    ]
    await produce(settings, alerts)

    def all_delivered() -> bool:
        return len(slack.top_level()) == 2 and len(slack.calls("chat.update")) == 1

    assert await run_until(settings, "alerts-a", all_delivered), [m["text"] for m in slack.posted()]
    quality = next(m for m in slack.top_level() if "quality_drop" in m["text"])
    assert len(slack.replies(quality["ts"])) == 1

    # a restarted worker in a new consumer group replays the whole topic: nothing is posted again
    posts_before = len(slack.calls("chat.postMessage"))
    await produce(settings, alerts[:1])  # and a duplicate arrives as well
    await run_until(settings, "alerts-b", lambda: False, timeout_s=3)
    assert len(slack.calls("chat.postMessage")) == posts_before


async def test_upgrade_from_the_sqlite_log_keeps_the_thread_of_an_open_alert(
    kafka_settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    """An alert posted by a version with the SQLite log resolves in its thread after the upgrade to
    the Kafka log: the file's rows are imported once into the (empty) partition of its agent."""
    config = AlertingConfig(
        group_wait_s=0,
        http_port=None,
        notification_log="sqlite",
        notification_log_path=tmp_path / "old-nflog.sqlite3",
        runbooks_dir=REPO / "runbooks",
        retry=RetryConfig(base_delay_s=0.05, max_delay_s=0.2, request_timeout_s=2),
    )
    settings = kafka_settings.model_copy(
        update={
            "slack": SlackSettings(bot_token=SecretStr(TOKEN), channel="#agent-alerts", api_url=slack.url),
            "alerting": config,
        }
    )
    await create_topics(settings)
    await produce(settings, [make_alert("quality_drop", "support-bot", minutes=0)])
    assert await run_until(settings, "upgrade", lambda: len(slack.top_level()) == 1)

    upgraded = settings.model_copy(update={"alerting": config.model_copy(update={"notification_log": "kafka"})})
    await produce(upgraded, [make_alert("quality_drop", "support-bot", "resolved", minutes=30)])
    firing = slack.top_level()[0]
    assert await run_until(upgraded, "upgrade", lambda: len(slack.replies(firing["ts"])) == 1)
    assert len(slack.calls("chat.postMessage")) == 2  # the firing once (before), its resolve once (after)
    assert slack.calls("chat.update")[-1].body["ts"] == firing["ts"]


async def test_a_log_topic_whose_partitions_do_not_match_the_alerts_is_a_clear_start_up_error(
    kafka_settings: Settings, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = kafka_settings.model_copy(
        update={
            "slack": SlackSettings(bot_token=SecretStr(TOKEN), channel="#agent-alerts", api_url=slack.url),
            "alerting": AlertingConfig(http_port=None, runbooks_dir=REPO / "runbooks"),
        }
    )
    await create_topics(settings.model_copy(update={"topics": settings.topics.model_copy(
        update={"notifications": settings.topics.notifications + "-unused"})}))
    error = await ensure_table_topic(settings, settings.topics.notifications, timeout_s=30)  # one partition
    assert error is None
    assert await run_alerts_from_kafka(settings, stop=asyncio.Event()) == 2
    err = capsys.readouterr().err
    assert f"topic '{settings.topics.notifications}' has 1 partitions but" in err and "has 3" in err
