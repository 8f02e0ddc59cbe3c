"""Detection settings: every rule's thresholds (CONTRACT.md section 3 defaults), the engine's time
parameters, and per-agent overrides.

`DetectionConfig.for_agent(agent_id)` gives the effective `RuleThresholds` of one agent: the global
`rules` with that agent's entry in `agents` laid over it (only the fields the override sets).

In a settings file::

    [detection]
    allowed_lateness_s = 300

    [detection.rules]
    escalation_min_ratio = 1.5

    [detection.agents."lead-qualifier"]
    daily_budget_usd = 40.0
    quality_min_drop = 0.3
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from monitor.contract.catalogue import RULES, Severity
from monitor.core.event_time import DEFAULT_FLOOR, EventTimeGate

#: the rule families whose baselines learn before they may page, and their rules
LEARNING_FAMILIES: dict[str, tuple[str, ...]] = {
    "shares": ("escalation_rate_rise", "repeat_task_rate_rise", "tool_error_rate"),
    "means": ("quality_drop", "token_cost_spike", "task_duration_rise"),
    "quantiles": ("latency_spike",),
    "outcomes": ("business_metric_decline",),
}


class RuleThresholds(BaseModel):
    """Thresholds of every rule. Relative changes are fractions (0.2 = 20 %)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- significance shared by all statistical rules -------------------------------------------
    alpha: float = Field(
        default=1e-6, gt=0, lt=0.5,
        description="family-wise false-alarm probability of one check of one rule of one agent; "
        "split (Bonferroni) across the detection windows. Per check: at 288 checks a day, 1e-6 "
        "keeps the window tests of all rules of an agent near 0.05 false pages a year",
    )
    cusum_false_alarm_years: float = Field(
        default=10.0, gt=0,
        description="mean time between false alarms of one rule's accumulating (CUSUM) test of one "
        "agent when nothing changes, a lower bound (all its designs, tools or metrics together); "
        "sets the CUSUM thresholds from the agent's baseline volume",
    )
    min_baseline_n: int = Field(default=200, ge=1, description="observations a baseline needs before use")
    # -- learning: hours of data (hours with traffic in the reference period) each rule family's
    # baseline needs before it may page; until then `/state` lists the family as learning. Rules that
    # need no baseline page from the start: tool_calls_all_failing, invalid_events, agent_silent
    # against `silent_after_s`, spend_budget against an explicit budget.
    learning_hours_shares: int = Field(
        default=72, ge=1, description="escalation_rate_rise, repeat_task_rate_rise, tool_error_rate")
    learning_hours_means: int = Field(
        default=72, ge=1, description="quality_drop, token_cost_spike, task_duration_rise")
    learning_hours_quantiles: int = Field(default=72, ge=1, description="latency_spike")
    learning_hours_outcomes: int = Field(default=72, ge=1, description="business_metric_decline")

    # -- quality_drop -----------------------------------------------------------------------------
    quality_min_drop: float = Field(default=0.20, gt=0, lt=1, description="mean score this far below")
    quality_min_n: int = Field(default=8, ge=2)

    # -- tool_error_rate --------------------------------------------------------------------------
    tool_error_min_share: float = Field(default=0.10, gt=0, le=1, description="error/timeout share floor")
    tool_error_min_ratio: float = Field(default=2.0, ge=1, description="share at least this times baseline")
    tool_error_min_calls: int = Field(default=20, ge=1)

    # -- tool_calls_all_failing -------------------------------------------------------------------
    all_failing_min_calls: int = Field(
        default=8, ge=1, description="tool calls, none ok, since the newest bucket with a successful one (in window)"
    )
    all_failing_min_executions: int = Field(default=4, ge=1)
    all_failing_window_s: int = Field(default=600, ge=300)
    all_failing_baseline_ok_share: float = Field(
        default=0.5, ge=0, le=1, description="only agents whose calls normally succeed at least this often"
    )

    # -- repeat_task_rate_rise --------------------------------------------------------------------
    repeat_min_ratio: float = Field(default=2.0, ge=1)
    repeat_min_increase: float = Field(default=0.05, ge=0, description="absolute rise of the share")
    repeat_min_n: int = Field(default=20, ge=1)

    # -- escalation_rate_rise ---------------------------------------------------------------------
    escalation_min_ratio: float = Field(default=1.5, ge=1)
    escalation_min_increase: float = Field(default=0.08, ge=0, description="absolute rise of the share")
    escalation_min_n: int = Field(default=20, ge=1)

    # -- token_cost_spike -------------------------------------------------------------------------
    cost_min_ratio: float = Field(default=1.5, ge=1, description="mean cost (or tokens) per execution")
    cost_min_n: int = Field(default=10, ge=2)

    # -- task_duration_rise -----------------------------------------------------------------------
    duration_min_ratio: float = Field(default=1.4, ge=1, description="mean steps (or duration) per task")
    duration_min_n: int = Field(default=10, ge=2)

    # -- latency_spike ----------------------------------------------------------------------------
    latency_p95_min_ratio: float = Field(default=1.5, ge=1, description="p95 duration vs baseline p95")
    latency_min_n: int = Field(default=12, ge=5)

    # -- business_metric_decline ------------------------------------------------------------------
    business_min_drop: float = Field(default=0.15, gt=0, lt=1, description="mean outcome this far below")
    business_min_n: int = Field(default=15, ge=2)

    # -- agent_silent -----------------------------------------------------------------------------
    silent_alpha: float = Field(
        default=1e-7, gt=0, lt=0.5,
        description="P(no event | the usual traffic) below which it fires; every gap between two "
        "events is a trial, so false pages a year ~ events a year x this",
    )
    silent_min_gap_s: int = Field(default=600, ge=60, description="never fires on a shorter gap")
    silent_after_s: int | None = Field(
        default=None, ge=60,
        description="an explicit expectation: page when the agent sends no execution for this long, whatever "
        "the hour and from its first event on (no baseline needed; per agent)",
    )
    silent_min_reference_days: int = Field(
        default=2, ge=1, description="days of the same type (weekday/weekend) the hour profile needs"
    )

    # -- spend_budget -----------------------------------------------------------------------------
    daily_budget_usd: float | None = Field(default=None, gt=0)
    monthly_budget_usd: float | None = Field(default=None, gt=0)
    auto_budget_factor: float | None = Field(
        default=4.0, gt=1,
        description="with no explicit budget: budget = factor x the usual daily spend, the median of the "
        "weekdays (on a weekday; of the weekend days on a weekend day) among the last 7 whole days, from the "
        "agent's 8th day (None: off)",
    )
    budget_forecast_min_elapsed_h: float = Field(default=6.0, ge=0, description="no forecast before this")
    budget_resolve_below: float = Field(
        default=0.9, gt=0, le=1,
        description="a firing budget alert resolves once the forecast is below this share of the budget "
        "(a forecast hovering at the budget would otherwise page again and again)",
    )

    # -- model_version_changed / floating_model_label ---------------------------------------------
    model_change_min_calls: int = Field(default=3, ge=1)
    model_learning_hours: int = Field(default=24, ge=0, description="checkpoints seen this early are known")
    model_change_hold_h: int = Field(default=6, ge=1, description="then the new checkpoint becomes known")
    floating_label_quiet_h: int = Field(default=24, ge=1, description="resolve after unseen this long")

    # -- invalid_events (pipeline-wide; per-agent overrides do not apply) --------------------------
    invalid_max_share: float = Field(default=0.05, gt=0, lt=1)
    invalid_min_events: int = Field(default=100, ge=1)
    invalid_min_invalid: int = Field(default=10, ge=1)

    # -- alert lifecycle --------------------------------------------------------------------------
    pending_checks: int = Field(default=2, ge=1, description="consecutive positive checks before firing")
    strong_evidence_factor: float = Field(
        default=1e-3, gt=0, le=1,
        description="a check with p-value below alpha x this fires without the pending period",
    )
    resolve_checks: int = Field(default=6, ge=1, description="consecutive clear checks before resolving")
    flap_window_h: float = Field(
        default=24.0, ge=0,
        description="an alert firing again within this long of its resolve doubles the clear checks its next "
        "resolve needs (up to 4x): a signal hovering around a rule's gate pages about twice, not at every crossing",
    )
    resolve_effect_fraction: float = Field(
        default=0.5, ge=0, le=1,
        description="hysteresis of the mean and quantile rules: a firing alert's window is back to normal only "
        "when its effect is under this fraction of the rule's effect gate",
    )
    resolve_likelihood_ratio: float = Field(
        default=20.0, gt=1,
        description="a firing alert's window is back to normal when its data are at least this many times "
        "more likely under the baseline than at the rule's effect gate (a sequential probability ratio)",
    )
    resolve_min_n_factor: float = Field(
        default=2.0, ge=1,
        description="the fewest observations a window needs to show a return to normal, as a multiple of the "
        "rule's minimum sample: thin night windows decide nothing",
    )

    # -- severities (catalogue defaults) ----------------------------------------------------------
    severity: dict[str, Severity] = Field(default_factory=dict, description="rule -> severity override")

    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        """`min_baseline_hours` (one learning period for every rule) sets each family's."""
        if isinstance(data, dict) and "min_baseline_hours" in data:
            data = dict(data)
            hours = data.pop("min_baseline_hours")
            for family in LEARNING_FAMILIES:
                data[f"learning_hours_{family}"] = hours
        return data

    def learning_hours(self, family: str) -> int:
        """Hours of baseline data the rule family (`LEARNING_FAMILIES`) needs before it may page."""
        hours: int = getattr(self, f"learning_hours_{family}")
        return hours

    @model_validator(mode="after")
    def _known_rules(self) -> RuleThresholds:
        unknown = sorted(set(self.severity) - set(RULES))
        if unknown:
            raise ValueError(f"severity: unknown rule(s) {unknown}; known: {sorted(RULES)}")
        return self

    def severity_of(self, rule: str) -> Severity:
        return self.severity.get(rule, RULES[rule].severity)


class DetectionConfig(BaseModel):
    """Engine parameters and rule thresholds, global and per agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket_s: int = Field(default=300, ge=60, le=3600, description="event-time bucket; checks run per bucket")
    allowed_lateness_s: int = Field(
        default=120, ge=0, le=6 * 3600,
        description="events this late (behind the newest event time) still land in their bucket",
    )
    reference_days: int = Field(default=7, ge=1, le=28, description="trailing baseline period")
    reference_exclude_recent_h: int = Field(
        default=6, ge=1, le=48, description="the newest hours are not yet part of the baseline"
    )
    frozen_baseline_after_h: int | None = Field(
        default=None, ge=1, description="freeze baselines this many hours after an agent's first event"
    )
    max_future_skew_s: int = Field(
        default=300, ge=1, le=7 * 86400,
        description="how far a producer's clock may run ahead: an event whose occurred_at is later than "
        "its arrival (the Kafka record timestamp, or the worker's clock if earlier; in a backtest the "
        "times of the lines around it) by more than this goes to the dead-letter topic and never moves "
        "event time (monitor/core/event_time.py)",
    )
    min_occurred_at: AwareDatetime = Field(
        default=DEFAULT_FLOOR,
        description="events before this time are refused as clock or unit bugs (dead-letter topic)",
    )
    repeat_window_s: int = Field(default=24 * 3600, ge=60)
    max_tasks_per_agent: int = Field(
        default=100_000, ge=100, description="bound of the repeat-window task memory per agent"
    )
    dedup_window_s: int = Field(default=3600, ge=60, description="event ids remembered at least this long")
    max_dedup_ids: int = Field(default=500_000, ge=1000, description="hard bound of remembered event ids")
    score_join_window_s: int = Field(
        default=24 * 3600, ge=60,
        description="a second score of an execution scored this long ago is no longer recognised as one",
    )
    max_scored_per_agent: int = Field(default=50_000, ge=100)
    max_tools_per_agent: int = Field(default=100, ge=1)
    max_metrics_per_agent: int = Field(default=50, ge=1)
    max_models_per_agent: int = Field(default=50, ge=1)
    windows_s: tuple[int, ...] = Field(
        default=(900, 1800, 3600, 3 * 3600, 6 * 3600),
        description="detection windows (multiples of bucket_s): short ones catch abrupt changes, "
        "long ones accumulate evidence of gradual drifts",
    )
    emit_rollups: bool = True
    rules: RuleThresholds = RuleThresholds()
    agents: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="agent_id -> RuleThresholds fields overriding `rules`"
    )

    @model_validator(mode="after")
    def _check(self) -> DetectionConfig:
        if 3600 % self.bucket_s:
            raise ValueError(f"bucket_s: must divide an hour, got {self.bucket_s}")
        bad = [w for w in self.windows_s if w % self.bucket_s or w <= 0]
        if bad or not self.windows_s:
            raise ValueError(f"windows_s: each must be a positive multiple of bucket_s={self.bucket_s}, got {bad}")
        if tuple(sorted(self.windows_s)) != self.windows_s:
            raise ValueError(f"windows_s: must be ascending, got {self.windows_s}")
        if max(self.windows_s) > self.reference_exclude_recent_h * 3600:
            raise ValueError("windows_s: the longest window must fit in reference_exclude_recent_h")
        for agent, override in self.agents.items():
            try:
                self.rules.model_copy(update=override).model_validate(
                    {**self.rules.model_dump(), **override}
                )
            except Exception as exc:  # pydantic's message names the field
                raise ValueError(f"agents.{agent}: {exc}") from None
        return self

    @cached_property
    def _per_agent(self) -> dict[str, RuleThresholds]:
        return {
            agent: RuleThresholds.model_validate({**self.rules.model_dump(), **override})
            for agent, override in self.agents.items()
        }

    def for_agent(self, agent_id: str | None) -> RuleThresholds:
        if agent_id is None:
            return self.rules
        return self._per_agent.get(agent_id, self.rules)

    @cached_property
    def event_time_gate(self) -> EventTimeGate:
        """The bounds an event's time must keep to be applied (monitor/core/event_time.py)."""
        return EventTimeGate(max_ahead_s=float(self.max_future_skew_s), floor_s=self.min_occurred_at.timestamp())

    def fingerprint(self) -> str:
        """Identity of the parameters that shape engine state (a snapshot taken with other values
        of these is not reused)."""
        return f"b{self.bucket_s}-w{'.'.join(map(str, self.windows_s))}-r{self.reference_days}"
