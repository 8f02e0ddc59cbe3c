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


#: the statistical rules among which the false-alarm budget is split (each gets an equal share)
BUDGET_RULES = (
    "quality_drop", "tool_error_rate", "repeat_task_rate_rise", "escalation_rate_rise", "token_cost_spike",
    "task_duration_rise", "latency_spike", "business_metric_decline", "agent_silent",
)
#: checks of one rule of one agent a year (one per 5-minute bucket)
CHECKS_PER_YEAR = 288 * 365.25
#: executions of one agent a year at 50 an hour: the gaps `agent_silent` tests
SILENCE_TRIALS_PER_YEAR = 50 * 24 * 365.25
#: the silence test's tail (a gamma mixture of Poissons) is optimistic for bursty traffic: at the
#: plain share (5e-7) 208 clean agent-weeks gave a page at P(0) = 2.8e-7; this margin keeps it 5x under
SILENCE_MODEL_MARGIN = 5.0


def budget_split(false_pages_per_agent_year: float) -> dict[str, float]:
    """The thresholds that keep an agent's false P1/P2 pages under the budget by the union bound.

    Each statistical rule gets an equal share `b = budget / 9`. A rule with window tests and an
    accumulating test gives half to each: its window tests may fire falsely with probability
    `alpha = (b / 2) / checks a year` per check (then split over windows, tools and metrics), its
    CUSUM bank once in `1 / (b / 2)` years. `agent_silent` has one test: `b / gaps a year`, with a
    margin for its model (`SILENCE_MODEL_MARGIN`).

    >>> {k: f"{v:.3g}" for k, v in budget_split(2.0).items()}
    {'alpha': '1.06e-06', 'cusum_false_alarm_years': '9', 'silent_alpha': '1.01e-07'}
    """
    share = false_pages_per_agent_year / len(BUDGET_RULES)
    return {
        "alpha": min(share / 2 / CHECKS_PER_YEAR, 0.49),
        "cusum_false_alarm_years": 1.0 / (share / 2),
        "silent_alpha": min(share / SILENCE_TRIALS_PER_YEAR / SILENCE_MODEL_MARGIN, 0.49),
    }
_LEARNING_FIELDS = {family: f"learning_hours_{family}" for family in LEARNING_FAMILIES}


class RuleThresholds(BaseModel):
    """Thresholds of every rule. Relative changes are fractions (0.2 = 20 %)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- the false-alarm budget, and the thresholds derived from it ---------------------------------
    false_pages_per_agent_year: float = Field(
        default=2.0, gt=0,
        description="false P1/P2 pages one agent may cost a year when nothing changes, by the union bound "
        "over its statistical rules, windows, tools and metrics at the check frequency (`budget_split`; "
        "docs/benchmarks-detection.md, 'The false-alarm budget'). Sets alpha, cusum_false_alarm_years and "
        "silent_alpha unless they are given",
    )
    alpha: float = Field(  # type: ignore[assignment]  # None: derived by _derive_from_budget
        default=None, gt=0, lt=0.5,
        description="false-alarm probability of one check of one rule's window tests for one agent; split "
        "(Bonferroni) across the detection windows, tools and metrics. Default: the rule's half of its share "
        "of the budget over a year's checks",
    )
    cusum_false_alarm_years: float = Field(  # type: ignore[assignment]  # None: derived by _derive_from_budget
        default=None, gt=0,
        description="mean time between false alarms of one rule's accumulating (CUSUM) test of one "
        "agent when nothing changes, a lower bound (all its designs, tools or metrics together); "
        "sets the CUSUM thresholds from the agent's baseline volume. Default: from the budget",
    )
    cusum_memory_h: int = Field(
        default=48, ge=1,
        description="how far back the accumulating (CUSUM) tests look: the buckets of the longest window, "
        "then whole hours of the agent's history. Slow evidence (a 0/1 outcome at 20 an hour, ~0.5 nats an "
        "hour) needs a day; a memory of the longest window alone (6 h) never pages on it",
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
    silent_alpha: float = Field(  # type: ignore[assignment]  # None: derived by _derive_from_budget
        default=None, gt=0, lt=0.5,
        description="P(no event | the usual traffic) below which it fires; every gap between two "
        "events is a trial, so false pages a year <= events a year x this. Default: the rule's share of "
        "the budget over the events of a year at 50 executions/hour",
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

    # -- rollout_regression (monitor/core/rollout.py) ---------------------------------------------
    rollout_false_verdicts: float = Field(
        default=0.005, gt=0, lt=0.5,
        description="chance that a comparison of two equal versions ever says `rollback` (or any signal "
        "`worse`), however long it runs and however often it is checked: the always-valid intervals are "
        "at this level split over the signals. The rules' default budget (2 false pages per agent-year over "
        "9 rules, ~0.2 per rule) at ~40 rollouts a year is the same order",
    )
    rollout_min_n: int = Field(default=30, ge=5, description="observations each version needs on a signal")
    rollout_margin_rate: float = Field(
        default=0.03, gt=0, lt=1, description="a rise of a share (escalations, failures, repeats, tool errors) "
        "that matters; a candidate within it of the baseline version is not worse")
    rollout_margin_quality: float = Field(default=0.05, gt=0, lt=1, description="a drop of the mean score that matters")
    rollout_margin_ratio: float = Field(
        default=1.2, gt=1, description="cost, steps and duration: a ratio of geometric means that matters")
    rollout_margin_outcome: float = Field(
        default=0.15, gt=0, lt=1, description="a relative drop of an outcome metric's mean that matters (as "
        "business_min_drop)")

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

    @model_validator(mode="before")
    @classmethod
    def _derive_from_budget(cls, data: Any) -> Any:
        """The thresholds not given explicitly, from `false_pages_per_agent_year` (`budget_split`)."""
        if not isinstance(data, dict):
            return data
        budget = data.get("false_pages_per_agent_year", cls.model_fields["false_pages_per_agent_year"].default)
        derived = budget_split(float(budget))
        return {**{k: v for k, v in derived.items() if data.get(k) is None}, **{k: v for k, v in data.items()
                                                                               if v is not None}}

    def learning_hours(self, family: str) -> int:
        """Hours of baseline data the rule family (`LEARNING_FAMILIES`) needs before it may page."""
        hours: int = getattr(self, _LEARNING_FIELDS[family])  # a name built once: rules ask on every check
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
    dedup_window_s: int = Field(
        default=3600, ge=60, description="event ids remembered at least this long; a late event older than the ids "
        "remembered is dropped (late_unverifiable), since it could be a resend of one already counted")
    max_dedup_ids: int = Field(default=500_000, ge=1000, description="hard bound of remembered event ids")
    score_join_window_s: int = Field(
        default=24 * 3600, ge=60,
        description="a second score of an execution scored this long ago is no longer recognised as one",
    )
    max_agents: int = Field(
        default=20_000, ge=1, description="agents one engine (one partition of agent-events) holds; events of further "
        "new agents go to the dead-letter topic (a producer sending unbounded agent ids cannot exhaust memory)")
    max_scored_per_agent: int = Field(default=50_000, ge=100)
    max_tools_per_agent: int = Field(default=100, ge=1)
    max_metrics_per_agent: int = Field(default=50, ge=1)
    max_models_per_agent: int = Field(default=50, ge=1)
    rollout_shadow_attribute: str | None = Field(
        default="deployment", description="the execution attribute that marks a shadow run (None: no shadow)")
    rollout_shadow_value: str = Field(
        default="shadow", description="shadow runs (attribute = this) are compared with the production version "
        "only (`rollout_regression`); they never enter baselines or other rules")
    rollout_end_after_s: int = Field(
        default=3600, ge=600, description="a version unseen at least this long, while the agent's other runs "
        "would have given it 10 at its usual share (or unseen 48 h), has stopped: its comparison ends "
        "(monitor/core/rollout.py `stopped`)")
    rollout_max_versions: int = Field(default=8, ge=2, description="versions remembered per agent")
    rollout_max_executions: int = Field(
        default=1000, ge=100, description="execution ids remembered per agent during a comparison, so that "
        "later evaluations and outcomes are credited to their version")
    suspects_top_k: int = Field(
        default=8, ge=1, le=100, description="values kept per dimension (task type, agent version, resolved model, "
        "provider, tool, escalation reason) per agent for an alert's suspects; extras pooled")
    related_window_s: int = Field(
        default=6 * 3600, ge=0, description="an alert that fires lists the same agent's alerts firing or resolved "
        "this long before it as `related`")
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
        """Each agent's thresholds: the global ones with its overrides. An agent's own
        `false_pages_per_agent_year` re-derives the thresholds the global budget derived."""
        out = {}
        derived = budget_split(self.rules.false_pages_per_agent_year)
        for agent, override in self.agents.items():
            base = self.rules.model_dump()
            if "false_pages_per_agent_year" in override:
                base = {k: v for k, v in base.items() if not (k in derived and v == derived[k])}
            out[agent] = RuleThresholds.model_validate({**base, **override})
        return out

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
