"""Dedup stage: should this alert state change be notified, given what the notification log says was
sent for its fingerprint? A pure function returning a reason code that is logged with every message
(after Alertmanager's `notify/dedup_stage.go`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, TypeAlias

from monitor.contract.alert import AlertState

NotificationKind: TypeAlias = Literal["firing", "repeat", "resolved"]


class DedupReason(StrEnum):
    FIRST = "first notification"
    REFIRING = "firing again after resolve"
    REOPENED = "firing again in the same episode"
    REPEAT = "repeat interval elapsed"
    RESOLVED = "resolved"
    ALREADY_NOTIFIED = "already notified"
    ALREADY_RESOLVED = "resolve already notified"
    RESOLVED_NEVER_NOTIFIED = "resolved, firing never notified"
    STALE = "older than the last notified state"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """What the notification log remembers per fingerprint: the last state told to humans."""

    fingerprint: str
    state: AlertState
    alert_id: str
    alert_at: datetime
    notified_at: datetime
    repeats: int = 0


@dataclass(frozen=True, slots=True)
class DedupDecision:
    send: bool
    reason: DedupReason
    kind: NotificationKind | None = None


def dedup_decision(
    *,
    state: AlertState,
    alert_at: datetime,
    entry: LogEntry | None,
    now: datetime,
    repeat_interval: timedelta,
    episode_start: datetime | None = None,
) -> DedupDecision:
    """`now` is the pipeline's clock, passed in; nothing here reads the wall clock.

    A resolve is always sent when its firing was sent; a resolve whose firing was never sent
    (muted, or collapsed inside the group wait) is not, because nobody was told it started.
    A firing after a notified resolve whose `episode_start` lies before that resolve re-opens the
    same episode (the engine's flap window): it goes to the episode's thread as a repeat, not as
    a new page.
    """
    if entry is not None and alert_at < entry.alert_at:
        return DedupDecision(False, DedupReason.STALE)
    if state == "firing":
        if entry is None:
            return DedupDecision(True, DedupReason.FIRST, "firing")
        if entry.state == "resolved":
            if episode_start is not None and episode_start < alert_at and episode_start <= entry.alert_at:
                return DedupDecision(True, DedupReason.REOPENED, "repeat")
            return DedupDecision(True, DedupReason.REFIRING, "firing")
        if now - entry.notified_at >= repeat_interval:
            return DedupDecision(True, DedupReason.REPEAT, "repeat")
        return DedupDecision(False, DedupReason.ALREADY_NOTIFIED)
    if entry is None:
        return DedupDecision(False, DedupReason.RESOLVED_NEVER_NOTIFIED)
    if entry.state == "firing":
        return DedupDecision(True, DedupReason.RESOLVED, "resolved")
    return DedupDecision(False, DedupReason.ALREADY_RESOLVED)
