"""One input partition's share of the live pipeline: decode, dead-letter, engine, checkpoint.

The stream worker keeps one `PartitionEngine` per assigned partition of `agent-events`. All of an
agent's events share a partition (key = agent_id), so its state, dedup memory and alert
lifecycle live here and move with the partition on a rebalance. Pure: records in, outputs out;
the wall clock is passed in (the idle tick uses it, and an event's arrival is never later than it).

Event time cannot run away: an event whose `occurred_at` is ahead of its arrival by more than the
allowed clock drift, before the floor, or older than anything it could change, is dead-lettered
with the reason and never moves the watermark (`monitor/core/event_time.py`).

Exactly-once state: every record carries its offset; `next_offset` is the first one not yet
applied, and it travels inside each checkpoint. After a restart or a move, records the restored
state already holds are skipped, so none is counted twice, and none is lost because the consumer
commits only offsets a checkpoint covers (the worker acks records after checkpointing them).
Outputs of replayed records are produced again with the same `alert_id`s and rollup keys, so
downstream consumers deduplicate them (at-least-once output, exactly-once state).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.contract.alert import Alert
from monitor.contract.dead_letter import DeadLetter
from monitor.contract.events import EventError
from monitor.contract.rollup import Rollup
from monitor.contract.wire import read_event
from monitor.core.checkpoint import Checkpoint
from monitor.core.engine import Engine

EngineFactory = Callable[[dict | None], Engine]


@dataclass
class Output:
    alerts: list[Alert] = field(default_factory=list)
    rollups: list[Rollup] = field(default_factory=list)
    dead_letter: DeadLetter | None = None

    def __bool__(self) -> bool:
        return bool(self.alerts or self.rollups or self.dead_letter)


NOTHING = Output()


class PartitionEngine:
    """Feeds one partition's records to its engine. `idle_after_s`: wall seconds without a record
    after which the tick moves event time forward by the wall time elapsed (so `agent_silent` fires
    when a whole partition falls silent); 0 disables it."""

    def __init__(self, topic: str, partition: int, make_engine: EngineFactory, *,
                 restored: Checkpoint | None = None, max_event_bytes: int, idle_after_s: float = 120.0,
                 wall_now: float) -> None:
        self.topic = topic
        self.partition = partition
        self.engine = make_engine(restored.snapshot if restored else None)
        self.next_offset = restored.next_offset if restored else 0
        self.generation = restored.generation if restored else 0
        self.max_event_bytes = max_event_bytes
        self.idle_after_s = idle_after_s
        self.applied_since_checkpoint = 0
        self.dirty = False  # state changed since the last checkpoint (records or an idle advance)
        self.skipped_replays = 0
        self.dead_letters = 0
        self.time_refused = 0  # of the dead letters: valid events whose time was refused (event_time.py)
        self.agents_refused = 0  # of the dead letters: valid events of new agents beyond detection.max_agents
        self._gate = self.engine.config.event_time_gate
        # A restored partition may receive nothing more: its idle clock starts now.
        watermark = self.engine.watermark
        self._last_record_wall: float | None = wall_now if watermark else None
        self._watermark_at_last_record: float | None = watermark.timestamp() if watermark else None

    def process(self, value: bytes | None, key: bytes | None, offset: int, timestamp_ms: int | None,
                wall_now: float) -> Output:
        """Apply one record (once: a replayed offset below `next_offset` is skipped)."""
        if offset < self.next_offset:
            self.skipped_replays += 1
            return NOTHING
        self.next_offset = offset + 1
        self.applied_since_checkpoint += 1
        self.dirty = True
        self._last_record_wall = wall_now
        engine = self.engine
        try:
            event = read_event(value or b"", max_bytes=self.max_event_bytes)
        except EventError as exc:
            self.dead_letters += 1
            engine.observe_invalid(None)
            letter = DeadLetter.of(value, key, exc.reason, topic=self.topic, partition=self.partition,
                                   offset=offset, timestamp_ms=timestamp_ms)
            return Output(dead_letter=letter)
        t = event.occurred_at.timestamp()
        # Arrival: the record's timestamp, or the wall clock when a producer's clock ran ahead
        # of ours (it stamps both). An event far ahead of it never reaches the watermark.
        arrival = wall_now if timestamp_ms is None else min(timestamp_ms / 1000, wall_now)
        refused = self._gate.refusal(t, arrival, engine.history_floor_s)
        if refused is not None:
            self.dead_letters += 1
            self.time_refused += 1
            engine.observe_invalid(None)
            letter = DeadLetter.of(value, key, refused, topic=self.topic, partition=self.partition,
                                   offset=offset, timestamp_ms=timestamp_ms)
            return Output(dead_letter=letter)
        if not engine.admits(event.agent_id):
            self.dead_letters += 1
            self.agents_refused += 1
            engine.observe_invalid(None)
            letter = DeadLetter.of(value, key, self._over_cap_reason(), topic=self.topic, partition=self.partition,
                                   offset=offset, timestamp_ms=timestamp_ms)
            return Output(dead_letter=letter)
        alerts = engine.observe(event, t)
        self._watermark_at_last_record = engine.watermark_s
        rollups = engine.take_rollups()
        if alerts or rollups:
            return Output(alerts=alerts, rollups=rollups)
        return NOTHING

    def _over_cap_reason(self) -> str:
        cap = self.engine.config.max_agents
        return (f"agent_id: this partition already holds {cap} agents, the most detection.max_agents allows; "
                "a producer may be sending an id per execution or tenant, or raise the limit")

    def tick(self, wall_now: float) -> Output:
        """Idle advance: with no record for `idle_after_s`, event time follows the wall clock from
        the last record on. Never runs while records flow, so replays stay deterministic."""
        if not self.idle_after_s or self._last_record_wall is None or self._watermark_at_last_record is None:
            return NOTHING
        idle = wall_now - self._last_record_wall
        if idle < self.idle_after_s:
            return NOTHING
        alerts = self.engine.advance(self._watermark_at_last_record + idle)
        rollups = self.engine.take_rollups()
        self.dirty = True
        return Output(alerts=alerts, rollups=rollups) if alerts or rollups else NOTHING

    def checkpoint(self) -> Checkpoint:
        self.generation += 1
        self.applied_since_checkpoint = 0
        self.dirty = False
        return Checkpoint(self.partition, self.generation, self.next_offset, self.engine.snapshot())
