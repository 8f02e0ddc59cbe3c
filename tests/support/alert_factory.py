"""Tiny builders of alert state changes for the alert pipeline tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.contract.alert import Alert, AlertMetric, alert_fingerprint
from monitor.contract.catalogue import RULES, runbook_url

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
RUNBOOK_BASE = "https://github.com/agentmon/agentmon/blob/main"
_ids = itertools.count(1)


def make_alert(
    rule: str = "tool_error_rate",
    agent_id: str | None = "lead-qualifier",
    state: str = "firing",
    *,
    at: datetime | None = None,
    minutes: float = 0,
    labels: dict[str, str] | None = None,
    summary: str | None = None,
    samples: list[str] | None = None,
    alert_id: str | None = None,
    severity: str | None = None,
    **extra: Any,
) -> Alert:
    labels = labels if labels is not None else ({"tool": "crm.update"} if rule == "tool_error_rate" else {})
    when = at or (T0 + timedelta(minutes=minutes))
    return Alert.model_validate(
        {
            "alert_id": alert_id or f"a{next(_ids):05d}",
            "fingerprint": alert_fingerprint(rule, agent_id, labels),
            "rule": rule,
            "agent_id": agent_id,
            "severity": severity or RULES[rule].severity,
            "state": state,
            "at": when,
            "summary": summary or f"{rule} for {agent_id}: 4 % -> 23 % over the last hour",
            "metric": {
                "name": "error_share",
                "current": 0.23,
                "baseline": 0.04,
                "change": 4.75,
                "window": "1h",
                "n": 412,
            },
            "labels": labels,
            "samples": samples if samples is not None else ["exec-101", "exec-102", "exec-103"],
            "runbook_url": runbook_url(RUNBOOK_BASE, rule),
            **extra,
        }
    )


__all__ = ["T0", "AlertMetric", "make_alert"]
