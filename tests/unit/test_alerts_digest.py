"""P3 hygiene findings (`floating_model_label` by default) never page: they are collected into one
daily digest message; a finding resolved before the digest leaves it; a still-open one is listed
again in the next digest."""

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
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_notifier import ScriptedNotifier

DAY = 86400


def floating(agent: str, state: str = "firing", minutes: float = 0):  # type: ignore[no-untyped-def]
    return make_alert("floating_model_label", agent, state, minutes=minutes, labels={"model": "gpt-4o"})


class World:
    def __init__(self, tmp_path: Path, **config: object) -> None:
        self.clock = ManualClock(T0 + timedelta(hours=1))  # 10:00 UTC; the digest hour is 09
        self.slack = ScriptedNotifier()
        self.metrics = AlertMetrics()
        self.pipeline = AlertPipeline(
            AlertingConfig.model_validate({"group_wait_s": 30, "repeat_interval_s": 4 * 3600, **config}),
            notifiers={"slack-default": self.slack},
            notification_log=SqliteNotificationLog(tmp_path / "log.sqlite3"),
            clock=self.clock,
            metrics=self.metrics,
        )
        self.pipeline.tick()

    def after(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pipeline.tick()

    def digests(self) -> list[list[str | None]]:
        return [[a.agent_id for a in n.digest] for n in self.slack.arrived.values() if n.kind == "digest"]

    def pages(self) -> set[str]:
        return {n.alert.rule for n in self.slack.arrived.values() if n.kind != "digest"}


def test_hygiene_findings_wait_for_one_daily_digest_and_p1s_still_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world = World(tmp_path)
    for agent in ("a", "b", "c"):
        world.pipeline.receive(floating(agent))
    world.pipeline.receive(make_alert("quality_drop", "d"))
    world.after(30)
    assert world.pages() == {"quality_drop"} and world.digests() == []
    assert "hygiene finding: in the daily digest at 09:00 UTC" in caplog.text
    assert world.metrics.get("alert_decisions_total", decision="digested") == 3

    world.pipeline.receive(floating("c", "resolved", minutes=10))
    world.after(30)
    world.after(4 * 3600)  # a reminder interval passes: the P1 reminds, the findings do not
    assert world.pages() == {"quality_drop"} and world.digests() == []

    world.after((T0 + timedelta(days=1, minutes=1) - world.clock.now()).total_seconds())  # 09:01 next day
    assert world.digests() == [["a", "b"]]
    world.after(3600)
    assert world.digests() == [["a", "b"]], "one digest per day"

    world.after(DAY)  # still open the next day: listed again (the reminder), once
    assert world.digests() == [["a", "b"], ["a", "b"]]


def test_a_day_without_findings_sends_no_digest(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.after(2 * DAY)
    assert world.slack.arrived == {}


def test_digest_rules_empty_pages_hygiene_like_any_rule(tmp_path: Path) -> None:
    world = World(tmp_path, digest_rules=[])
    world.pipeline.receive(floating("a"))
    world.after(30)
    assert world.pages() == {"floating_model_label"}
