"""Group stage: alerts of one agent that start together go out together, after `group_wait`, so a
burst (say tool_calls_all_failing and tool_error_rate of the same agent) is judged as one and the
inhibitor sees the whole burst. Time is passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.contract.alert import Alert

PIPELINE_WIDE_GROUP = "*"


def group_key(alert: Alert) -> str:
    """Per agent; pipeline-wide rules (agent_id null) share one group."""
    return alert.agent_id if alert.agent_id is not None else PIPELINE_WIDE_GROUP


def group_due(opened_at: datetime, now: datetime, group_wait: timedelta) -> bool:
    return now - opened_at >= group_wait


@dataclass
class _Group:
    key: str
    opened_at: datetime
    due_at: datetime
    alerts: dict[str, list[Alert]] = field(default_factory=dict)  # per fingerprint, event-time order


class Grouper:
    """Buffers alert state changes per group key. Within one group a fingerprint keeps its newest state
    change (by event time `at`): a firing that resolves within `group_wait` of event time is one
    (unsent) resolve, so flapping is not paged. A firing and a resolve further apart in event time
    both go out, even when they arrive together (consumer lag, replay): that incident did happen.

    `by_severity` shortens the wait for some severities (a P1 should not wait 30 s): a group is due
    when the shortest wait of its members, counted from each member's arrival, is over; `group_wait`
    stays the longest wait and the horizon of flap suppression and inhibition."""

    def __init__(self, group_wait: timedelta, by_severity: Mapping[str, timedelta] | None = None) -> None:
        if group_wait < timedelta(0):
            raise ValueError(f"group_wait must be >= 0, got {group_wait}")
        bad = {s: w for s, w in (by_severity or {}).items() if w < timedelta(0)}
        if bad:
            raise ValueError(f"group waits must be >= 0, got {bad}")
        self.group_wait = group_wait
        self.by_severity = dict(by_severity or {})
        self._groups: dict[str, _Group] = {}

    def wait_for(self, alert: Alert) -> timedelta:
        return min(self.group_wait, self.by_severity.get(alert.severity, self.group_wait))

    def add(self, alert: Alert, now: datetime) -> None:
        key = group_key(alert)
        group = self._groups.get(key)
        due_at = now + self.wait_for(alert)
        if group is None:
            group = self._groups[key] = _Group(key, now, due_at)
        else:
            group.due_at = min(group.due_at, due_at)
        held = group.alerts.setdefault(alert.fingerprint, [])
        if not held:
            held.append(alert)
            return
        last = held[-1]
        if alert.at < last.at:
            return  # older than what we hold: a replay or out-of-order duplicate
        if last.state == "firing" and alert.state == "resolved" and alert.at - last.at > self.group_wait:
            held.append(alert)
        else:
            held[-1] = alert

    def due(self, now: datetime) -> list[list[Alert]]:
        """Remove and return the groups whose wait is over, oldest first, alerts in event-time order."""
        ready = [g for g in self._groups.values() if g.due_at <= now]
        ready.sort(key=lambda g: (g.opened_at, g.key))
        for group in ready:
            del self._groups[group.key]
        return [_ordered(g) for g in ready]

    def flush_all(self) -> list[list[Alert]]:
        groups = sorted(self._groups.values(), key=lambda g: (g.opened_at, g.key))
        self._groups.clear()
        return [_ordered(g) for g in groups]

    def pending_fingerprints(self) -> set[str]:
        return {fp for g in self._groups.values() for fp in g.alerts}

    def pending(self) -> int:
        return sum(len(states) for g in self._groups.values() for states in g.alerts.values())


def _ordered(group: _Group) -> list[Alert]:
    return sorted((a for states in group.alerts.values() for a in states), key=lambda a: (a.at, a.fingerprint))
