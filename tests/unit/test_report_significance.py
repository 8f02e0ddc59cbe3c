"""The weekly review calls a change "worse" (or "better") only by the engine's standards: at
least half the effect its rule pages on, on the rule's minimum sample, and significant
(`monitor/core/significance.py`). Noise keeps its arrow but not the colour or a finding."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.contract.rollup import Rollup, ToolRollup
from monitor.core.significance import shares_differ
from monitor.report.analysis import build_review
from monitor.report.review import MetricComparison
from monitor.report.week import IsoWeek

WEEK = IsoWeek.parse("2026-W46")


def rollup(hour: datetime, rng: random.Random, *, escalation: float = 0.15, cost: float = 0.02,
           tool_calls: int = 0, tool_errors: int = 0) -> Rollup:
    n = 40
    esc = sum(rng.random() < escalation for _ in range(n))
    costs = [cost * rng.lognormvariate(0, 0.3) for _ in range(n)]
    return Rollup(
        agent_id="a", hour=hour, executions=n, completed=n - esc, escalations=esc, failures=0, timeouts=0,
        repeats=0, quality_sum=0.8 * n, quality_count=n, cost_usd_sum=sum(costs), cost_count=n,
        unpriced_executions=0, tokens_sum=1000.0 * n, tokens_count=n, steps_mean=4.0, steps_p95=6.0,
        duration_ms_mean=900.0, duration_ms_p95=1500.0,
        tools={"crm.update": ToolRollup(calls=tool_calls, errors=tool_errors, rate_limited=0,
                                        ok=tool_calls - tool_errors)} if tool_calls else {},
    )


def weeks(this_week: dict, seed: int = 1) -> list[Rollup]:
    """Five weeks of weekday office hours (09-17): four usual ones, then the reported one."""
    rng = random.Random(seed)
    out = []
    for k in range(4, -1, -1):
        start = WEEK.shift(-k).start
        for day in range(5):
            for h in range(9, 17):
                hour = start + timedelta(days=day, hours=h)
                out.append(rollup(hour, rng, **(this_week if k == 0 else {})))
    return out


def metric(rollups: list[Rollup], name: str) -> MetricComparison:
    agent = build_review(rollups, [], WEEK, generated_at=datetime(2026, 11, 20, tzinfo=UTC)).agents[0]
    return next(m for m in agent.metrics + agent.tool_error_shares if m.name == name)


def test_a_usual_week_calls_nothing_worse() -> None:
    for name in ("escalation_rate", "cost_per_execution", "quality_mean"):
        m = metric(weeks({}), name)
        assert m.assessment == "neutral" and m.significant is False, m


def test_a_doubled_escalation_rate_is_worse_and_a_finding() -> None:
    rollups = weeks({"escalation": 0.30})
    m = metric(rollups, "escalation_rate")
    assert (m.assessment, m.significant, m.direction) == ("worse", True, "up")
    agent = build_review(rollups, [], WEEK).agents[0]
    assert any(f.startswith("Escalation rate rose") for f in agent.findings)


def test_eight_percent_more_cost_is_real_but_under_half_the_gate_so_not_worse() -> None:
    m = metric(weeks({"cost": 0.0216}), "cost_per_execution")
    assert m.direction == "up" and m.significant is False and m.assessment == "neutral"
    big = metric(weeks({"cost": 0.03}), "cost_per_execution")  # +50 %: the engine's own gate
    assert big.assessment == "worse" and big.significant is True


def test_a_tool_error_share_up_50_percent_on_eight_calls_is_not_worse() -> None:
    rollups = weeks({"tool_calls": 0})
    week_start = WEEK.start
    rng = random.Random(9)
    # the tool is seldom used: 8 calls in the week (3 errors) against 4 % usually
    rollups = [r for r in rollups if r.hour < week_start] + [
        rollup(week_start + timedelta(days=d, hours=10), rng, tool_calls=2, tool_errors=1 if d < 3 else 0)
        for d in range(4)]
    base_calls = [r for r in rollups if r.hour < week_start]
    rollups = [r.model_copy(update={"tools": {"crm.update": ToolRollup(calls=25, errors=1, rate_limited=0, ok=24)}})
               if r in base_calls else r for r in rollups]
    m = metric(rollups, "tool_error_share:crm.update")
    assert m.direction == "up" and m.n == 8 and m.assessment == "neutral" and m.significant is False


def test_the_share_test_is_the_engines_exact_one() -> None:
    assert not shares_differ(3, 8, 40, 1000, 1e-3)  # 3 of 8 against 4 %: p ~ 0.003 two-sided
    assert shares_differ(6, 8, 40, 1000, 1e-3)


def test_the_heatmap_ranks_cells_by_evidence_and_three_failures_in_eight_calls_are_not_hot() -> None:
    from monitor.report.tool_errors import tool_error_heatmap

    rng = random.Random(3)
    start = WEEK.start
    rollups = [rollup(start + timedelta(days=d, hours=h), rng, tool_calls=40, tool_errors=1)
               for d in range(5) for h in range(9, 17)]
    rollups.append(rollup(start + timedelta(days=5, hours=3), rng, tool_calls=8, tool_errors=3))  # 37 %: noise
    rollups.append(rollup(start + timedelta(days=1, hours=3), rng, tool_calls=40, tool_errors=14))  # an outage
    heat = tool_error_heatmap(rollups, min_calls=5)
    assert (heat.hottest.weekday, heat.hottest.hour) == (1, 3)
    assert [(c.weekday, c.hour) for c in heat.hot_cells] == [(1, 3)]


def test_a_first_week_shows_the_previous_week_as_n_a_not_zero() -> None:
    from monitor.report.markdown import render_markdown

    only_this_week = [r for r in weeks({}) if r.hour >= WEEK.start]
    review = build_review(only_this_week, [], WEEK)
    esc = review.agents[0].escalations
    assert esc.previous_escalations is None
    assert all(c.previous_share_of_escalations is None for c in esc.by_reason + esc.by_task_type)
    text = render_markdown(review)
    assert "(previous week n/a)" in text and "(previous week 0)" not in text
