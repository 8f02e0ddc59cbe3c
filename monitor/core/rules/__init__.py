"""The rule catalogue (CONTRACT.md section 3) as checks over an agent's detection windows.

A check yields one `Check` per fingerprint it looks at; `monitor.core.lifecycle.AlertTracker`
turns checks into alert state changes. Every statistical rule tests `len(windows)` windows at
`alpha / len(windows)` (Bonferroni), needs the effect size first, and must hold on `pending_checks`
consecutive checks, unless its accumulated evidence (`cusum.py`) reaches its threshold; `alpha` is
per check, so it is set from a yearly budget (~105,000 checks per agent and rule a year).
"""

from __future__ import annotations

from monitor.core.rules.base import FIRING, OK, OTHER, PENDING, Bucket, Check, Evidence, RuleContext, baseline_group
from monitor.core.rules.business import check_business_metric_decline
from monitor.core.rules.means import check_quality_drop, check_task_duration_rise, check_token_cost_spike
from monitor.core.rules.models import (
    check_floating_model_label,
    check_model_version_changed,
    is_floating_label,
    note_models,
)
from monitor.core.rules.pipeline import check_invalid_events
from monitor.core.rules.quantiles import check_latency_spike
from monitor.core.rules.rates import (
    check_escalation_rate_rise,
    check_repeat_task_rate_rise,
    check_tool_calls_all_failing,
    check_tool_error_rate,
)
from monitor.core.rules.silence import check_agent_silent
from monitor.core.rules.spend import SpendDay, SpendView, check_spend_budget, spend_view

#: the checks on an agent's windows, skipped while it is idle; run in this order (alerts come out in it)
STATISTICAL_CHECKS = (
    check_quality_drop,
    check_tool_error_rate,
    check_tool_calls_all_failing,
    check_repeat_task_rate_rise,
    check_escalation_rate_rise,
    check_token_cost_spike,
    check_task_duration_rise,
    check_latency_spike,
    check_business_metric_decline,
)

__all__ = [
    "FIRING",
    "OK",
    "OTHER",
    "PENDING",
    "STATISTICAL_CHECKS",
    "Bucket",
    "Check",
    "Evidence",
    "RuleContext",
    "SpendDay",
    "SpendView",
    "baseline_group",
    "check_agent_silent",
    "check_business_metric_decline",
    "check_escalation_rate_rise",
    "check_floating_model_label",
    "check_invalid_events",
    "check_latency_spike",
    "check_model_version_changed",
    "check_quality_drop",
    "check_repeat_task_rate_rise",
    "check_spend_budget",
    "check_task_duration_rise",
    "check_token_cost_spike",
    "check_tool_calls_all_failing",
    "check_tool_error_rate",
    "is_floating_label",
    "note_models",
    "spend_view",
]
