"""Bad input at scale: over 100,000 mutated events (truncated JSON, wrong types, huge strings and
arrays, deep nesting, naive / far-future / ancient times, NaN and infinities, invalid UTF-8,
unknown kinds, oversized messages, null bytes, ...) between valid ones, through a partition's
pipeline: no crash, every one dead-lettered with a readable reason and its source offset, the
valid events around them applied exactly as without them, `invalid_events` paging; and memory
bounded under high-cardinality garbage (agent ids, tool names, task ids, metric names).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from hashlib import sha256
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.contract.alert import Alert
from monitor.contract.events import EventError, decode_event
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.partition import PartitionEngine
from monitor.local.simulate import Incident, default_agents, generate
from tests.support.mutate import MUTATIONS, mutants

START = datetime(2026, 11, 2, tzinfo=UTC)
MUTANTS_PER_EVENT = 6


@lru_cache(maxsize=1)
def base_events() -> tuple[dict[str, Any], ...]:
    """Three agents, five days, an escalation incident on day five: ~12k valid events."""
    agents = default_agents(3, 30.0, seed=5)
    incident = Incident(rule="tool_calls_all_failing", onset=START + timedelta(days=4, hours=10),
                        agent_id=agents[0].agent_id, duration_h=2.0)
    return tuple(generate(agents, START, 5.0, incidents=[incident], seed=5))


def stamp(ev: dict[str, Any]) -> int:
    """The Kafka record timestamp: the event's arrival, a little after its time."""
    return int(datetime.fromisoformat(ev["occurred_at"]).timestamp() * 1000) + 500


def partition(config: DetectionConfig | None = None) -> PartitionEngine:
    config = config or DetectionConfig()
    return PartitionEngine("agent-events", 0, lambda snap: Engine(config), max_event_bytes=512 * 1024,
                           wall_now=START.timestamp())


def run_clean() -> tuple[PartitionEngine, list[Alert]]:
    part = partition()
    alerts: list[Alert] = []
    for offset, ev in enumerate(base_events()):
        ts = stamp(ev)
        alerts += part.process(json.dumps(ev).encode(), ev["agent_id"].encode(), offset, ts, ts / 1000).alerts
    return part, alerts


FIELD_FIRST = re.compile(r"^(<event>|[a-z_]+(\.[a-z_0-9]+|\[\d+\])*)[: ]")


def readable(reason: str) -> bool:
    """One printable line, not a dump, that starts with the field it is about (or <event>)."""
    return (0 < len(reason) <= 400 and reason.isprintable() and "Traceback" not in reason
            and FIELD_FIRST.match(reason) is not None)


def test_over_100k_mutated_events_are_each_dead_lettered_with_a_reason_and_change_nothing_else() -> None:
    rng = random.Random(19)
    part = partition()
    alerts: list[Alert] = []
    by_mutation: Counter[str] = Counter()
    letters_by_mutation: Counter[str] = Counter()
    offset = 0
    for ev in base_events():
        ts = stamp(ev)
        alerts += part.process(json.dumps(ev).encode(), ev["agent_id"].encode(), offset, ts, ts / 1000).alerts
        offset += 1
        for name, raw in mutants(ev, rng, MUTANTS_PER_EVENT):
            out = part.process(raw, ev["agent_id"].encode(), offset, ts, ts / 1000)  # never raises
            by_mutation[name] += 1
            letter = out.dead_letter
            if letter is None:
                # applied: only a mutant the contract accepts, the duplicate of an event already applied
                event = decode_event(raw)
                assert event.event_id == ev["event_id"], (name, raw[:200])
            else:
                letters_by_mutation[name] += 1
                assert letter.source_offset == offset and letter.source_partition == 0
                if letter.original_truncated:  # over 512 KiB: the first part and the digest of the whole
                    assert raw.startswith(letter.original()) and letter.original_sha256 == sha256(raw).hexdigest()
                else:
                    assert letter.original() == raw
                assert readable(letter.error), (name, letter.error)
            alerts += out.alerts
            offset += 1

    total = sum(by_mutation.values())
    assert total >= 100_000
    assert set(by_mutation) == set(MUTATIONS)
    # a mutant the contract still accepts (an unknown extra field, a value still in range) is a
    # duplicate (checked above); these kinds never are:
    for name in ("truncated", "deep_nesting", "invalid_utf8", "oversized", "not_an_object", "huge_array",
                 "unknown_kind", "missing_field", "null_bytes"):
        assert letters_by_mutation[name] == by_mutation[name], name

    clean, clean_alerts = run_clean()
    assert part.engine.snapshot()["agents"] == clean.engine.snapshot()["agents"]
    agent_alerts = [a.to_json() for a in alerts if a.rule != "invalid_events"]
    assert agent_alerts == [a.to_json() for a in clean_alerts]
    assert any(a.rule == "tool_calls_all_failing" for a in clean_alerts)
    assert any(a.rule == "invalid_events" and a.state == "firing" for a in alerts)
    assert part.dead_letters == sum(letters_by_mutation.values())


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(raw=st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000).map(str.encode),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=50),
                 lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=20), kids, max_size=5),
                 max_leaves=40).map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.fixed_dictionaries({
        "schema_version": st.sampled_from([1, 2, "1"]), "kind": st.sampled_from(["execution", "outcome", "x"]),
        "event_id": st.text(max_size=140), "occurred_at": st.sampled_from(
            ["2026-11-02T10:00:00Z", "2026-11-02T10:00:00", "9999-01-01T00:00:00Z", ""]),
        "agent_id": st.text(max_size=140), "execution_id": st.text(max_size=10),
        "status": st.sampled_from(["completed", "escalated", "done"]),
        "steps": st.one_of(st.integers(), st.floats(allow_nan=True)),
    }).map(lambda v: json.dumps(v, allow_nan=True).encode()),
))
def test_any_bytes_either_apply_or_dead_letter_with_a_reason(raw: bytes) -> None:
    part = partition()
    now = datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp()
    out = part.process(raw, None, 0, int(now * 1000), now)
    try:
        decode_event(raw)
        accepted = True
    except EventError:
        accepted = False
    if out.dead_letter is not None:
        assert readable(out.dead_letter.error), out.dead_letter.error
    else:
        assert accepted  # nothing the contract refuses reaches the engine
    assert part.next_offset == 1


def test_high_cardinality_garbage_is_capped_and_counted() -> None:
    """A producer sending a fresh agent id per event, and an agent with endless tool names, task
    ids and metric names: the engine keeps at most what its caps allow."""
    config = DetectionConfig(max_agents=200, max_tools_per_agent=20, max_metrics_per_agent=10,
                             max_tasks_per_agent=1000)
    part = partition(config)
    t0 = START.timestamp()
    offset = 0
    letters = 0
    for i in range(5_000):  # 5,000 distinct agents
        when = datetime.fromtimestamp(t0 + i * 0.5, tz=UTC).isoformat()
        raw = json.dumps({"schema_version": 1, "kind": "execution", "event_id": f"g{i}", "occurred_at": when,
                          "agent_id": f"garbage-{i}", "execution_id": f"x{i}", "task_id": f"t{i}",
                          "status": "completed"}).encode()
        out = part.process(raw, None, offset, int((t0 + i * 0.5) * 1000), t0 + i * 0.5)
        offset += 1
        if out.dead_letter is not None:
            letters += 1
            assert "detection.max_agents" in out.dead_letter.error
    assert len(part.engine.agent_ids()) == 200
    assert part.agents_refused == letters == 4_800

    t1 = t0 + 5_000 * 0.5
    for i in range(10_000):  # one agent, endless names
        when = datetime.fromtimestamp(t1 + i * 0.2, tz=UTC).isoformat()
        ev = {"schema_version": 1, "kind": "execution", "event_id": f"h{i}", "occurred_at": when,
              "agent_id": "garbage-1", "execution_id": f"y{i}", "task_id": f"task-{i}", "status": "completed",
              "tool_calls": [{"tool": f"tool-{i}", "status": "error"}]}
        part.process(json.dumps(ev).encode(), None, offset, int((t1 + i * 0.2) * 1000), t1 + i * 0.2)
        offset += 1
        outcome = {"schema_version": 1, "kind": "outcome", "event_id": f"o{i}", "occurred_at": when,
                   "agent_id": "garbage-1", "execution_id": f"y{i}", "metric": f"metric-{i}", "value": 1.0}
        part.process(json.dumps(outcome).encode(), None, offset, int((t1 + i * 0.2) * 1000), t1 + i * 0.2)
        offset += 1
    snap = part.engine.snapshot()["agents"]["garbage-1"]
    text = json.dumps(snap)
    distinct_tools = {f"tool-{i}" for i in range(10_000)}
    named_tools = sum(1 for name in distinct_tools if f'"{name}"' in text)
    assert named_tools <= 20 * 4  # windows, hour and baseline may each name a capped set
    assert sum(1 for i in range(10_000) if f'"metric-{i}"' in text) <= 10 * 4
    assert len(text) < 3_000_000
