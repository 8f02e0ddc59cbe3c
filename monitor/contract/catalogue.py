"""The rule catalogue (shared/design/CONTRACT.md section 3): names and default severities.

One place that the detection core, the alert pipeline, the runbooks test and the report agree on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

Severity: TypeAlias = Literal["P1", "P2", "P3"]
FailureCategory: TypeAlias = Literal[
    "silent failure", "model drift", "tool-chain brittleness", "context corruption", "pipeline health"
]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    severity: Severity
    category: FailureCategory
    fires_when: str
    per_agent: bool = True


RULES: dict[str, RuleSpec] = {
    spec.name: spec
    for spec in (
        RuleSpec("quality_drop", "P1", "model drift",
                 "mean quality score >= 20 % below baseline, statistically significant"),
        RuleSpec("tool_error_rate", "P1", "tool-chain brittleness",
                 "one tool's error/timeout share >= 10 % and significantly above its baseline"),
        RuleSpec("tool_calls_all_failing", "P1", "tool-chain brittleness",
                 "an agent is running but none of its tool calls succeed (auth or endpoint change)"),
        RuleSpec("repeat_task_rate_rise", "P1", "silent failure",
                 "repeat-task rate significantly above baseline (e.g. 5 % -> 20 %)"),
        RuleSpec("escalation_rate_rise", "P2", "silent failure",
                 "escalation rate significantly above baseline at unchanged volume mix"),
        RuleSpec("token_cost_spike", "P2", "context corruption",
                 "cost (or tokens) per execution >= 50 % above baseline"),
        RuleSpec("task_duration_rise", "P2", "context corruption",
                 "steps (or duration) per task significantly above baseline without a volume change"),
        RuleSpec("business_metric_decline", "P2", "silent failure",
                 "an outcome metric significantly below baseline, not explained by volume"),
        RuleSpec("latency_spike", "P2", "tool-chain brittleness",
                 "p95 duration significantly above baseline"),
        RuleSpec("agent_silent", "P1", "silent failure",
                 "an agent that normally has traffic at this hour sends nothing"),
        RuleSpec("spend_budget", "P2", "context corruption",
                 "daily or monthly spend over its budget, or forecast to be"),
        RuleSpec("model_version_changed", "P2", "model drift",
                 "the resolved_model behind a requested model changed (silent provider update)"),
        RuleSpec("floating_model_label", "P3", "model drift",
                 "an agent calls a model by a floating label instead of a pinned checkpoint"),
        RuleSpec("rollout_regression", "P1", "model drift",
                 "while two agent_versions of one agent run side by side (canary, shadow, gradual rollout), "
                 "the newer is significantly worse than the older on a catalogue signal, in the same time windows"),
        RuleSpec("invalid_events", "P2", "pipeline health",
                 "share of events sent to the DLQ above threshold", per_agent=False),
    )
}

RuleName: TypeAlias = Literal[
    "quality_drop", "tool_error_rate", "tool_calls_all_failing", "repeat_task_rate_rise",
    "escalation_rate_rise", "token_cost_spike", "task_duration_rise", "business_metric_decline",
    "latency_spike", "agent_silent", "spend_budget", "model_version_changed", "floating_model_label",
    "rollout_regression", "invalid_events",
]


def runbook_path(rule: str) -> str:
    """Path of a rule's runbook inside the repository (and under the runbook base URL)."""
    return f"runbooks/{rule}.md"


def runbook_url(base_url: str, rule: str) -> str:
    return f"{base_url.rstrip('/')}/{runbook_path(rule)}"
