"""The notifier interface. A notifier sends one notification and either returns where it landed or
raises `DeliveryError` saying whether retrying can help (Alertmanager's `Retrier`), and can look up
whether a notification whose outcome is unknown (timeout) actually arrived."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from alerts.notification_log import OutboxKind, ThreadRef
from monitor.contract.alert import Alert


@dataclass(frozen=True, slots=True)
class Notification:
    notification_id: str
    receiver: str
    kind: OutboxKind
    reason: str  # the dedup reason code, shown and logged
    alert: Alert
    # Where the firing message of this fingerprint went; for a firing: the thread of the related
    # alert of the same agent it is to be posted in (None: a new top-level page).
    thread: ThreadRef | None = None
    firing_alert: Alert | None = None  # that firing message's alert (to re-render it as resolved)
    follows: Alert | None = None  # a firing posted in `thread`: the related alert whose thread it is
    created_at: datetime | None = None  # when it was enqueued: an idempotency lookup starts there
    digest: tuple[Alert, ...] = ()  # kind "digest": the findings it lists


@dataclass(frozen=True, slots=True)
class Receipt:
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None  # the message was posted as a reply in this thread


class Notifier(Protocol):
    def send(self, notification: Notification) -> Receipt:
        """Deliver once; raise `alerts.errors.DeliveryError` on failure."""
        ...

    def find_delivered(self, notification: Notification) -> Receipt | None:
        """After an ambiguous failure or a restart mid-send: did it arrive? None = not found or
        cannot tell (then it is sent again)."""
        ...
