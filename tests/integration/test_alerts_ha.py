"""`agentmon alerts run` as several instances in one consumer group, state in Kafka: an instance
SIGKILLed while a Slack post is in flight is taken over (by the other instance, or by a new one
with an empty working directory) and every firing and every resolve reaches Slack exactly once.

Real local broker, real `agentmon alerts run` subprocesses, the real slack-sdk against the local
Slack stand-in, which answers slowly so that a post is in flight when the instance dies: the post
lands, the instance never learns it did, and its successor must find it instead of posting again.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from monitor.contract.alert import Alert
from monitor.kafka.topics import create_topics
from monitor.settings import Settings
from tests.support.alert_factory import make_alert
from tests.support.alerts_process import AlertsProcess, alerts_env, wait_sharing, wait_until
from tests.support.fake_slack import FakeSlack

pytestmark = pytest.mark.integration
TOKEN = "xoxb-ha-test-token"
# partitions 2, 2, 0, 0, 1, 2 of three: every partition has alerts
AGENTS = ["support-bot", "lead-qualifier", "invoice-matcher", "triage", "faq-bot", "scheduler"]
SLOW_S = 3.0


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack(token=TOKEN).start()
    yield server
    server.stop()


def partition_of(agent: str, partitions: int) -> int:
    every = list(range(partitions))
    return int(DefaultPartitioner()(agent.encode(), every, every))


async def produce(settings: Settings, alerts: list[Alert]) -> None:
    producer = AIOKafkaProducer(**settings.kafka.client_options(), acks="all")
    await producer.start()
    try:
        for alert in alerts:  # keyed by agent id, as the worker writes them
            await producer.send_and_wait(settings.topics.alerts, alert.to_json(), key=(alert.agent_id or "*").encode())
    finally:
        await producer.stop()


def posts(slack: FakeSlack) -> Counter[tuple[str, str]]:
    """(fingerprint, kind) of every message Slack accepted."""
    out: Counter[tuple[str, str]] = Counter()
    for message in slack.posted():
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        out[(payload.get("fingerprint", "?"), payload.get("kind", "?"))] += 1
    return out


def posting(slack: FakeSlack, fingerprints: set[str]) -> bool:
    """A chat.postMessage for one of these fingerprints has reached Slack (it answers SLOW_S later)."""
    for call in slack.calls("chat.postMessage"):
        payload = (call.body.get("metadata") or {}).get("event_payload") or {}
        if payload.get("fingerprint") in fingerprints:
            return True
    return False


def scenario(settings: Settings) -> tuple[list[Alert], list[Alert]]:
    asyncio.run(create_topics(settings))
    firings = [make_alert("quality_drop", agent, minutes=i) for i, agent in enumerate(AGENTS)]
    resolves = [make_alert("quality_drop", agent, "resolved", minutes=40 + i) for i, agent in enumerate(AGENTS)]
    assert {partition_of(a, settings.topics.events_partitions) for a in AGENTS} == {0, 1, 2}
    return firings, resolves


def finish_and_count(settings: Settings, slack: FakeSlack, resolves: list[Alert], tail: Callable[[], str]) -> None:
    fingerprints = {a.fingerprint for a in resolves}
    wait_until(
        lambda: all(posts(slack)[(fp, "firing")] >= 1 for fp in fingerprints),
        120,
        "every firing posted after the takeover",
        tail,
    )
    asyncio.run(produce(settings, resolves))
    wait_until(
        lambda: all(posts(slack)[(fp, "resolved")] >= 1 for fp in fingerprints)
        and len(slack.calls("chat.update")) >= len(fingerprints),
        90,
        "every resolve posted",
        tail,
    )
    time.sleep(2 * SLOW_S)  # a repeated post would arrive by now
    counted = posts(slack)
    assert counted == Counter({(fp, kind): 1 for fp in fingerprints for kind in ("firing", "resolved")}), counted
    # every resolve is a reply in its own firing's thread
    for message in slack.top_level():
        fp = message["metadata"]["event_payload"]["fingerprint"]
        replies = [r for r in slack.replies(message["ts"]) if r["metadata"]["event_payload"]["fingerprint"] == fp]
        assert [r["metadata"]["event_payload"]["kind"] for r in replies] == ["resolved"]


def test_two_instances_one_killed_mid_delivery_the_other_delivers_everything_once(
    kafka_settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = kafka_settings
    firings, resolves = scenario(settings)
    env = alerts_env(settings, slack.url, TOKEN)
    first = AlertsProcess(tmp_path / "first", env, "ha-two")
    second = AlertsProcess(tmp_path / "second", env, "ha-two")
    try:
        wait_sharing(first, second)
        victim, survivor = first, second
        mine = {a.fingerprint for a in firings if partition_of(a.agent_id or "*", 3) in victim.owned()}
        slack.slow(len(firings), delay=SLOW_S)
        started = time.monotonic()
        asyncio.run(produce(settings, firings))
        wait_until(lambda: posting(slack, mine), 60, "a post of the victim's partition in flight", victim.tail)
        victim.kill()  # the post lands at Slack; the victim never hears back

        wait_until(lambda: survivor.owned() == {0, 1, 2}, 60, "the survivor to own every partition", survivor.tail)
        takeover_s = time.monotonic() - started
        finish_and_count(settings, slack, resolves, survivor.tail)
        assert slack.calls("conversations.history"), "the in-flight post was looked up, not re-sent"
        found = [x for x in survivor.lines() if "had arrived despite" in x.get("msg", "")]
        assert found, survivor.tail()
        print(f"\ntwo instances, SIGKILL mid-delivery: survivor owned all partitions {takeover_s:.1f} s after the"
              f" firings were produced; {len(firings)} firings + {len(resolves)} resolves, each posted once")
    finally:
        first.kill()
        assert second.stop() == 0


def test_a_fresh_instance_with_an_empty_directory_takes_over_after_sigkill(
    kafka_settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    settings = kafka_settings
    firings, resolves = scenario(settings)
    env = alerts_env(settings, slack.url, TOKEN)
    old = AlertsProcess(tmp_path / "old-host", env, "ha-fresh")
    fresh: AlertsProcess | None = None
    try:
        wait_until(lambda: old.owned() == {0, 1, 2}, 90, "the first instance to own every partition", old.tail)
        slack.slow(len(firings), delay=SLOW_S)
        asyncio.run(produce(settings, firings))
        wait_until(lambda: len(slack.calls("chat.postMessage")) >= 2, 60, "two posts, the second in flight", old.tail)
        old.kill()
        shutil.rmtree(old.workdir)  # the old host and its disk are gone

        fresh = AlertsProcess(tmp_path / "new-host", env, "ha-fresh")
        assert not any(fresh.workdir.iterdir())
        started = time.monotonic()
        wait_until(lambda: fresh is not None and fresh.owned() == {0, 1, 2}, 60, "the new instance", fresh.tail)
        takeover_s = time.monotonic() - started
        read = sum(x.get("log_records", 0) for x in fresh.lines() if x.get("decision") == "assigned")
        assert read > 0, "the new instance rebuilt its state from the topic"
        finish_and_count(settings, slack, resolves, fresh.tail)
        assert not any(fresh.workdir.iterdir()), "the pipeline wrote nothing to its working directory"
        print(f"\nempty disk after SIGKILL: new instance owned all partitions {takeover_s:.1f} s after start,"
              f" {read} log records read; every firing and resolve posted once")
    finally:
        old.kill()
        if fresh is not None:
            assert fresh.stop() == 0


def test_a_second_instance_joining_takes_partitions_over_without_a_repeat(
    kafka_settings: Settings, slack: FakeSlack, tmp_path: Path
) -> None:
    """Scaling up: the first instance hands partitions over on revocation (its log flushed first);
    the resolves of alerts it posted are posted by the newcomer, in the right threads, once."""
    settings = kafka_settings
    firings, resolves = scenario(settings)
    env = alerts_env(settings, slack.url, TOKEN)
    first = AlertsProcess(tmp_path / "first", env, "ha-scale")
    second: AlertsProcess | None = None
    try:
        wait_until(lambda: first.owned() == {0, 1, 2}, 90, "the first instance to own every partition", first.tail)
        asyncio.run(produce(settings, firings))
        wait_until(lambda: all(posts(slack)[(a.fingerprint, "firing")] == 1 for a in firings), 60, "every firing",
                   first.tail)
        second = AlertsProcess(tmp_path / "second", env, "ha-scale")
        wait_until(lambda: second is not None and bool(second.owned()) and first.owned() | second.owned() == {0, 1, 2}
                   and not first.owned() & second.owned(), 90, "the two to split the partitions",
                   lambda: first.tail() + (second.tail() if second else ""))
        finish_and_count(settings, slack, resolves, lambda: first.tail() + (second.tail() if second else ""))
        assert not slack.calls("conversations.history"), "a clean hand-over needs no lookup"
    finally:
        assert first.stop() == 0
        if second is not None:
            assert second.stop() == 0
