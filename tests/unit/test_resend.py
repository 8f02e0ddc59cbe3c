"""An event counts at most once for as long as it can change any state: a producer that resends a
whole file after a partial failure leaves every baseline, rollup and alert as they were."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from monitor.contract.alert import Alert
from monitor.contract.wire import read_event
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.local.simulate import Incident, default_agents, generate

START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 10.0


@lru_cache(maxsize=1)
def stream() -> tuple[bytes, ...]:
    """Three agents, ten days, a quality incident on day nine: in arrival order."""
    agents = default_agents(3, 30.0, seed=7)
    incident = Incident(rule="quality_drop", onset=START + timedelta(days=8, hours=10),
                        agent_id=agents[1].agent_id, duration_h=4.0)
    events = generate(agents, START, DAYS, incidents=[incident], seed=7)
    return tuple(json.dumps(e, separators=(",", ":")).encode() for e in events)


def run(lines: list[bytes]) -> tuple[Engine, list[Alert], list[Any]]:
    engine = Engine(DetectionConfig())
    alerts: list[Alert] = []
    rollups: list[Any] = []
    for line in lines:
        alerts.extend(engine.observe(read_event(line)))
        rollups.extend(r.model_dump(mode="json") for r in engine.take_rollups())
    alerts.extend(engine.flush())
    rollups.extend(r.model_dump(mode="json") for r in engine.take_rollups())
    return engine, alerts, rollups


def test_resending_the_whole_file_after_a_partial_failure_changes_no_state() -> None:
    lines = list(stream())
    cut = int(len(lines) * 0.7)  # day seven: the producer failed here, then resent from the start
    once, once_alerts, once_rollups = run(lines)
    twice, twice_alerts, twice_rollups = run(lines[:cut] + lines)

    assert [a.to_json() for a in twice_alerts] == [a.to_json() for a in once_alerts]
    assert any(a.rule == "quality_drop" for a in once_alerts)  # the comparison covers a real incident
    assert twice_rollups == once_rollups
    assert twice.snapshot()["agents"] == once.snapshot()["agents"]  # every baseline and history hour
    c = twice.counters
    assert c["events"] == once.counters["events"]
    assert c["late_folded"] == once.counters["late_folded"]
    assert c["duplicates"] + c["late_unverifiable"] == once.counters["duplicates"] + cut
    assert c["late_unverifiable"] > cut // 2  # most of the resend is older than the id memory
    assert twice.dedup_floor_s is not None


def test_a_late_event_inside_the_id_memory_is_folded_and_one_past_it_is_dropped() -> None:
    lines = list(stream())[:20_000]
    engine, _, _ = run(lines)
    floor = engine.dedup_floor_s
    assert floor is not None
    watermark = engine.watermark_s
    assert watermark is not None and watermark - floor >= DetectionConfig().dedup_window_s

    def late_copy(seconds_before: float, event_id: str) -> bytes:
        data = json.loads(next(line for line in lines if b'"kind":"execution"' in line))
        when = datetime.fromtimestamp(watermark - seconds_before, tz=UTC)
        data.update(event_id=event_id, execution_id=event_id, task_id=event_id,
                    occurred_at=when.isoformat())
        return json.dumps(data).encode()

    before = dict(engine.counters)
    engine.observe(read_event(late_copy(watermark - floor - 60, "late-inside")))
    assert engine.counters["late_folded"] == before["late_folded"] + 1
    engine.observe(read_event(late_copy(watermark - floor + 60, "late-outside")))
    assert engine.counters["late_unverifiable"] == before["late_unverifiable"] + 1
    assert engine.counters["late_folded"] == before["late_folded"] + 1


def test_the_id_memory_floor_survives_a_snapshot_and_is_estimated_for_older_snapshots() -> None:
    engine, _, _ = run(list(stream())[:20_000])
    data = json.loads(json.dumps(engine.snapshot()))
    restored = Engine.restore(data, DetectionConfig())
    assert restored.dedup_floor_s == engine.dedup_floor_s

    newer_set_began = data["seen_started"]
    for key in ("seen_started", "dedup_floor"):  # as written before the floor was kept
        del data[key]
    old = Engine.restore(data, DetectionConfig())
    floor, estimate = engine.dedup_floor_s, old.dedup_floor_s
    assert floor is not None and estimate is not None
    # never lower than the true floor (no event folded twice): the start of the newer id set
    assert floor < estimate == newer_set_began
