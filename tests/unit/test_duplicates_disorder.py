"""Duplicate storms and disorder: the same events resent minutes, hours and days after they were
first delivered, and arrival order shuffled within the allowed lateness, leave counts, baselines
and alerts as they are with one clean, ordered delivery."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import pytest

from monitor.contract.alert import Alert
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.partition import PartitionEngine
from monitor.local.simulate import Incident, default_agents, generate

START = datetime(2026, 11, 2, tzinfo=UTC)
CONFIG = DetectionConfig()


@lru_cache(maxsize=1)
def events() -> tuple[tuple[float, bytes, bytes], ...]:
    """Three agents, nine days, an escalation rise on day eight: (time, key, value), by event time."""
    agents = default_agents(3, 30.0, seed=11)
    incident = Incident(rule="token_cost_spike", onset=START + timedelta(days=8, hours=9),
                        agent_id=agents[2].agent_id, duration_h=5.0)
    out = [(datetime.fromisoformat(e["occurred_at"]).timestamp(), e["agent_id"].encode(),
            json.dumps(e, separators=(",", ":")).encode())
           for e in generate(agents, START, 9.0, incidents=[incident], seed=11, disorder_s=0.0)]
    out.sort(key=lambda r: r[0])
    return tuple(out)


def deliver(records: list[tuple[float, bytes, bytes]]) -> tuple[PartitionEngine, list[Alert], dict[str, Any]]:
    """Records in the given arrival order; each arrives at the latest event time seen so far."""
    part = PartitionEngine("agent-events", 0, lambda snap: Engine(CONFIG), max_event_bytes=512 * 1024,
                           wall_now=START.timestamp())
    alerts: list[Alert] = []
    arrival = START.timestamp()
    letters = 0
    for offset, (t, key, value) in enumerate(records):
        arrival = max(arrival, t)
        out = part.process(value, key, offset, int(arrival * 1000), arrival)
        alerts += out.alerts
        letters += out.dead_letter is not None
    alerts += part.engine.flush()
    return part, alerts, {"letters": letters, **part.engine.counters}


def state(part: PartitionEngine) -> dict[str, Any]:
    return part.engine.snapshot()["agents"]


@lru_cache(maxsize=1)
def clean() -> tuple[PartitionEngine, list[Alert], dict[str, Any]]:
    return deliver(list(events()))


@pytest.mark.parametrize("delay_s,share", [(120, 0.5), (600, 0.3), (3 * 3600, 0.3), (3 * 86400, 0.3)],
                         ids=["2min", "10min", "3h", "3days"])
def test_a_duplicate_storm_changes_nothing(delay_s: float, share: float) -> None:
    rng = random.Random(int(delay_s))
    records = list(events())
    resent = [(t + delay_s, key, value) for t, key, value in records if rng.random() < share]
    # each copy arrives `delay_s` after its event, carrying the event's own occurred_at
    part, alerts, counts = deliver(sorted(records + resent, key=lambda r: r[0]))
    base, base_alerts, base_counts = clean()
    assert [a.to_json() for a in alerts] == [a.to_json() for a in base_alerts]
    assert any(a.rule == "token_cost_spike" for a in base_alerts)
    assert state(part) == state(base)
    assert counts["events"] == base_counts["events"]
    assert counts["late_folded"] == base_counts["late_folded"]
    caught = {k: counts[k] - base_counts[k] for k in ("duplicates", "late_unverifiable", "letters")}
    assert sum(caught.values()) == len(resent), caught  # every copy is accounted for: dropped, and said why


def test_disorder_within_the_allowed_lateness_gives_the_same_alerts_and_counts() -> None:
    rng = random.Random(3)
    lateness = CONFIG.allowed_lateness_s
    # each record arrives up to 0.9 x the lateness after its time, in order of arrival
    arrivals = sorted(((t + rng.uniform(0, lateness * 0.9), key, value) for t, key, value in events()),
                      key=lambda r: r[0])
    part, alerts, counts = deliver(arrivals)
    base, base_alerts, base_counts = clean()
    assert [a.to_json() for a in alerts] == [a.to_json() for a in base_alerts]
    keys = ("events", "duplicates", "late_folded", "late_dropped", "late_unverifiable", "letters")
    assert {k: counts[k] for k in keys} == {k: base_counts[k] for k in keys}
    # sums of floats added in another order may differ in the last bits; everything else is equal
    assert_close(state(part), state(base))


def assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)), (path, a, b)
    else:
        assert a == b, (path, a, b)
