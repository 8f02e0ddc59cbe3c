"""Checkpoints: every `worker.checkpoint_interval_s` (or `checkpoint_max_records` records) a
partition's engine snapshot and its next offset go to a changelog-backed table, and only then are
the records it covers acked, so that the offsets faust commits never run ahead of the persisted
state; at a revocation and a clean stop every partition is checkpointed before it is let go.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from monitor.core.checkpoint import encode_checkpoint, partition_of_key
from monitor.stream.engines import EngineHolder

log = logging.getLogger("agentmon.worker")

CHECKPOINT_TABLE = "engine-checkpoints"


class CheckpointTable(faust.Table):
    """Each key names its partition (`"3/manifest"`), so checkpoints can be written from the
    timer as well as from inside the stream, and always land beside their partition's events."""

    def partition_for_key(self, key: Any) -> int | None:
        return partition_of_key(key if isinstance(key, str) else bytes(key).decode())

    def _serializer_from_type(self, typ: Any) -> str:
        # Values are opaque bytes (compressed chunks): faust would otherwise fall back to JSON,
        # and recovery would try to decode binary chunks as UTF-8.
        return "raw"


class Checkpointing(EngineHolder):
    """Writing a partition's checkpoint, then acking what it covers; handing partitions over."""

    def checkpoint(self, partition: int, wall_now: float) -> None:
        """Write the partition's checkpoint if anything changed, then ack the records it covers."""
        engine = self.partitions.get(partition)
        if engine is None:
            return
        self.last_checkpoint[partition] = wall_now
        pending, self.pending[partition] = self.pending[partition], []
        if not pending and not engine.dirty:
            return
        size = 0
        started = time.perf_counter()
        for key, value in encode_checkpoint(engine.checkpoint()):
            self.table[key] = value
            size += len(value)
        self.checkpoint_seconds[partition] += time.perf_counter() - started
        self.checkpoint_bytes[partition] = size
        self.checkpoints += 1
        # Only now may the covered records be committed.
        consumer: Any = self.app.consumer
        on_message_out = self.app.sensors.on_message_out
        for message in pending:
            consumer.ack(message)
            on_message_out(message.tp, message.offset, message)

    def checkpoint_all(self) -> None:
        now = time.time()
        for partition in sorted(self.partitions):
            try:
                self.checkpoint(partition, now)
            except Exception:  # noqa: BLE001 - a restart then replays from the previous checkpoint
                log.exception("partition %d: checkpoint at shutdown failed; a restart replays more", partition)

    async def revoke(self, partitions: set[int]) -> None:
        """Hand partitions over cleanly: checkpoint them, flush, then forget them. The flush makes
        the final checkpoint land before the next owner reads the changelog: landing later, it
        could overwrite that owner's newer manifest. (A worker that stalls past its session timeout
        and then writes is not fenced off: Kafka transactions would be needed for that.)"""
        now = time.time()
        mine = sorted(partitions & set(self.partitions))
        for partition in mine:
            try:
                self.checkpoint(partition, now)
            except Exception:  # noqa: BLE001 - the next owner replays from the previous checkpoint
                log.exception("partition %d: final checkpoint failed; its next owner replays more", partition)
            self.partitions.pop(partition, None)
            self.pending.pop(partition, None)
            self.last_checkpoint.pop(partition, None)
            self.stalls.forget(partition)
        for partition in partitions:
            self.resync.pop(partition, None)
            self.refetch_after.pop(partition, None)
        if mine:
            await self.app.producer.flush()
