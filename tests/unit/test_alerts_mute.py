"""Mute stage: inhibition (and the shared Muter interface), table-driven."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.config import InhibitRuleConfig
from alerts.mute import Inhibitor, MuteStage, inhibiting_alert
from alerts.silences import MemorySilenceStore, SilenceMuter, new_silence, parse_matcher
from monitor.contract.alert import Alert
from tests.support.alert_factory import T0, make_alert

RULES = [InhibitRuleConfig(source_rule="tool_calls_all_failing", target_rule="tool_error_rate")]

ALL_FAILING_A = make_alert("tool_calls_all_failing", "agent-a")
ERROR_RATE_A = make_alert("tool_error_rate", "agent-a")

CASES: list[tuple[str, Alert, list[Alert], bool]] = [
    ("same agent: inhibited", ERROR_RATE_A, [ALL_FAILING_A], True),
    ("other agent: not inhibited", make_alert("tool_error_rate", "agent-b"), [ALL_FAILING_A], False),
    (
        "source resolved: not inhibited",
        ERROR_RATE_A,
        [make_alert("tool_calls_all_failing", "agent-a", "resolved")],
        False,
    ),
    ("no source: not inhibited", ERROR_RATE_A, [], False),
    ("other target rule: not inhibited", make_alert("latency_spike", "agent-a"), [ALL_FAILING_A], False),
    ("source never inhibits itself", ALL_FAILING_A, [ALL_FAILING_A], False),
    (
        "any tool label of the agent",
        make_alert("tool_error_rate", "agent-a", labels={"tool": "search"}),
        [ALL_FAILING_A],
        True,
    ),
]


@pytest.mark.parametrize(("target", "active", "inhibited"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_inhibition(target: Alert, active: list[Alert], inhibited: bool) -> None:
    assert (inhibiting_alert(target, active, RULES) is not None) is inhibited


def test_inhibit_rule_with_a_label_in_equal() -> None:
    rules = [InhibitRuleConfig(source_rule="agent_silent", target_rule="latency_spike", equal=["agent_id", "region"])]
    source = make_alert("agent_silent", "a", labels={"region": "eu"})
    assert inhibiting_alert(make_alert("latency_spike", "a", labels={"region": "eu"}), [source], rules)
    assert not inhibiting_alert(make_alert("latency_spike", "a", labels={"region": "us"}), [source], rules)


def test_mute_stage_reports_who_muted_and_never_mutes_a_resolve() -> None:
    store = MemorySilenceStore()
    store.put(
        new_silence(
            [parse_matcher("agent=agent-b")],
            now=T0,
            duration=timedelta(hours=1),
            created_by="alice",
            comment="deploy",
        )
    )
    stage = MuteStage([Inhibitor(RULES, lambda t: [ALL_FAILING_A]), SilenceMuter(store)])

    inhibited = stage.check(ERROR_RATE_A, T0)
    assert inhibited is not None and inhibited.kind == "inhibited" and inhibited.by == ALL_FAILING_A.fingerprint
    silenced = stage.check(make_alert("quality_drop", "agent-b"), T0)
    assert silenced is not None and silenced.kind == "silenced" and "alice" in silenced.reason
    assert stage.check(make_alert("quality_drop", "agent-b", "resolved"), T0) is None
    assert stage.check(make_alert("quality_drop", "agent-c"), T0) is None


def at(minutes: float, state: str = "firing") -> Alert:
    return make_alert("tool_calls_all_failing", "agent-a", state, minutes=minutes)


@pytest.mark.parametrize(
    ("history", "t_min", "expected"),
    [
        ([at(0), at(30, "resolved")], 10, "firing"),
        ([at(0), at(30, "resolved")], 30, "resolved"),
        ([at(0), at(30, "resolved")], -1, None),
        ([at(30, "resolved"), at(0)], 45, "resolved"),  # order of arrival does not matter
        ([], 5, None),
    ],
)
def test_state_as_of_event_time(history: list[Alert], t_min: float, expected: str | None) -> None:
    from alerts.mute import state_as_of

    found = state_as_of(history, T0 + timedelta(minutes=t_min))
    assert (found.state if found else None) == expected
