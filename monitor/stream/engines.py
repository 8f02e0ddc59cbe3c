"""What one worker process holds: an engine per assigned partition of the events topic, the
records each has applied but not yet acked, and what faust's consumer holds for each partition.

The layers of the worker's runtime build on this one, each in its module: checkpointing.py
(checkpoints, acks, a clean hand-over), route.py (the record route from faust's fetch loop) and
runtime.py (the tick, stall and recovery watches, the views).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from typing import Any

import faust

from monitor.core.baseline_commands import apply_to_engine
from monitor.core.checkpoint import CheckpointError, decode_checkpoint
from monitor.core.engine import Engine, SnapshotError
from monitor.core.partition import Output, PartitionEngine
from monitor.core.pricing import PricingTable
from monitor.kafka.baseline_control import BaselineControl
from monitor.settings import Settings
from monitor.stream.stall_watch import StallWatch

log = logging.getLogger("agentmon.worker")


class EngineHolder:
    """What one worker process holds: an engine per assigned partition and the records each has
    applied but not yet acked. Shared by faust's fetch loop (`take`), the tick timer and the web
    pages."""

    def __init__(self, app: faust.App, settings: Settings, table: faust.Table,
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

    def apply_baseline_control(self) -> None:
        """Give every agent of every partition the baseline flag the commands in force ask for (on
        each tick, when the commands change, and when a partition's engine is created). Agents no
        command names keep their flag; agents first seen later are covered by the next tick."""
        for partition, engine in list(self.partitions.items()):
            self._apply_control(partition, engine)

    def _apply_control(self, partition: int, engine: PartitionEngine) -> None:
        if self.control.commands and apply_to_engine(self.control.commands, engine.engine, partition):
            engine.dirty = True  # the next checkpoint carries the new flags even if no record arrives

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

    def lag(self, partition: int, engine: PartitionEngine) -> int | None:
        tp = self._events_tp(partition)
        if tp is None:
            return None
        try:
            high = self.app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet
            return None
        return None if high is None else max(0, high - engine.next_offset)
