"""Operators' notes and the review log in compacted topics (the models are in monitor/report/records.py).

Notes: a compacted topic (`settings.report.notes_topic`, default `agent-notes`):
what changed that the events cannot show ("knowledge base: pricing pages updated"). The weekly
review puts them in each agent's changes timeline.

Key = note id, value = the note as JSON; the newest record per key is the note (as with the
silences, alerts/silence_kafka.py), so a note is corrected by writing its id again and withdrawn
with a tombstone (value null). Readers load the topic from the beginning to its end offsets
(`monitor/kafka/table.py`).

The review log (`settings.report.records_topic`, default `agent-review-records`): a durable copy
of the verdicts and regression results that `agentmon review mark` / `regression record` send to
the events topic, key = event id. The events topic keeps a week (`topics.events_retention_hours`),
too short for a review that compares with the week before; compaction keeps every key, so this
topic keeps them all (it grows only by what the team records).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from monitor.kafka.table import ReadTimeout, ensure_table_topic, read_to_end, topic_partitions
from monitor.settings import Settings


class TeamRecordsError(RuntimeError):
    """A team-records topic (notes, review log) cannot be read or written."""


def notes_topic(settings: Settings) -> str:
    return settings.report.notes_topic


def records_topic(settings: Settings) -> str:
    return settings.report.records_topic


async def put_table_records(settings: Settings, topic: str, records: Sequence[tuple[str, bytes]], *,
                            timeout_s: float = 15.0) -> None:
    """Write (key, value) records to the compacted `topic`, created if missing, and wait for them."""
    error = await ensure_table_topic(settings, topic, timeout_s=timeout_s)
    if error is not None:
        raise TeamRecordsError(error)
    producer = AIOKafkaProducer(**settings.kafka.client_options(), acks="all", enable_idempotence=True,
                                request_timeout_ms=int(timeout_s * 1000))
    try:
        await producer.start()
        sent = [await producer.send(topic, key=key.encode(), value=value) for key, value in records]
        await asyncio.wait_for(asyncio.gather(*sent), timeout_s)
    except (KafkaError, TimeoutError) as exc:
        raise TeamRecordsError(f"could not write to {topic!r} at {settings.kafka.bootstrap_servers}: {exc}") from exc
    finally:
        await producer.stop()


async def read_table(settings: Settings, topic: str, *, timeout_s: float = 15.0) -> dict[str, bytes]:
    """The newest value per key of the compacted `topic` (tombstones remove their key); a topic
    that does not exist yet is empty. Records without a key are left out."""
    table: dict[str, bytes] = {}

    def apply(record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            return
        key = record.key.decode("utf-8", "replace")
        if record.value is None:
            table.pop(key, None)
        else:
            table[key] = record.value

    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
        if await topic_partitions(consumer, topic):
            await read_to_end(consumer, topic, apply, timeout_s=timeout_s)
    except ReadTimeout as exc:
        raise TeamRecordsError(f"timed out reading {topic!r}: {exc}") from None
    except KafkaError as exc:
        raise TeamRecordsError(f"could not read {topic!r} at {settings.kafka.bootstrap_servers}: {exc}") from exc
    finally:
        await consumer.stop()
    return table
