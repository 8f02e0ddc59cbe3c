"""The record route: faust's fetch loop hands each record of the events topic to
`RecordRoute.take` (faust_direct.py), which applies it to its partition's engine unless the
partition must be fetched again first (a rebalance in between), and checkpoints when due.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from monitor.core.partition import PartitionEngine
from monitor.stream.checkpointing import Checkpointing

log = logging.getLogger("agentmon.worker")

REFETCH_EVERY_S = 2.0  # at most one re-fetch of a held-back partition per this long
UNFED_AFTER_S = 2.0  # a partition with records waiting and none received this long after a rebalance is re-fetched
HELD_LOOK_EVERY_S = 0.05  # how often held-back and unfed partitions are looked at (`WorkerRuntime.refetch_held`)


class RecordRoute(Checkpointing):
    """`take` and the re-fetches of partitions it holds back."""

    def take(self, message: Any) -> None:
        """faust's drain loop calls this for each fetched record of the events topic, in offset
        order per partition (faust_direct.py). Applies it and enqueues its outputs, synchronously
        (no coroutine per record), and checkpoints its partition when due, which acks the records
        the checkpoint covers.

        A record is not applied while faust has the flow suspended or is recovering the checkpoint
        table, when it was fetched under an older consumer generation, or when this worker does not
        hold its partition. Its partition is then held back from the first record not applied (F):
        later records of it (offsets above F, or above the engine's next offset if that is higher)
        are not applied either, until the partition is fetched again from at most there, by faust's
        seek to the committed offsets after a rebalance or else by a seek to the engine's next
        offset asked for here. Applying a later record first would make the engine skip the earlier
        ones as replays, losing them.

        faust can also drop records without this seeing them (its getmany stops mid-batch when a
        rebalance stops the flow) and then seeks back only to the committed offsets, or not at all
        for a partition this group has never committed. So a partition's first record after a
        rebalance must not be past the engine's next offset; if it is, the partition is fetched
        again from that offset first. A partition that receives nothing at all after a rebalance
        while records wait is fetched again too (`refetch_held`)."""
        if self.stopping:
            return  # not applied, not acked: read again by whoever owns the partition next
        partition = message.partition
        offset = message.offset
        engine = None
        if message.generation_id == self.app.consumer_generation_id and self._flowing():
            engine = self.partitions.get(partition) or self._assigned_engine(partition)
        held = self.resync.get(partition)
        if engine is None:
            if held is None:
                log.info("partition %d: offset %d fetched during a rebalance and not applied; holding the partition "
                         "back until it is fetched again from there", partition, offset,
                         extra={"partition": partition, "offset": offset})
            if held is None or offset < held:
                self.resync[partition] = offset
            self.held_back += 1
            return
        if self.fetched_in.get(partition) != message.generation_id:
            # The partition's first record since a rebalance. faust may have fetched and dropped
            # records before it around the rebalance (its getmany stops mid-batch when the flow
            # stops), and it seeks back only to committed offsets, not at all where this group has
            # never committed one: a first record past the engine's next offset is held back.
            self.fetched_in[partition] = message.generation_id
            if held is None and offset > engine.next_offset:
                log.info("partition %d: first record since the rebalance at offset %d, past the next offset %d; "
                         "fetching it again from there", partition, offset, engine.next_offset,
                         extra={"partition": partition, "offset": offset})
                self.resync[partition] = offset  # this record comes again: applied then
                self.held_back += 1
                self._refetch(partition, engine)
                return
        if held is not None:
            if offset > max(held, engine.next_offset):
                self.held_back += 1
                self._refetch(partition, engine)
                return
            del self.resync[partition]
        now = time.time()
        output = engine.process(message.value, message.key, offset, _ms(message.timestamp), now)
        if output:
            self.publish(output)
        self.pending[partition].append(message)
        self.consumer.track_message(message)
        w = self.settings.worker
        if (engine.applied_since_checkpoint >= w.checkpoint_max_records
                or now - self.last_checkpoint[partition] >= w.checkpoint_interval_s):
            self.checkpoint(partition, now)

    @property
    def consumer(self) -> Any:
        return self.app.consumer

    def _flowing(self) -> bool:
        """Whether faust lets records through: no rebalance has the flow suspended and the checkpoint
        table is not being recovered."""
        app: Any = self.app
        return not (app.consumer.suspend_flow.is_set() or not app.flow_control.is_active() or app.in_recovery)

    def _assigned_engine(self, partition: int) -> PartitionEngine | None:
        """The engine of a partition this worker is assigned (restored from its checkpoint on first
        use); None for a partition it is not assigned, even if an engine is still held."""
        if self._events_tp(partition) is None:
            return None
        return self.partition(partition, time.time())

    def refetch_held(self) -> None:
        """Held-back partitions that receive nothing more (everything fetched was held back) are
        fetched again once their records can be applied; holds on partitions this worker is no
        longer assigned end. Called every HELD_LOOK_EVERY_S."""
        if not self._flowing():
            return
        for partition in list(self.resync):
            engine = self._assigned_engine(partition)
            if engine is None:
                del self.resync[partition]
            else:
                self._refetch(partition, engine)
        # A partition with records waiting that has received none since the rebalance: faust may
        # have fetched them and dropped them (see `take`); fetched again from the engine's next
        # offset, once per rebalance (the stall watch is the backstop).
        generation = self.app.consumer_generation_id
        now = time.monotonic()
        if generation != self._flow_generation:
            self._flow_generation, self._flow_since = generation, now
        if now - self._flow_since < UNFED_AFTER_S:
            return
        for partition, engine in list(self.partitions.items()):
            if (self.fetched_in.get(partition) != generation and self.unfed_refetched.get(partition) != generation
                    and partition not in self.resync and self.lag(partition, engine)):
                self.unfed_refetched[partition] = generation
                self._refetch(partition, engine)

    def _refetch(self, partition: int, engine: PartitionEngine) -> None:
        """Fetch a held-back partition again from the engine's next offset (at most every
        REFETCH_EVERY_S per partition: a fetch from there may already be on its way)."""
        now = time.monotonic()
        if now < self.refetch_after.get(partition, 0.0):
            return
        tp = self._events_tp(partition)
        if tp is None:
            return
        self.refetch_after[partition] = now + REFETCH_EVERY_S
        self.refetches[partition] += 1
        target = engine.next_offset
        log.info("partition %d: fetching it again from offset %d", partition, target,
                 extra={"partition": partition, "offset": target})
        self.app.add_future(self._seek(tp, target))

    async def _seek(self, tp: Any, offset: int) -> None:
        try:
            await self.consumer.seek(tp, offset)
        except Exception:  # noqa: BLE001 - e.g. revoked meanwhile; the stall watch is the backstop
            log.exception("partition %d: fetching it again from offset %d failed", tp.partition, offset)


def _ms(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp * 1000)
