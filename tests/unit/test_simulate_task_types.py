"""The simulator's task types: drawn from a random stream of their own (every other field of a
stream stays what it was), and incidents confined to one task type."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from monitor.local.simulate import AgentProfile, Incident, default_agents, generate, parse_incident
from tests.unit.test_engine_support import T0


def test_task_types_come_from_their_own_random_stream() -> None:
    with_types = default_agents(2, 30.0, seed=4)
    without = [dataclasses.replace(p, task_types=()) for p in with_types]
    start = datetime(2026, 11, 2, tzinfo=UTC)
    a = list(generate(with_types, start, 0.5, seed=4))
    b = list(generate(without, start, 0.5, seed=4))
    assert len(a) == len(b)
    assert {e["task_type"] for e in a if e["kind"] == "execution"} == {"billing", "onboarding", "general"}
    assert [{k: v for k, v in e.items() if k != "task_type"} for e in a] == b


def test_an_incident_confined_to_a_task_type_touches_only_its_runs() -> None:
    inc = parse_incident("escalation_rate_rise@2026-11-02T00:00Z,magnitude=0.9,task_type=general")
    assert inc.task_type == "general"
    agent = AgentProfile("a", task_types=(("general", 0.5), ("billing", 0.5)))
    events = [e for e in generate([agent], T0, 1.0, seed=3, incidents=[inc]) if e["kind"] == "execution"]
    rate = {tt: sum(e["status"] == "escalated" for e in events if e["task_type"] == tt) /
            sum(e["task_type"] == tt for e in events) for tt in ("general", "billing")}
    assert rate["general"] > 0.8 and rate["billing"] < 0.3
    assert Incident("quality_drop", "a", T0).task_type is None
