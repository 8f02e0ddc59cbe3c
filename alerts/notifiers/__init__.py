"""Notifiers: Slack (slack-sdk Block Kit), console (pretty, for the demo), generic signed webhook."""

from alerts.notifiers.base import Notification, Notifier, Receipt

__all__ = ["Notification", "Notifier", "Receipt"]
