"""The notification log in Kafka: a compacted topic (`Settings.topics.notifications`, default
`agentmon-alerts-notifications`) with as many partitions as `agent-alerts`, partition p holding
the log of the alerts of `agent-alerts` partition p. So any number of `agentmon alerts run`
instances share the work by consumer-group assignment, and an instance on a new host with an empty
disk takes a partition over from the log alone.

Records are the committed row changes of `SqliteNotificationLog` (key `<table>/<rowid>`, value the
row as JSON, null when the row was deleted): the newest record per key is the row, which is what
compaction keeps. Writes are buffered and sent in order (idempotent producer, acks=all); the runner
waits for them before it commits the offsets of the alerts they cover, and `sync()` waits before a
send goes out (the "in flight" mark).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from alerts.errors import NotificationLogError
from alerts.notification_log import SqliteNotificationLog
from monitor.contract.alert import decode_alert
from monitor.kafka.table import ReadTimeout, ensure_table_topic, read_to_end, topic_partitions
from monitor.settings import Settings

log = logging.getLogger("agentmon.alerts.notification_kafka")
Record = tuple[str, bytes | None]


class PartitionChangelog:
    """The changelog of one partition's notification log. `append` may be called from any thread;
    `flush` runs on the event loop; `sync` blocks a worker thread until everything is acked."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        partition: int,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.timeout_s = timeout_s
        self._loop = loop
        self._buffer: list[Record] = []
        self._lock = threading.Lock()
        self._flushing = asyncio.Lock()
        self.written = 0

    def append(self, records: Sequence[Record]) -> None:
        with self._lock:
            self._buffer.extend(records)

    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    async def flush(self) -> int:
        """Send what is buffered and wait for the broker's acks; on failure the records stay buffered
        (in order, ahead of newer ones) and NotificationLogError is raised."""
        async with self._flushing:
            with self._lock:
                records, self._buffer = self._buffer, []
            if not records:
                return 0
            try:
                futures = [
                    await self.producer.send(self.topic, value, key=key.encode(), partition=self.partition)
                    for key, value in records
                ]
                await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
            except (KafkaError, TimeoutError) as exc:
                with self._lock:
                    self._buffer[:0] = records
                raise NotificationLogError(
                    f"cannot write the notification log to {self.topic}/{self.partition}: {exc!r}"
                ) from exc
            self.written += len(records)
            return len(records)

    def sync(self) -> None:
        if self.pending() == 0:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise NotificationLogError("PartitionChangelog.sync() must not be called on the event loop's thread")
        future = asyncio.run_coroutine_threadsafe(self.flush(), self._loop)
        try:
            future.result(self.timeout_s + 5)
        except TimeoutError as exc:
            future.cancel()
            raise NotificationLogError(
                f"writing the notification log to {self.topic}/{self.partition} timed out"
            ) from exc


async def ensure_notifications_topic(settings: Settings, partitions: int, *, timeout_s: float = 30.0) -> None:
    """The compacted log topic with `partitions` partitions (those of `agent-alerts`); an existing one
    with another count cannot line up with the alerts' partitions: a clear error."""
    topic = settings.topics.notifications
    error = await ensure_table_topic(settings, topic, timeout_s=timeout_s, partitions=partitions)
    if error is not None:
        raise NotificationLogError(error)
    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        have = len(await topic_partitions(consumer, topic))
    finally:
        await consumer.stop()
    if have != partitions:
        raise NotificationLogError(
            f"topic {topic!r} has {have} partitions but {settings.topics.alerts!r} has {partitions}: partition p of"
            f" the log belongs to partition p of the alerts. Add partitions to {topic!r} with kafka-topics.sh --alter"
            " (no records move: a partition that is new there starts empty) or delete it while no pipeline runs"
        )


async def alerts_partitions(settings: Settings) -> int:
    """How many partitions `agent-alerts` has (the settings' count when it does not exist yet)."""
    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        found = await topic_partitions(consumer, settings.topics.alerts)
    finally:
        await consumer.stop()
    return len(found) or settings.topics.events_partitions


async def read_partition(
    consumer: AIOKafkaConsumer, topic: str, partition: int, *, timeout_s: float = 30.0
) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of one partition of the log, from its beginning to its end now, in order."""
    records: list[tuple[bytes | None, bytes | None]] = []

    def keep(record: ConsumerRecord[bytes, bytes]) -> None:
        records.append((record.key, record.value))

    try:
        await read_to_end(consumer, topic, keep, timeout_s=timeout_s, start={partition: 0})
    except ReadTimeout as exc:
        raise NotificationLogError(f"timed out reading the notification log {topic}/{partition}: {exc}") from None
    return records


def legacy_records(path: Path, partition: int, partitions: int) -> list[Record]:
    """The rows of an older version's SQLite log (one file for all partitions) that belong to
    `partition`: those of alerts whose key (agent id, `*` pipeline-wide) lands there. The file's
    settings (meta: the digest slot, learned channel ids) go to every partition."""
    old = SqliteNotificationLog(path)
    try:
        rows = old.dump()
    finally:
        old.close()
    partitioner = DefaultPartitioner()
    every = list(range(partitions))

    def owns(agent_id: str | None) -> bool:
        key = (agent_id if agent_id is not None else "*").encode()
        return bool(partitioner(key, every, every) == partition)

    agent_of: dict[str, str | None] = {}
    for key, value in rows:
        if key.startswith(("outbox/", "active/", "digest/")):
            row = json.loads(value)
            alert = decode_alert(row["alert_json"])
            agent_of[row["fingerprint"]] = alert.agent_id
    out: list[Record] = []
    for key, value in rows:
        if key.startswith("meta/"):
            out.append((key, value))
            continue
        fingerprint = json.loads(value)["fingerprint"]
        if fingerprint.startswith("digest/"):
            continue  # a sealed digest of the old log: delivered or not, it is not an alert's state
        agent = agent_of[fingerprint] if fingerprint in agent_of else _agent_from_fingerprint(fingerprint)
        if owns(agent):
            out.append((key, value))
    return out


def _agent_from_fingerprint(fingerprint: str) -> str | None:
    """`rule/agent[/...]` (the contract's form); pipeline-wide fingerprints have no agent part."""
    parts = fingerprint.split("/")
    return parts[1] if len(parts) > 1 and parts[1] else None
