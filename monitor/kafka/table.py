"""Reading a topic up to its end, as a table: the silences, the baseline commands (compacted
topics whose newest record per key is the state) and the report's time range of rollups and alerts.

`read_to_end` assigns the partitions to a plain consumer (no group, so every reader sees every
partition), reads from the beginning (or from given offsets) and stops each partition at the end
offset taken when the read began: records produced meanwhile are left for a follower, which can
go on from there with the same consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord

from monitor.settings import Settings

#: a table topic keeps the newest record per key, from the first moment on
COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}

POLL_S = 0.5  # longest single fetch wait: partitions whose position reaches the end without a record are seen by then


async def ensure_table_topic(
    settings: Settings, topic: str, *, timeout_s: float, partitions: int = 1
) -> str | None:
    """Create the compacted `topic` (one partition unless told) unless it exists; None when it is
    there, else the broker's error for the caller to raise as its own."""
    admin = AIOKafkaAdminClient(**settings.kafka.client_options(), request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return None
        response = await admin.create_topics(
            [NewTopic(topic, partitions, settings.topics.replication_factor, topic_configs=COMPACTED)])
        for name, code, message in response.topic_errors:
            if code not in (0, TopicAlreadyExistsError.errno):
                return f"could not create topic {name!r}: error {code}: {message}"
        return None
    finally:
        await admin.close()


class ReadTimeout(TimeoutError):
    """No record arrived for the read's `timeout_s` while partitions were still short of their end."""


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions from fresh cluster metadata (empty when the broker does not know it).
    Asked of the cluster, not of the consumer's cached metadata, so a topic created a moment ago is seen."""
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


async def read_to_end(
    consumer: AIOKafkaConsumer,
    topic: str,
    on_record: Callable[[ConsumerRecord[Any, Any]], bool | None],
    *,
    timeout_s: float,
    start: Mapping[int, int] | None = None,
) -> list[TopicPartition]:
    """Give `on_record` each record of `topic` below the end offsets taken now, in offset order per
    partition, and return the partitions read (assigned to the started `consumer`).

    `start`: the partitions to read and the offset to start each at; by default every partition of
    the topic from its beginning (partition 0 if the metadata does not show the topic yet: the
    compacted topics read this way have one). `on_record` returning True ends its partition early.
    Each partition's position is left just after the last record given to `on_record` (or at its
    end). Raises `ReadTimeout` when no record arrives for `timeout_s` while partitions remain."""
    if start is None:
        tps = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic) or {0})]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
    else:
        tps = [TopicPartition(topic, p) for p in sorted(start)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
    end = await consumer.end_offsets(tps)
    remaining = {tp for tp in tps if start is None or start[tp.partition] < end[tp]}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while remaining:
        for tp in list(remaining):
            if await consumer.position(tp) >= end[tp]:
                remaining.discard(tp)
        if not remaining:
            break
        left = deadline - loop.time()
        if left <= 0:
            raise ReadTimeout(f"topic {topic}: no record within {timeout_s:g} s although {len(remaining)} "
                              "partition(s) were not read to their end")
        batch = await consumer.getmany(*remaining, timeout_ms=int(min(left, POLL_S) * 1000))
        if batch:
            deadline = loop.time() + timeout_s
        for tp, records in batch.items():
            for record in records:
                if record.offset >= end[tp] or on_record(record):
                    remaining.discard(tp)
                    after = record.offset if record.offset >= end[tp] else record.offset + 1
                    if after <= records[-1].offset:
                        consumer.seek(tp, after)  # fetched beyond what was given: a follower reads it again
                    break
    return tps
