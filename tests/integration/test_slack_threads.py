"""One Slack thread per agent incident, end to end: alert state changes on the real `agent-alerts`
topic, the pipeline with its notification log in Kafka, the real slack-sdk against the local Slack
stand-in. A page whose `related` names an earlier page of the same agent is a broadcast reply in
that page's thread, and every resolve lands in the thread of its incident; unrelated agents get
pages of their own; an instance that takes the partition over after the first one was killed keeps
threading from the log it reads back from Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from alerts.config import AlertingConfig, RetryConfig
from alerts.runner import run_alerts_from_kafka
from monitor.contract.alert import Alert, Suspect
from monitor.kafka.topics import create_topics
from monitor.settings import Settings, SlackSettings
from tests.integration.test_alerts_ha import partition_of, produce
from tests.support.alert_factory import make_alert
from tests.support.alerts_process import AlertsProcess, alerts_env, wait_sharing, wait_until
from tests.support.fake_slack import FakeSlack

pytestmark = pytest.mark.integration
TOKEN = "xoxb-thread-test-token"
REPO = Path(__file__).resolve().parents[2]
AGENTS = ["support-bot", "lead-qualifier", "invoice-matcher", "triage", "faq-bot", "scheduler"]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack(token=TOKEN).start()
    yield server
    server.stop()


def model_change(agent: str, state: str = "firing", minutes: float = 0) -> Alert:
    return make_alert("model_version_changed", agent, state, minutes=minutes, labels={"model": "gpt-4o"})


def quality_drop(agent: str, related: list[str], state: str = "firing", minutes: float = 5) -> Alert:
    suspect = Suspect(
        dimension="resolved_model",
        value="gpt-4o-2024-11-20",
        share_of_change=1.0,
        window_share=1.0,
        baseline_share=0.0,
        text="all low-quality runs used gpt-4o-2024-11-20, first seen 09:00",
    )
    return make_alert("quality_drop", agent, state, minutes=minutes, related=related, suspects=[suspect])


def kind_of(message: dict[str, Any]) -> tuple[str, str]:
    payload = (message.get("metadata") or {}).get("event_payload") or {}
    return payload.get("fingerprint", "?"), payload.get("kind", "?")


def message_of(slack: FakeSlack, fingerprint: str, kind: str) -> dict[str, Any] | None:
    found = [m for m in slack.posted() if kind_of(m) == (fingerprint, kind)]
    assert len(found) <= 1, f"{kind} of {fingerprint} posted {len(found)} times"
    return found[0] if found else None


def updates_of(slack: FakeSlack) -> list[str]:
    return [call.body["ts"] for call in slack.calls("chat.update")]


class Running:
    """`agentmon alerts run` in this process (the runner as a task), stopped at the end."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_alerts_from_kafka(settings, group_id=group, stop=self.stop, tick_s=0.2))

    async def until(self, done: Callable[[], bool], what: str, slack: FakeSlack, timeout_s: float = 45) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and not done() and not self.task.done():
            await asyncio.sleep(0.1)
        assert done(), f"timed out waiting for {what}; posted: {[m['text'] for m in slack.posted()]}"

    async def close(self) -> None:
        self.stop.set()
        assert await asyncio.wait_for(self.task, 30) == 0


def in_process_settings(kafka_settings: Settings, slack: FakeSlack) -> Settings:
    return kafka_settings.model_copy(
        update={
            "slack": SlackSettings(bot_token=SecretStr(TOKEN), channel="#agent-alerts", api_url=slack.url),
            "alerting": AlertingConfig(
                group_wait_s=0,
                http_port=None,
                runbooks_dir=REPO / "runbooks",
                retry=RetryConfig(base_delay_s=0.05, max_delay_s=0.2, request_timeout_s=2),
            ),
        }
    )


async def test_a_quality_drop_after_a_model_change_is_a_broadcast_reply_and_each_resolve_finds_its_thread(
    kafka_settings: Settings, slack: FakeSlack
) -> None:
    settings = in_process_settings(kafka_settings, slack)
    await create_topics(settings)
    agent = "lead-qualifier"
    change = model_change(agent)
    drop = quality_drop(agent, [change.fingerprint])
    runner = Running(settings, "threads-a")
    try:
        await produce(settings, [change])
        await runner.until(lambda: message_of(slack, change.fingerprint, "firing") is not None, "the first page", slack)
        await produce(settings, [drop])
        await runner.until(lambda: message_of(slack, drop.fingerprint, "firing") is not None, "the second", slack)
        first = message_of(slack, change.fingerprint, "firing")
        second = message_of(slack, drop.fingerprint, "firing")
        assert first is not None and second is not None
        assert not first["thread_ts"]
        assert second["thread_ts"] == first["ts"] and second["reply_broadcast"] is True
        assert "(follows model_version_changed, fired 09:00 UTC)" in second["text"]
        assert "Suspects: all low-quality runs used gpt-4o-2024-11-20, first seen 09:00" in second["text"]
        assert [kind_of(m) for m in slack.top_level()] == [(change.fingerprint, "firing")]

        await produce(settings, [quality_drop(agent, [change.fingerprint], "resolved", minutes=40),
                                 model_change(agent, "resolved", minutes=60)])

        def both_resolved() -> bool:
            return (message_of(slack, drop.fingerprint, "resolved") is not None
                    and message_of(slack, change.fingerprint, "resolved") is not None
                    and len(slack.calls("chat.update")) == 2)

        await runner.until(both_resolved, "both resolves and both edits", slack)
    finally:
        await runner.close()
    drop_resolved = message_of(slack, drop.fingerprint, "resolved")
    change_resolved = message_of(slack, change.fingerprint, "resolved")
    assert drop_resolved is not None and change_resolved is not None
    assert drop_resolved["thread_ts"] == first["ts"]  # the incident's thread, not a reply to a reply
    assert change_resolved["thread_ts"] == first["ts"]
    assert sorted(updates_of(slack)) == sorted([first["ts"], second["ts"]])  # each edits its own message
    assert len(slack.top_level()) == 1


async def test_pages_of_two_unrelated_agents_are_two_top_level_messages(
    kafka_settings: Settings, slack: FakeSlack
) -> None:
    """Even a `related` naming another agent's page is never joined: threads are per agent."""
    settings = in_process_settings(kafka_settings, slack)
    await create_topics(settings)
    change = model_change("lead-qualifier")
    other = quality_drop("support-bot", [change.fingerprint])
    runner = Running(settings, "threads-b")
    try:
        await produce(settings, [change])
        await runner.until(lambda: len(slack.top_level()) == 1, "the first page", slack)
        await produce(settings, [other])
        await runner.until(lambda: len(slack.posted()) == 2, "the second page", slack)
        await asyncio.sleep(1.0)
    finally:
        await runner.close()
    assert [kind_of(m) for m in slack.top_level()] == [(change.fingerprint, "firing"), (other.fingerprint, "firing")]
    assert not any(m.get("reply_broadcast") for m in slack.posted())
    assert "Related (same agent): `model_version_changed`" in str(slack.top_level()[1]["blocks"])


def test_after_the_posting_instance_is_killed_the_survivor_threads_the_related_page_under_it(
    kafka_settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = kafka_settings
    asyncio.run(create_topics(settings))
    env = alerts_env(settings, slack.url, TOKEN)
    first = AlertsProcess(tmp_path / "first", env, "threads-ha")
    second = AlertsProcess(tmp_path / "second", env, "threads-ha")
    try:
        wait_sharing(first, second)
        victim, survivor = first, second
        agent = next(a for a in AGENTS if partition_of(a, 3) in victim.owned())
        change = model_change(agent)
        drop = quality_drop(agent, [change.fingerprint])
        asyncio.run(produce(settings, [change]))
        wait_until(lambda: len(slack.top_level()) == 1, 60, "the victim's page", victim.tail)
        time.sleep(1.0)  # its delivered row reaches the log topic (or the survivor finds the post)
        victim.kill()
        wait_until(lambda: survivor.owned() == {0, 1, 2}, 60, "the survivor to own every partition", survivor.tail)

        asyncio.run(produce(settings, [drop]))
        wait_until(lambda: message_of(slack, drop.fingerprint, "firing") is not None, 60, "the related page",
                   survivor.tail)
        asyncio.run(produce(settings, [quality_drop(agent, [change.fingerprint], "resolved", minutes=40)]))
        wait_until(lambda: message_of(slack, drop.fingerprint, "resolved") is not None
                   and len(slack.calls("chat.update")) == 1, 60, "its resolve", survivor.tail)
        time.sleep(1.0)  # a second top-level page or repeated post would arrive by now
    finally:
        first.kill()
        assert second.stop() == 0
    page = message_of(slack, change.fingerprint, "firing")
    reply = message_of(slack, drop.fingerprint, "firing")
    resolve = message_of(slack, drop.fingerprint, "resolved")
    assert page is not None and reply is not None and resolve is not None
    assert [kind_of(m) for m in slack.top_level()] == [(change.fingerprint, "firing")]
    assert reply["thread_ts"] == page["ts"] and reply["reply_broadcast"] is True
    assert resolve["thread_ts"] == page["ts"]
    assert updates_of(slack) == [reply["ts"]]
    threaded = [x for x in survivor.lines() if x.get("threads")]
    assert threaded and threaded[0]["threads"] == {"slack-default": change.fingerprint}, survivor.tail()
