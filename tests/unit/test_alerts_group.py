"""Group stage: per agent, group_wait, newest state per fingerprint."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.group import Grouper, group_due, group_key
from tests.support.alert_factory import T0, make_alert


@pytest.mark.parametrize(
    ("wait_s", "elapsed_s", "due"), [(30, 0, False), (30, 29.9, False), (30, 30, True), (0, 0, True)]
)
def test_group_due(wait_s: float, elapsed_s: float, due: bool) -> None:
    assert group_due(T0, T0 + timedelta(seconds=elapsed_s), timedelta(seconds=wait_s)) is due


def test_group_key_is_the_agent_and_pipeline_wide_rules_share_one() -> None:
    assert group_key(make_alert("quality_drop", "a")) == "a"
    assert group_key(make_alert("invalid_events", None)) == "*"


def test_alerts_of_one_agent_wait_together_and_leave_together() -> None:
    grouper = Grouper(timedelta(seconds=30))
    grouper.add(make_alert("tool_error_rate", "a"), T0)
    grouper.add(make_alert("tool_calls_all_failing", "a"), T0 + timedelta(seconds=20))
    grouper.add(make_alert("quality_drop", "b"), T0 + timedelta(seconds=20))
    assert grouper.due(T0 + timedelta(seconds=29)) == []
    first = grouper.due(T0 + timedelta(seconds=30))
    assert [sorted(x.rule for x in g) for g in first] == [["tool_calls_all_failing", "tool_error_rate"]]
    assert [[x.agent_id for x in g] for g in grouper.due(T0 + timedelta(seconds=50))] == [["b"]]
    assert grouper.pending() == 0


def test_firing_then_resolved_inside_the_wait_collapses_to_the_resolve() -> None:
    grouper = Grouper(timedelta(seconds=30))
    grouper.add(make_alert("quality_drop", "a", minutes=0), T0)
    grouper.add(make_alert("quality_drop", "a", "resolved", minutes=0.2), T0)
    grouper.add(make_alert("quality_drop", "a", minutes=0.1), T0)  # late, older: ignored
    (group,) = grouper.due(T0 + timedelta(seconds=30))
    assert [a.state for a in group] == ["resolved"]


def test_negative_wait_is_refused() -> None:
    with pytest.raises(ValueError):
        Grouper(timedelta(seconds=-1))


def test_a_real_incident_arriving_in_one_batch_keeps_both_states() -> None:
    grouper = Grouper(timedelta(seconds=30))
    grouper.add(make_alert("quality_drop", "a", minutes=0), T0)
    grouper.add(make_alert("quality_drop", "a", "resolved", minutes=30), T0)  # 30 min of event time later
    (group,) = grouper.due(T0 + timedelta(seconds=30))
    assert [a.state for a in group] == ["firing", "resolved"]
    assert grouper.pending() == 0


def test_a_p1_group_is_due_after_its_shorter_wait() -> None:
    grouper = Grouper(timedelta(seconds=30), {"P1": timedelta(seconds=5)})
    grouper.add(make_alert("token_cost_spike", "a"), T0)  # P2
    grouper.add(make_alert("quality_drop", "b"), T0)  # P1
    assert grouper.due(T0 + timedelta(seconds=4)) == []
    assert [[a.agent_id for a in g] for g in grouper.due(T0 + timedelta(seconds=5))] == [["b"]]
    assert grouper.due(T0 + timedelta(seconds=29)) == []
    assert len(grouper.due(T0 + timedelta(seconds=30))) == 1


def test_a_p1_joining_a_p3_group_brings_the_whole_group_forward() -> None:
    grouper = Grouper(timedelta(seconds=30), {"P1": timedelta(seconds=5)})
    grouper.add(make_alert("floating_model_label", "a"), T0)
    grouper.add(make_alert("quality_drop", "a"), T0 + timedelta(seconds=10))
    (group,) = grouper.due(T0 + timedelta(seconds=15))
    assert sorted(a.rule for a in group) == ["floating_model_label", "quality_drop"]


def test_a_severity_wait_never_lengthens_the_group_wait() -> None:
    grouper = Grouper(timedelta(seconds=0), {"P1": timedelta(seconds=5)})
    grouper.add(make_alert("quality_drop", "a"), T0)
    assert len(grouper.due(T0)) == 1


def test_by_default_a_p1_waits_at_most_five_seconds() -> None:
    from alerts.config import AlertingConfig

    config = AlertingConfig()
    assert min(config.group_wait_s, config.group_wait_by_severity_s["P1"]) <= 5
