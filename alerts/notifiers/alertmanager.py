"""Prometheus Alertmanager receiver: each notification is POSTed to Alertmanager's
`/api/v2/alerts`, so teams route agentmon alerts through the PagerDuty/Opsgenie/email setup they
already run (its routes, inhibitions and silences apply on top of ours).

One alert per request, as Alertmanager's API v2 `postableAlert`:
- labels (the alert's identity in Alertmanager): `alertname` = rule, `agent_id` (omitted for
  pipeline-wide rules), `severity`, the alert's own labels (names made valid for Prometheus), and
  `agentmon_fingerprint`;
- annotations: `summary`, `runbook_url`, `description` (the evidence in one line: for a rollout
  comparison both versions with their intervals and n); while firing `suspects` (one line each, at
  most three) and `related` (rule names of the same agent's related alerts), when there are any;
- `startsAt`: the start of the incident (its episode start, else the firing time);
- `endsAt`: on resolve, the resolve time. While firing, `hold_s` ahead: Alertmanager treats an
  alert that is not re-sent before its `endsAt` as resolved (Prometheus re-sends every evaluation),
  and agentmon re-sends a firing alert once per repeat interval, so `hold_s` must be longer than
  the repeat interval (the default is 1.5x it). If the pipeline stops, the alert ends at `endsAt`:
  the dead-man's metric of `agentmon alerts run` is what pages then.

Sending the same alert again is harmless (Alertmanager merges by label set), so after an ambiguous
failure it is simply sent again (`find_delivered` returns None). Failures: see `notifiers.http`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from alerts.notifiers.base import Notification, Receipt
from alerts.notifiers.evidence import related_rules, rollout_evidence, suspect_lines
from alerts.notifiers.http import post_json
from monitor.contract.alert import Alert

API_PATH = "/api/v2/alerts"
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
RESERVED = frozenset({"alertname", "agent_id", "severity", "agentmon_fingerprint"})


def label_name(name: str) -> str:
    """A valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*): `crm.update-x` -> `crm_update_x`."""
    cleaned = _INVALID_LABEL_CHARS.sub("_", name) or "_"
    return f"_{cleaned}" if cleaned[0].isdigit() else cleaned


def alert_labels(alert: Alert) -> dict[str, str]:
    labels = {label_name(k): v for k, v in sorted(alert.labels.items()) if v != "" and label_name(k) not in RESERVED}
    labels.update({"alertname": alert.rule, "severity": alert.severity, "agentmon_fingerprint": alert.fingerprint})
    if alert.agent_id is not None:
        labels["agent_id"] = alert.agent_id
    return labels


def _evidence(alert: Alert) -> str:
    m = alert.metric
    rollout = rollout_evidence(alert)
    if rollout is not None:
        return f"{m.name} over {m.window}: " + "; ".join(rollout.lines())
    parts = [f"{m.name}: {m.current if m.current is not None else 'n/a'}"]
    if m.baseline is not None:
        parts.append(f"vs baseline {m.baseline}")
    if m.change is not None:
        parts.append(f"({m.change * 100:+.0f} %)")
    parts.append(f"over {m.window}, n={m.n}")
    return " ".join(parts)


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class AlertmanagerNotifier:
    def __init__(
        self,
        url: str,
        *,
        hold_s: float,
        timeout_s: float = 10.0,
        now: Callable[[], datetime],
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"alertmanager url must be http(s), got {url!r}")
        if hold_s <= 0:
            raise ValueError(f"hold_s must be > 0, got {hold_s}")
        self.url = url.rstrip("/")
        self.hold = timedelta(seconds=hold_s)
        self.timeout_s = timeout_s
        self._now = now  # endsAt of a firing alert is counted from the send

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier(url={self.url!r})"

    def postable(self, notification: Notification) -> dict[str, Any]:
        alert = notification.alert
        first = notification.firing_alert or alert
        starts = alert.episode_start or first.episode_start or first.at
        body: dict[str, Any] = {
            "labels": alert_labels(alert),
            "annotations": {
                "summary": alert.summary,
                "runbook_url": alert.runbook_url,
                "description": _evidence(first if alert.state == "resolved" else alert),
            },
            "startsAt": _rfc3339(starts),
        }
        if alert.state == "firing":
            suspects = suspect_lines(alert)
            if suspects:
                body["annotations"]["suspects"] = "\n".join(suspects)
            related = related_rules(alert)
            if related:
                body["annotations"]["related"] = ", ".join(related)
        if alert.state == "resolved":
            body["endsAt"] = _rfc3339(max(alert.at, starts))
        else:
            body["endsAt"] = _rfc3339(self._now() + self.hold)
        return body

    def send(self, notification: Notification) -> Receipt:
        if notification.kind in ("mark_resolved", "digest"):
            return Receipt()  # hygiene digests are for people reading a channel, not for paging
        body = json.dumps([self.postable(notification)], separators=(",", ":")).encode()
        post_json(self.url + API_PATH, body, {}, timeout_s=self.timeout_s, what=f"alertmanager {self.url}")
        return Receipt()

    def find_delivered(self, notification: Notification) -> Receipt | None:
        return None  # re-sending merges into the same alert in Alertmanager
