"""The alert pipeline driving the real slack-sdk WebClient against a local Slack Web API server.

Virtual time (ManualClock) drives group wait, repeat interval and backoff, so retries cost no wall
time; HTTP timeouts and the Retry-After test use real time, kept short.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from alerts.clock import ManualClock, SystemClock
from alerts.config import AlertingConfig, RetryConfig
from alerts.escape import escape_mrkdwn
from alerts.metrics import AlertMetrics
from alerts.notification_log import ChannelIdCache, SqliteNotificationLog
from alerts.notifiers.base import Notification, Notifier, Receipt
from alerts.notifiers.slack import SlackNotifier
from alerts.pipeline import AlertPipeline, build_notifiers
from alerts.runner import resolve_slack_channels
from alerts.silences import Matcher, MemorySilenceStore, new_silence
from monitor.contract.alert import AlertMetric
from monitor.settings import Settings, SlackSettings
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_slack import FakeSlack

TOKEN = "xoxb-1234567890-TOPSECRET-token-value"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack(token=TOKEN).start()
    yield server
    server.stop()


@dataclass
class Harness:
    slack: FakeSlack
    settings: Settings
    clock: ManualClock
    metrics: AlertMetrics
    log_path: Path

    def pipeline(self, wrap: Any = None) -> AlertPipeline:
        store = SqliteNotificationLog(self.log_path)
        notifiers = build_notifiers(self.settings, channel_ids=ChannelIdCache(store))
        if wrap is not None:
            notifiers = {name: wrap(n) for name, n in notifiers.items()}
        return AlertPipeline(
            self.settings.alerting,
            notifiers=notifiers,
            notification_log=store,
            silences=MemorySilenceStore(),
            clock=self.clock,
            metrics=self.metrics,
        )


def make_settings(slack: FakeSlack, tmp_path: Path, **alerting: Any) -> Settings:
    retry = RetryConfig(
        max_attempts=4,
        base_delay_s=0.05,
        max_delay_s=0.4,
        request_timeout_s=2.0,
        defer_s=30,
        give_up_after_s=3600,
    )
    config = {
        "group_wait_s": 0,
        "repeat_interval_s": 3600,
        "notification_log_path": tmp_path / "nflog.sqlite3",
        "runbooks_dir": REPO / "runbooks",
        "retry": retry,
        **alerting,
    }
    return Settings(
        slack=SlackSettings(bot_token=SecretStr(TOKEN), channel="#agent-alerts", api_url=slack.url),
        alerting=AlertingConfig.model_validate(config),
    )


@pytest.fixture
def harness(slack: FakeSlack, tmp_path: Path) -> Harness:
    settings = make_settings(slack, tmp_path)
    # Virtual time for the pipeline, starting at the real now: Slack's message ts is wall-clock time,
    # and the idempotency lookup searches the channel from the notification's enqueue time.
    clock = ManualClock(datetime.now(UTC))
    return Harness(slack, settings, clock, AlertMetrics(), settings.alerting.notification_log_path)


def block_text(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_firing_alert_is_posted_once_with_the_evidence_and_the_runbook(harness: Harness) -> None:
    pipeline = harness.pipeline()
    alert = make_alert("tool_error_rate", "lead-qualifier", samples=["exec-7f3a", "exec-91bc"])

    pipeline.run([alert])

    posts = harness.slack.calls("chat.postMessage")
    assert len(posts) == 1
    body = posts[0].body
    assert body["channel"] == "#agent-alerts"
    header = body["blocks"][0]
    assert header["type"] == "header" and "P1 tool_error_rate" in header["text"]["text"]
    text = json.dumps(body["blocks"], ensure_ascii=False)
    for expected in (
        escape_mrkdwn(alert.summary),
        "0.23 vs 0.04 (+475 %)",
        "1h \u00b7 n=412",
        "`exec-7f3a`",
        "`exec-91bc`",
        f"<{alert.runbook_url}|runbooks/tool_error_rate.md>",
        "*First action:*",
        "agentmon silence add --rule tool_error_rate --agent lead-qualifier --label tool=crm.update",
        "first notification",
    ):
        assert expected in text, expected
    first_action = text.split("*First action:* ", 1)[1]
    assert not first_action.startswith("_see the runbook_"), "the runbook's first immediate action is shown"
    assert body["metadata"]["event_type"] == "agentmon_notification"
    assert body["unfurl_links"] is False and body["parse"] == "none"


def test_repeat_firing_is_not_posted_until_the_repeat_interval_then_once_in_the_thread(
    harness: Harness,
) -> None:
    pipeline = harness.pipeline()
    pipeline.run([make_alert(minutes=0)])
    harness.clock.advance(60)
    pipeline.run([make_alert(minutes=1)])  # the engine re-announces the same problem
    harness.clock.advance(1800)
    pipeline.tick()
    assert len(harness.slack.calls("chat.postMessage")) == 1, "nothing new before the repeat interval"

    harness.clock.advance(1800)  # now 3660 s after the first notification
    pipeline.tick()
    pipeline.tick()
    posts = harness.slack.calls("chat.postMessage")
    assert len(posts) == 2
    firing_ts = harness.slack.top_level()[0]["ts"]
    assert posts[1].body["thread_ts"] == firing_ts and posts[1].body["reply_broadcast"] is True
    assert "repeat interval elapsed" in json.dumps(posts[1].body["blocks"])


def test_resolved_is_a_threaded_reply_and_the_firing_message_is_updated(harness: Harness) -> None:
    pipeline = harness.pipeline()
    pipeline.run([make_alert(minutes=0), make_alert(state="resolved", minutes=45)])

    top = harness.slack.top_level()
    assert len(top) == 1
    firing = top[0]
    replies = harness.slack.replies(firing["ts"])
    assert len(replies) == 1 and "Resolved" in block_text(replies[0])
    assert "after 45 min" in block_text(replies[0]), "the resolve gives the incident's duration"
    updates = harness.slack.calls("chat.update")
    assert len(updates) == 1 and updates[0].body["ts"] == firing["ts"]
    assert "RESOLVED" in firing["blocks"][0]["text"]["text"]
    assert len(firing["edits"]) == 1
    assert "after 45 min" in block_text(firing)

    harness.clock.advance(7200)
    pipeline.tick()
    assert len(harness.slack.calls("chat.postMessage")) == 2, "a resolved alert is never reminded"


def test_a_finding_without_baseline_or_sample_shows_no_empty_fields(harness: Harness) -> None:
    pipeline = harness.pipeline()
    empty = AlertMetric(name="floating_label_last_seen_s_ago", current=0, baseline=None, change=None, window="0h", n=0)
    alert = make_alert("model_version_changed", "lead-qualifier", labels={"model": "gpt-4o"})
    pipeline.run([alert.model_copy(update={"metric": empty})])
    text = block_text(harness.slack.top_level()[0])
    for shown_before in ("vs n/a", "n=0", "Current vs baseline", "Window"):
        assert shown_before not in text, shown_before
    assert "`model=gpt-4o`" in text and "*Since*" in text


def test_hygiene_findings_reach_the_channel_as_one_daily_digest(harness: Harness) -> None:
    pipeline = harness.pipeline()
    pipeline.run(
        [
            make_alert("floating_model_label", agent, minutes=i, labels={"model": "gpt-4o"})
            for i, agent in enumerate(["lead-qualifier", "support-bot"])
        ]
    )
    assert harness.slack.posted() == [], "a hygiene finding does not page"
    harness.clock.advance(86400)
    pipeline.tick()
    (digest,) = harness.slack.top_level()
    text = block_text(digest)
    assert "Daily digest: 2 hygiene findings" in text
    assert "`lead-qualifier`" in text and "`support-bot`" in text and "runbooks/floating_model_label.md" in text
    assert digest["text"] == "Daily digest: 2 hygiene findings"
    assert pipeline.log_store.counts() == {"delivered": 1}


def test_a_refire_in_the_same_episode_continues_its_thread_and_a_new_episode_pages_anew(harness: Harness) -> None:
    """The engine marks a re-fire within its flap window with the episode's first firing
    (`episode_start`): on-call sees it in the first page's thread, not as a second page."""
    pipeline = harness.pipeline()
    pipeline.run([make_alert(minutes=0, episode_start=T0), make_alert(state="resolved", minutes=45, episode_start=T0),
                  make_alert(minutes=90, episode_start=T0)])
    top = harness.slack.top_level()
    assert len(top) == 1, [block_text(m) for m in top]
    replies = harness.slack.replies(top[0]["ts"])
    assert [("Resolved" in block_text(r), "Firing again" in block_text(r)) for r in replies] == \
        [(True, False), (False, True)]
    again = next(c for c in harness.slack.calls("chat.postMessage") if c.body.get("thread_ts") and
                 "Firing again" in json.dumps(c.body.get("blocks")))
    assert again.body.get("reply_broadcast") is True  # on-call sees it in the channel too
    pipeline.run([make_alert(state="resolved", minutes=150, episode_start=T0)])
    assert len(harness.slack.top_level()) == 1 and len(harness.slack.replies(top[0]["ts"])) == 3
    pipeline.run([make_alert(minutes=3000, episode_start=T0 + timedelta(minutes=3000))])  # a new incident
    assert len(harness.slack.top_level()) == 2


def test_outage_then_recovery_delivers_every_alert_exactly_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pipeline = harness.pipeline()
    agents = [f"agent-{i}" for i in range(5)]
    harness.slack.outage(True, status=503)
    pipeline.run([make_alert("agent_silent", a, minutes=i) for i, a in enumerate(agents)], tick_every=5)

    assert harness.slack.posted() == []
    assert harness.metrics.get("notification_delivery_failed_total") >= 1
    assert "ALERT NOT DELIVERED" in caplog.text
    assert pipeline.log_store.counts() == {"pending": 5}
    attempts_during_outage = len(harness.slack.calls())

    harness.clock.advance(10)
    pipeline.tick()  # not due yet: deferred by defer_s
    assert len(harness.slack.calls()) == attempts_during_outage

    harness.slack.outage(False)
    harness.slack.fail(2, status=429, retry_after=0)  # and a rate limit on the way back
    harness.clock.advance(30)
    pipeline.tick()

    posted = harness.slack.top_level()
    ids = [m["metadata"]["event_payload"]["notification_id"] for m in posted]
    assert len(posted) == 5 and len(set(ids)) == 5
    assert sorted(m["blocks"][0]["text"]["text"].split(" \u00b7 ")[-1] for m in posted) == agents
    assert pipeline.log_store.counts() == {"delivered": 5}
    harness.clock.advance(60)
    pipeline.tick()
    assert len(harness.slack.top_level()) == 5


def test_timeout_after_slack_stored_the_message_does_not_post_it_twice(harness: Harness) -> None:
    pipeline = harness.pipeline()
    harness.slack.slow(1, delay=3.0)  # posted, but the answer comes after the 2 s client timeout

    pipeline.run([make_alert()])

    assert len(harness.slack.posted()) == 1
    assert len(harness.slack.calls("chat.postMessage")) == 1, "found in the channel, not re-sent"
    assert len(harness.slack.calls("conversations.history")) >= 1
    assert harness.metrics.get("notifications_found_after_ambiguous_failure_total") == 1
    assert pipeline.log_store.counts() == {"delivered": 1}


def test_lost_connection_after_post_on_resolve_is_not_replied_twice(harness: Harness) -> None:
    pipeline = harness.pipeline()
    pipeline.run([make_alert(minutes=0)])
    harness.slack.disconnect(1)
    pipeline.run([make_alert(state="resolved", minutes=30)])

    firing = harness.slack.top_level()[0]
    assert len(harness.slack.replies(firing["ts"])) == 1
    assert len(harness.slack.calls("conversations.replies")) >= 1
    assert "RESOLVED" in firing["blocks"][0]["text"]["text"]


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the pipeline may catch it)."""


def crash_after_send(notifier: Notifier) -> Notifier:
    class Crashing:
        def send(self, notification: Notification) -> Receipt:
            notifier.send(notification)
            raise Crash("killed after the post, before the log was updated")

        def find_delivered(self, notification: Notification) -> Receipt | None:
            return notifier.find_delivered(notification)

    return Crashing()


def test_restart_mid_delivery_does_not_post_twice(harness: Harness) -> None:
    alerts = [
        make_alert("quality_drop", "support-bot", minutes=0),
        make_alert("latency_spike", "support-bot"),
    ]
    first = harness.pipeline(wrap=crash_after_send)
    for alert in alerts:
        first.receive(alert)
    with pytest.raises(Crash):
        first.tick()
    assert len(harness.slack.posted()) == 1
    first.log_store.close()

    # A new process over the same notification log; the topic replays from the last commit.
    second = harness.pipeline()
    second.run(alerts)
    second.run(alerts)

    posted = harness.slack.top_level()
    assert len(posted) == 2, "each alert exactly once"
    assert len({m["metadata"]["event_payload"]["notification_id"] for m in posted}) == 2
    assert harness.metrics.get("notifications_found_after_ambiguous_failure_total") == 1
    assert second.log_store.counts() == {"delivered": 2}


def test_restart_after_delivery_replays_without_posting(harness: Harness) -> None:
    alerts = [make_alert(minutes=0), make_alert(state="resolved", minutes=20)]
    first = harness.pipeline()
    first.run(alerts)
    first.log_store.close()
    calls = len(harness.slack.calls("chat.postMessage"))

    second = harness.pipeline()
    second.run(alerts)  # full replay of the topic
    assert len(harness.slack.calls("chat.postMessage")) == calls == 2


EVIL_AGENT = "<!channel>"
EVIL_SUMMARY = "Escalations up <@U123ABC> see <http://evil.example|the fix> *now* _please_ `rm` ~x~ & <!here>"
EVIL_LABELS = {"tool": "<!everyone>", "note": "<#C999|general>"}
EVIL_SAMPLES = ["<!subteam^S1|@oncall>", "exec-`tick`"]


def test_event_provided_strings_arrive_escaped(harness: Harness) -> None:
    pipeline = harness.pipeline()
    alert = make_alert(
        "escalation_rate_rise",
        EVIL_AGENT,
        summary=EVIL_SUMMARY,
        labels=EVIL_LABELS,
        samples=EVIL_SAMPLES,
    )
    pipeline.run(
        [
            alert,
            make_alert(
                "escalation_rate_rise",
                EVIL_AGENT,
                "resolved",
                minutes=5,
                labels=EVIL_LABELS,
                summary=EVIL_SUMMARY,
            ),
        ]
    )

    bodies = [r.body for r in harness.slack.calls() if r.method.startswith("chat.")]
    assert len(bodies) == 3  # firing, resolve reply, update
    for body in bodies:
        shown = json.dumps({k: body.get(k) for k in ("text", "blocks")}, ensure_ascii=False)
        for raw in (
            "<!channel>",
            "<@U123ABC>",
            "<http://evil",
            "<!here>",
            "<!everyone>",
            "<#C999",
            "<!subteam",
        ):
            assert raw not in shown, f"{raw} injected into {body}"
        assert "&lt;!channel&gt;" in shown
        assert "*now*" not in shown and "_please_" not in shown
    firing_text = json.dumps(bodies[0]["blocks"], ensure_ascii=False)
    assert "&lt;@U123ABC&gt;" in firing_text and "&lt;http://evil.example|the fix&gt;" in firing_text
    assert "&amp;" in firing_text


def test_token_never_appears_in_logs_reprs_or_errors(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # slack_sdk logs requests at DEBUG
    logging.getLogger("slack_sdk").setLevel(logging.DEBUG)
    logging.getLogger("agentmon").setLevel(logging.DEBUG)
    harness.slack.fail(2, status=500)
    harness.slack.fail(1, status=429, retry_after=0)
    harness.slack.slow(1, delay=2.5)
    pipeline = harness.pipeline()
    pipeline.run([make_alert(minutes=0), make_alert("quality_drop", minutes=1)])
    pipeline.run([make_alert(state="resolved", minutes=9)])

    # also a notifier with a wrong token: the auth failure is logged, the token is not
    bad = Settings(
        slack=SlackSettings(bot_token=SecretStr(TOKEN + "-wrong"), api_url=harness.slack.url),
        alerting=harness.settings.alerting.model_copy(
            update={"notification_log_path": harness.log_path.with_name("other.sqlite3")}
        ),
    )
    store = SqliteNotificationLog(bad.alerting.notification_log_path)
    notifiers = build_notifiers(bad)
    AlertPipeline(bad.alerting, notifiers=notifiers, notification_log=store, clock=harness.clock).run(
        [make_alert("agent_silent", "x")]
    )
    assert store.counts() == {"dead": 1}

    assert len(harness.slack.top_level()) == 2
    everything = caplog.text + repr(notifiers) + repr(bad) + str(bad.masked()) + json.dumps(store.rows())
    assert "invalid_auth" in caplog.text
    assert TOKEN not in everything
    assert "TOPSECRET" not in everything
    assert all(
        r.headers.get("Authorization") in (f"Bearer {TOKEN}", f"Bearer {TOKEN}-wrong") for r in harness.slack.calls()
    )


def test_retry_after_on_429_is_honoured_in_real_time(slack: FakeSlack, tmp_path: Path) -> None:
    settings = make_settings(slack, tmp_path)
    slack.fail(1, status=429, retry_after=1)
    store = SqliteNotificationLog(settings.alerting.notification_log_path)
    pipeline = AlertPipeline(
        settings.alerting, notifiers=build_notifiers(settings), notification_log=store, clock=SystemClock()
    )
    started = time.monotonic()
    pipeline.run([make_alert()])
    posts = slack.calls("chat.postMessage")
    assert [p.status for p in posts] == [429, 200]
    gap = posts[1].at - posts[0].at
    print(f"\n429 with Retry-After: 1 -> next attempt after {gap:.3f} s")
    assert 1.0 <= gap < 4.0, gap
    assert time.monotonic() - started < 5


def test_a_retry_after_longer_than_the_cap_defers_instead_of_blocking(harness: Harness) -> None:
    pipeline = harness.pipeline()
    harness.slack.fail(1, status=429, retry_after=900)  # > max_retry_after_s (300)
    pipeline.run([make_alert()])
    assert harness.slack.posted() == [] and harness.clock.slept == []
    harness.clock.advance(899)
    pipeline.tick()
    assert harness.slack.posted() == []
    harness.clock.advance(2)
    pipeline.tick()
    assert len(harness.slack.posted()) == 1


def test_a_non_retryable_slack_error_is_loud_and_counted_never_silent(
    slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(slack, tmp_path)
    settings.slack.channel = "#nonexistent"
    store = SqliteNotificationLog(settings.alerting.notification_log_path)
    metrics = AlertMetrics()
    pipeline = AlertPipeline(
        settings.alerting,
        notifiers=build_notifiers(settings),
        notification_log=store,
        clock=ManualClock(T0),
        metrics=metrics,
    )
    pipeline.run([make_alert()])
    assert len(slack.calls("chat.postMessage")) == 1, "channel_not_found is not retried"
    assert metrics.get("notifications_dead_total") == 1
    assert any(r.levelno == logging.CRITICAL and "channel_not_found" in r.getMessage() for r in caplog.records)
    assert store.rows("dead")[0][4] is not None


def test_delivery_latency_through_the_local_server(harness: Harness) -> None:
    pipeline = harness.pipeline()
    alerts = [make_alert("token_cost_spike", f"agent-{i}", minutes=i) for i in range(20)]
    started = time.perf_counter()
    pipeline.run(alerts)
    elapsed = time.perf_counter() - started
    assert len(harness.slack.top_level()) == 20
    per_alert_ms = elapsed / 20 * 1000
    print(f"\nfiring -> posted through the fake Slack: {per_alert_ms:.1f} ms per alert")
    assert per_alert_ms < 500


def kinds_in_thread(harness: Harness, ts: str) -> list[str]:
    return [m["metadata"]["event_payload"]["kind"] for m in harness.slack.replies(ts)]


def test_a_silence_and_its_end_are_noted_once_each_in_the_alerts_thread(harness: Harness) -> None:
    pipeline = harness.pipeline()
    pipeline.run([make_alert("tool_error_rate", "lead-qualifier", minutes=0)])
    firing = harness.slack.top_level()[0]
    silence = new_silence(
        [Matcher(name="agent_id", value="lead-qualifier")],
        now=harness.clock.now(),
        duration=timedelta(minutes=30),
        created_by="alice",
        comment="CRM migration CHG-1234",
    )
    assert isinstance(pipeline.silences, MemorySilenceStore)
    pipeline.silences.put(silence)
    for _ in range(3):
        harness.clock.advance(60)
        pipeline.tick()
    assert kinds_in_thread(harness, firing["ts"]) == ["note"], "the silence is noted once"
    began = block_text(harness.slack.replies(firing["ts"])[0])
    assert "Silenced by alice" in began and "CHG-1234" in began and silence.id in began

    harness.clock.advance(1800)  # the silence is over, the alert still fires
    for _ in range(3):
        harness.clock.advance(60)
        pipeline.tick()
    notes = [m for m in harness.slack.replies(firing["ts"]) if m["metadata"]["event_payload"]["kind"] == "note"]
    assert len(notes) == 2, "and its end once"
    ended = block_text(notes[1])
    assert f"Silence {silence.id} by alice ended" in ended and "CHG-1234" in ended


def test_a_silence_of_an_alert_nobody_was_told_about_leaves_no_note(harness: Harness) -> None:
    pipeline = harness.pipeline()
    assert isinstance(pipeline.silences, MemorySilenceStore)
    pipeline.silences.put(
        new_silence([Matcher(name="rule", value="quality_drop")], now=harness.clock.now(),
                    duration=timedelta(hours=1), created_by="bob", comment="known")
    )
    pipeline.run([make_alert("quality_drop", "support-bot", minutes=0)])
    harness.clock.advance(7200)
    pipeline.tick()
    pipeline.tick()
    assert [m["metadata"]["event_payload"]["kind"] for m in harness.slack.posted()] == ["firing"]


def test_a_model_change_resolve_says_the_new_checkpoint_is_the_baseline(harness: Harness) -> None:
    pipeline = harness.pipeline()
    labels = {"model": "gpt-4o", "resolved_model": "gpt-4o-2025-01-15"}
    pipeline.run(
        [
            make_alert("model_version_changed", "support-bot", labels=labels, minutes=0),
            make_alert("model_version_changed", "support-bot", "resolved", labels=labels, minutes=24 * 60),
        ]
    )
    firing = harness.slack.top_level()[0]
    reply = block_text(harness.slack.replies(firing["ts"])[0])
    assert "New baseline" in reply and "gpt-4o-2025-01-15" in reply and "now the baseline checkpoint" in reply
    assert "not a rollback" in reply and "Resolved" not in reply
    header = firing["blocks"][0]["text"]["text"]
    assert "NEW BASELINE" in header and "RESOLVED" not in header


def test_a_reminder_shows_the_evidence_of_the_latest_alert_record(harness: Harness) -> None:
    pipeline = harness.pipeline()
    first = make_alert(minutes=0)
    later = make_alert(
        minutes=50,
        metric=AlertMetric(name="error_share", current=0.61, baseline=0.04, change=14.25, window="1h", n=2210),
    )
    pipeline.run([first])
    harness.clock.advance(1200)
    pipeline.run([later])  # the engine re-announces it with fresh evidence: no post yet
    assert len(harness.slack.calls("chat.postMessage")) == 1
    harness.clock.advance(3600)
    pipeline.tick()
    reminder = harness.slack.replies(harness.slack.top_level()[0]["ts"])[0]
    assert reminder["metadata"]["event_payload"]["kind"] == "repeat"
    text = block_text(reminder)
    assert "0.61" in text and "n=2210" in text and "n=412" not in text


def test_the_channel_name_is_resolved_at_start_up_through_the_pages_of_conversations_list(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.slack.state.list_page_size = 1  # #agent-alerts is not on the first page
    channel_ids: dict[str, str] = {}
    notifiers = build_notifiers(
        harness.settings.model_copy(update={"slack": harness.settings.slack.model_copy(update={"channel": "#oncall"})}),
        channel_ids=channel_ids,
    )
    with caplog.at_level(logging.INFO, logger="agentmon.alerts.runner"):
        resolve_slack_channels(notifiers)
    assert channel_ids == {"#oncall": "C0ONCALL"}
    assert len(harness.slack.calls("conversations.list")) == 3
    assert any("posts to #oncall (C0ONCALL)" in r.getMessage() for r in caplog.records)


def test_a_token_without_the_read_scope_is_one_clear_error_naming_the_scope(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    harness.slack.state.missing_scopes = {"channels:read"}
    notifiers = build_notifiers(harness.settings, channel_ids={})
    assert isinstance(notifiers["slack-default"], SlackNotifier)
    with caplog.at_level(logging.INFO, logger="agentmon.alerts.runner"):
        resolve_slack_channels(notifiers)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "channels:read" in errors[0] and "groups:read" in errors[0] and "#agent-alerts" in errors[0]
    assert TOKEN not in errors[0]
