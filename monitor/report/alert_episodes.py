"""Alerts of the week as episodes: fired at, resolved at, time to resolve.

Alert records are state changes; repeated `firing` records of one fingerprint (re-notifications)
before its `resolved` belong to one episode, which starts at the first of them."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime

from monitor.contract.alert import Alert
from monitor.report.review import AlertEpisode, AlertsReview


def alert_episodes(alerts: Iterable[Alert], start: datetime, end: datetime) -> list[AlertEpisode]:
    """Episodes that touch [start, end): fired in it, resolved in it, or firing through it.
    `alerts` should reach back before `start` so that an episode's firing time is known."""
    open_: dict[str, Alert] = {}
    episodes: list[AlertEpisode] = []
    for a in sorted(alerts, key=lambda a: (a.at, a.state != "firing", a.alert_id)):
        if a.at >= end:
            break
        if a.state == "firing":
            open_.setdefault(a.fingerprint, a)
            continue
        fired = open_.pop(a.fingerprint, None)
        if a.at < start:
            continue
        episodes.append(_episode(fired or a, fired.at if fired else None, a.at))
    for fired in open_.values():
        episodes.append(_episode(fired, fired.at, None))
    episodes.sort(key=lambda e: (e.fired_at or start, e.fingerprint))
    return episodes


def _episode(a: Alert, fired_at: datetime | None, resolved_at: datetime | None) -> AlertEpisode:
    ttr = (resolved_at - fired_at).total_seconds() if fired_at and resolved_at else None
    return AlertEpisode(
        fingerprint=a.fingerprint, rule=a.rule, agent_id=a.agent_id, severity=a.severity, summary=a.summary,
        fired_at=fired_at, resolved_at=resolved_at, time_to_resolve_s=ttr, runbook_url=a.runbook_url,
        labels=dict(a.labels),
    )


def alerts_review(episodes: list[AlertEpisode], start: datetime, end: datetime) -> AlertsReview:
    ttrs = [e.time_to_resolve_s for e in episodes if e.time_to_resolve_s is not None
            and e.resolved_at is not None and start <= e.resolved_at < end]
    return AlertsReview(
        fired=sum(1 for e in episodes if e.fired_at is not None and start <= e.fired_at < end),
        resolved=sum(1 for e in episodes if e.resolved_at is not None and start <= e.resolved_at < end),
        open_at_week_end=sum(1 for e in episodes if e.resolved_at is None),
        median_time_to_resolve_s=statistics.median(ttrs) if ttrs else None,
        episodes=episodes,
    )
