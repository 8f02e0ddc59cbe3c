"""Priority under a Slack rate-limit storm, in real time, through the real slack-sdk WebClient and the
local Slack Web API stand-in: a P1 that arrives behind queued P3s goes out in the first slot Slack
gives back, and every late delivery says so."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from alerts.clock import SystemClock
from alerts.metrics import AlertMetrics
from alerts.notification_log import ChannelIdCache, SqliteNotificationLog
from alerts.pipeline import AlertPipeline, build_notifiers
from tests.integration.test_slack_delivery import make_settings
from tests.support.alert_factory import make_alert
from tests.support.fake_slack import FakeSlack

TICK_S = 1.0  # what `agentmon alerts run` passes as the delivery budget of one loop
STORM = 12  # consecutive 429s, each with Retry-After: 1


@pytest.fixture
def slack() -> FakeSlack:
    server = FakeSlack(token="xoxb-1234567890-TOPSECRET-token-value").start()
    yield server  # type: ignore[misc]
    server.stop()


def test_a_p1_behind_p3s_in_a_429_storm_is_late_only_by_what_slack_asked(
    slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agentmon.alerts")
    # group_wait 0, max_attempts 4, defer_s 30; P3s page here (no digest) so that they compete for Slack
    settings = make_settings(slack, tmp_path, digest_rules=[])
    store = SqliteNotificationLog(settings.alerting.notification_log_path)
    pipeline = AlertPipeline(
        settings.alerting,
        notifiers=build_notifiers(settings, channel_ids=ChannelIdCache(store)),
        notification_log=store,
        clock=SystemClock(),
        metrics=AlertMetrics(),
    )
    slack.fail(STORM, status=429, retry_after=1)
    for i in range(4):  # hygiene findings queued first; they take the first 429
        pipeline.receive(make_alert("floating_model_label", f"agent-{i}", minutes=i))
    pipeline.tick(TICK_S)

    p1 = make_alert("quality_drop", "lead-qualifier", minutes=5)
    p1_received = time.monotonic()
    pipeline.receive(p1)
    deadline = p1_received + 60
    while store.counts().get("pending") and time.monotonic() < deadline:  # the runner's loop
        pipeline.tick(TICK_S)

    calls = slack.calls("chat.postMessage")
    limited = [c for c in calls if c.status == 429]
    assert len(limited) == STORM
    ok = [c for c in calls if c.status == 200]
    first = ok[0]
    assert "quality_drop" in first.body["blocks"][0]["text"]["text"], "the P1 takes the first free slot"
    asked_until = max(c.at + 1.0 for c in limited)  # each 429 said: not before 1 s from now
    beyond = first.at - max(asked_until, p1_received)
    late = first.at - p1_received
    print(
        f"\n429 storm ({STORM} x Retry-After 1, 4 P3 queued first): P1 posted {late:.2f} s after it was"
        f" enqueued, {beyond:.2f} s after Slack's last Retry-After ran out"
    )
    assert beyond <= 2.0, beyond
    assert len(ok) == 5 and store.counts() == {"delivered": 5}

    gaps = [b.at - a.at for a, b in zip(calls, calls[1:], strict=False) if a.status == 429]
    assert min(gaps) >= 0.99, "never sooner than Retry-After"
    assert max(gaps) < 2.0, "no rest longer than Slack asked for (plus the loop's slack)"

    messages = [r.getMessage() for r in caplog.records]
    p1_lines = [m for m in messages if p1.fingerprint in m and "ALERT" in m]
    assert p1_lines[-1].startswith("ALERT DELIVERED after"), p1_lines
    for fingerprint in {make_alert("floating_model_label", f"agent-{i}").fingerprint for i in range(4)}:
        lines = [m for m in messages if fingerprint in m and m.startswith("ALERT")]
        assert not lines or lines[-1].startswith("ALERT DELIVERED after"), lines
