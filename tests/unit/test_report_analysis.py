"""The weekly review of a simulated week with injected patterns (tests/support/report_week.py):
the report's numbers and findings must show them, checked against the raw events."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta

import pytest

from monitor.core.config import DetectionConfig
from monitor.report.analysis import build_review
from monitor.report.config import ReportSettings
from monitor.report.html import render_html
from monitor.report.markdown import render_markdown
from monitor.report.review import WeeklyReview
from monitor.report.week import IsoWeek
from tests.support.report_week import (
    AGENT,
    EXPENSIVE_COST,
    EXPENSIVE_ID,
    FAILING_TOOL,
    NEW_CHECKPOINT_AT,
    OTHER_AGENT,
    REPORT_WEEK,
    RISING_TYPE,
    WEEK_START,
    by_agent_week,
    simulated_alerts,
    simulated_events,
    simulated_rollups,
)

WEEK = IsoWeek.parse(REPORT_WEEK)
PREV_START = WEEK_START - timedelta(days=7)


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return simulated_events()


@pytest.fixture(scope="module")
def review() -> WeeklyReview:
    detection = DetectionConfig(agents={AGENT: {"monthly_budget_usd": 500.0}})
    return build_review(simulated_rollups(), simulated_alerts(), WEEK, ReportSettings(monthly_budget_usd=100.0),
                        detection=detection, source="test")


def _escalations_by(events: list[dict], key: str) -> Counter[str]:
    return Counter(e.get(key) or "(none)" for e in events if e["status"] == "escalated")


def test_volume_and_rates_are_the_events_counts(review: WeeklyReview, events: list[dict]) -> None:
    week = by_agent_week(events, AGENT, WEEK_START)
    prev = by_agent_week(events, AGENT, PREV_START)
    a = review.agent(AGENT)
    assert a.metric("executions").current == len(week)
    assert a.metric("executions").previous == len(prev)
    esc = a.metric("escalation_rate")
    assert esc.current == pytest.approx(sum(e["status"] == "escalated" for e in week) / len(week))
    assert esc.previous == pytest.approx(sum(e["status"] == "escalated" for e in prev) / len(prev))
    assert esc.direction == "up" and esc.assessment == "worse"
    failure = a.metric("failure_rate")
    assert failure.current == pytest.approx(sum(e["status"] in ("failed", "timeout") for e in week) / len(week))
    assert a.metric("executions").direction == "flat"  # volume unchanged: no marker noise
    assert review.baseline_weeks == ["2026-W42", "2026-W43", "2026-W44", "2026-W45"]
    assert "baseline: 2 of 4 earlier weeks had data" in a.notes


def test_the_tuesday_0300_tool_outage_is_the_hottest_heatmap_cell(review: WeeklyReview, events: list[dict]) -> None:
    a = review.agent(AGENT)
    hottest = a.tool_errors.hottest
    assert hottest is not None and (hottest.weekday, hottest.hour) == (1, 3)
    window = [e for e in by_agent_week(events, AGENT, WEEK_START) if e["occurred_at"].startswith("2026-11-10T03")]
    crm_calls = sum(1 for e in window for t in e.get("tool_calls", []) if t["tool"] == FAILING_TOOL)
    all_calls = sum(len(e.get("tool_calls", [])) for e in window)
    assert crm_calls >= 5
    assert hottest.tools[FAILING_TOOL] == crm_calls  # every crm.update call of the window failed
    assert hottest.calls == all_calls and a.tool_errors.calls[1][3] == all_calls
    assert hottest.error_share >= 10 * (a.tool_errors.week_error_share or 1)
    assert a.tool_errors.hot_cells[0] == hottest
    assert any(f.startswith("Tool errors at Tue 03:00 UTC") and FAILING_TOOL in f for f in a.findings)


def test_the_category_whose_escalations_doubled_is_listed_as_rising(review: WeeklyReview, events: list[dict]) -> None:
    a = review.agent(AGENT)
    week, prev = by_agent_week(events, AGENT, WEEK_START), by_agent_week(events, AGENT, PREV_START)
    now_by, prev_by = _escalations_by(week, "task_type"), _escalations_by(prev, "task_type")
    billing = next(c for c in a.escalations.by_task_type if c.category == RISING_TYPE)
    assert billing.escalations == now_by[RISING_TYPE] and billing.previous_escalations == prev_by[RISING_TYPE]
    assert 1.6 <= billing.escalations / billing.previous_escalations <= 2.4  # "doubled"
    assert billing.share_of_escalations == pytest.approx(now_by[RISING_TYPE] / sum(now_by.values()))
    assert billing.previous_share_of_escalations == pytest.approx(prev_by[RISING_TYPE] / sum(prev_by.values()))
    assert billing.rising
    assert billing.previous_share_of_escalations == pytest.approx(1 / 3, abs=0.05)
    assert billing.share_of_escalations == pytest.approx(0.5, abs=0.05)
    assert [c.category for c in a.escalations.by_task_type if c.rising] == [RISING_TYPE]
    reasons = {c.category: c for c in a.escalations.by_reason}
    assert reasons["missing invoice"].rising and reasons["missing invoice"].previous_escalations == 0
    assert not review.agent(OTHER_AGENT).escalations.rising
    assert any(f"task_type '{RISING_TYPE}' rose to {billing.share_of_escalations * 100:.1f} %" in f
               for f in a.findings)


def test_the_expensive_execution_leads_the_cost_outliers(review: WeeklyReview, events: list[dict]) -> None:
    cost = review.agent(AGENT).cost
    first = cost.outliers[0]
    assert first.rank == 1 and first.execution.execution_id == EXPENSIVE_ID
    assert first.execution.cost_usd == EXPENSIVE_COST and (first.times_median or 0) > 1000
    assert cost.top_count == math.ceil(0.01 * len(by_agent_week(events, AGENT, WEEK_START)))
    assert len(cost.outliers) == cost.top_count and cost.outliers_complete
    costs = [o.execution.cost_usd or 0 for o in cost.outliers]
    assert costs == sorted(costs, reverse=True)
    thursday = next(d for d in cost.daily if d.day == "2026-11-12")
    assert thursday.spend_usd > EXPENSIVE_COST and max(cost.daily, key=lambda d: d.spend_usd) is thursday
    assert cost.spend_usd == pytest.approx(sum(d.spend_usd for d in cost.daily))
    assert list(cost.weekly_spend_usd)[-1] == REPORT_WEEK
    assert any(EXPENSIVE_ID in f and "$75.00" in f for f in review.agent(AGENT).findings)


def test_alerts_fired_resolved_and_time_to_resolve(review: WeeklyReview) -> None:
    alerts = review.agent(AGENT).alerts
    assert (alerts.fired, alerts.resolved, alerts.open_at_week_end) == (2, 1, 1)
    tool = next(e for e in alerts.episodes if e.rule == "tool_error_rate")
    assert tool.time_to_resolve_s == 70 * 60  # from the first firing (03:10), not the re-notification
    assert tool.runbook_url.endswith("runbooks/tool_error_rate.md")
    assert alerts.median_time_to_resolve_s == 70 * 60
    assert review.pipeline_alerts.fired == 1 and review.pipeline_alerts.median_time_to_resolve_s == 30 * 60
    assert not review.agent(OTHER_AGENT).alerts.episodes


def test_the_weeks_p1_p2_incidents_come_first_under_findings(review: WeeklyReview) -> None:
    agent = review.agent(AGENT)
    serious = [e for e in agent.alerts.episodes if e.severity in ("P1", "P2")]
    assert serious
    head = agent.findings[:len(serious)]
    assert all(f.split()[1] == "incident" and f.split()[0] in ("P1", "P2") for f in head), head
    tool = next(f for f in head if "tool_error_rate" in f)
    assert "after 1 h 10 min" in tool and "runbooks/tool_error_rate.md" in tool
    assert any("still firing at the week's end" in f for f in head)


def test_model_checkpoint_change_is_reported(review: WeeklyReview) -> None:
    versions = review.agent(OTHER_AGENT).model_versions
    assert len(versions.changes) == 1
    change = versions.changes[0]
    assert (change.model, change.before, change.after) == ("gpt-4o", ["gpt-4o-2024-08-06"], "gpt-4o-2026-10-01")
    assert change.first_seen == NEW_CHECKPOINT_AT
    assert not review.agent(AGENT).model_versions.changes
    assert any("gpt-4o-2026-10-01" in f for f in review.findings)


def test_evaluations_by_evaluator(review: WeeklyReview, events: list[dict]) -> None:
    lo, hi = WEEK_START.isoformat()[:19], (WEEK_START + timedelta(days=7)).isoformat()[:19]
    scores = [e["score"] for e in events if e["kind"] == "evaluation" and e["agent_id"] == AGENT
              and lo <= e["occurred_at"][:19] < hi]
    [judge] = review.agent(AGENT).evaluations
    assert judge.evaluator == "llm-judge" and judge.count == len(scores)
    assert judge.mean_score == pytest.approx(sum(scores) / len(scores))
    assert judge.previous_count > 0


def test_stratified_sample_to_review(review: WeeklyReview) -> None:
    picks = review.agent(AGENT).sample
    assert len(picks) == 16
    assert Counter(p.stratum for p in picks) == {"escalated": 4, "low quality": 4, "costly": 4, "ordinary": 4}
    assert len({p.execution.execution_id for p in picks}) == 16
    assert all(WEEK.start <= p.execution.occurred_at < WEEK.end for p in picks)
    assert all(p.execution.status == "escalated" for p in picks if p.stratum == "escalated")
    assert all(p.execution.status != "escalated" for p in picks if p.stratum != "escalated")
    # the same week gives the same sample; another agent gets its own
    again = build_review(simulated_rollups(), [], WEEK, agent_id=AGENT)
    assert again.agent(AGENT).sample == picks


def test_budget_and_month_end_projection(review: WeeklyReview) -> None:
    rollups = simulated_rollups()
    b = review.agent(AGENT).budget
    november = [r for r in rollups if r.agent_id == AGENT and r.hour.month == 11 and r.hour < WEEK.end]
    assert b.budget_source == "settings.detection" and b.monthly_budget_usd == 500.0
    assert b.month == "2026-11" and b.month_to_date_complete
    assert b.month_to_date_usd == pytest.approx(sum(r.cost_usd_sum for r in november))
    assert b.projected_month_end_usd == pytest.approx(b.month_to_date_usd + b.week_spend_usd / 7 * 15)
    other = review.agent(OTHER_AGENT).budget
    assert other.budget_source == "report" and other.monthly_budget_usd == 100.0
    assert other.projected_share_of_budget is not None and other.projected_share_of_budget > 1
    assert any("projected" in f for f in review.agent(OTHER_AGENT).findings)


def test_only_the_requested_agent_and_weeks_are_used() -> None:
    one = build_review(simulated_rollups(), simulated_alerts(), WEEK, agent_id=OTHER_AGENT)
    assert [a.agent_id for a in one.agents] == [OTHER_AGENT]
    # the week after: nothing recorded, no agents, no crash
    empty = build_review(simulated_rollups(), simulated_alerts(), WEEK.shift(2))
    assert empty.agents == [] and "No findings" in render_markdown(empty)
    # an agent with alerts but no rollups is still reviewed (its alerts), without numbers
    alerts_only = build_review([], simulated_alerts(), WEEK)
    [agent] = alerts_only.agents
    assert agent.agent_id == AGENT and agent.alerts.fired == 2 and agent.metric("executions").current == 0


def test_rollups_without_extras_still_give_the_sums(review: WeeklyReview) -> None:
    plain = [r.model_copy(update={"review": None}) for r in simulated_rollups()]
    a = build_review(plain, [], WEEK).agent(AGENT)
    for name in ("executions", "escalation_rate", "spend_usd", "quality_mean"):
        assert a.metric(name).current == review.agent(AGENT).metric(name).current
    assert a.tool_errors.hottest is not None and (a.tool_errors.hottest.weekday, a.tool_errors.hottest.hour) == (1, 3)
    assert a.sample == [] and a.cost.outliers == [] and a.escalations.by_task_type == []
    assert any(n.startswith(f"{a.metric('executions').current:.0f} of ") and "recorded without the details the review "
               "samples from" in n for n in a.notes)


def test_one_hour_without_review_extras_is_not_worth_a_note(review: WeeklyReview) -> None:
    rollups = simulated_rollups()
    hour = next(r for r in rollups if r.agent_id == AGENT and r.hour >= WEEK.start)
    one_missing = [r.model_copy(update={"review": None}) if r is hour else r for r in rollups]
    a = build_review(one_missing, [], WEEK).agent(AGENT)
    assert a.metric("executions").current == review.agent(AGENT).metric("executions").current
    assert not any("recorded without the details" in n for n in a.notes)


def test_markdown_shows_the_findings_and_sections(review: WeeklyReview) -> None:
    text = render_markdown(review)
    for needle in ("# Weekly maintenance review 2026-W46", "Tue 03:00", EXPENSIVE_ID, f"{RISING_TYPE} **(rising)**",
                   "### Executions to review", "gpt-4o-2026-10-01", "llm-judge", "70 min",
                   "[runbook](https://example.invalid/agentmon/runbooks/tool_error_rate.md)", "▲ +"):
        assert needle in text, needle


def test_rollups_and_alerts_republished_by_a_restarted_worker_count_once(review: WeeklyReview) -> None:
    # A worker that crashes replays from its last checkpoint and publishes those outputs again.
    rollups, alerts = simulated_rollups(), simulated_alerts()
    detection = DetectionConfig(agents={AGENT: {"monthly_budget_usd": 500.0}})
    again = build_review([*rollups, *rollups[: len(rollups) // 2]], [*alerts, *alerts], WEEK,
                         ReportSettings(monthly_budget_usd=100.0), detection=detection, source="test",
                         generated_at=review.generated_at)
    assert again == review


def test_a_week_without_a_previous_week_reports_no_rising_categories() -> None:
    # The simulated history starts two weeks before WEEK: its first week has nothing to rise from.
    first = build_review(simulated_rollups(), [], WEEK.shift(-2))
    assert first.agents, "the first simulated week has traffic"
    for agent in first.agents:
        assert not [c for c in agent.escalations.by_task_type + agent.escalations.by_reason if c.rising]
        assert not [f for f in agent.findings if "Escalations" in f]


def test_change_chart_appears_only_when_there_is_something_to_compare_with() -> None:
    from monitor.report.charts import agent_charts

    first = build_review(simulated_rollups(), [], WEEK.shift(-2))
    assert all("changes" not in agent_charts(a) for a in first.agents)
    later = build_review(simulated_rollups(), [], WEEK)
    assert all("changes" in agent_charts(a) for a in later.agents)


def test_a_week_with_rollups_for_part_of_it_says_so_first(review: WeeklyReview) -> None:
    assert not review.partial and not any(f.startswith("Partial week") for f in review.findings)
    assert review.data_from == WEEK_START and review.data_until == WEEK_START + timedelta(days=7)
    # run on a Thursday: the rollups so far
    so_far = [r for r in simulated_rollups() if r.hour < WEEK_START + timedelta(days=3)]
    partial = build_review(so_far, simulated_alerts(), WEEK)
    assert partial.partial and partial.data_until == WEEK_START + timedelta(days=3)
    assert partial.findings[0] == (
        "Partial week: rollups from Mon 2026-11-09 00:00 to Thu 2026-11-12 00:00 UTC (72 of 168 hours); "
        "counts and spend are not comparable with full weeks, rates and means are")
    assert "Partial week" in render_markdown(partial)
    assert "Partial week: rollups from Mon 2026-11-09 00:00" in render_html(partial)


def _office_hours(rollups: list) -> list:
    """Only the rollups of weekdays 09:00-17:00 UTC: an agent that runs in office hours."""
    return [r for r in rollups if r.hour.weekday() < 5 and 9 <= r.hour.hour < 17]


def test_an_office_hours_agent_has_full_weeks_although_its_nights_and_weekends_are_empty() -> None:
    office = _office_hours(simulated_rollups())
    full = build_review(office, [], WEEK)
    assert full.data_from == WEEK_START + timedelta(hours=9)
    assert full.data_until == WEEK_START + timedelta(days=4, hours=17)
    assert not full.partial and not any(f.startswith("Partial week") for f in full.findings)
    # the same agent with Thursday and Friday missing: 16 of its usual hours
    cut = build_review([r for r in office if r.hour < WEEK_START + timedelta(days=3)], [], WEEK)
    assert cut.partial and cut.findings[0].startswith("Partial week: rollups from Mon 2026-11-09 09:00 to "
                                                      "Wed 2026-11-11 17:00 UTC")


def test_a_first_week_learns_its_hours_from_its_own_days_and_a_week_not_over_is_partial() -> None:
    office = _office_hours(simulated_rollups())
    first_week = WEEK.shift(-2)  # nothing before it: its usual hours are those of its other days
    assert not build_review(office, [], first_week).partial
    started_wednesday = [r for r in office if r.hour >= first_week.start + timedelta(days=2)]
    late = build_review(started_wednesday, [], first_week)  # Monday's and Tuesday's 16 office hours
    assert late.partial and late.data_from == first_week.start + timedelta(days=2, hours=9)
    around_the_clock = [r for r in simulated_rollups() if r.hour >= first_week.start + timedelta(hours=10)]
    assert build_review(around_the_clock, [], first_week).partial  # Monday's first 10 hours
    friday_evening = WEEK_START + timedelta(days=4, hours=18)
    not_over = build_review(office, [], WEEK, generated_at=friday_evening)
    assert not_over.partial
    assert not build_review(office, [], WEEK, generated_at=WEEK.end).partial
