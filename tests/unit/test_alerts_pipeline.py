"""The stages chained: group -> inhibit/silence -> dedup -> route -> deliver, with scripted notifiers."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.clock import ManualClock
from alerts.config import AlertingConfig
from alerts.metrics import AlertMetrics
from alerts.notification_log import SqliteNotificationLog
from alerts.pipeline import AlertPipeline
from alerts.silences import MemorySilenceStore, new_silence, parse_matcher
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_notifier import ScriptedNotifier

CONFIG = AlertingConfig.model_validate(
    {
        "group_wait_s": 30,
        "repeat_interval_s": 3600,
        "receivers": [
            {"name": "slack-default", "kind": "slack"},
            {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"},
        ],
        "routes": [{"name": "p1", "severities": ["P1"], "receivers": ["slack-default", "hook"]}],
    }
)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "log.sqlite3"
        self.clock = ManualClock(T0)
        self.silences = MemorySilenceStore()
        self.slack = ScriptedNotifier()
        self.hook = ScriptedNotifier()
        self.metrics = AlertMetrics()
        self.pipeline = self.new()

    def new(self) -> AlertPipeline:
        return AlertPipeline(
            CONFIG,
            notifiers={"slack-default": self.slack, "hook": self.hook},
            notification_log=SqliteNotificationLog(self.path),
            silences=self.silences,
            clock=self.clock,
            metrics=self.metrics,
        )

    def after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pipeline.tick()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_nothing_leaves_before_the_group_wait(world: World) -> None:
    world.pipeline.receive(make_alert("escalation_rate_rise", "a"))
    world.after(29)
    assert world.slack.arrived == {}
    world.after(1)
    assert world.slack.kinds() == [("firing", make_alert("escalation_rate_rise", "a").fingerprint)]


def test_all_failing_inhibits_error_rate_of_the_same_agent_only(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    world.pipeline.receive(make_alert("tool_error_rate", "a", labels={"tool": "crm.update"}))
    world.pipeline.receive(make_alert("tool_calls_all_failing", "a"))
    world.pipeline.receive(make_alert("tool_error_rate", "b", labels={"tool": "crm.update"}))
    world.after(30)
    rules = sorted((n.alert.rule, n.alert.agent_id) for n in world.slack.arrived.values())
    assert rules == [("tool_calls_all_failing", "a"), ("tool_error_rate", "b")]
    assert "inhibited by tool_calls_all_failing/a" in caplog.text
    assert world.metrics.get("alerts_muted_total", kind="inhibited") == 1

    # the source resolves: the still-firing target is now told, as a first notification
    world.pipeline.receive(make_alert("tool_calls_all_failing", "a", "resolved", minutes=10))
    world.after(30)
    kinds = [(n.kind, n.alert.rule, n.alert.agent_id) for n in world.slack.arrived.values()]
    assert ("resolved", "tool_calls_all_failing", "a") in kinds
    assert ("firing", "tool_error_rate", "a") in kinds


def test_silence_mutes_until_it_expires_then_the_alert_is_sent(world: World) -> None:
    world.silences.put(
        new_silence(
            [parse_matcher("rule=quality_drop"), parse_matcher("agent=a")],
            now=T0,
            duration=timedelta(minutes=30),
            created_by="alice",
            comment="eval rollout",
        )
    )
    world.pipeline.receive(make_alert("quality_drop", "a"))
    world.pipeline.receive(make_alert("quality_drop", "b"))
    world.after(30)
    assert [n.alert.agent_id for n in world.slack.arrived.values()] == ["b"]
    world.after(30 * 60)
    assert sorted(str(n.alert.agent_id) for n in world.slack.arrived.values()) == ["a", "b"]


def test_a_resolve_inside_the_group_wait_of_an_unsent_firing_sends_nothing(world: World) -> None:
    world.pipeline.receive(make_alert("latency_spike", "a", minutes=0))
    world.pipeline.receive(make_alert("latency_spike", "a", "resolved", minutes=0.2))
    world.after(30)
    world.after(7200)
    assert world.slack.arrived == {} and world.pipeline.active_alerts() == []


def test_routes_to_every_receiver_and_resolve_edits_only_slack(world: World) -> None:
    world.pipeline.receive(make_alert("agent_silent", "a"))
    world.after(30)
    world.pipeline.receive(make_alert("agent_silent", "a", "resolved", minutes=20))
    world.after(30)
    assert [n.kind for n in world.slack.arrived.values()] == ["firing", "resolved", "mark_resolved"]
    assert [n.kind for n in world.hook.arrived.values()] == ["firing", "resolved"]
    resolved = [n for n in world.slack.arrived.values() if n.kind == "resolved"][0]
    assert resolved.thread is not None and resolved.firing_alert is not None


def test_reminder_after_the_repeat_interval_counts_repeats(world: World) -> None:
    world.pipeline.receive(make_alert("escalation_rate_rise", "a"))
    world.after(30)
    world.after(3599)
    assert len(world.slack.arrived) == 1
    world.after(1)
    world.after(3600)
    assert [n.kind for n in world.slack.arrived.values()] == ["firing", "repeat", "repeat"]
    assert len({n.notification_id for n in world.slack.arrived.values()}) == 3


def test_stale_and_duplicate_state_changes_are_ignored(world: World) -> None:
    firing = make_alert("quality_drop", "a", minutes=0)
    flap = make_alert("quality_drop", "a", "resolved", minutes=0.2)  # resolved within the group wait
    world.pipeline.run([firing, flap])
    world.after(30)
    world.pipeline.run([firing, firing, flap])  # replay
    world.after(30)
    world.after(7200)
    assert world.slack.arrived == {}  # a flap: nobody was told it started, so no resolve either
    world.pipeline.run([make_alert("quality_drop", "a", minutes=20)])
    world.after(30)
    world.pipeline.run([firing])  # older than the notified state
    world.after(30)
    assert [n.kind for n in world.slack.arrived.values()] == ["firing"]


def test_an_incident_that_arrives_in_one_batch_is_still_told(world: World) -> None:
    world.pipeline.run(
        [make_alert("quality_drop", "a", minutes=0), make_alert("quality_drop", "a", "resolved", minutes=10)]
    )
    world.after(30)
    assert [n.kind for n in world.slack.arrived.values()] == ["firing", "resolved", "mark_resolved"]


def test_invalid_messages_are_counted_and_logged_never_fatal(world: World, caplog: pytest.LogCaptureFixture) -> None:
    assert world.pipeline.receive_raw(b"{not json", where="agent-alerts/0@17") is False
    assert world.pipeline.receive_raw(make_alert().to_json()) is True
    assert world.metrics.get("alerts_invalid_total") == 1
    assert "agent-alerts/0@17" in caplog.text


def test_restart_keeps_inhibition_sources_and_pending_groups(world: World) -> None:
    world.pipeline.receive(make_alert("tool_calls_all_failing", "a"))
    world.after(30)
    world.pipeline.receive(make_alert("quality_drop", "a", minutes=1))  # still in its group wait
    world.pipeline.log_store.close()

    world.pipeline = world.new()  # a new process over the same notification log
    world.pipeline.receive(make_alert("tool_error_rate", "a", minutes=2))
    world.after(30)
    rules = sorted(n.alert.rule for n in world.slack.arrived.values())
    assert rules == ["quality_drop", "tool_calls_all_failing"]


def test_every_decision_is_logged_with_its_reason(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    world.pipeline.receive(make_alert("quality_drop", "a"))
    world.after(30)
    world.pipeline.receive(make_alert("quality_drop", "a", minutes=1))
    world.after(30)
    world.pipeline.receive(make_alert("quality_drop", "a", "resolved", minutes=2))
    world.after(30)
    text = caplog.text
    for reason in ("first notification", "already notified", "resolved; route 'p1'"):
        assert reason in text, reason


def test_the_notification_log_is_pruned_but_keeps_what_threading_needs(world: World) -> None:
    world.pipeline.receive(make_alert("agent_silent", "a"))
    world.pipeline.receive(make_alert("quality_drop", "b"))
    world.after(30)
    world.pipeline.receive(make_alert("quality_drop", "b", "resolved", minutes=5))
    world.after(30)
    world.after(101 * 86400)  # past the 100-day retention; a's reminders keep it alive
    rows = world.pipeline.log_store.rows()
    assert ("agent_silent/a", "slack-default", "firing", "delivered", None) in rows
    assert all(fp != "quality_drop/b" or kind == "firing" for fp, _, kind, _, _ in rows)
    assert world.pipeline.log_store.entry("quality_drop/b") is None
    assert world.pipeline.log_store.entry("agent_silent/a") is not None


def test_inhibition_holds_when_a_whole_incident_arrives_at_once(world: World) -> None:
    """A replay or a lagging consumer sees the source's resolve before deciding the target: the
    target is still judged as of its own event time."""
    world.pipeline.run(
        [
            make_alert("tool_calls_all_failing", "a", minutes=0),
            make_alert("tool_error_rate", "a", minutes=5),
            make_alert("tool_calls_all_failing", "a", "resolved", minutes=190),
            make_alert("tool_error_rate", "a", "resolved", minutes=215),
        ]
    )
    world.after(30)
    world.after(7200)
    sent = [(n.kind, n.alert.rule) for n in world.slack.arrived.values()]
    assert sent == [
        ("firing", "tool_calls_all_failing"),
        ("resolved", "tool_calls_all_failing"),
        ("mark_resolved", "tool_calls_all_failing"),
    ]


def test_a_source_firing_within_the_group_wait_after_the_target_still_inhibits(world: World) -> None:
    world.pipeline.receive(make_alert("tool_error_rate", "a", minutes=0))
    world.pipeline.receive(make_alert("tool_calls_all_failing", "a", minutes=0.3))  # 18 s later
    world.after(30)
    assert [n.alert.rule for n in world.slack.arrived.values()] == ["tool_calls_all_failing"]
