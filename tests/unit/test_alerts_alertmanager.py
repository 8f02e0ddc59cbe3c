"""The Alertmanager receiver's payload (pure) and its configuration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from alerts.config import ReceiverConfig
from alerts.notifiers.alertmanager import AlertmanagerNotifier, alert_labels, label_name
from alerts.notifiers.base import Notification
from tests.support.alert_factory import T0, make_alert

NOW = T0 + timedelta(minutes=3)


def notifier() -> AlertmanagerNotifier:
    return AlertmanagerNotifier("http://127.0.0.1:9/", hold_s=6 * 3600, now=lambda: NOW)


def note(alert, kind: str = "firing") -> Notification:  # type: ignore[no-untyped-def]
    return Notification(notification_id="n1", receiver="am", kind=kind, reason="first notification", alert=alert)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "valid"), [("tool", "tool"), ("crm.update-x", "crm_update_x"), ("9lives", "_9lives"), ("", "_")]
)
def test_label_names_are_made_valid_for_prometheus(name: str, valid: str) -> None:
    assert label_name(name) == valid


def test_identity_labels_win_over_alert_labels_of_the_same_name() -> None:
    alert = make_alert("quality_drop", "a", labels={"severity": "low", "region": "eu"})
    assert alert_labels(alert) == {
        "alertname": "quality_drop",
        "agent_id": "a",
        "severity": "P1",
        "region": "eu",
        "agentmon_fingerprint": alert.fingerprint,
    }


def test_a_pipeline_wide_alert_has_no_agent_label() -> None:
    assert "agent_id" not in alert_labels(make_alert("invalid_events", None))


def test_firing_holds_ends_at_ahead_and_starts_at_the_episode() -> None:
    alert = make_alert("quality_drop", "a", minutes=2, episode_start=T0)
    body = notifier().postable(note(alert))
    assert body["startsAt"] == "2026-11-21T09:00:00Z"
    assert body["endsAt"] == "2026-11-21T15:03:00Z"
    assert body["annotations"]["runbook_url"] == alert.runbook_url
    assert body["annotations"]["summary"] == alert.summary
    assert "vs baseline" in body["annotations"]["description"]


def test_resolve_ends_at_the_resolve_time() -> None:
    alert = make_alert("quality_drop", "a", "resolved", minutes=42, episode_start=T0)
    body = notifier().postable(note(alert, "resolved"))
    assert (body["startsAt"], body["endsAt"]) == ("2026-11-21T09:00:00Z", "2026-11-21T09:42:00Z")


def test_mark_resolved_sends_nothing() -> None:
    assert notifier().send(note(make_alert(), "mark_resolved")).ts is None  # port 9 would refuse


def test_an_alertmanager_receiver_needs_a_url() -> None:
    with pytest.raises(ValidationError, match="needs `url`"):
        ReceiverConfig(name="am", kind="alertmanager")
