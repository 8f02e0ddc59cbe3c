"""The engine fills each hourly rollup's review extras (what the weekly report needs beyond sums),
consistently with the rollup's own counts, and the report built from those rollups uses them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from monitor.contract.rollup import Rollup
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.local.simulate import default_agents, generate
from monitor.report.analysis import build_review
from monitor.report.week import IsoWeek

START = datetime(2026, 11, 2, tzinfo=UTC)  # Monday of ISO week 2026-W45


def rollups_of(days: float) -> list[Rollup]:
    lines = [json.dumps(e).encode() for e in generate(default_agents(2, 40.0, seed=8), START, days, seed=8)]
    got: list[Rollup] = []
    replay(lines, Engine(), on_rollup=got.append)
    return got


def test_every_rollup_carries_review_extras_that_agree_with_its_counts() -> None:
    rollups = rollups_of(2.0)
    assert rollups
    for r in rollups:
        assert r.review is not None, r.key
        assert r.review.executions_seen == r.executions, r.key
        assert len(r.review.sample) == min(r.executions, 20)
        assert all(item.execution_id.startswith("x-") for item in r.review.sample)
        assert sum(c.executions for c in r.review.task_types.values()) == r.executions


def test_report_from_engine_rollups_offers_executions_to_review() -> None:
    review = build_review(rollups_of(8.0), [], IsoWeek(2026, 45))
    agent = review.agents[0]
    assert 10 <= len(agent.sample) <= 20


def test_signal_view_reports_the_last_hour_of_each_agent() -> None:
    from datetime import timedelta

    from monitor.sdk import execution

    engine = Engine()
    t0 = START + timedelta(hours=5)
    for i, status in enumerate(["completed", "escalated", "completed", "failed"]):
        engine.observe(execution("a", execution_id=f"x{i}", task_id=f"t{i}", status=status,  # type: ignore[arg-type]
                                 occurred_at=t0 + timedelta(minutes=5 * i), steps=2 * (i + 1), quality_score=0.5,
                                 cost_usd=0.01 * (i + 1),
                                 tool_calls=[{"tool": "crm", "status": "ok" if i else "error"}]))
    engine.advance(t0 + timedelta(minutes=40))  # close the buckets of those 20 minutes
    view = engine.signal_view(3600)["a"]
    assert view["executions_per_hour"][0] == 4
    assert view["escalation_rate"][0] == 0.25
    assert view["failure_rate"][0] == 0.25
    assert view["steps_mean"][0] == 5
    assert view["quality_mean"][0] == 0.5
    assert abs(view["cost_per_execution_usd"][0] - 0.025) < 1e-12  # type: ignore[operator]
    assert view["tool_call_success_share"][0] == 0.75
    assert view["escalation_rate"][1] is None  # no baseline yet
