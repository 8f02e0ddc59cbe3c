"""Delivery: backoff policy (pure), and the outbox drain with a scripted notifier."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from alerts.clock import ManualClock
from alerts.config import RetryConfig
from alerts.dedup import LogEntry
from alerts.delivery import Deliverer, Outcome, backoff_delay, retry_delay
from alerts.errors import DeliveryError
from alerts.metrics import AlertMetrics
from alerts.notification_log import NewNotification, SqliteNotificationLog
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_notifier import ScriptedNotifier

POLICY = RetryConfig(
    max_attempts=4, base_delay_s=1, max_delay_s=5, max_retry_after_s=60, defer_s=120, give_up_after_s=3600
)


@pytest.mark.parametrize(("attempt", "delay"), [(1, 1), (2, 2), (3, 4), (4, 5), (40, 5)])
def test_backoff_is_exponential_and_capped(attempt: int, delay: float) -> None:
    assert backoff_delay(attempt, POLICY) == delay


@pytest.mark.parametrize(("attempt", "retry_after", "delay"), [(1, None, 1), (1, 7, 7), (3, 0, 0), (3, 30, 30)])
def test_retry_after_wins_over_backoff(attempt: int, retry_after: float | None, delay: float) -> None:
    assert retry_delay(attempt, retry_after, POLICY) == delay


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, POLICY)


def server_error(**kw: object) -> DeliveryError:
    return DeliveryError("HTTP 500", retryable=True, **kw)  # type: ignore[arg-type]


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.log = SqliteNotificationLog(tmp_path / "log.sqlite3")
        self.clock = ManualClock(T0)
        self.metrics = AlertMetrics()
        self.notifier = ScriptedNotifier()
        self.deliverer = Deliverer(self.log, {"r": self.notifier}, POLICY, self.clock, self.metrics)

    def enqueue(self, alert, kind: str = "firing") -> None:
        entry = LogEntry(alert.fingerprint, alert.state, alert.alert_id, alert.at, self.clock.now())
        self.log.record(entry, [NewNotification("r", kind, "first notification", alert)], self.clock.now())  # type: ignore[arg-type]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_transient_failures_are_retried_with_backoff_then_delivered(setup: Setup) -> None:
    setup.notifier.fail(server_error(), DeliveryError("429", retryable=True, retry_after_s=3))
    setup.enqueue(make_alert())
    result = setup.deliverer.drain()
    assert result.delivered == 1
    assert setup.clock.slept == [1, 3]
    assert setup.log.counts() == {"delivered": 1}


def test_failed_pass_is_loud_counted_and_kept_for_the_next_pass(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    setup.notifier.fail(*[server_error() for _ in range(4)])
    setup.enqueue(make_alert())
    result = setup.deliverer.drain()
    assert list(result.outcomes.values()) == [Outcome.FAILED]
    assert setup.metrics.get("notification_delivery_failed_total") == 1
    assert any(r.levelno == logging.ERROR and "ALERT NOT DELIVERED" in r.getMessage() for r in caplog.records)
    assert setup.log.counts() == {"pending": 1}
    setup.clock.advance(60)
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.BLOCKED]  # receiver resting
    setup.clock.advance(120)
    assert setup.deliverer.drain().delivered == 1


def test_non_retryable_is_dead_at_once_and_loud(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    setup.notifier.fail(DeliveryError("channel_not_found", retryable=False))
    setup.enqueue(make_alert())
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.DEAD]
    assert setup.metrics.get("notifications_dead_total") == 1
    assert any(r.levelno == logging.CRITICAL for r in caplog.records)
    assert len(setup.notifier.sent) == 1


def test_gives_up_after_the_give_up_age(setup: Setup) -> None:
    setup.enqueue(make_alert())
    setup.clock.advance(3601)
    setup.notifier.fail(server_error())
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.DEAD]


def test_a_long_retry_after_defers_without_sleeping(setup: Setup) -> None:
    setup.notifier.fail(DeliveryError("429", retryable=True, retry_after_s=600))
    setup.enqueue(make_alert())
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.DEFERRED]
    assert setup.clock.slept == []
    setup.clock.advance(600)
    assert setup.deliverer.drain().delivered == 1


def test_ambiguous_failure_that_landed_is_not_resent(setup: Setup) -> None:
    setup.notifier.landed_anyway = True
    setup.notifier.fail(DeliveryError("timed out", retryable=True, ambiguous=True))
    setup.enqueue(make_alert())
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.FOUND]
    assert len(setup.notifier.sent) == 1 and setup.notifier.lookups == 1


def test_order_per_fingerprint_a_resolve_never_overtakes_its_firing(setup: Setup) -> None:
    firing, other = make_alert("quality_drop", "a"), make_alert("quality_drop", "b")
    setup.notifier.fail(*[server_error() for _ in range(4)])
    setup.enqueue(firing)
    setup.enqueue(make_alert("quality_drop", "a", "resolved", minutes=5), kind="resolved")
    setup.enqueue(other)
    setup.deliverer.drain()
    assert setup.notifier.arrived == {}  # the receiver is resting after a failed pass
    setup.clock.advance(120)
    setup.deliverer.drain()
    assert setup.notifier.kinds() == [
        ("firing", firing.fingerprint),
        ("resolved", firing.fingerprint),
        ("firing", other.fingerprint),
    ]


def test_unknown_receiver_is_dead_not_dropped(setup: Setup) -> None:
    alert = make_alert()
    entry = LogEntry(alert.fingerprint, "firing", alert.alert_id, alert.at, T0)
    setup.log.record(entry, [NewNotification("gone", "firing", "first notification", alert)], T0)
    setup.deliverer.drain()
    assert setup.log.rows("dead")[0][1] == "gone"


def test_counters_are_exported_to_prometheus_at_scrape_time(setup: Setup) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(setup.metrics.collector())
    setup.notifier.fail(DeliveryError("channel_not_found", retryable=False))
    setup.enqueue(make_alert())
    setup.deliverer.drain()
    text = generate_latest(registry).decode()
    assert 'agentmon_notifications_dead_total{receiver="r"} 1.0' in text


def rate_limited(retry_after: float = 1) -> DeliveryError:
    return DeliveryError("HTTP 429 ratelimited", retryable=True, retry_after_s=retry_after)


def test_a_p1_goes_before_p3s_that_were_queued_earlier(setup: Setup) -> None:
    p3s = [make_alert("floating_model_label", f"agent-{i}") for i in range(3)]
    p2 = make_alert("token_cost_spike", "agent-x")
    p1 = make_alert("quality_drop", "agent-y")
    for alert in [*p3s, p2]:
        setup.enqueue(alert)
        setup.clock.advance(1)
    setup.enqueue(p1)
    setup.deliverer.drain()
    assert [n.alert.severity for n in setup.notifier.sent] == ["P1", "P2", "P3", "P3", "P3"]
    assert [n.alert.agent_id for n in setup.notifier.sent[2:]] == ["agent-0", "agent-1", "agent-2"], "then by age"


def test_a_429_storm_waits_exactly_retry_after_and_the_p1_takes_the_first_free_slot(setup: Setup) -> None:
    for i in range(3):
        setup.enqueue(make_alert("floating_model_label", f"agent-{i}"))
    setup.enqueue(make_alert("quality_drop", "agent-y"))
    setup.notifier.fail(*[rate_limited(1) for _ in range(3)])
    setup.deliverer.drain()
    assert setup.clock.slept == [1, 1, 1], "no rest longer than Retry-After"
    assert [n.alert.severity for n in setup.notifier.sent[:4]] == ["P1"] * 4
    assert setup.log.counts() == {"delivered": 4}


def test_a_failed_pass_on_rate_limits_rests_only_as_long_as_asked(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    setup.notifier.fail(*[rate_limited(2) for _ in range(4)])  # max_attempts = 4; defer_s = 120
    setup.enqueue(make_alert())
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.FAILED]
    assert "ALERT NOT DELIVERED" in caplog.text
    setup.clock.advance(1.9)
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.BLOCKED]
    setup.clock.advance(0.1)
    assert setup.deliverer.drain().delivered == 1
    last = [r.getMessage() for r in caplog.records][-1]
    assert last.startswith("ALERT DELIVERED after 5 tries (8.0 s late)"), last


def test_a_budget_bounds_the_wait_inside_one_drain(setup: Setup) -> None:
    setup.notifier.fail(rate_limited(1))
    setup.enqueue(make_alert())
    assert list(setup.deliverer.drain(budget_s=0.5).outcomes.values()) == [Outcome.NOT_DUE]
    assert setup.clock.slept == []
    setup.clock.advance(1)
    assert setup.deliverer.drain(budget_s=0.5).delivered == 1


def test_delivery_latency_is_observed_and_exported(setup: Setup) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(setup.metrics.collector())
    setup.notifier.fail(rate_limited(1))
    setup.enqueue(make_alert())
    setup.deliverer.drain()
    text = generate_latest(registry).decode()
    assert 'agentmon_notification_delivery_latency_seconds_bucket{le="1.0",receiver="r"} 1.0' in text
    assert 'agentmon_notification_rate_limited_total{receiver="r"} 1.0' in text


def test_a_receiver_answering_retry_after_zero_forever_does_not_spin_the_drain(setup: Setup) -> None:
    setup.notifier.fail(*[rate_limited(0) for _ in range(100)])
    setup.enqueue(make_alert())
    assert list(setup.deliverer.drain().outcomes.values()) == [Outcome.FAILED]
    assert len(setup.notifier.sent) == 2 * POLICY.max_attempts
    assert setup.log.counts() == {"pending": 1}


def test_a_budget_is_kept_even_while_attempts_fail_at_once(setup: Setup) -> None:
    class Slow(ScriptedNotifier):
        def send(self, notification):  # type: ignore[no-untyped-def]
            setup.clock.advance(0.3)
            return super().send(notification)

    slow = Slow()
    slow.fail(*[rate_limited(0) for _ in range(100)])
    deliverer = Deliverer(setup.log, {"r": slow}, POLICY, setup.clock, setup.metrics)
    setup.enqueue(make_alert())
    deliverer.drain(budget_s=1.0)
    assert len(slow.sent) == 4, "stops at the deadline (4 x 0.3 s >= 1 s)"
