"""Silences in a compacted Kafka topic (`Settings.topics.silences`, default `agent-silences`), so
every alert worker and every `agentmon silence` invocation sees the same set.

Key = silence id, value = the silence as JSON: the newest record per key is its state, which is what
log compaction keeps. Expiring writes the silence again with `ends_at = now` (still listable as
expired); silences expired longer than `keep_expired` ago are purged with a tombstone (value null),
so the topic does not grow without bound. Readers load the whole topic from the beginning to the end
offsets at start, then follow it; the muter reads the in-memory snapshot (`silences()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from alerts.errors import SilenceError
from alerts.silences import MemorySilenceStore, Silence
from monitor.kafka.table import ReadTimeout, ensure_table_topic, read_to_end
from monitor.settings import Settings

log = logging.getLogger("agentmon.alerts.silences")

class SilenceStoreError(SilenceError):
    """The silences topic cannot be read or written."""


class KafkaSilenceStore:
    def __init__(
        self,
        settings: Settings,
        *,
        keep_expired: timedelta = timedelta(days=7),
        timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.topic = settings.topics.silences
        self.keep_expired = keep_expired
        self.timeout_s = timeout_s
        self._cache = MemorySilenceStore()
        self._producer: AIOKafkaProducer | None = None
        self._follower: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> KafkaSilenceStore:
        try:
            await self._ensure_topic()
            self._producer = AIOKafkaProducer(
                **self.settings.kafka.client_options(),
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=int(self.timeout_s * 1000),
            )
            await self._producer.start()
            await self.load()
        except KafkaError as exc:
            await self.stop()
            raise SilenceStoreError(
                f"cannot use the silences topic {self.topic!r} at {self.settings.kafka.bootstrap_servers}: {exc}"
            ) from exc
        return self

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._follower
            self._follower = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> KafkaSilenceStore:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _ensure_topic(self) -> None:
        error = await ensure_table_topic(self.settings, self.topic, timeout_s=self.timeout_s)
        if error is not None:
            raise SilenceStoreError(error)

    # --- reading ------------------------------------------------------------------------------
    def silences(self) -> list[Silence]:
        return self._cache.silences()

    def get(self, silence_id: str) -> Silence:
        return self._cache.get(silence_id)

    def _apply(self, key: bytes | None, value: bytes | None, where: str) -> None:
        if key is None:
            log.error("silence record without key at %s: ignored", where)
            return
        silence_id = key.decode("utf-8", "replace")
        if value is None:
            self._cache.remove(silence_id)
            return
        try:
            silence = Silence.model_validate_json(value)
        except ValidationError as exc:
            log.error("invalid silence record %r at %s: %s", silence_id, where, str(exc).splitlines()[0])
            return
        self._cache.put(silence)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **self.settings.kafka.client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    async def load(self) -> int:
        """Read the topic from the beginning to its current end; returns records applied."""
        consumer = self._consumer()
        await consumer.start()
        applied = 0

        def apply(record: ConsumerRecord[bytes, bytes]) -> None:
            nonlocal applied
            self._apply(record.key, record.value, f"{record.topic}/{record.partition}@{record.offset}")
            applied += 1

        try:
            await read_to_end(consumer, self.topic, apply, timeout_s=self.timeout_s)
        except ReadTimeout as exc:
            raise SilenceStoreError(f"timed out reading the silences topic {self.topic!r}: {exc}") from None
        finally:
            await consumer.stop()
        return applied

    def follow(self, poll_ms: int = 1000) -> asyncio.Task[None]:
        """Keep the snapshot current in the background (an alert worker calls this once)."""

        async def run() -> None:
            consumer = self._consumer()
            await consumer.start()
            try:
                consumer.subscribe([self.topic])
                while True:
                    batch = await consumer.getmany(timeout_ms=poll_ms)
                    for tp, records in batch.items():
                        for record in records:
                            self._apply(record.key, record.value, f"{tp.topic}/{tp.partition}@{record.offset}")
            finally:
                await consumer.stop()

        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(run(), name="silences-follower")
        return self._follower

    # --- writing ------------------------------------------------------------------------------
    async def _send(self, key: str, value: bytes | None) -> None:
        if self._producer is None:
            raise SilenceStoreError("KafkaSilenceStore is not started")
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(self.topic, key=key.encode(), value=value), self.timeout_s
            )
        except (KafkaError, TimeoutError) as exc:
            raise SilenceStoreError(f"could not write silence {key!r} to {self.topic!r}: {exc}") from exc

    async def put(self, silence: Silence) -> None:
        await self._send(silence.id, silence.to_json())
        self._cache.put(silence)

    async def expire(self, silence_id: str, now: datetime) -> Silence:
        expired = self._cache.get(silence_id).expired_at(now)
        await self.put(expired)
        return expired

    async def purge(self, now: datetime) -> list[str]:
        """Tombstone silences that ended more than `keep_expired` ago."""
        old = [s.id for s in self._cache.silences() if s.ends_at <= now - self.keep_expired]
        for silence_id in old:
            await self._send(silence_id, None)
            self._cache.remove(silence_id)
        return old
