"""The worker's runtime: the record route (route.py) and checkpoints (checkpointing.py) on the
engines it holds (engines.py), plus the tick (idle partitions, baseline commands, periodic
checkpoints), the watches that resume a stalled fetch or table recovery, and the /state view.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from monitor.core.partition import PartitionEngine
from monitor.stream.route import RecordRoute
from monitor.stream.views import state_view

log = logging.getLogger("agentmon.worker")


class PartitionStalled(RuntimeError):
    """A partition made no progress although its fetch was resumed `worker.stall_max_restarts` times."""


class WorkerRuntime(RecordRoute):
    """What one worker process holds and does (see the modules of its layers)."""

    async def tick(self) -> None:
        now = time.time()
        self.last_tick = now
        # Partitions that receive nothing after a restart still need their engine (agent_silent):
        # restore every assigned partition once faust has recovered the checkpoint table.
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]  # TableManager, not its ABC
        if recovery.completed.is_set() and not self.app.rebalancing:
            for tp in self.app.consumer.assignment():
                if tp.topic == self.settings.topics.events and tp.partition not in self.partitions:
                    self.partition(tp.partition, now)
            for partition, engine in list(self.partitions.items()):
                lag = self.lag(partition, engine)
                read_to_end = bool(lag) and await self.read_to_end(partition)
                if self.stalls.observe(partition, engine.next_offset, lag, now, read_to_end):
                    if self.stalls.restarts(partition) > self.settings.worker.stall_max_restarts:
                        await self.give_up(partition, engine)
                        return
                    await self.restart_fetch(partition, engine)
        self.apply_baseline_control()
        for partition, engine in list(self.partitions.items()):
            output = engine.tick(now)
            if output:
                self.publish(output)
            if now - self.last_checkpoint.get(partition, 0.0) >= self.settings.worker.checkpoint_interval_s:
                self.checkpoint(partition, now)

    async def read_to_end(self, partition: int) -> bool:
        """Whether the consumer's position has reached the partition's highwater (for the stall
        watch: offsets the engine never saw are then either recordless, as a transactional
        producer's commit markers, or records faust read and dropped)."""
        tp = self._events_tp(partition)
        if tp is None:
            return False
        consumer = self.app.consumer
        try:
            position, high = await consumer.position(tp), consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - no position yet
            return False
        return position is not None and high is not None and position >= high

    async def restart_fetch(self, partition: int, engine: PartitionEngine) -> None:
        """Resume fetching a stalled partition (StallWatch) from the engine's next offset: back in
        faust's fetch set, and its position and read offset set there. Harmless if it was only
        slow: records already buffered are applied or skipped as replays by offset."""
        tp = self._events_tp(partition)
        if tp is None:
            return
        consumer = self.app.consumer
        log.warning("partition %d: %s records waiting and no progress for %.0f s; resuming its fetch from "
                    "offset %d (was %s)", partition, self.lag(partition, engine), self.settings.worker.stall_after_s,
                    engine.next_offset, self.fetch_state(partition),
                    extra={"partition": partition, "offset": engine.next_offset})
        consumer.resume_partitions({tp})
        await consumer.seek(tp, engine.next_offset)
        self.fetch_restarts[partition] += 1

    async def give_up(self, partition: int, engine: PartitionEngine) -> None:
        """Resumed fetches did not help: crash the app, so that the worker exits with an error and
        its supervisor restarts it (a fresh consumer, a rebalance). Nothing is lost: the next owner
        resumes from the last checkpoint, as after a kill."""
        restarts = self.stalls.restarts(partition) - 1
        message = (f"partition {partition} stalled at offset {engine.next_offset} with {self.lag(partition, engine)} "
                   f"records waiting after {restarts} resumed fetches (was {self.fetch_state(partition)}); "
                   "exiting for a restart")
        log.error(message, extra={"partition": partition, "offset": engine.next_offset})
        await self.app.crash(PartitionStalled(message))

    async def watch_recovery_forever(self) -> None:
        """Runs from the app's start to its stop (cancelled then), recovery or not."""
        while not self.app.should_stop:
            await asyncio.sleep(min(self.settings.worker.tick_interval_s, self.settings.worker.stall_after_s / 3))
            try:
                await self.watch_recovery(time.time())
            except Exception:  # noqa: BLE001 - a watch that fails must not stop the worker
                log.exception("table recovery watch failed; trying again at the next look")

    async def watch_recovery(self, now: float) -> None:
        """faust's table recovery waits for the checkpoint table's changelog records up to each
        partition's highwater, and waits forever if the consumer does not deliver them (records
        fetched and dropped around a rebalance, as for the events topic; see stall_watch.py). A
        changelog partition whose recovery has not moved for `worker.stall_after_s` while records
        remain gets its fetch resumed from the last offset recovery read (recovery skips what it
        has seen); after `worker.stall_max_restarts` such restarts in a row, the worker exits with
        an error for its supervisor to restart it."""
        recovery: Any = self.app.tables.recovery  # type: ignore[attr-defined]  # TableManager, not its ABC
        if not recovery.in_recovery:
            self.recovery_stalls.clear()
            return
        for tp, highwater in list(recovery.active_highwaters.items()):
            read = recovery.active_offsets.get(tp)
            if highwater is None or read is None:
                continue
            remaining = max(0, highwater - read)
            if not self.recovery_stalls.observe(tp.partition, read, remaining, now):
                continue
            restarts = self.recovery_stalls.restarts(tp.partition)
            if restarts > self.settings.worker.stall_max_restarts:
                where = f"after offset {read}" if read >= 0 else "before its first record"
                message = (f"table recovery stalled: changelog {tp.topic} partition {tp.partition} {where} "
                           f"with {remaining} records to read after {restarts - 1} resumed fetches; "
                           "exiting for a restart")
                log.error(message, extra={"partition": tp.partition, "offset": read})
                await self.app.crash(PartitionStalled(message))
                return
            log.warning("table recovery: changelog %s partition %d has %d records to read and made no progress for "
                        "%.0f s; resuming its fetch from offset %d", tp.topic, tp.partition, remaining,
                        self.settings.worker.stall_after_s, max(read, 0),
                        extra={"partition": tp.partition, "offset": max(read, 0)})
            consumer = self.app.consumer
            consumer.resume_partitions({tp})
            await consumer.seek(tp, max(read, 0))  # where recovery itself seeks: the last record read
            self.recovery_restarts[tp.partition] += 1

    def state(self) -> dict[str, Any]:
        """The /state page (views.py)."""
        return state_view(self)
