"""The `alertmanager` receiver against a real Prometheus Alertmanager on 127.0.0.1: a firing alert
is active in Alertmanager with our labels and annotations; its resolve ends it there, and
Alertmanager itself notifies its own receiver (a local webhook) first firing, then resolved."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerts.clock import ManualClock
from alerts.config import AlertingConfig
from alerts.metrics import AlertMetrics
from alerts.notification_log import SqliteNotificationLog
from alerts.pipeline import AlertPipeline, build_notifiers
from monitor.settings import Settings
from tests.support.alert_factory import T0, make_alert
from tests.support.alertmanager import LocalAlertmanager

pytestmark = pytest.mark.integration


class Inbox:
    """Alertmanager's own webhook receiver: what Alertmanager would page with."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inbox.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/am"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self) -> list[str]:
        return [alert["status"] for message in self.received for alert in message["alerts"]]


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    yield box
    box.server.shutdown()
    box.server.server_close()


@pytest.fixture
def alertmanager(tmp_path: Path, inbox: Inbox) -> Iterator[LocalAlertmanager]:
    config = f"""
route:
  receiver: inbox
  group_by: [alertname, agent_id]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: inbox
    webhook_configs:
      - url: {inbox.url}
        send_resolved: true
"""
    am = LocalAlertmanager(tmp_path, config)
    try:
        yield am.wait_ready()
    finally:
        am.stop()


def wait_for(check: Any, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def ours(am: LocalAlertmanager, rule: str) -> list[dict[str, Any]]:
    return [a for a in am.alerts() if a["labels"].get("alertname") == rule]


def test_fire_then_resolve_round_trip_through_a_real_alertmanager(
    alertmanager: LocalAlertmanager, inbox: Inbox, tmp_path: Path
) -> None:
    settings = Settings(
        alerting=AlertingConfig.model_validate(
            {
                "group_wait_s": 0,
                "receivers": [{"name": "am", "kind": "alertmanager", "url": alertmanager.url}],
                "default_receiver": "am",
                "notification_log_path": tmp_path / "nflog.sqlite3",
            }
        )
    )
    pipeline = AlertPipeline(
        settings.alerting,
        notifiers=build_notifiers(settings),
        notification_log=SqliteNotificationLog(settings.alerting.notification_log_path),
        clock=ManualClock(T0),
        metrics=AlertMetrics(),
    )
    firing = make_alert("tool_error_rate", "lead-qualifier", labels={"tool": "crm.update"}, episode_start=T0)
    started = time.monotonic()
    pipeline.run([firing])

    (active,) = ours(alertmanager, "tool_error_rate")
    assert active["status"]["state"] == "active"
    assert active["labels"] == {
        "alertname": "tool_error_rate",
        "agent_id": "lead-qualifier",
        "severity": "P1",
        "tool": "crm.update",
        "agentmon_fingerprint": firing.fingerprint,
    }
    assert active["annotations"]["summary"] == firing.summary
    assert active["annotations"]["runbook_url"] == firing.runbook_url
    assert active["startsAt"].startswith(T0.strftime("%Y-%m-%dT%H:%M:%S"))
    assert wait_for(lambda: inbox.statuses()[:1] == ["firing"]), inbox.received
    fired_s = time.monotonic() - started

    resolved = make_alert(
        "tool_error_rate", "lead-qualifier", "resolved", minutes=40, labels={"tool": "crm.update"}, episode_start=T0
    )
    started = time.monotonic()
    pipeline.run([resolved])
    assert ours(alertmanager, "tool_error_rate") == [], "a resolved alert is no longer listed as active"
    assert wait_for(lambda: "resolved" in inbox.statuses()), inbox.received
    resolved_s = time.monotonic() - started
    last = [a for m in inbox.received for a in m["alerts"]][-1]
    assert last["status"] == "resolved" and last["endsAt"].startswith("2026-11-21T")
    print(
        f"\nAlertmanager round trip: firing reached Alertmanager's receiver in {fired_s:.2f} s,"
        f" resolved in {resolved_s:.2f} s"
    )
    assert pipeline.log_store.counts() == {"delivered": 2}
