"""The topics agentmon uses, created idempotently with their retention settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from monitor.kafka.table import COMPACTED
from monitor.settings import Settings

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    purpose: str


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    # Alert and rollup consumers key by agent / fingerprint too, so they share the events'
    # partition count: per-key order then holds end to end.
    n = t.events_partitions
    return [
        TopicSpec(t.events, n, {"retention.ms": str(t.events_retention_hours * HOUR_MS),
                                "max.message.bytes": str(1024 * 1024)}, "agent execution events (key agent_id)"),
        TopicSpec(t.dlq, 1, {"retention.ms": str(t.dlq_retention_hours * HOUR_MS),
                             "max.message.bytes": str(2 * 1024 * 1024)},
                  "events that broke the contract, with reason and source offset"),
        TopicSpec(t.alerts, n, {"retention.ms": str(t.alerts_retention_hours * HOUR_MS)},
                  "alert state changes (key agent_id, or * for pipeline-wide rules)"),
        # Compacted: the alert pipelines' notification log, partition p for agent-alerts partition p.
        TopicSpec(t.notifications, n, dict(COMPACTED),
                  "alert pipeline notification log (key table/row, partition = agent-alerts partition)"),
        TopicSpec(t.rollups, n, {"retention.ms": str(t.rollups_retention_hours * HOUR_MS)},
                  "hourly per-agent rollups for reports"),
        # Compacted: the newest record per silence id is the silence's state; every worker reads all.
        TopicSpec(t.silences, 1, dict(COMPACTED),
                  "alert silences (key silence id)"),
        # Compacted too: the newest freeze/unfreeze command per agent (or `*`) is in force.
        TopicSpec(t.baseline_control, 1, dict(COMPACTED),
                  "baseline freeze commands (key agent id or *)"),
        # Compacted: what the team records for the weekly review (monitor/kafka/team_records.py).
        TopicSpec(settings.report.notes_topic, 1, dict(COMPACTED), "operators' notes (key note id)"),
        TopicSpec(settings.report.records_topic, 1, dict(COMPACTED),
                  "review verdicts and regression results, kept past the events' retention (key event id)"),
    ]


@dataclass(frozen=True)
class TopicResult:
    name: str
    created: bool
    partitions: int
    differs: tuple[str, ...] = ()  # how an existing topic differs from the settings


async def create_topics(settings: Settings, *, timeout_ms: int = 30_000) -> list[TopicResult]:
    """Create every missing topic; existing ones are left as they are. Safe to run again."""
    specs = topic_specs(settings)
    admin = AIOKafkaAdminClient(**settings.kafka.client_options(), request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: set[str] = set()
        if missing:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, settings.topics.replication_factor, topic_configs=s.config)
                 for s in missing],
                timeout_ms=timeout_ms,
            )
            for name, code, message in response.topic_errors:
                if code == 0:
                    created.add(name)
                elif code != TopicAlreadyExistsError.errno:  # lost a race with another creator: fine
                    raise TopicError(f"could not create topic {name!r}: error {code}: {message}")
        partitions = await _partition_counts(admin, [s.name for s in specs])
        configs = await _configs(admin, [s.name for s in specs if s.name not in created])
    finally:
        await admin.close()
    return [TopicResult(s.name, s.name in created, partitions.get(s.name, s.partitions),
                        () if s.name in created else _differences(s, partitions.get(s.name), configs.get(s.name, {})))
            for s in specs]


def _differences(spec: TopicSpec, partitions: int | None, config: dict[str, str]) -> tuple[str, ...]:
    out = []
    if partitions is not None and partitions != spec.partitions:
        out.append(f"{partitions} partitions, the settings say {spec.partitions}")
    for key, wanted in spec.config.items():
        have = config.get(key)
        if have is not None and have != wanted:
            out.append(f"{key}={have}, the settings say {wanted}")
    return tuple(out)


async def _configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's configuration as the broker reports it (empty where it cannot be read)."""
    if not names:
        return {}
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    except KafkaError:
        return {}
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            _code, _message, _type, name, entries = resource[:5]
            out[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
    return out


async def topic_names(settings: Settings, *, timeout_s: float = 15.0) -> set[str]:
    """The topics Kafka has; `KafkaConnectionError` or `KafkaTimeoutError` (after `timeout_s`)
    when it cannot be reached."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_options(), request_timeout_ms=int(timeout_s * 1000))

    async def listed() -> set[str]:
        await admin.start()
        return set(await admin.list_topics())

    try:
        return await asyncio.wait_for(listed(), timeout_s)
    except TimeoutError:
        raise KafkaTimeoutError(f"no answer within {timeout_s:g} s") from None
    finally:
        await admin.close()


async def events_topic_exists(settings: Settings, *, timeout_s: float = 15.0) -> bool:
    return settings.topics.events in await topic_names(settings, timeout_s=timeout_s)


async def require_events_topic(settings: Settings, *, timeout_s: float = 15.0) -> None:
    """Raise `TopicError` when the events topic does not exist (sending or consuming would create
    it with the broker's defaults), `KafkaTimeoutError` when Kafka does not answer in `timeout_s`."""
    if not await events_topic_exists(settings, timeout_s=timeout_s):
        raise TopicError(f"topic {settings.topics.events!r} does not exist: run `agentmon topics create` first")


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(names)
    return {d["topic"]: len(d["partitions"]) for d in described}


class TopicError(RuntimeError):
    pass
