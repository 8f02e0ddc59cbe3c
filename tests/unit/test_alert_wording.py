"""Alert text says what the numbers say: a quality resolve quotes a mean back above its baseline
as higher, not lower (it read "0.78 ..., usually 0.75 (3.2 % lower)")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.core.rules.means import _lower_or_higher
from monitor.local.simulate import Incident, default_agents, generate

START = datetime(2026, 11, 2, tzinfo=UTC)


def test_the_direction_word_follows_the_sign() -> None:
    assert _lower_or_higher(0.49, 0.75) == "35 % lower"
    assert _lower_or_higher(0.7766, 0.7529) == "3.1 % higher"


def test_a_quality_incident_fires_lower_and_resolves_with_the_right_word() -> None:
    agents = default_agents(2, 50.0, seed=3)
    incident = Incident(rule="quality_drop", onset=START + timedelta(days=8, hours=9), agent_id=agents[0].agent_id,
                        duration_h=5.0)
    lines = [json.dumps(e).encode() for e in generate(agents, START, 9.0, incidents=[incident], seed=3)]
    alerts = [a for a in replay(lines, Engine(DetectionConfig())).alerts if a.rule == "quality_drop"]
    firing = next(a for a in alerts if a.state == "firing")
    assert "lower)" in firing.summary
    resolved = next(a for a in alerts if a.state == "resolved")
    above = resolved.metric.current is not None and resolved.metric.baseline is not None and \
        resolved.metric.current > resolved.metric.baseline
    assert ("higher)" in resolved.summary) == above and ("lower)" in resolved.summary) == (not above)
