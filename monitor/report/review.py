"""The weekly review as data: what the analysis finds, what every renderer (Markdown, HTML,
JSON, Slack) shows. Plain pydantic models, so the JSON output is this and nothing else."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from monitor.core.review_sample import ExecutionSample

Direction: TypeAlias = Literal["up", "down", "flat", "n/a"]
Assessment: TypeAlias = Literal["better", "worse", "neutral"]
Stratum: TypeAlias = Literal["escalated", "low quality", "costly", "ordinary"]

_FROZEN = ConfigDict(frozen=True)


class MetricComparison(BaseModel):
    """One metric this week against the previous week and the baseline (mean of earlier weeks)."""

    model_config = _FROZEN

    name: str
    label: str
    unit: str = ""
    current: float | None
    previous: float | None
    baseline: float | None
    change_vs_previous: float | None = Field(description="relative, (current - previous) / previous")
    change_vs_baseline: float | None
    direction: Direction = Field(description="current against the baseline (else the previous week)")
    assessment: Assessment
    n: int = Field(ge=0, description="observations behind `current`")
    significant: bool | None = Field(
        default=None,
        description="whether the change is one the engine would call real: at least half its rule's effect "
        "gate, on its minimum sample, and significant (monitor/core/significance.py); None: not tested",
    )


class BudgetProjection(BaseModel):
    model_config = _FROZEN

    month: str = Field(description="YYYY-MM of the reported week's last day")
    monthly_budget_usd: float | None
    budget_source: Literal["settings.detection", "report", "none"]
    week_spend_usd: float
    month_to_date_usd: float = Field(description="spend from the month's first day to the week's end")
    daily_run_rate_usd: float = Field(description="mean daily spend of the reported week")
    projected_month_end_usd: float
    projected_share_of_budget: float | None
    month_to_date_complete: bool = Field(description="false when rollups before the loaded range were needed")


class ReviewPick(BaseModel):
    """One execution to review by hand."""

    model_config = _FROZEN

    stratum: Stratum
    execution: ExecutionSample


class CategoryShare(BaseModel):
    model_config = _FROZEN

    category: str
    executions: int | None = Field(description="None for escalation reasons (only escalations are counted)")
    escalations: int
    escalation_rate: float | None
    share_of_escalations: float
    previous_escalations: int | None = Field(description="None: the previous week had no data")
    previous_escalation_rate: float | None
    previous_share_of_escalations: float | None
    rising: bool


class EscalationReview(BaseModel):
    model_config = _FROZEN

    escalations: int
    previous_escalations: int | None = Field(default=None, description="None: the previous week had no data")
    by_task_type: list[CategoryShare]
    by_reason: list[CategoryShare]
    covered_executions: int = Field(description="executions whose hour carried review extras")

    @property
    def rising(self) -> list[CategoryShare]:
        return [c for c in self.by_task_type + self.by_reason if c.rising]


class CostOutlier(BaseModel):
    model_config = _FROZEN

    rank: int
    execution: ExecutionSample
    times_median: float | None = Field(description="cost / the week's median cost per execution (sampled)")


class DailyCost(BaseModel):
    model_config = _FROZEN

    day: str
    spend_usd: float
    executions: int
    cost_per_execution: float | None


class CostReview(BaseModel):
    model_config = _FROZEN

    spend_usd: float
    priced_executions: int
    unpriced_executions: int
    top_share: float
    top_count: int = Field(description="how many executions the top share is")
    outliers: list[CostOutlier]
    outliers_complete: bool = Field(
        description="false when an hour's bounded top list was full at a cost that would qualify"
    )
    median_cost_usd: float | None
    p99_cost_usd: float | None = Field(description="cost of the last execution in the top share")
    daily: list[DailyCost]
    weekly_spend_usd: dict[str, float] = Field(description="week -> spend, baseline weeks and this one")


class HeatCell(BaseModel):
    model_config = _FROZEN

    weekday: int = Field(ge=0, le=6, description="0 = Monday")
    hour: int = Field(ge=0, le=23, description="UTC")
    calls: int
    errors: int
    error_share: float
    tools: dict[str, int] = Field(default_factory=dict, description="errors per tool in this cell")


class ToolErrorHeatmap(BaseModel):
    """Tool errors (error or timeout) by hour of week, all tools of the agent together."""

    model_config = _FROZEN

    calls: list[list[int]] = Field(description="[weekday][hour]")
    errors: list[list[int]] = Field(description="[weekday][hour]")
    week_error_share: float | None
    hottest: HeatCell | None = Field(description="highest error share among cells with enough calls")
    hot_cells: list[HeatCell] = Field(description="cells far above the week's share, hottest first")


class AlertEpisode(BaseModel):
    model_config = _FROZEN

    fingerprint: str
    rule: str
    agent_id: str | None
    severity: str
    summary: str
    fired_at: datetime | None = Field(description="None: firing before the alerts that were read")
    resolved_at: datetime | None
    time_to_resolve_s: float | None
    runbook_url: str
    labels: dict[str, str] = Field(default_factory=dict)
    preceded_by: list[str] = Field(
        default_factory=list, description="changes of the agent seen within report.change_window_h before it fired")


class AlertsReview(BaseModel):
    model_config = _FROZEN

    fired: int
    resolved: int
    open_at_week_end: int
    median_time_to_resolve_s: float | None
    episodes: list[AlertEpisode]


class CheckpointSeen(BaseModel):
    model_config = _FROZEN

    model: str
    resolved_model: str
    first_seen: datetime
    last_seen: datetime
    new_this_week: bool


class CheckpointChange(BaseModel):
    model_config = _FROZEN

    model: str
    before: list[str]
    after: str
    first_seen: datetime


class ModelVersionReview(BaseModel):
    model_config = _FROZEN

    seen: list[CheckpointSeen]
    changes: list[CheckpointChange]


class RolloutItem(BaseModel):
    """One candidate version compared with the incumbent during the week (monitor/report/rollouts.py)."""

    model_config = _FROZEN

    baseline_version: str
    candidate_version: str
    first_seen: datetime = Field(description="the first hour of the week the comparison ran")
    last_seen: datetime
    verdict: str = Field(description="promote, hold or rollback, at its last hour in the week")
    baseline_runs: int
    candidate_runs: int
    candidate_share: float | None = Field(description="the candidate's share of both versions' runs in the week")
    worse: list[str] = Field(default_factory=list, description="signals on which the candidate was worse")
    pages: int = Field(default=0, description="rollout_regression pages for this candidate")
    ended: str | None = Field(default=None, description="why the comparison ended (None: still running)")


class EvaluatorReview(BaseModel):
    model_config = _FROZEN

    evaluator: str
    count: int
    mean_score: float | None
    pass_rate: float | None
    previous_count: int
    previous_mean_score: float | None


class VerdictItem(BaseModel):
    model_config = _FROZEN

    execution_id: str
    passed: bool
    category: str | None
    note: str | None
    by: str | None
    at: datetime


class FailureCategory(BaseModel):
    """One failure category of the verdicts, and whether the signal it shows in improved since."""

    model_config = _FROZEN

    category: str
    failures: int
    executions: list[str]
    signal: str = Field(description="the review metric this category shows in")
    unit: str
    before: float | None = Field(description="the signal in the week before the verdicts (the reviewed week)")
    after: float | None = Field(description="the signal in the reported week")
    improved: bool | None = Field(description="None: no value to compare")


class VerdictReview(BaseModel):
    """The verdicts recorded during the reported week (on the sample of the week before)."""

    model_config = _FROZEN

    verdicts: int
    passed: int
    pass_rate: float | None
    previous_verdicts: int
    previous_pass_rate: float | None
    by_category: list[FailureCategory]
    failures: list[VerdictItem]

    @property
    def unresolved(self) -> list[FailureCategory]:
        return [c for c in self.by_category if not c.improved]


class RegressionRun(BaseModel):
    model_config = _FROZEN

    run: str
    at: datetime
    cases: int
    passed: int


class RegressionCase(BaseModel):
    model_config = _FROZEN

    case: str
    expected: str
    actual: str


class RegressionSuiteReview(BaseModel):
    model_config = _FROZEN

    suite: str
    runs: list[RegressionRun] = Field(description="the week's runs, oldest first")
    pass_rate: float | None = Field(description="the week's last run")
    previous_pass_rate: float | None = Field(description="the previous week's last run (None: no run)")
    newly_failing: list[RegressionCase] = Field(description="passed in last week's last run, fail in this week's")
    flaky: list[str] = Field(description="cases that both passed and failed in this week's runs")
    failing: list[str] = Field(description="cases failing in the week's last run")


class ChangeItem(BaseModel):
    model_config = _FROZEN

    at: datetime
    kind: Literal["agent version", "model checkpoint", "note"]
    text: str


class SeriesLine(BaseModel):
    model_config = _FROZEN

    label: str
    unit: str
    worse: Literal["up", "down"]
    values: list[float | None]
    low: list[float | None] = Field(description="lowest of the baseline weeks at the same time of week")
    high: list[float | None]


class SignalSeries(BaseModel):
    """The week's signals in bins of `bin_hours`, each against the range of the baseline weeks."""

    model_config = _FROZEN

    bin_hours: int
    starts: list[datetime]
    lines: dict[str, SeriesLine]


class AgendaItem(BaseModel):
    model_config = _FROZEN

    kind: Literal["open incident", "unresolved review failure", "regression", "rising escalations",
                  "cost outlier"]
    agent_id: str | None
    text: str
    action: str = Field(description="a link (runbook, report section) or a command to act on it")


class AgentReview(BaseModel):
    model_config = _FROZEN

    agent_id: str
    hours_with_traffic: int
    metrics: list[MetricComparison]
    budget: BudgetProjection
    sample: list[ReviewPick]
    escalations: EscalationReview
    cost: CostReview
    tool_errors: ToolErrorHeatmap
    tool_error_shares: list[MetricComparison]
    outcomes: list[MetricComparison]
    alerts: AlertsReview
    model_versions: ModelVersionReview
    evaluations: list[EvaluatorReview]
    findings: list[str]
    notes: list[str] = Field(default_factory=list, description="what the data could not tell")
    verdicts: VerdictReview | None = Field(default=None, description="None: no verdict recorded this week or before")
    regressions: list[RegressionSuiteReview] = Field(default_factory=list)
    changes: list[ChangeItem] = Field(default_factory=list, description="the week's changes timeline, oldest first")
    series: SignalSeries | None = None
    rollouts: list[RolloutItem] = Field(default_factory=list, description="the week's version comparisons")

    def metric(self, name: str) -> MetricComparison:
        for m in self.metrics + self.tool_error_shares + self.outcomes:
            if m.name == name:
                return m
        raise KeyError(name)


class WeeklyReview(BaseModel):
    model_config = _FROZEN

    week: str
    starts_at: datetime
    ends_at: datetime
    baseline_weeks: list[str]
    source: str
    generated_at: datetime | None = None
    agents: list[AgentReview]
    pipeline_alerts: AlertsReview = Field(description="alerts without an agent (pipeline-wide rules)")
    findings: list[str]
    agenda: list[AgendaItem] = Field(default_factory=list, description="the team's agenda for the week")
    data_from: datetime | None = Field(
        default=None, description="the first hour of the week with rollups of any reported agent (None: none)")
    data_until: datetime | None = Field(
        default=None, description="the end of the last hour of the week with rollups of any reported agent")
    partial: bool = Field(
        default=False, description="more than 6 of the week's usual hours (those with rollups in the weeks before, "
        "or for a first week on its other days of the same type) have no rollups at its start or its end, or the "
        "week was not over when the review was made (a mid-week run, a new deployment, a stopped worker): week "
        "totals are not comparable")

    def agent(self, agent_id: str) -> AgentReview:
        for a in self.agents:
            if a.agent_id == agent_id:
                return a
        raise KeyError(agent_id)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)
