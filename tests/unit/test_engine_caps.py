"""Per agent, at most `max_tools_per_agent` tools and `max_metrics_per_agent` outcome metrics
are tracked by name; later names are pooled under `__other__`, so memory stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.contract.rollup import Rollup
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.sdk import execution, outcome

START = datetime(2026, 11, 2, tzinfo=UTC)


def test_names_beyond_the_cap_are_pooled_under_other() -> None:
    engine = Engine(DetectionConfig(max_tools_per_agent=3, max_metrics_per_agent=2))
    for i in range(6):
        at = START + timedelta(minutes=i)
        engine.observe(execution("a", execution_id=f"x{i}", task_id=f"t{i}", status="completed", occurred_at=at,
                                 tool_calls=[{"tool": f"tool-{i}", "status": "ok"},
                                             {"tool": "tool-0", "status": "error"}]))
        engine.observe(outcome("a", metric=f"metric-{i}", value=float(i), occurred_at=at))
    engine.advance(START + timedelta(hours=2))  # close the hour, so its rollup is emitted
    rollups: list[Rollup] = engine.take_rollups()
    assert len(rollups) == 1
    tools = rollups[0].tools
    assert set(tools) == {"tool-0", "tool-1", "tool-2", "__other__"}
    assert tools["tool-0"].calls == 7 and tools["tool-0"].errors == 6
    assert tools["__other__"].calls == 3  # tool-3, tool-4, tool-5
    outcomes = rollups[0].outcomes
    assert set(outcomes) == {"metric-0", "metric-1", "__other__"}
    assert outcomes["__other__"].count == 4 and outcomes["__other__"].sum == 2 + 3 + 4 + 5
