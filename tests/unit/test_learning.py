"""A new agent does not page while its baseline learns (`learning_hours_*` per rule family): a
week-old "usual" learned from a day would page on noise. What needs no baseline pages from the
first event on: all tool calls failing, invalid events, silence against an explicit expectation,
spend over an explicit budget."""

from __future__ import annotations

import json
from datetime import timedelta

from monitor.contract.alert import Alert
from monitor.core.config import DetectionConfig, RuleThresholds
from monitor.core.engine import Engine
from monitor.core.replay import replay
from monitor.local.simulate import AgentProfile, Incident, generate
from tests.unit.test_engine_support import T0

AGENT = AgentProfile("new-agent", rate_per_hour=50, escalation=0.10)
SERIOUS = ("P1", "P2")


def run(incidents: list[Incident], days: float, config: DetectionConfig | None = None,
        seed: int = 3) -> tuple[list[Alert], Engine]:
    lines = [json.dumps(e).encode() for e in generate([AGENT], T0, days, incidents=incidents, seed=seed)]
    engine = Engine(config or DetectionConfig())
    return replay(lines, engine).alerts, engine


def test_a_large_rise_on_the_second_day_does_not_page_while_the_agent_is_learning() -> None:
    onset = T0 + timedelta(days=1, hours=10)
    alerts, engine = run([Incident("escalation_rate_rise", AGENT.agent_id, onset, magnitude=0.5)], 2.0)
    assert [a.rule for a in alerts if a.severity in SERIOUS] == []
    learning = engine.learning()[AGENT.agent_id]
    assert set(learning) == {"shares", "means", "quantiles", "outcomes"}
    assert all(v.endswith(" of 72 h") and int(v.split()[0]) < 72 for v in learning.values()), learning


def test_the_same_rise_pages_once_the_baseline_holds_its_hours() -> None:
    onset = T0 + timedelta(days=5, hours=10)
    alerts, engine = run([Incident("escalation_rate_rise", AGENT.agent_id, onset, magnitude=0.5)], 5.8)
    assert AGENT.agent_id not in engine.learning()
    firing = [a for a in alerts if a.state == "firing" and a.severity in SERIOUS]
    assert [a.rule for a in firing] == ["escalation_rate_rise"] and firing[0].at >= onset


def test_shorter_learning_is_a_setting_per_family() -> None:
    onset = T0 + timedelta(days=1, hours=10)
    config = DetectionConfig(rules=RuleThresholds(learning_hours_shares=12))
    alerts, engine = run([Incident("escalation_rate_rise", AGENT.agent_id, onset, magnitude=0.5)], 2.0, config)
    assert "escalation_rate_rise" in [a.rule for a in alerts if a.state == "firing"]
    assert "shares" not in engine.learning()[AGENT.agent_id]


def test_all_tool_calls_failing_pages_while_learning() -> None:
    onset = T0 + timedelta(hours=20)
    alerts, engine = run([Incident("tool_calls_all_failing", AGENT.agent_id, onset, duration_h=2)], 1.2)
    assert AGENT.agent_id in engine.learning()
    firing = [a for a in alerts if a.state == "firing"]
    assert [a.rule for a in firing] == ["tool_calls_all_failing"]
    assert timedelta(0) <= firing[0].at - onset <= timedelta(minutes=15)
    assert "; failing: search " in firing[0].summary and "crm.update " in firing[0].summary  # which tools
    assert set(firing[0].metric.model_extra["tools"]) == {"search", "crm.update"}
    assert any(a.rule == "tool_calls_all_failing" and a.state == "resolved" for a in alerts)


def test_silence_against_an_explicit_expectation_pages_from_the_first_day() -> None:
    onset = T0 + timedelta(hours=10)  # a weekday morning: the agent stops for good
    incident = Incident("agent_silent", AGENT.agent_id, onset)
    without, _ = run([incident], 1.0)
    assert not [a for a in without if a.rule == "agent_silent"]  # no profile to test against yet
    config = DetectionConfig(agents={AGENT.agent_id: {"silent_after_s": 1800}})
    alerts, _ = run([incident], 1.0, config)
    hit = next(a for a in alerts if a.rule == "agent_silent" and a.state == "firing")
    assert timedelta(minutes=30) <= hit.at - onset <= timedelta(minutes=45)
    assert "expected to run at least every 30m" in hit.summary


def test_the_thresholds_come_from_the_false_alarm_budget_unless_set() -> None:
    from monitor.core.config import budget_split

    default = RuleThresholds()
    assert default.false_pages_per_agent_year == 2.0
    assert (default.alpha, default.cusum_false_alarm_years, default.silent_alpha) == \
        tuple(budget_split(2.0).values())
    strict = RuleThresholds(false_pages_per_agent_year=0.5)
    assert strict.alpha == default.alpha / 4 and strict.cusum_false_alarm_years == 4 * default.cusum_false_alarm_years
    assert RuleThresholds(alpha=1e-5, false_pages_per_agent_year=0.5).alpha == 1e-5  # a setting wins
    per_agent = DetectionConfig(agents={"quiet": {"false_pages_per_agent_year": 0.5}})
    assert per_agent.for_agent("quiet").alpha == strict.alpha  # an agent's own budget re-derives
    assert per_agent.for_agent("other").alpha == default.alpha
    # the union bound: window tests, CUSUM banks and silence of the 9 rules add up to the budget
    checks, gaps = 288 * 365.25, 50 * 24 * 365.25
    total = 8 * (default.alpha * checks + 1 / default.cusum_false_alarm_years) + default.silent_alpha * gaps * 5
    assert abs(total - 2.0) < 1e-9
