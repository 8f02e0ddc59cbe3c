"""Which pipelines an `agentmon alerts run` instance runs, and where their notification logs live.

- `KafkaLogPipelines` (the default): one `AlertPipeline` per partition of `agent-alerts` this
  instance is assigned, each with its own notification log in partition p of the compacted topic
  `topics.notifications` (`alerts.notification_kafka`). On assignment the log is read to its end
  before any alert of the partition is processed; on revocation the log is flushed and the
  pipeline dropped. Any number of instances in one consumer group, nothing on disk.
- `SqliteLogPipelines`: one pipeline for every partition, its log in one SQLite file (a single
  process, e.g. local runs that keep the pre-Kafka behaviour).

`PipelineSet` ticks them all and answers /metrics and /healthz for the instance.

aiokafka runs the rebalance callbacks in its coordinator task, concurrently with the runner's loop:
`lock` is held by the callbacks (take, release) and by the runner while it receives or ticks, so a
pipeline is never dropped under a tick running in a worker thread. The runner does not hold it
while it waits for Kafka (fetch, commit), so a rebalance can always finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from alerts.clock import Clock, SystemClock
from alerts.errors import NotificationLogError
from alerts.notification_kafka import (
    PartitionChangelog,
    alerts_partitions,
    ensure_notifications_topic,
    legacy_records,
)
from alerts.notification_log import SqliteNotificationLog
from alerts.pipeline import AlertPipeline
from monitor.kafka.table import ReadTimeout, read_to_end
from monitor.settings import Settings

log = logging.getLogger("agentmon.alerts.partitions")
PipelineFactory = Callable[[SqliteNotificationLog], AlertPipeline]


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: KafkaLogPipelines | None) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        if self.owner is not None:
            await self.owner.release(sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        if self.owner is None:
            return
        partitions = sorted(tp.partition for tp in assigned)
        try:
            await self.owner.take(partitions)
        except (NotificationLogError, KafkaError) as exc:  # the runner takes them over when it can
            log.error("cannot read the notification log of partitions %s yet: %s", partitions, exc)


class KafkaLogPipelines:
    def __init__(
        self,
        settings: Settings,
        factory: PipelineFactory,
        *,
        producer: AIOKafkaProducer,
        reader: AIOKafkaConsumer,
        partitions: int,
        timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.topic = settings.topics.notifications
        self.factory = factory
        self.partitions = partitions
        self.timeout_s = timeout_s
        self._producer = producer
        self._reader = reader
        self._owned: dict[int, tuple[AlertPipeline, PartitionChangelog]] = {}
        self.lock = asyncio.Lock()

    @classmethod
    async def start(cls, settings: Settings, factory: PipelineFactory, *, timeout_s: float = 30.0) -> KafkaLogPipelines:
        partitions = await alerts_partitions(settings)
        await ensure_notifications_topic(settings, partitions, timeout_s=timeout_s)
        producer = AIOKafkaProducer(
            **settings.kafka.client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            request_timeout_ms=int(timeout_s * 1000),
        )
        await producer.start()
        reader = AIOKafkaConsumer(
            **settings.kafka.client_options(), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await reader.start()
        return cls(settings, factory, producer=producer, reader=reader, partitions=partitions, timeout_s=timeout_s)

    def describe(self) -> str:
        return f"Kafka topic {self.topic} ({self.partitions} partitions)"

    def listener(self) -> ConsumerRebalanceListener:
        return _Listener(self)

    def pipelines(self) -> list[AlertPipeline]:
        owned = dict(self._owned)  # a snapshot: /metrics reads it from another thread
        return [owned[p][0] for p in sorted(owned)]

    def owned(self) -> list[int]:
        return sorted(self._owned)

    def pipeline_for(self, partition: int) -> AlertPipeline | None:
        """The partition's pipeline; None when it is not (or no longer) ours: records fetched before a
        revocation are left to the partition's new owner."""
        held = self._owned.get(partition)
        return held[0] if held is not None else None

    async def take(self, partitions: list[int]) -> None:
        async with self.lock:
            await self._take(partitions)

    async def _take(self, partitions: list[int]) -> None:
        """Read each new partition's log to its end and build its pipeline from it."""
        new = [p for p in partitions if p not in self._owned]
        if not new:
            return
        started = asyncio.get_running_loop().time()
        records: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in new}

        def keep(record: ConsumerRecord[bytes, bytes]) -> None:
            records[record.partition].append((record.key, record.value))

        try:
            await read_to_end(self._reader, self.topic, keep, timeout_s=self.timeout_s, start=dict.fromkeys(new, 0))
        except ReadTimeout as exc:
            raise NotificationLogError(f"timed out reading the notification log {self.topic}: {exc}") from None
        loop = asyncio.get_running_loop()
        for p in new:
            changelog = PartitionChangelog(self._producer, self.topic, p, loop, timeout_s=self.timeout_s)
            store = SqliteNotificationLog(":memory:", changelog=changelog)
            found = records[p]
            imported = 0
            if not found:
                found, imported = await self._import_legacy(changelog, p)
            store.restore(found)
            pipeline = self.factory(store)
            self._owned[p] = (pipeline, changelog)
            log.info(
                "took over %s partition %d: %d log records read%s, %d alerts open, %d notifications pending",
                self.settings.topics.alerts,
                p,
                len(found),
                f" ({imported} imported from the SQLite log)" if imported else "",
                len(pipeline.active_alerts()),
                sum(n for n, _ in pipeline.queue_stats().values()),
                extra={
                    "decision": "assigned",
                    "reason": "partition assigned: log read to its end",
                    "partition": p,
                    "log_records": len(found),
                    "read_s": round(loop.time() - started, 3),
                },
            )

    async def _import_legacy(
        self, changelog: PartitionChangelog, partition: int
    ) -> tuple[list[tuple[bytes | None, bytes | None]], int]:
        """An empty partition of the log and the SQLite file of an older version: its rows of this
        partition go into the topic once (afterwards the partition is not empty)."""
        path = self.settings.alerting.notification_log_path
        if not path.exists():
            return [], 0
        rows = legacy_records(path, partition, self.partitions)
        if not rows:
            return [], 0
        changelog.append(rows)
        await changelog.flush()
        log.warning(
            "imported %d rows of the SQLite notification log %s into %s partition %d (once; the file is no"
            " longer used and can be removed when every partition has taken it over)",
            len(rows),
            path,
            self.topic,
            partition,
            extra={
                "decision": "imported",
                "reason": "empty log partition, SQLite log of an older version",
                "partition": partition,
                "rows": len(rows),
            },
        )
        return [(k.encode(), v) for k, v in rows], len(rows)

    async def release(self, partitions: list[int]) -> None:
        async with self.lock:
            await self._release(partitions)

    async def _release(self, partitions: list[int]) -> None:
        for p in partitions:
            held = self._owned.pop(p, None)
            if held is None:
                continue
            pipeline, changelog = held
            try:
                await changelog.flush()
            finally:
                pipeline.log_store.close()
            log.info(
                "released partition %d", p, extra={"decision": "revoked", "reason": "partition revoked", "partition": p}
            )

    async def persist(self) -> None:
        """Every buffered log record of every owned partition, acked by the broker."""
        for _, changelog in list(self._owned.values()):
            await changelog.flush()

    async def close(self) -> None:
        try:
            await self.release(self.owned())
        finally:
            await self._reader.stop()
            await self._producer.stop()


class SqliteLogPipelines:
    """One pipeline for every partition, its notification log in a SQLite file (one process only)."""

    def __init__(self, settings: Settings, factory: PipelineFactory) -> None:
        self.path = settings.alerting.notification_log_path
        self.pipeline = factory(SqliteNotificationLog(self.path))
        self.lock = asyncio.Lock()

    def describe(self) -> str:
        return f"SQLite file {self.path} (one instance only)"

    def listener(self) -> ConsumerRebalanceListener:
        return _Listener(None)

    def pipelines(self) -> list[AlertPipeline]:
        return [self.pipeline]

    def pipeline_for(self, partition: int) -> AlertPipeline | None:
        return self.pipeline

    async def persist(self) -> None:
        return None  # every write is already in the file

    async def close(self) -> None:
        self.pipeline.log_store.close()


class PipelineSet:
    """The instance's pipelines as one: ticked in partition order, summed for /metrics and /healthz."""

    def __init__(self, owner: KafkaLogPipelines | SqliteLogPipelines, clock: Clock | None = None) -> None:
        self.owner = owner
        self.clock = clock or SystemClock()
        self.last_loop_at: datetime | None = None

    def tick(self, budget_s: float) -> None:
        pipelines = self.owner.pipelines()
        for pipeline in pipelines:
            pipeline.tick(budget_s / len(pipelines))
        self.last_loop_at = self.now()

    def now(self) -> datetime:
        return self.clock.now()

    def queue_stats(self) -> dict[str, tuple[int, datetime]]:
        out: dict[str, tuple[int, datetime]] = {}
        for pipeline in self.owner.pipelines():
            for receiver, (count, oldest) in pipeline.queue_stats().items():
                have = out.get(receiver)
                out[receiver] = (count, oldest) if have is None else (have[0] + count, min(have[1], oldest))
        return out

    def grouped(self) -> int:
        return sum(p.grouped() for p in self.owner.pipelines())
