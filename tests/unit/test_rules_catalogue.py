"""Every catalogue rule: an injected incident fires it, in the contract's alert shape, and nothing
P1/P2 fires before the onset."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.contract.alert import Alert, alert_fingerprint
from monitor.contract.catalogue import RULES, runbook_url
from monitor.contract.events import EventError, validate_event
from monitor.core.config import DetectionConfig, RuleThresholds
from monitor.core.engine import Engine
from monitor.local.simulate import AgentProfile, Incident, generate
from tests.unit.test_engine_support import T0

ONSET = T0 + timedelta(days=2, hours=12)
AGENT = "lead-qualifier"
BASE = "https://runbooks.example/agentmon"


def agents() -> list[AgentProfile]:
    return [AgentProfile(AGENT, rate_per_hour=50), AgentProfile("support-triage", rate_per_hour=40,
                                                               outcome_metric="ticket_resolved")]


def run(rule: str, config: DetectionConfig, hours_after: float = 4, **incident: Any) -> tuple[list[Alert], set[str]]:
    inc = Incident(rule=rule, agent_id=None if rule == "invalid_events" else AGENT, onset=ONSET, **incident)
    eng = Engine(config, runbook_base_url=BASE)
    alerts: list[Alert] = []
    xids: set[str] = set()
    for data in generate(agents(), T0, 2.5 + hours_after / 24, incidents=[inc], seed=5):
        try:
            ev = validate_event(data)
        except EventError:
            alerts += eng.observe_invalid()
            continue
        if ev.kind == "execution":
            xids.add(ev.execution_id)
        alerts += eng.observe(ev)
    alerts += eng.flush()
    return alerts, xids


def config_for(rule: str) -> DetectionConfig:
    rules: dict[str, Any] = {"min_baseline_hours": 12}
    if rule == "spend_budget":
        rules["daily_budget_usd"] = 30.0  # ~3.5x this agent's usual daily spend
        rules["auto_budget_factor"] = None
    return DetectionConfig(reference_days=2, rules=RuleThresholds(**rules))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_incident_fires_its_rule_in_contract_shape(rule: str) -> None:
    # binary business outcomes arrive hours late and carry little information each (30 % -> 12 %
    # is ~0.09 nats per outcome, ~20 outcomes an hour here): a larger drop, and more hours
    business = rule == "business_metric_decline"
    extra_args: dict[str, Any] = {"magnitude": 0.8, "hours_after": 10} if business else {}
    if rule == "rollout_regression":  # a canary on 20 % of ~20 runs an hour: ~4 candidate runs an hour
        extra_args = {"hours_after": 8}
    alerts, xids = run(rule, config_for(rule), **extra_args)
    early = [a for a in alerts if a.at < ONSET and a.severity in ("P1", "P2") and a.state == "firing"]
    assert early == [], [a.summary for a in early]
    hits = [a for a in alerts if a.rule == rule and a.state == "firing"]
    assert hits, f"{rule} not detected; got {[(a.rule, a.summary) for a in alerts]}"
    alert = hits[0]
    expected_agent = None if rule == "invalid_events" else AGENT
    assert alert.agent_id == expected_agent
    assert alert.fingerprint == alert_fingerprint(rule, expected_agent, alert.labels)
    assert alert.severity == RULES[rule].severity
    assert alert.runbook_url == runbook_url(BASE, rule)
    assert alert.at >= ONSET
    assert alert.at - ONSET <= timedelta(hours=10 if business else 6)
    assert "\n" not in alert.summary and len(alert.summary) < 300
    assert alert.metric.window and alert.metric.name
    assert len(alert.samples) <= 10
    assert set(alert.samples) <= xids
    if rule in ("escalation_rate_rise", "repeat_task_rate_rise", "tool_error_rate", "tool_calls_all_failing",
                "quality_drop", "token_cost_spike", "task_duration_rise", "latency_spike"):
        assert alert.samples, "statistical rules show executions"
        extra = alert.metric.model_extra or {}
        if rule != "tool_calls_all_failing":
            assert "p_value" in extra and extra["p_value"] < 1e-4


def test_abrupt_incidents_at_50_per_hour_fire_within_30_minutes() -> None:
    for rule in ("tool_calls_all_failing", "agent_silent", "model_version_changed"):
        alerts, _ = run(rule, config_for(rule))
        hit = next(a for a in alerts if a.rule == rule and a.state == "firing")
        assert hit.at - ONSET <= timedelta(minutes=30), (rule, hit.at - ONSET)


def test_all_tool_calls_failing_fires_at_the_end_of_the_first_failing_bucket_before_any_tool_error_alert() -> None:
    """Counted from the last success, not over a window that still holds the calls before the onset:
    at the first check after a whole failing bucket, so `tool_error_rate` (which the alerts pipeline
    inhibits while this one fires) never pages first for the same outage."""
    alerts, _ = run("tool_calls_all_failing", config_for("tool_calls_all_failing"))
    hit = next(a for a in alerts if a.rule == "tool_calls_all_failing" and a.state == "firing")
    assert hit.at == ONSET + timedelta(minutes=5), hit.summary  # the onset starts a 5-minute bucket
    assert hit.metric.window == "5m" and hit.metric.current == 0 and hit.metric.n >= 8
    assert "none of" in hit.summary and "over the last 5m" in hit.summary
    tool_errors = [a for a in alerts if a.rule == "tool_error_rate" and a.state == "firing" and a.at >= ONSET]
    assert tool_errors and min(a.at for a in tool_errors) >= hit.at


def test_incident_that_ends_resolves_once() -> None:
    alerts, _ = run("tool_calls_all_failing", config_for("tool_calls_all_failing"), duration_h=1.0)
    mine = [a for a in alerts if a.rule == "tool_calls_all_failing"]
    assert [a.state for a in mine] == ["firing", "resolved"]
    assert mine[1].fingerprint == mine[0].fingerprint
    assert mine[1].at > mine[0].at


def test_per_agent_override_silences_a_rule() -> None:
    cfg = config_for("escalation_rate_rise")
    cfg = DetectionConfig(reference_days=2, rules=cfg.rules,
                          agents={AGENT: {"escalation_min_ratio": 10.0}})
    alerts, _ = run("escalation_rate_rise", cfg)
    assert not [a for a in alerts if a.rule == "escalation_rate_rise"]


def test_severity_override() -> None:
    cfg = DetectionConfig(reference_days=2, rules=RuleThresholds(
        min_baseline_hours=12, severity={"tool_calls_all_failing": "P2"}))
    alerts, _ = run("tool_calls_all_failing", cfg)
    assert next(a for a in alerts if a.rule == "tool_calls_all_failing").severity == "P2"


def test_samples_name_each_execution_once() -> None:
    alerts, _ = run("tool_error_rate", config_for("tool_error_rate"), magnitude=0.9)
    for alert in alerts:
        assert len(set(alert.samples)) == len(alert.samples)
