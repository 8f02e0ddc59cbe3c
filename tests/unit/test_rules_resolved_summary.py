"""A resolved alert's one-line summary describes the recovery, not the failure it ended."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from monitor.contract.alert import Alert
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.local.simulate import Incident, default_agents, generate


def incident_alerts(rule: str, duration_h: float, days: float) -> tuple[Incident, list[Alert]]:
    """One agent at 50 executions/hour, an incident of `rule` on day 3 at 10:00; the rule's alerts."""
    start = datetime(2026, 11, 2, tzinfo=UTC)
    agents = default_agents(1, 50.0, seed=4)
    incident = Incident(rule=rule, agent_id=agents[0].agent_id, onset=start + timedelta(days=3, hours=10),
                        duration_h=duration_h)
    lines = [json.dumps(e).encode() for e in generate(agents, start, days, incidents=[incident], seed=4)]
    return incident, [a for a in replay(lines, Engine()).alerts if a.rule == rule]


def test_resolved_tool_calls_all_failing_says_how_many_calls_succeed_again() -> None:
    _, alerts = incident_alerts("tool_calls_all_failing", duration_h=2.0, days=3.8)
    assert [a.state for a in alerts] == ["firing", "resolved"]
    firing, resolved = alerts
    assert "none of" in firing.summary
    assert "none of" not in resolved.summary
    assert resolved.metric.current is not None and resolved.metric.current > 0
    assert f"{round(resolved.metric.current * resolved.metric.n)} of {resolved.metric.n} tool calls" in resolved.summary


def test_resolved_escalation_rise_quotes_the_recent_window_that_judged_it_clear() -> None:
    # The CUSUM segment reaches back to the incident's onset for hours after it ended; a resolution
    # that quoted it would read "resolved: escalation rate 31 % over the last 6h".
    incident, alerts = incident_alerts("escalation_rate_rise", duration_h=3.0, days=4.2)
    assert [a.state for a in alerts] == ["firing", "resolved"]
    firing, resolved = alerts
    extra = resolved.metric.model_dump()
    assert extra.get("test") != "cusum", resolved.summary
    assert resolved.metric.current is not None and firing.metric.current is not None
    assert resolved.metric.current < firing.metric.current
    assert f"over the last {resolved.metric.window}" in resolved.summary
    assert resolved.at - incident.onset - timedelta(hours=3) < timedelta(hours=3)
