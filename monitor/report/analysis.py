"""The weekly review from recorded rollups and alerts: pure (no I/O, no clock).

`build_review(...)` takes every rollup of the reported week and of the baseline weeks before it
(and alerts reaching back as far), and returns a `WeeklyReview` for each agent: this week against
the previous week and against the baseline (the mean of the `baseline_weeks` weeks before),
with the sections of the review discipline and one-line findings.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from monitor.contract.alert import Alert
from monitor.contract.rollup import Rollup
from monitor.core.config import DetectionConfig
from monitor.core.significance import Gate, gates, large_enough, means_differ, shares_differ
from monitor.report.alert_episodes import alert_episodes, alerts_review
from monitor.report.config import ReportSettings
from monitor.report.costs import cost_review
from monitor.report.escalations import escalation_review
from monitor.report.model_versions import model_version_review
from monitor.report.records import OperatorNote, Recorded, RegressionResult, Verdict, VersionSeen, mark_command
from monitor.report.review import (
    AgendaItem,
    AgentReview,
    AlertEpisode,
    Assessment,
    BudgetProjection,
    Direction,
    EvaluatorReview,
    MetricComparison,
    WeeklyReview,
)
from monitor.report.rollouts import rollout_review
from monitor.report.sampling import stratified_sample
from monitor.report.series import signal_series
from monitor.report.team import changes_timeline, name_preceding_changes, regression_review, verdict_review
from monitor.report.text import WEEKDAYS, fmt_count, fmt_pct, fmt_value, fmt_when
from monitor.report.tool_errors import tool_error_heatmap
from monitor.report.totals import PeriodTotals, sum_rollups
from monitor.report.week import IsoWeek

#: a metric this much worse than its baseline is a finding
FINDING_MIN_CHANGE = 0.2
#: A week is reported as partial when more than this many hours are missing at its start or its
#: end, counting only the hours of the week in which the weeks before had rollups (an agent that
#: runs in office hours has no rollups at night or on the weekend in any full week); without
#: earlier weeks, the hours of the day that have rollups on another day of the same type
#: (weekday, weekend) in this week.
PARTIAL_WEEK_SLACK = timedelta(hours=6)
#: an execution this many times the median cost is a finding
FINDING_COST_TIMES_MEDIAN = 10.0
#: hours recorded without review extras are mentioned when they hold more than this share of the
#: week's executions (below it they change no figure of the review visibly)
MAX_UNSAMPLED_SHARE = 0.02

# name, label, unit, worse when it goes ("up" / "down" / None: neither)
_METRICS: tuple[tuple[str, str, str, str | None, Callable[[PeriodTotals], float | None]], ...] = (
    ("executions", "Executions", "", None, lambda t: float(t.executions)),
    ("escalation_rate", "Escalation rate", "%", "up", lambda t: t.escalation_rate),
    ("repeat_rate", "Repeat-task rate", "%", "up", lambda t: t.repeat_rate),
    ("failure_rate", "Failure rate (failed + timeout)", "%", "up", lambda t: t.failure_rate),
    ("quality_mean", "Quality (mean score)", "score", "down", lambda t: t.quality_mean),
    ("cost_per_execution", "Cost per execution", "USD", "up", lambda t: t.cost_per_execution),
    ("spend_usd", "Total spend", "USD", "up", lambda t: t.cost_usd_sum),
    ("steps_mean", "Steps per execution (mean)", "", "up", lambda t: t.steps_mean),
    ("steps_p95", "Steps per execution (p95)", "", "up", lambda t: t.steps_p95),
    ("duration_p95_ms", "Duration p95", "ms", "up", lambda t: t.duration_p95_ms),
)
# metrics that are totals per week: the baseline is the mean over the baseline weeks, not pooled
_WEEKLY_TOTALS = {"executions", "spend_usd"}


def _change(current: float | None, reference: float | None) -> float | None:
    if current is None or reference is None or reference == 0:
        return None
    return (current - reference) / abs(reference)


def compare(
    name: str, label: str, unit: str, worse: str | None, current: float | None, previous: float | None,
    baseline: float | None, n: int, flat_within: float, significant: bool | None = None,
) -> MetricComparison:
    """`significant`: whether the change passes the engine's standards (`significance.py`); a
    change that does not (False) is shown with its direction but assessed neutral."""
    reference = baseline if baseline is not None else previous
    change = _change(current, reference)
    direction: Direction
    if current is None or reference is None:
        direction = "n/a"
    elif change is None:
        direction = "flat" if current == reference else ("up" if current > reference else "down")
    elif abs(change) < flat_within:
        direction = "flat"
    else:
        direction = "up" if change > 0 else "down"
    assessment: Assessment = "neutral"
    if worse is not None and direction in ("up", "down") and significant is not False:
        assessment = "worse" if direction == worse else "better"
    return MetricComparison(
        name=name, label=label, unit=unit, current=current, previous=previous, baseline=baseline,
        change_vs_previous=_change(current, previous), change_vs_baseline=_change(current, baseline),
        direction=direction, assessment=assessment, n=n, significant=significant,
    )


#: per metric, from a period's rollups: (count, trials) of a share, or one value per hour
_SHARES: dict[str, Callable[[PeriodTotals], tuple[float, float]]] = {
    "escalation_rate": lambda t: (t.escalations, t.executions),
    "repeat_rate": lambda t: (t.repeats, t.executions),
    "failure_rate": lambda t: (t.failures + t.timeouts, t.executions),
}
_HOURLY: dict[str, Callable[[Rollup], float | None]] = {
    "quality_mean": lambda r: r.quality_sum / r.quality_count if r.quality_count else None,
    "cost_per_execution": lambda r: r.cost_usd_sum / r.cost_count if r.cost_count else None,
    "steps_mean": lambda r: r.steps_mean,
    "steps_p95": lambda r: r.steps_p95,
    "duration_p95_ms": lambda r: r.duration_ms_p95,
}


def _hourly(rollups: Sequence[Rollup], fn: Callable[[Rollup], float | None]) -> list[float]:
    return [v for r in rollups if (v := fn(r)) is not None]


def _significant(
    gate: Gate, current: float | None, reference: float | None, n: float, alpha: float,
    share: tuple[float, float, float, float] | None = None,
    hourly: tuple[list[float], list[float]] | None = None,
) -> bool | None:
    """Whether the change from `reference` to `current` is one the engine would call real: at
    least half its effect gate, on its minimum sample, and significant (`significance.py`)."""
    if current is None or reference is None:
        return None
    if n < gate.min_n or not large_enough(current, reference, gate):
        return False
    if share is not None:
        return shares_differ(*share, alpha)
    if hourly is not None:
        return means_differ(*hourly, alpha)
    return True


def _budget(
    agent_id: str, week: IsoWeek, rollups: Sequence[Rollup], loaded_from: datetime, week_spend: float,
    detection: DetectionConfig | None, cfg: ReportSettings,
) -> BudgetProjection:
    last_day = (week.end - timedelta(seconds=1)).date()
    month_start = datetime(last_day.year, last_day.month, 1, tzinfo=UTC)
    days_in_month = calendar.monthrange(last_day.year, last_day.month)[1]
    month_end = month_start + timedelta(days=days_in_month)
    mtd = sum(r.cost_usd_sum for r in rollups if month_start <= r.hour < week.end)
    daily = week_spend / 7
    projected = mtd + daily * (month_end - week.end).total_seconds() / 86400
    budget: float | None = None
    source: Literal["settings.detection", "report", "none"] = "none"
    if detection is not None:
        thresholds = detection.for_agent(agent_id)
        if thresholds.monthly_budget_usd is not None:
            budget, source = thresholds.monthly_budget_usd, "settings.detection"
        elif thresholds.daily_budget_usd is not None:
            budget, source = thresholds.daily_budget_usd * days_in_month, "settings.detection"
    if budget is None and cfg.monthly_budget_usd is not None:
        budget, source = cfg.monthly_budget_usd, "report"
    return BudgetProjection(
        month=f"{last_day.year}-{last_day.month:02d}", monthly_budget_usd=budget,
        budget_source=source,
        week_spend_usd=week_spend, month_to_date_usd=mtd, daily_run_rate_usd=daily,
        projected_month_end_usd=projected, projected_share_of_budget=projected / budget if budget else None,
        month_to_date_complete=loaded_from <= month_start,
    )


def _incident_finding(e: AlertEpisode) -> str:
    """A P1/P2 episode of the week, first under Findings: when, how long, the evidence, the runbook."""
    when = fmt_when(e.fired_at) if e.fired_at is not None else "before the week"
    if e.resolved_at is None:
        span = "still firing at the week's end"
    else:
        span = f"resolved {fmt_when(e.resolved_at)}"
        if e.time_to_resolve_s is not None:
            span += f" after {fmt_duration(e.time_to_resolve_s)}"
    after = f"; it followed: {'; '.join(e.preceded_by)}" if e.preceded_by else ""
    return f"{e.severity} incident {e.rule}: fired {when}, {span}: {e.summary}{after} (runbook: {e.runbook_url})"


def fmt_duration(seconds: float) -> str:
    """A duration in days and hours, or hours and minutes.

    >>> fmt_duration(5400), fmt_duration(200000)
    ('1 h 30 min', '2 d 7 h')
    """
    minutes = int(seconds // 60)
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {mins} min" if hours else f"{mins} min"


@dataclass(slots=True)
class TeamRecords:
    """What the team recorded about one agent (monitor/report/records.py), from two weeks back."""

    verdicts: list[Verdict] = field(default_factory=list)
    regressions: list[RegressionResult] = field(default_factory=list)
    versions: list[VersionSeen] = field(default_factory=list)
    notes: list[OperatorNote] = field(default_factory=list)


def _agent_review(
    agent_id: str, week: IsoWeek, rollups: Sequence[Rollup], alerts: Sequence[Alert], loaded_from: datetime,
    detection: DetectionConfig | None, cfg: ReportSettings, team: TeamRecords | None = None,
) -> AgentReview:
    base_weeks = [week.shift(-k) for k in range(1, cfg.baseline_weeks + 1)]
    by_week: dict[IsoWeek, list[Rollup]] = defaultdict(list)
    for r in rollups:
        by_week[IsoWeek.containing(r.hour)].append(r)
    this = by_week.get(week, [])
    prev = by_week.get(week.shift(-1), [])
    base = [r for w in base_weeks for r in by_week.get(w, [])]
    weeks_with_data = [w for w in base_weeks if by_week.get(w)]
    t_now, t_prev, t_base = sum_rollups(this), sum_rollups(prev), sum_rollups(base)
    notes: list[str] = []
    if len(weeks_with_data) < len(base_weeks):
        notes.append(f"baseline: {len(weeks_with_data)} of {len(base_weeks)} earlier weeks had data")
    uncovered = t_now.executions - t_now.reviewed_executions
    if t_now.hours_without_review and uncovered > MAX_UNSAMPLED_SHARE * t_now.executions:
        # an hour's rollup without its sample and category counts: written by a worker with the review
        # extras switched off, or by an older one; the totals still count those hours
        notes.append(f"{uncovered} of {t_now.executions} executions ({t_now.hours_without_review} of {t_now.hours} "
                     "hours) were recorded without the details the review samples from: the executions to review, "
                     "the escalation categories, the evaluations and the p95 figures leave them out (counts, rates "
                     "and spend include them)")

    # the reference of each comparison: the baseline weeks, else the previous week
    t_ref, ref_rolls = (t_base, base) if weeks_with_data else (t_prev, prev)
    review_gates = gates((detection or DetectionConfig()).for_agent(agent_id))
    alpha = cfg.significance_alpha

    metrics = []
    for name, label, unit, worse, fn in _METRICS:
        baseline = fn(t_base)
        if name in _WEEKLY_TOTALS:
            baseline = baseline / len(weeks_with_data) if weeks_with_data and baseline is not None else None
        elif not weeks_with_data:
            baseline = None
        current, previous = fn(t_now), fn(t_prev) if prev else None
        reference = baseline if baseline is not None else previous
        significant = None
        if name in review_gates:
            share = (*_SHARES[name](t_now), *_SHARES[name](t_ref)) if name in _SHARES else None
            hourly = (_hourly(this, _HOURLY[name]), _hourly(ref_rolls, _HOURLY[name])) if name in _HOURLY else None
            significant = _significant(review_gates[name], current, reference, t_now.executions, alpha, share, hourly)
        metrics.append(compare(name, label, unit, worse, current, previous, baseline,
                               t_now.executions, cfg.flat_within, significant))

    def tool_share(t: PeriodTotals, tool: str) -> float | None:
        return t.tools[tool].error_share if tool in t.tools else None

    def tool_counts(t: PeriodTotals, tool: str) -> tuple[float, float]:
        return (t.tools[tool].errors, t.tools[tool].calls) if tool in t.tools else (0.0, 0.0)

    tool_shares = []
    for tool in sorted(set(t_now.tools) | set(t_prev.tools)):
        current, previous, baseline = tool_share(t_now, tool), tool_share(t_prev, tool), tool_share(t_base, tool)
        calls = tool_counts(t_now, tool)[1]
        significant = _significant(review_gates["tool_error_share"], current,
                                   baseline if baseline is not None else previous, calls, alpha,
                                   share=(*tool_counts(t_now, tool), *tool_counts(t_ref, tool)))
        tool_shares.append(compare(f"tool_error_share:{tool}", f"Tool error share: {tool}", "%", "up", current,
                                   previous, baseline, int(calls), cfg.flat_within, significant))

    def outcome_mean(t: PeriodTotals, metric: str) -> float | None:
        acc = t.outcomes.get(metric)
        return acc[0] / acc[1] if acc and acc[1] else None

    def outcome_hourly(r: Rollup, metric: str) -> float | None:
        m = r.outcomes.get(metric)
        return m.sum / m.count if m is not None and m.count else None

    outcomes = []
    for metric in sorted(set(t_now.outcomes) | set(t_prev.outcomes)):
        current, previous = outcome_mean(t_now, metric), outcome_mean(t_prev, metric)
        baseline = outcome_mean(t_base, metric)
        count = int(t_now.outcomes.get(metric, [0, 0])[1])
        significant = _significant(
            review_gates["outcome"], current, baseline if baseline is not None else previous, count, alpha,
            hourly=([v for r in this if (v := outcome_hourly(r, metric)) is not None],
                    [v for r in ref_rolls if (v := outcome_hourly(r, metric)) is not None]))
        outcomes.append(compare(f"outcome:{metric}", f"Outcome: {metric}", "score", "down", current, previous,
                                baseline, count, cfg.flat_within, significant))

    weekly_spend = {str(w): sum(r.cost_usd_sum for r in by_week.get(w, [])) for w in reversed(base_weeks)}
    weekly_spend[str(week)] = t_now.cost_usd_sum
    cost = cost_review(this, t_now, week.start, cfg.top_cost_share, weekly_spend)
    escalations = escalation_review(t_now, t_prev, cfg)
    heatmap = tool_error_heatmap(this, cfg.heatmap_min_calls)
    team = team or TeamRecords()
    models = model_version_review(this, [r for r in rollups if r.hour < week.start])
    rollouts = rollout_review(this, [a for a in alerts if a.agent_id == agent_id])
    changes = changes_timeline(agent_id, week.start, week.end, team.versions, models.seen, team.notes)
    episodes = name_preceding_changes(
        alert_episodes([a for a in alerts if a.agent_id == agent_id], week.start, week.end), changes,
        timedelta(hours=cfg.change_window_h))
    alerts_of_week = alerts_review(episodes, week.start, week.end)
    prev_start = week.shift(-1).start
    verdicts = verdict_review([v for v in team.verdicts if week.start <= v.at < week.end],
                              [v for v in team.verdicts if prev_start <= v.at < week.start], t_now, t_prev)
    regressions = regression_review([r for r in team.regressions if week.start <= r.at < week.end],
                                    [r for r in team.regressions if prev_start <= r.at < week.start])
    series = signal_series(week, this, {w: by_week.get(w, []) for w in base_weeks})
    evaluations = [
        EvaluatorReview(
            evaluator=name, count=int(v[1]), mean_score=v[0] / v[1] if v[1] else None,
            pass_rate=v[2] / (v[2] + v[3]) if v[2] + v[3] else None,
            previous_count=int(t_prev.evaluators.get(name, [0, 0])[1]),
            previous_mean_score=(t_prev.evaluators[name][0] / t_prev.evaluators[name][1]
                                 if name in t_prev.evaluators and t_prev.evaluators[name][1] else None),
        )
        for name, v in sorted(t_now.evaluators.items())
    ]
    budget = _budget(agent_id, week, rollups, loaded_from, t_now.cost_usd_sum, detection, cfg)
    sample = stratified_sample(this, cfg.sample_size, f"{week}/{agent_id}")

    # -- findings: what a reviewer should look at first ------------------------------------------
    findings: list[str] = [_incident_finding(e) for e in episodes if e.severity in ("P1", "P2")
                           and (e.fired_at is None or e.fired_at < week.end)
                           and (e.resolved_at is None or e.resolved_at >= week.start)]
    for m in metrics + tool_shares + outcomes:
        ref = m.change_vs_baseline if m.change_vs_baseline is not None else m.change_vs_previous
        if m.assessment == "worse" and ref is not None and abs(ref) >= FINDING_MIN_CHANGE:
            findings.append(f"{m.label} {'rose' if m.direction == 'up' else 'fell'} {abs(ref) * 100:.0f} % "
                            f"against {'the baseline' if m.change_vs_baseline is not None else 'last week'} "
                            f"({fmt_value(m.baseline if m.change_vs_baseline is not None else m.previous, m.unit)}"
                            f" -> {fmt_value(m.current, m.unit)})")
    for c in escalations.by_task_type:
        if c.rising:
            findings.append(f"Escalations of task_type '{c.category}' rose to {fmt_pct(c.share_of_escalations)} of "
                            f"escalations from {fmt_pct(c.previous_share_of_escalations)} "
                            f"({fmt_count(c.previous_escalations)} "
                            f"-> {c.escalations}; escalation rate {fmt_pct(c.previous_escalation_rate)} -> "
                            f"{fmt_pct(c.escalation_rate)})")
    for c in escalations.by_reason:
        if c.rising:
            findings.append(f"Escalations for reason '{c.category}' rose to {fmt_pct(c.share_of_escalations)} of "
                            f"escalations from {fmt_pct(c.previous_share_of_escalations)}")
    for cell in heatmap.hot_cells[:3]:
        tools = ", ".join(f"{t} ({n})" for t, n in sorted(cell.tools.items(), key=lambda kv: -kv[1]))
        findings.append(f"Tool errors at {WEEKDAYS[cell.weekday]} {cell.hour:02d}:00 UTC: {cell.errors} of "
                        f"{cell.calls} calls failed ({fmt_pct(cell.error_share)}; "
                        f"week {fmt_pct(heatmap.week_error_share)}) - {tools}")
    if cost.outliers and (cost.outliers[0].times_median or 0) >= FINDING_COST_TIMES_MEDIAN:
        top = cost.outliers[0]
        findings.append(f"Most expensive execution {top.execution.execution_id}: ${top.execution.cost_usd:,.2f} "
                        f"({top.times_median:,.0f}x the median)")
    for ro in rollouts:
        if ro.verdict == "rollback" or ro.pages:
            findings.append(f"Rollout {ro.candidate_version} (vs {ro.baseline_version}, "
                            f"{fmt_pct(ro.candidate_share)} of runs): worse on {', '.join(ro.worse) or 'a signal'}; "
                            f"verdict {ro.verdict}"
                            + (f", ended: {ro.ended}" if ro.ended else ", still running"))
    for ch in models.changes:
        findings.append(f"{ch.model} is now served by checkpoint {ch.after} (before: {', '.join(ch.before)}), "
                        f"first seen {fmt_when(ch.first_seen)}")
    if verdicts is not None and verdicts.verdicts:
        findings.append(f"Review verdicts: {verdicts.passed} of {verdicts.verdicts} sampled executions passed "
                        f"({fmt_pct(verdicts.pass_rate)}; the week before {fmt_pct(verdicts.previous_pass_rate)})"
                        + "".join(f"; {c.category} x{c.failures}, {c.signal} "
                                  f"{fmt_value(c.before, c.unit)} -> {fmt_value(c.after, c.unit)} "
                                  f"({'improved' if c.improved else 'not improved' if c.improved is False else 'n/a'})"
                                  for c in verdicts.by_category))
    for suite in regressions:
        if suite.newly_failing:
            findings.append(f"Regression suite {suite.suite}: {len(suite.newly_failing)} case(s) newly fail "
                            f"({', '.join(c.case for c in suite.newly_failing)}); pass rate "
                            f"{fmt_pct(suite.previous_pass_rate)} -> {fmt_pct(suite.pass_rate)}")
    if budget.projected_share_of_budget is not None and budget.projected_share_of_budget > 1:
        findings.append(f"Spend projected to ${budget.projected_month_end_usd:,.2f} by the end of {budget.month}, "
                        f"{fmt_pct(budget.projected_share_of_budget)} of the ${budget.monthly_budget_usd:,.2f} budget")
    if alerts_of_week.open_at_week_end:
        findings.append(f"{alerts_of_week.open_at_week_end} alert(s) still firing at the end of the week")

    return AgentReview(
        agent_id=agent_id, hours_with_traffic=t_now.hours, metrics=metrics, budget=budget, sample=sample,
        escalations=escalations, cost=cost, tool_errors=heatmap, tool_error_shares=tool_shares, outcomes=outcomes,
        alerts=alerts_of_week, model_versions=models, evaluations=evaluations, findings=findings, notes=notes,
        verdicts=verdicts, regressions=regressions, changes=changes, series=series, rollouts=rollouts,
    )


def _missing_edges(week: IsoWeek, data_from: datetime, data_until: datetime, earlier: list[datetime],
                   this_week: list[datetime], generated_at: datetime | None) -> bool:
    """Whether more than `PARTIAL_WEEK_SLACK` of the week's usual hours have no rollups before
    `data_from` or after `data_until`, or the week was not over when the review was made.
    Usual hours: the hours of the week (0-167) with a rollup in an earlier week; when there is no
    earlier week, those whose hour of the day has a rollup on a day of the same type this week."""
    if generated_at is not None and generated_at < week.end and week.end - data_until > PARTIAL_WEEK_SLACK:
        return True
    hour = timedelta(hours=1)
    week_hours = round((week.end - week.start) / hour)
    usual = {round((h - week.start) / hour) % week_hours for h in earlier}
    if not usual:  # hour k of the week is day k // 24 (Monday 0), hour of the day k % 24
        seen = {(h.weekday() >= 5, h.hour) for h in this_week}
        usual = {k for k in range(week_hours) if (k // 24 >= 5, k % 24) in seen}
    head = round((data_from - week.start) / hour)
    tail = round((data_until - week.start) / hour)
    slack = PARTIAL_WEEK_SLACK / hour
    return sum(1 for k in usual if k < head) > slack or sum(1 for k in usual if k >= tail) > slack


def history_start(week: IsoWeek, cfg: ReportSettings) -> datetime:
    """Where the recorded history a review needs begins (the first baseline week)."""
    return week.shift(-cfg.baseline_weeks).start


def build_review(
    rollups: Iterable[Rollup],
    alerts: Iterable[Alert],
    week: IsoWeek,
    cfg: ReportSettings | None = None,
    *,
    detection: DetectionConfig | None = None,
    agent_id: str | None = None,
    source: str = "",
    generated_at: datetime | None = None,
    recorded: Iterable[Recorded] = (),
    notes: Iterable[OperatorNote] = (),
) -> WeeklyReview:
    """The review of `week`. Rollups outside [first baseline week, week end) are ignored, as are
    rollups of other agents when `agent_id` is given. `recorded`: verdicts, regression results
    and agent versions (monitor/report/records.py) of the week and the week before; `notes`:
    operators' notes."""
    cfg = cfg or ReportSettings()
    loaded_from = history_start(week, cfg)
    # A restarted worker republishes what it replays (same rollup key, same alert_id): count once.
    unique_rollups = {(r.agent_id, r.hour): r for r in rollups}
    unique_alerts = {a.alert_id: a for a in alerts}
    by_agent: dict[str, list[Rollup]] = defaultdict(list)
    for r in unique_rollups.values():
        if loaded_from <= r.hour < week.end and (agent_id is None or r.agent_id == agent_id):
            by_agent[r.agent_id].append(r)
    alert_list = [a for a in unique_alerts.values() if a.at < week.end]
    agents_with_alerts = {a.agent_id for a in alert_list if a.agent_id and week.start <= a.at}
    # an agent is reported when it had traffic this week, or alerts this week
    agents = sorted(
        {a for a, rs in by_agent.items() if any(r.hour >= week.start for r in rs)}
        | ({a for a in agents_with_alerts if agent_id is None or a == agent_id})
    )
    team: dict[str, TeamRecords] = defaultdict(TeamRecords)
    for item in {getattr(x, "event_id", None) or id(x): x for x in recorded}.values():  # a resend counts once
        records = team[item.agent_id]
        if isinstance(item, Verdict):
            records.verdicts.append(item)
        elif isinstance(item, RegressionResult):
            records.regressions.append(item)
        else:
            records.versions.append(item)
    all_notes = list(notes)
    for a in agents:
        team[a].notes = [n for n in all_notes if n.agent_id in (a, "*")]
    reviews = [
        _agent_review(a, week, sorted(by_agent.get(a, []), key=lambda r: r.hour), alert_list, loaded_from,
                      detection, cfg, team[a])
        for a in agents
    ]
    pipeline = alerts_review(alert_episodes([a for a in alert_list if a.agent_id is None], week.start, week.end),
                             week.start, week.end)
    findings = [f"{r.agent_id}: {f}" for r in reviews for f in r.findings]
    if pipeline.fired:
        findings.append(f"pipeline: {pipeline.fired} pipeline-wide alert(s) fired")
    hours = [r.hour for a in agents for r in by_agent.get(a, []) if r.hour >= week.start]
    data_from = min(hours) if hours else None
    data_until = max(hours) + timedelta(hours=1) if hours else None
    partial = data_from is not None and data_until is not None and _missing_edges(
        week, data_from, data_until, [r.hour for a in agents for r in by_agent.get(a, []) if r.hour < week.start],
        hours, generated_at)
    if partial:
        covered = (data_until - data_from) / timedelta(hours=1)  # type: ignore[operator]
        findings.insert(0, f"Partial week: rollups from {data_from:%a %Y-%m-%d %H:%M} to "
                        f"{data_until:%a %Y-%m-%d %H:%M} UTC ({covered:.0f} of "
                        f"{(week.end - week.start) / timedelta(hours=1):.0f} hours); counts and spend are not "
                        "comparable with full weeks, rates and means are")
    return WeeklyReview(
        week=str(week), starts_at=week.start, ends_at=week.end,
        baseline_weeks=[str(week.shift(-k)) for k in range(cfg.baseline_weeks, 0, -1)],
        source=source, generated_at=generated_at, agents=reviews, pipeline_alerts=pipeline, findings=findings,
        data_from=data_from, data_until=data_until, partial=partial, agenda=agenda(reviews),
    )


def agenda(reviews: Sequence[AgentReview]) -> list[AgendaItem]:
    """The team's agenda for the week, most urgent first: incidents still open, last week's review
    failures whose signal did not improve, regressions, rising escalation categories, cost outliers."""
    items: list[AgendaItem] = []
    for a in reviews:
        for e in a.alerts.episodes:
            if e.resolved_at is None:
                items.append(AgendaItem(
                    kind="open incident", agent_id=a.agent_id, action=e.runbook_url,
                    text=f"{e.severity} {e.rule} firing since "
                    f"{fmt_when(e.fired_at) if e.fired_at else 'before the week'}: {e.summary}"))
    for a in reviews:
        if a.verdicts is not None:
            for c in a.verdicts.unresolved:
                items.append(AgendaItem(
                    kind="unresolved review failure", agent_id=a.agent_id,
                    action=mark_command(a.agent_id, c.executions[0], passed=True),
                    text=f"{c.failures} execution(s) failed review for {c.category} ({', '.join(c.executions[:5])}); "
                    f"{c.signal} {fmt_value(c.before, c.unit)} -> {fmt_value(c.after, c.unit)}, not improved"))
    for a in reviews:
        for s in a.regressions:
            if s.newly_failing or (s.pass_rate is not None and s.previous_pass_rate is not None
                                   and s.pass_rate < s.previous_pass_rate):
                cases = ", ".join(c.case for c in s.newly_failing) or "none newly failing"
                items.append(AgendaItem(
                    kind="regression", agent_id=a.agent_id, action=f"#regressions-{a.agent_id}",
                    text=f"suite {s.suite}: pass rate {fmt_pct(s.previous_pass_rate)} -> {fmt_pct(s.pass_rate)}; "
                    f"newly failing: {cases}"))
    for a in reviews:
        for share in a.escalations.rising:
            items.append(AgendaItem(
                kind="rising escalations", agent_id=a.agent_id, action=f"#escalations-{a.agent_id}",
                text=f"'{share.category}' is {fmt_pct(share.share_of_escalations)} of escalations "
                f"(was {fmt_pct(share.previous_share_of_escalations)}; {fmt_count(share.previous_escalations)} -> "
                f"{share.escalations})"))
    for a in reviews:
        for o in a.cost.outliers[:3]:
            if (o.times_median or 0) >= FINDING_COST_TIMES_MEDIAN:
                items.append(AgendaItem(
                    kind="cost outlier", agent_id=a.agent_id, action=f"#cost-{a.agent_id}",
                    text=f"execution {o.execution.execution_id}: {fmt_value(o.execution.cost_usd, 'USD')}, "
                    f"{o.times_median:,.0f}x the median, {fmt_when(o.execution.occurred_at)}"))
    return items
