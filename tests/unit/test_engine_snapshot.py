"""snapshot() / restore(): plain JSON data, versioned; a restored engine continues exactly."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from monitor.contract.events import validate_event
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine, SnapshotError
from monitor.local.simulate import AgentProfile, Incident, generate
from tests.unit.test_engine_support import T0, fast_config


def test_restored_engine_gives_the_same_alerts_as_an_uninterrupted_one() -> None:
    inc = Incident("escalation_rate_rise", "a", T0 + timedelta(hours=40), magnitude=0.6)
    events = [validate_event(e) for e in generate([AgentProfile("a"), AgentProfile("b", rate_per_hour=10)],
                                                  T0, 2.0, incidents=[inc], seed=8)]
    cfg = fast_config()
    whole = Engine(cfg)
    expected = [a for e in events for a in whole.observe(e)] + whole.flush()
    first = Engine(cfg)
    cut = len(events) * 3 // 4
    got = [a for e in events[:cut] for a in first.observe(e)]
    data = json.loads(json.dumps(first.snapshot()))  # plain JSON
    second = Engine.restore(data, cfg)
    got += [a for e in events[cut:] for a in second.observe(e)] + second.flush()
    assert expected and [a.to_json() for a in got] == [a.to_json() for a in expected]


def test_snapshot_refuses_other_versions_and_shapes() -> None:
    eng = Engine()
    eng.observe(validate_event(next(generate([AgentProfile("a")], T0, 0.1, seed=1))))
    data = eng.snapshot()
    with pytest.raises(SnapshotError):
        Engine.restore({**data, "version": 999})
    with pytest.raises(SnapshotError):
        Engine.restore(data, DetectionConfig(bucket_s=600, windows_s=(1800, 3600, 3 * 3600, 6 * 3600)))
