"""One thread per agent incident: a page whose `related` names an alert of the same agent already
posted to the same Slack channel goes into that alert's thread; its own reminders and resolve follow
it there; the choice survives a restart; anything else is posted as before."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.clock import ManualClock
from alerts.config import AlertingConfig
from alerts.errors import DeliveryError
from alerts.metrics import AlertMetrics
from alerts.notification_log import SqliteNotificationLog, ThreadRef
from alerts.notifiers.base import Notification
from alerts.pipeline import AlertPipeline
from alerts.silences import MemorySilenceStore, new_silence, parse_matcher
from monitor.contract.alert import Alert
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_notifier import ScriptedNotifier

AGENT = "lead-qualifier"
CONFIG = AlertingConfig.model_validate(
    {
        "group_wait_s": 30,
        "group_wait_by_severity_s": {"P1": 5},
        "repeat_interval_s": 3600,
        "related_thread_s": 6 * 3600,
        "digest_rules": [],
        "receivers": [
            {"name": "slack-default", "kind": "slack"},
            {"name": "oncall", "kind": "slack"},  # the same (default) channel under another name
            {"name": "payments", "kind": "slack", "channel": "#team-payments"},
            {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"},
        ],
        "routes": [
            {"name": "payments", "agents": ["invoice-matcher"], "rules": ["quality_drop"], "receivers": ["payments"]},
            {"name": "tools", "rules": ["tool_error_rate"], "receivers": ["oncall"]},
            {"name": "hooked", "agents": ["hooked-agent"], "receivers": ["hook"]},
        ],
    }
)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "log.sqlite3"
        self.clock = ManualClock(T0)
        self.silences = MemorySilenceStore()
        self.slack = ScriptedNotifier()
        self.notifiers = {"slack-default": self.slack, "oncall": self.slack, "payments": self.slack,
                          "hook": ScriptedNotifier()}
        self.pipeline = self.new()

    def new(self) -> AlertPipeline:
        return AlertPipeline(
            CONFIG,
            notifiers=self.notifiers,
            notification_log=SqliteNotificationLog(self.path),
            silences=self.silences,
            clock=self.clock,
            metrics=AlertMetrics(),
        )

    def send(self, *alerts: Alert, wait_s: float = 31) -> None:
        for alert in alerts:
            self.pipeline.receive(alert)
        self.clock.advance(wait_s)
        self.pipeline.tick()

    def sent(self, fingerprint: str, kind: str) -> list[Notification]:
        return [n for n in self.slack.sent if n.alert.fingerprint == fingerprint and n.kind == kind]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def model_change(minutes: float = 0, state: str = "firing", agent: str = AGENT) -> Alert:
    return make_alert("model_version_changed", agent, state, minutes=minutes, labels={"model": "gpt-4o"})


def quality(minutes: float, related: list[str], state: str = "firing", agent: str = AGENT) -> Alert:
    return make_alert("quality_drop", agent, state, minutes=minutes, related=related)


def test_a_related_page_goes_into_the_thread_and_its_resolve_follows_it(world: World) -> None:
    parent = model_change(0)
    world.send(parent)
    [first] = world.sent(parent.fingerprint, "firing")
    assert first.thread is None and first.follows is None  # the first page of the incident: top level
    world.send(quality(10, [parent.fingerprint]))
    child_fp = quality(10, []).fingerprint
    [page] = world.sent(child_fp, "firing")
    assert page.thread == ThreadRef("C1", "1.0")  # the model change's message opens the thread
    assert page.follows is not None and page.follows.rule == "model_version_changed"

    world.clock.advance(3600)  # a reminder of the quality drop goes to the same thread
    world.pipeline.receive(quality(70, [parent.fingerprint]))
    world.clock.advance(31)
    world.pipeline.tick()
    [reminder] = world.sent(child_fp, "repeat")
    assert reminder.thread is not None and reminder.thread.ts == "1.0"

    world.send(quality(150, [parent.fingerprint], "resolved"), model_change(160, "resolved"))
    [resolve] = world.sent(child_fp, "resolved")
    [edit] = world.sent(child_fp, "mark_resolved")
    assert resolve.thread == edit.thread == ThreadRef("C1", "1.0", "2.0")
    assert edit.thread is not None and edit.thread.message == "2.0"  # the quality page itself is edited
    [parent_resolve] = world.sent(parent.fingerprint, "resolved")
    assert parent_resolve.thread == ThreadRef("C1", "1.0")


def test_unrelated_agents_and_pages_without_related_stay_top_level(world: World) -> None:
    world.send(model_change(0))
    world.send(quality(10, []), quality(10, [model_change(0).fingerprint], agent="support-bot"))
    pages = [n for n in world.slack.sent if n.kind == "firing"]
    assert len(pages) == 3 and all(n.thread is None for n in pages)


def test_a_related_alert_resolved_longer_ago_than_the_window_starts_a_new_thread(world: World) -> None:
    parent = model_change(0)
    world.send(parent)
    world.send(model_change(30, "resolved"))
    world.clock.advance(7 * 3600)
    world.send(quality(7 * 60 + 40, [parent.fingerprint]))
    [page] = world.sent(quality(0, []).fingerprint, "firing")
    assert page.thread is None and page.follows is None


def test_a_related_alert_resolved_recently_still_hosts_the_thread(world: World) -> None:
    parent = model_change(0)
    world.send(parent)
    world.send(model_change(30, "resolved"))
    world.send(quality(90, [parent.fingerprint]))
    [page] = world.sent(quality(0, []).fingerprint, "firing")
    assert page.thread == ThreadRef("C1", "1.0")


def test_another_receiver_on_the_same_channel_threads_another_channel_does_not(world: World) -> None:
    tool = make_alert("tool_error_rate", AGENT, minutes=0)  # routed to `oncall`, the default channel too
    world.send(tool)
    world.send(quality(10, [tool.fingerprint]))
    [page] = world.sent(quality(0, []).fingerprint, "firing")
    assert page.thread is not None and page.follows is not None and page.follows.rule == "tool_error_rate"

    invoice_change = model_change(0, agent="invoice-matcher")
    world.send(invoice_change)
    world.send(quality(20, [invoice_change.fingerprint], agent="invoice-matcher"))  # -> #team-payments
    [elsewhere] = world.sent(quality(0, [], agent="invoice-matcher").fingerprint, "firing")
    assert elsewhere.receiver == "payments" and elsewhere.thread is None and elsewhere.follows is None
    assert elsewhere.alert.related == [invoice_change.fingerprint]  # the page names it by rule (rendering)


def test_a_silenced_related_alert_has_no_thread_to_join(world: World) -> None:
    world.silences.put(
        new_silence(
            [parse_matcher("rule=model_version_changed")],
            now=T0,
            duration=timedelta(hours=4),
            created_by="ana",
            comment="planned provider switch",
        )
    )
    parent = model_change(0)
    world.send(parent)
    assert world.sent(parent.fingerprint, "firing") == []
    world.send(quality(10, [parent.fingerprint]))
    [page] = world.sent(quality(0, []).fingerprint, "firing")
    assert page.thread is None


def test_grouped_together_the_earlier_alert_opens_the_thread_although_the_later_is_more_urgent(
    world: World,
) -> None:
    """A P1 goes before a P2 of the same receiver, except when it is to be posted in that P2's thread:
    then it waits for the P2's message (one post, enqueued together)."""
    parent = model_change(0)
    child = quality(1, [parent.fingerprint])
    world.send(parent, child, wait_s=31)
    order = [(n.kind, n.alert.rule) for n in world.slack.sent]
    assert order == [("firing", "model_version_changed"), ("firing", "quality_drop")]
    assert world.slack.sent[1].thread == ThreadRef("C1", "1.0")


def test_a_restart_keeps_threading_from_the_log(world: World) -> None:
    parent = model_change(0)
    world.send(parent)
    world.pipeline = world.new()  # a new process on the same log
    world.send(quality(10, [parent.fingerprint]))
    [page] = world.sent(quality(0, []).fingerprint, "firing")
    assert page.thread == ThreadRef("C1", "1.0")
    world.pipeline = world.new()
    world.send(quality(40, [parent.fingerprint], "resolved"))
    [resolve] = world.sent(quality(0, []).fingerprint, "resolved")
    assert resolve.thread == ThreadRef("C1", "1.0", "2.0")


def test_a_page_whose_related_message_was_given_up_goes_out_on_its_own(world: World) -> None:
    """Grouped together, the child waits for the parent's message; that one fails for good (dead):
    the child is posted top level, not lost and not into a thread that does not exist."""
    parent = model_change(0)
    world.slack.fail(DeliveryError("chat.postMessage -> HTTP 200 channel_not_found", retryable=False))
    world.send(parent, quality(1, [parent.fingerprint]))
    assert world.pipeline.log_store.rows("dead")[0][:3] == (parent.fingerprint, "slack-default", "firing")
    [page] = [n for n in world.slack.arrived.values() if n.kind == "firing"]
    assert page.alert.rule == "quality_drop" and page.thread is None and page.follows is None
    # and a later related page finds no message of it either
    world.send(make_alert("tool_error_rate", AGENT, minutes=5, related=[parent.fingerprint]))
    assert all(n.thread is None for n in world.slack.arrived.values() if n.kind == "firing")


def test_the_thread_used_is_in_the_changelog_rows_and_a_restore_keeps_it(world: World, tmp_path: Path) -> None:
    parent = model_change(0)
    world.send(parent)
    world.send(quality(10, [parent.fingerprint]))
    records = world.pipeline.log_store.dump()
    outbox = [json.loads(v) for k, v in records if k.startswith("outbox/")]
    child_row = next(r for r in outbox if r["kind"] == "firing" and r["fingerprint"].startswith("quality_drop"))
    assert child_row["thread_parent"] == parent.fingerprint and child_row["thread_ts"] == "1.0"
    rebuilt = SqliteNotificationLog(":memory:")
    # a record written by a newer version may carry a column this one lacks: it is left out
    noisy = [(k.encode(), v if not k.startswith("outbox/") else json.dumps({**json.loads(v), "later": 1}).encode())
             for k, v in records]
    assert rebuilt.restore(noisy) == len(records)
    fp = child_row["fingerprint"]
    assert rebuilt.thread_of(fp, "slack-default") == world.pipeline.log_store.thread_of(fp, "slack-default")
    found = rebuilt.thread_of(fp, "slack-default")
    assert found is not None and found[0] == ThreadRef("C1", "1.0", "2.0")


def test_a_log_file_from_before_threads_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, notification_id TEXT NOT NULL UNIQUE,"
        " fingerprint TEXT NOT NULL, receiver TEXT NOT NULL, kind TEXT NOT NULL, reason TEXT NOT NULL,"
        " alert_json TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
        " in_flight INTEGER NOT NULL DEFAULT 0, ambiguous INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,"
        " next_attempt_at TEXT NOT NULL, last_error TEXT, delivered_at TEXT, channel TEXT, message_ts TEXT);"
    )
    alert = make_alert()
    db.execute(
        "INSERT INTO outbox (notification_id, fingerprint, receiver, kind, reason, alert_json, status, created_at,"
        " next_attempt_at, channel, message_ts) VALUES ('n1', ?, 'r', 'firing', 'first', ?, 'delivered', ?, ?,"
        " 'C1', '5.0')",
        (alert.fingerprint, alert.to_json().decode(), T0.isoformat(), T0.isoformat()),
    )
    db.commit()
    db.close()
    log = SqliteNotificationLog(path)
    assert log.thread_of(alert.fingerprint, "r") == (ThreadRef("C1", "5.0"), alert)
    assert log.firing_message(alert.fingerprint, "r") == alert
