"""The stream worker: a thin faust-streaming shell around `PartitionEngine` (the pure core).

    records of agent-events ──► PartitionEngine.process ──► agent-alerts (key fingerprint)
                                   │ (one per partition)  ├─► agent-rollups (key agent/hour)
                                   │                      └─► agent-events-dlq (broken records)
                                   └─ every few seconds: checkpoint ──► changelog table, then ack

faust's fetch loop hands each record of agent-events straight to `WorkerRuntime.take`
(faust_direct.py); faust still runs the group, the assignment, the table recovery and the commits.
Hot state lives in plain objects of the pure core; nothing is written to a table per event.
Every `checkpoint_interval_s` (or `checkpoint_max_records` records) each partition's engine
snapshot and its next offset go to a changelog-backed table, and only then are the records it
covers acked, so the offsets faust commits never run ahead of the persisted state. Outputs are
enqueued with `send_soon` before that, and faust flushes its producer before each commit.
After a crash the restored state skips the records it already holds (see monitor/core/partition.py).

Baselines can be frozen by command: the worker follows the compacted `agent-baseline-control`
topic (monitor/kafka/baseline_control.py) and applies the commands in force to every partition engine it
holds, when the engine is created or restored and on every tick; never on the per-record path.

Operations: `/healthz`, `/metrics` (Prometheus) and `/state` (JSON) on the worker's web port;
logs as JSON lines; SIGTERM stops gracefully (faust commits what is acked and flushes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import StreamT
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitor.core.baseline_commands import apply_to_engine
from monitor.core.checkpoint import CheckpointError, decode_checkpoint, encode_checkpoint, partition_of_key
from monitor.core.engine import Engine, SnapshotError
from monitor.core.partition import Output, PartitionEngine
from monitor.core.pricing import PricingTable
from monitor.kafka.baseline_control import BaselineControl
from monitor.logs import JsonLogFormatter
from monitor.settings import KafkaSettings, Settings
from monitor.stream.faust_direct import DirectTransport
from monitor.stream.faust_fetch import DEFAULT_FETCH_MAX_WAIT_MS
from monitor.stream.log_repeats import RepeatSuppressor
from monitor.stream.stall_watch import StallWatch

log = logging.getLogger("agentmon.worker")

CHECKPOINT_TABLE = "engine-checkpoints"
REFETCH_EVERY_S = 2.0  # at most one re-fetch of a held-back partition per this long
UNFED_AFTER_S = 2.0  # a partition with records waiting and none received this long after a rebalance is re-fetched
HELD_LOOK_EVERY_S = 0.05  # how often held-back and unfed partitions are looked at (`WorkerRuntime.refetch_held`)


class CheckpointTable(faust.Table):
    """Each key names its partition (`"3/manifest"`), so checkpoints can be written from the
    timer as well as from inside the stream, and always land beside their partition's events."""

    def partition_for_key(self, key: Any) -> int | None:
        return partition_of_key(key if isinstance(key, str) else bytes(key).decode())

    def _serializer_from_type(self, typ: Any) -> str:
        # Values are opaque bytes (compressed chunks): faust would otherwise fall back to JSON,
        # and recovery would try to decode binary chunks as UTF-8.
        return "raw"


class AgentmonApp(faust.App):
    """faust's App with these changes: a clean stop (SIGTERM) stops following baseline commands
    and checkpoints every partition before faust stops the consumer and commits, so a restart
    resumes exactly where this one stopped; faust's Monitor sensor is left out unless
    `worker.faust_monitor` (it does bookkeeping on every event for faust's own stats pages, which
    agentmon's /metrics does not read); its consumer fetches with a short wait (faust_fetch.py)
    and hands the records of `direct_topic` (the events topic) straight to `direct_take`
    (`WorkerRuntime.take`, faust_direct.py)."""

    keep_faust_monitor = True
    fetch_max_wait_ms = DEFAULT_FETCH_MAX_WAIT_MS
    direct_topic = ""
    direct_take: Callable[[Any], None] | None = None

    def _new_transport(self) -> Any:
        return DirectTransport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Any:
        dependencies = super().on_init_dependencies()
        if not self.keep_faust_monitor:
            self.sensors.remove(self.monitor)
        return dependencies

    async def on_start(self) -> None:
        await super().on_start()
        runtime: WorkerRuntime | None = getattr(self, "agentmon", None)
        if runtime is not None:
            # Not a timer: faust starts timers (and the web server) only once the first table
            # recovery has completed, and that recovery is one of the things this loop watches.
            self.add_future(runtime.watch_recovery_forever())

    async def on_stop(self) -> None:
        runtime: WorkerRuntime | None = getattr(self, "agentmon", None)
        if runtime is not None:
            runtime.stopping = True  # nothing is applied after the final checkpoints
            await runtime.control.stop()
            runtime.checkpoint_all()
        await super().on_stop()


def broker_urls(kafka: KafkaSettings) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in kafka.bootstrap_servers.split(",") if hostport.strip()]


def broker_credentials(kafka: KafkaSettings) -> Any:
    options = kafka.client_options()
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=options["sasl_plain_username"], password=options["sasl_plain_password"],
            ssl_context=options.get("ssl_context"), mechanism=options["sasl_mechanism"])
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


class PartitionStalled(RuntimeError):
    """A partition made no progress although its fetch was resumed `worker.stall_max_restarts` times."""


class WorkerRuntime:
    """What one worker process holds: an engine per assigned partition and the records each has
    applied but not yet acked. Shared by faust's fetch loop (`take`), the tick timer and the web
    pages."""

    def __init__(self, app: faust.App, settings: Settings, table: CheckpointTable,
                 topics: dict[str, faust.TopicT]) -> None:
        self.app = app
        self.settings = settings
        self.table = table
        self.topics = topics
        self.partitions: dict[int, PartitionEngine] = {}
        self.pending: dict[int, list[Any]] = {}  # messages applied, not yet acked
        self.last_checkpoint: dict[int, float] = {}
        self.checkpoint_bytes: dict[int, int] = {}
        self.checkpoint_seconds: dict[int, float] = defaultdict(float)  # time spent writing checkpoints
        self.published: Counter[tuple[str, str]] = Counter()
        self.dead_letters = 0
        self.checkpoints = 0
        self.started = time.time()
        self._pricing = PricingTable(settings.pricing)
        self.control = BaselineControl(settings, on_change=self.apply_baseline_control)
        self.stalls = StallWatch(settings.worker.stall_after_s)
        self.fetch_restarts: Counter[int] = Counter()
        self.recovery_stalls = StallWatch(settings.worker.stall_after_s)  # changelog partitions
        self.recovery_restarts: Counter[int] = Counter()
        self.last_tick: float | None = None
        # partitions held back until fetched again from the first record not applied, and the
        # re-fetches that asked for
        self.resync: dict[int, int] = {}
        self.refetch_after: dict[int, float] = {}  # monotonic time before which no new re-fetch is asked
        self.fetched_in: dict[int, int] = {}  # partition -> consumer generation of the last record taken
        self.unfed_refetched: dict[int, int] = {}  # partition -> generation in which it was re-fetched unfed
        self._flow_generation: int | None = None
        self._flow_since = 0.0
        self.refetches: Counter[int] = Counter()
        self.held_back = 0
        self.stopping = False  # set by a clean stop: records fetched after it are left to the next owner

    # ---- engines ------------------------------------------------------------------------------
    def _make_engine(self, snapshot: dict[str, Any] | None) -> Engine:
        s = self.settings
        if snapshot is not None:
            try:
                return Engine.restore(snapshot, s.detection, pricing=self._pricing,
                                      runbook_base_url=s.runbook_base_url)
            except SnapshotError as exc:
                log.error("checkpoint not reusable, starting this partition's state afresh: %s", exc)
        return Engine(s.detection, pricing=self._pricing, runbook_base_url=s.runbook_base_url)

    def partition(self, partition: int, wall_now: float) -> PartitionEngine:
        engine = self.partitions.get(partition)
        if engine is None:
            try:
                restored = decode_checkpoint(partition, self.table.get)
            except CheckpointError as exc:
                log.error("checkpoint unreadable, starting this partition's state afresh: %s", exc)
                restored = None
            engine = PartitionEngine(
                self.settings.topics.events, partition, self._make_engine, restored=restored,
                max_event_bytes=self.settings.max_event_bytes, idle_after_s=self.settings.worker.idle_after_s,
                wall_now=wall_now)
            self.partitions[partition] = engine
            self.pending[partition] = []
            # Staggered: partition p is first due a fraction p/N of the interval early, so that the
            # partitions of one worker do not all stop the event loop for their checkpoints at once.
            phase = (partition % self.settings.topics.events_partitions) / self.settings.topics.events_partitions
            self.last_checkpoint[partition] = wall_now - phase * self.settings.worker.checkpoint_interval_s
            log.info("partition %d: %s at offset %d", partition,
                     f"restored generation {restored.generation}" if restored else "fresh state",
                     engine.next_offset)
            self._apply_control(partition, engine)
        return engine

    # ---- baseline commands --------------------------------------------------------------------
    def apply_baseline_control(self) -> None:
        """Give every agent of every partition the baseline flag the commands in force ask for (on
        each tick, when the commands change, and when a partition's engine is created). Agents no
        command names keep their flag; agents first seen later are covered by the next tick."""
        for partition, engine in list(self.partitions.items()):
            self._apply_control(partition, engine)

    def _apply_control(self, partition: int, engine: PartitionEngine) -> None:
        if self.control.commands and apply_to_engine(self.control.commands, engine.engine, partition):
            engine.dirty = True  # the next checkpoint carries the new flags even if no record arrives

    # ---- records ------------------------------------------------------------------------------
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

    def publish(self, output: Output) -> None:
        """Enqueue outputs now (synchronously), so any later commit flushes them first."""
        for alert in output.alerts:
            # Key = agent id (`*` for pipeline-wide rules, CONTRACT.md section 2): what the alert path
            # groups or inhibits together shares a partition, in order. Record timestamps in event
            # time, so readers (the weekly report) can seek by time.
            self.topics["alerts"].send_soon(key=(alert.agent_id or "*").encode(), value=alert.to_json(),
                                            timestamp=alert.at.timestamp())
            self.published[(alert.rule, alert.state)] += 1
            log.info("alert %s %s", alert.state, alert.fingerprint,
                     extra={"alert_id": alert.alert_id, "rule": alert.rule, "agent_id": alert.agent_id,
                            "severity": alert.severity, "at": alert.at.isoformat()})
        for rollup in output.rollups:
            self.topics["rollups"].send_soon(key=rollup.key.encode(), value=rollup.to_json(),
                                             timestamp=rollup.hour.timestamp())
        if output.dead_letter is not None:
            letter = output.dead_letter
            self.dead_letters += 1
            self.topics["dlq"].send_soon(key=letter.key.encode() if letter.key is not None else None,
                                         value=letter.to_json(), headers=letter.headers())
            log.warning("dead letter from %s/%d/%d: %s", letter.source_topic, letter.source_partition,
                        letter.source_offset, letter.error)

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

    # ---- table recovery -----------------------------------------------------------------------
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

    def _events_tp(self, partition: int) -> Any:
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - consumer not started yet
            return None
        return next((tp for tp in assignment
                     if tp.topic == self.settings.topics.events and tp.partition == partition), None)

    def fetch_state(self, partition: int) -> dict[str, Any] | None:
        """What faust's consumer holds for this partition (its internals, read defensively): whether
        it is in the fetch set, paused, and the read and committed offsets. For /state, so that a
        stalled partition can be diagnosed from outside."""
        tp = self._events_tp(partition)
        if tp is None:
            return None
        consumer: Any = self.app.consumer
        try:
            return {"fetching": tp in consumer._get_active_partitions(),
                    "paused": tp in consumer._paused_partitions,
                    "read_offset": consumer._read_offset.get(tp),
                    "committed": consumer._committed_offset.get(tp)}
        except (AttributeError, TypeError):  # a faust version without these internals
            return None

    def owns(self, partition: int) -> bool:
        """Whether this worker is assigned `partition` of the events topic (a cheap leader choice)."""
        return self._events_tp(partition) is not None

    # ---- views --------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        parts = {}
        now = time.time()
        for partition, engine in sorted(self.partitions.items()):
            wm = engine.engine.watermark
            parts[str(partition)] = {
                "next_offset": engine.next_offset,
                "lag": self.lag(partition, engine),
                "watermark": wm.isoformat() if wm else None,
                # > 0: event time ahead of this worker's clock (never more than the allowed drift)
                "watermark_lead_s": round(wm.timestamp() - now, 1) if wm else None,
                "time_refused": engine.time_refused,
                "agents_refused": engine.agents_refused,
                "generation": engine.generation,
                "agents": len(engine.engine.agent_ids()),
                "skipped_replays": engine.skipped_replays,
                "dead_letters": engine.dead_letters,
                "counters": dict(engine.engine.counters),
                "checkpoint_bytes": self.checkpoint_bytes.get(partition),
                "checkpoint_seconds": round(self.checkpoint_seconds[partition], 3),
                "frozen_baselines": sum(engine.engine.baseline_flags().values()),
                # agents whose baselines still learn (at most 100 listed): their statistical rules do not page
                "learning": dict(sorted(engine.engine.learning().items())[:100]),
                "fetch": self.fetch_state(partition),
                "fetch_restarts": self.fetch_restarts[partition],
                "dirty": engine.dirty,
            }
        control = self.control
        return {"partitions": parts, "checkpoints": self.checkpoints,
                "baseline_control": {"topic": control.topic, "loaded": control.loaded, "error": control.error,
                                     "commands": {k: c.frozen for k, c in sorted(control.commands.items())}},
                "alerts_published": {f"{r}/{s}": n for (r, s), n in sorted(self.published.items())},
                "dead_letters": self.dead_letters, "uptime_s": round(time.time() - self.started, 1),
                "recovery_restarts": {str(p): n for p, n in sorted(self.recovery_restarts.items())},
                "held_back_records": self.held_back,
                "refetches": {str(p): n for p, n in sorted(self.refetches.items())},
                "last_tick_s_ago": None if self.last_tick is None else round(time.time() - self.last_tick, 1)}

    def lag(self, partition: int, engine: PartitionEngine) -> int | None:
        tp = self._events_tp(partition)
        if tp is None:
            return None
        try:
            high = self.app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet
            return None
        return None if high is None else max(0, high - engine.next_offset)


class WorkerCollector:
    """Prometheus metrics read from the live runtime at scrape time."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Any:
        rt = self.runtime
        events = CounterMetricFamily("agentmon_events", "valid events applied", labels=["partition"])
        dups = CounterMetricFamily("agentmon_duplicate_events", "events dropped as duplicates (event_id)",
                                   labels=["partition"])
        late = CounterMetricFamily("agentmon_late_events", "events later than the allowed lateness",
                                   labels=["partition"])
        dlq = CounterMetricFamily("agentmon_dead_letters", "records sent to the dead-letter topic",
                                  labels=["partition"])
        replays = CounterMetricFamily("agentmon_replayed_records_skipped",
                                      "records skipped after a restart because the state already held them",
                                      labels=["partition"])
        lag = GaugeMetricFamily("agentmon_consumer_lag", "records not yet applied", labels=["partition"])
        watermark = GaugeMetricFamily("agentmon_watermark_seconds", "event-time watermark (unix seconds)",
                                      labels=["partition"])
        lead = GaugeMetricFamily("agentmon_watermark_lead_seconds", "event-time watermark less this worker's clock: "
                                 "above 0 means event time runs ahead (bounded by detection.max_future_skew_s)",
                                 labels=["partition"])
        refused = CounterMetricFamily("agentmon_event_time_refused", "valid events dead-lettered for their time: "
                                      "ahead of their arrival, before the floor, or older than anything they could "
                                      "change (monitor/core/event_time.py)", labels=["partition"])
        unverifiable = CounterMetricFamily("agentmon_late_unverifiable", "late events older than the event-id "
                                           "memory (detection.dedup_window_s): dropped, since a resend of an event "
                                           "already counted cannot be told apart", labels=["partition"])
        agents = GaugeMetricFamily("agentmon_agents", "agents with state", labels=["partition"])
        agents_refused = CounterMetricFamily("agentmon_agents_refused", "events of new agents dead-lettered because "
                                             "the partition holds detection.max_agents already", labels=["partition"])
        ckpt = GaugeMetricFamily("agentmon_checkpoint_bytes", "size of the last checkpoint", labels=["partition"])
        ckpt_time = CounterMetricFamily("agentmon_checkpoint_seconds", "wall time spent writing checkpoints (snapshot, "
                                        "encoding, table writes), which the event loop spends on nothing else",
                                        labels=["partition"])
        ckpt_age = GaugeMetricFamily("agentmon_checkpoint_age_seconds", "time since the partition's last checkpoint "
                                     "pass (state and offset written, or found unchanged); it should stay under about "
                                     "twice worker.checkpoint_interval_s", labels=["partition"])
        frozen = GaugeMetricFamily("agentmon_frozen_baselines", "agents whose learned baseline is frozen",
                                   labels=["partition"])
        now = time.time()
        for partition, engine in sorted(rt.partitions.items()):
            p = str(partition)
            c = engine.engine.counters
            events.add_metric([p], c["events"])
            dups.add_metric([p], c["duplicates"])
            late.add_metric([p], c["late_folded"] + c["late_dropped"])
            unverifiable.add_metric([p], c["late_unverifiable"])
            agents_refused.add_metric([p], engine.agents_refused)
            dlq.add_metric([p], engine.dead_letters)
            replays.add_metric([p], engine.skipped_replays)
            behind = rt.lag(partition, engine)
            if behind is not None:
                lag.add_metric([p], behind)
            wm = engine.engine.watermark
            if wm is not None:
                watermark.add_metric([p], wm.timestamp())
                lead.add_metric([p], wm.timestamp() - now)
            refused.add_metric([p], engine.time_refused)
            agents.add_metric([p], len(engine.engine.agent_ids()))
            frozen.add_metric([p], sum(engine.engine.baseline_flags().values()))
            if partition in rt.checkpoint_bytes:
                ckpt.add_metric([p], rt.checkpoint_bytes[partition])
            ckpt_time.add_metric([p], rt.checkpoint_seconds[partition])
            if partition in rt.last_checkpoint:
                ckpt_age.add_metric([p], max(0.0, now - rt.last_checkpoint[partition]))
        restarts = CounterMetricFamily("agentmon_fetch_restarts", "stalled partitions whose fetch was resumed "
                                       "(monitor/stream/stall_watch.py); any is worth a look", labels=["partition"])
        for partition, n in sorted(rt.fetch_restarts.items()):
            restarts.add_metric([str(partition)], n)
        recovery = CounterMetricFamily("agentmon_recovery_restarts", "checkpoint changelog partitions whose table "
                                       "recovery stalled and had its fetch resumed; any is worth a look",
                                       labels=["partition"])
        for partition, n in sorted(rt.recovery_restarts.items()):
            recovery.add_metric([str(partition)], n)
        refetches = CounterMetricFamily("agentmon_refetches", "partitions fetched again from the engine's next "
                                        "offset after a rebalance left records unapplied (faust_direct.py)",
                                        labels=["partition"])
        for partition, n in sorted(rt.refetches.items()):
            refetches.add_metric([str(partition)], n)
        signals = GaugeMetricFamily("agentmon_signal", "per agent: a signal's value over the last hour "
                                    "(series=current) and its learned baseline (series=baseline)",
                                    labels=["agent", "signal", "series"])
        for engine in rt.partitions.values():
            for agent, values in engine.engine.signal_view().items():
                for name, (current, baseline) in values.items():
                    if current is not None:
                        signals.add_metric([agent, name, "current"], current)
                    if baseline is not None:
                        signals.add_metric([agent, name, "baseline"], baseline)
        alerts = CounterMetricFamily("agentmon_alerts_published", "alert state changes published",
                                     labels=["rule", "state"])
        for (rule, state), n in sorted(rt.published.items()):
            alerts.add_metric([rule, state], n)
        yield from (events, dups, late, unverifiable, dlq, replays, lag, watermark, lead, refused, agents,
                    agents_refused, frozen, ckpt, ckpt_time, ckpt_age, restarts, recovery, refetches, signals, alerts)


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> faust.App:
    """Build the worker's faust app (nothing happens at import time)."""
    w = settings.worker
    partitions = settings.topics.events_partitions
    data_dir: dict[str, Any] = {"datadir": w.data_dir} if w.data_dir else {}  # else faust's {app_id}-data
    app = AgentmonApp(
        w.app_id,
        broker=broker_urls(settings.kafka),
        broker_credentials=broker_credentials(settings.kafka),
        store="memory://",
        topic_partitions=partitions,
        topic_replication_factor=settings.topics.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=True, web_host=w.web_host, web_port=w.web_port, web_bind=w.web_host,
        # Records are acked after their checkpoint; waiting for all acks at shutdown could hang.
        stream_wait_empty=False,
        producer_acks=-1,
        # A crashed worker's partitions move after this long (faust's default is 60 s).
        broker_session_timeout=w.session_timeout_s,
        broker_heartbeat_interval=min(3.0, w.session_timeout_s / 3),
        producer_compression_type="lz4",
        topic_disable_leader=True,
        **data_dir,
    )
    app.fetch_max_wait_ms = w.fetch_max_wait_ms  # before anything creates the transport

    def raw_topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", **kw)

    events = raw_topic(settings.topics.events, partitions=partitions)
    topics = {"alerts": raw_topic(settings.topics.alerts), "rollups": raw_topic(settings.topics.rollups),
              "dlq": raw_topic(settings.topics.dlq)}
    table = CheckpointTable(
        app, name=CHECKPOINT_TABLE, default=None, beacon=app.tables.beacon, key_type=str, value_type=bytes,
        partitions=partitions, help="engine checkpoints per input partition",
        extra_topic_configs={"max.message.bytes": str(2 * 1024 * 1024)},
    )
    app.tables.add(table)
    app.keep_faust_monitor = w.faust_monitor
    runtime = WorkerRuntime(app, settings, table, topics)
    app.agentmon = runtime  # type: ignore[attr-defined]  # for the CLI, tests and pages
    app.direct_topic, app.direct_take = settings.topics.events, runtime.take  # read by DirectConsumer
    registry = registry or CollectorRegistry()
    registry.register(WorkerCollector(runtime))

    @app.agent(events, name="agentmon.events", concurrency=1)
    async def subscribe_events(stream: StreamT) -> None:
        # Subscribes the consumer to the events topic; its records go to `runtime.take` and never
        # reach this stream.
        async for _ in stream.noack():  # type: ignore[attr-defined]  # Stream has it, StreamT not
            pass

    @app.task
    async def refetch_held() -> None:
        # A loop, not a faust timer: mode's timers log a warning each time they run late, which an
        # interval this short on a busy event loop would do often.
        while not app.should_stop:
            await asyncio.sleep(HELD_LOOK_EVERY_S)
            runtime.refetch_held()

    @app.timer(interval=w.tick_interval_s)
    async def tick() -> None:
        await runtime.tick()

    @app.task
    async def baseline_control() -> None:
        # Loads the commands in force, then follows them; on errors it logs and retries (bounded
        # backoff) while the stream runs on. Cancelled with the app's other tasks at stop.
        await runtime.control.start_following()

    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        await runtime.revoke({tp.partition for tp in revoked if tp.topic == settings.topics.events})

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode's signal typing

    if w.weekly_report:
        @app.task
        async def weekly_report() -> None:
            from monitor.report.cli import run_scheduled_report
            from monitor.report.week import next_report_due

            cfg = settings.report
            while not app.should_stop:
                due = next_report_due(datetime.now(UTC), cfg.weekday, cfg.time_of_day)
                while not app.should_stop and (wait := (due - datetime.now(UTC)).total_seconds()) > 0:
                    await asyncio.sleep(min(wait, 60.0))
                if app.should_stop or not runtime.owns(0):
                    continue  # another worker owns partition 0 and runs it
                try:
                    review = await run_scheduled_report(settings, due, upload=settings.slack.bot_token is not None)
                    log.info("weekly review %s written", review.week)
                except Exception:  # noqa: BLE001 - a failed report must not stop the stream
                    log.exception("weekly review at %s failed", due.isoformat())

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        ok = app.consumer is not None and not app.should_stop
        return web.json({"status": "ok" if ok else "stopping", "partitions": sorted(runtime.partitions)},
                        status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is UTF-8 anyway.
        return web.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    @app.page("/state")
    async def state(web: Any, request: Any) -> Any:
        return web.json(runtime.state())

    return app


def _ms(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp * 1000)


def logging_config(level: str) -> dict[str, Any]:
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLogFormatter}},
        # the Kafka client's repeated lines (a broker outage) are thinned: monitor/stream/log_repeats.py
        "filters": {"repeats": {"()": RepeatSuppressor}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr",
                                "filters": ["repeats"]}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}, "faust": {"level": "WARNING"}, "mode": {"level": "WARNING"}},
    }


def worker_environment(settings: Settings, app_id: str, web_port: int) -> dict[str, str]:
    """The environment of an `agentmon worker` subprocess that sees these Kafka and topic settings
    (the demo and the tests start workers this way); other AGENTMON_ variables are left out."""
    t = settings.topics
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTMON_")}
    env.update({
        "AGENTMON_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "AGENTMON_TOPICS__EVENTS": t.events, "AGENTMON_TOPICS__DLQ": t.dlq, "AGENTMON_TOPICS__ALERTS": t.alerts,
        "AGENTMON_TOPICS__ROLLUPS": t.rollups, "AGENTMON_TOPICS__SILENCES": t.silences,
        "AGENTMON_TOPICS__BASELINE_CONTROL": t.baseline_control,
        "AGENTMON_TOPICS__EVENTS_PARTITIONS": str(t.events_partitions),
        "AGENTMON_WORKER__APP_ID": app_id, "AGENTMON_WORKER__WEB_PORT": str(web_port),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT (faust's worker stops gracefully on both)."""
    if settings.worker.event_loop == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")  # before anything creates a loop: faust's own `--loop uvloop`
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.worker.log_level, quiet=True,
                          logging_config=logging_config(settings.worker.log_level))
    worker.execute_from_commandline()
