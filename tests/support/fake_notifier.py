"""A tiny scripted notifier for unit tests of delivery and the pipeline."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from alerts.errors import DeliveryError
from alerts.notifiers.base import Notification, Receipt


@dataclass
class ScriptedNotifier:
    """Answers each send with the next scripted outcome (default: success). A `DeliveryError` with
    `ambiguous=True` in `landed_anyway` mode records the notification as arrived before failing."""

    script: deque[DeliveryError | None] = field(default_factory=deque)
    sent: list[Notification] = field(default_factory=list)  # every attempt
    arrived: dict[str, Notification] = field(default_factory=dict)  # what the receiver holds
    landed_anyway: bool = False
    lookups: int = 0

    def fail(self, *errors: DeliveryError) -> None:
        self.script.extend(errors)

    def send(self, notification: Notification) -> Receipt:
        self.sent.append(notification)
        outcome = self.script.popleft() if self.script else None
        if outcome is None or (outcome.ambiguous and self.landed_anyway):
            self.arrived[notification.notification_id] = notification
        if outcome is not None:
            raise outcome
        return Receipt(channel="C1", ts=f"{len(self.sent)}.0", thread_ts=_joined(notification))

    def find_delivered(self, notification: Notification) -> Receipt | None:
        self.lookups += 1
        if notification.notification_id not in self.arrived:
            return None
        return Receipt("C1", "found", thread_ts=_joined(notification))

    def kinds(self) -> list[tuple[str, str]]:
        """(kind, fingerprint) of every notification that arrived, in arrival order."""
        return [(n.kind, n.alert.fingerprint) for n in self.arrived.values()]


def _joined(notification: Notification) -> str | None:
    """A firing given a thread is posted in it (as the Slack notifier does)."""
    thread = notification.thread
    return thread.ts if thread is not None and notification.kind == "firing" else None
