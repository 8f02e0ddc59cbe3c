"""Generic webhook notifier against a local HTTP receiver: signed JSON, retries, idempotency key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from alerts.clock import ManualClock
from alerts.config import AlertingConfig, RetryConfig
from alerts.notification_log import SqliteNotificationLog
from alerts.notifiers.webhook import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookNotifier, verify
from alerts.pipeline import AlertPipeline
from tests.support.alert_factory import T0, make_alert

SECRET = "whsec-test-123"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[int] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = state.script.pop(0) if state.script else 204
                state.requests.append({"headers": dict(self.headers.items()), "body": body, "status": status})
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "2")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def test_signed_posts_retried_and_delivered_once(receiver: Receiver, tmp_path: Path) -> None:
    config = AlertingConfig(
        group_wait_s=0,
        receivers=[{"name": "console", "kind": "console"}],
        default_receiver="webhook",
        webhook_url=receiver.url,
        webhook_secret=SecretStr(SECRET),
        retry=RetryConfig(base_delay_s=0.01, max_delay_s=0.05, request_timeout_s=2),
    )
    clock = ManualClock(T0)
    notifier = WebhookNotifier(receiver.url, SecretStr(SECRET), wall_time=lambda: 1_800_000_000)
    pipeline = AlertPipeline(
        config,
        notifiers={"webhook": notifier},
        notification_log=SqliteNotificationLog(tmp_path / "l.db"),
        clock=clock,
    )
    receiver.script = [500, 429, 204]
    pipeline.run([make_alert(minutes=0), make_alert(state="resolved", minutes=5)])

    statuses = [r["status"] for r in receiver.requests]
    assert statuses == [500, 429, 204, 204]
    assert clock.slept[1] == 2, "Retry-After honoured"
    delivered = [r for r in receiver.requests if r["status"] == 204]
    for req in delivered:
        headers = req["headers"]
        assert verify(SECRET.encode(), headers[TIMESTAMP_HEADER], req["body"], headers[SIGNATURE_HEADER])
        assert not verify(b"wrong", headers[TIMESTAMP_HEADER], req["body"], headers[SIGNATURE_HEADER])
        payload = json.loads(req["body"])
        assert payload["notification_id"] == headers[ID_HEADER]
    kinds = [json.loads(r["body"])["kind"] for r in delivered]
    assert kinds == ["firing", "resolved"]
    # the retried firing carried the same idempotency key each time
    assert len({r["headers"][ID_HEADER] for r in receiver.requests[:3]}) == 1
    assert SECRET not in repr(notifier)


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    from alerts.errors import DeliveryError
    from alerts.notifiers.base import Notification

    receiver.script = [400]
    notifier = WebhookNotifier(receiver.url, None)
    with pytest.raises(DeliveryError) as info:
        notifier.send(Notification("n1", "webhook", "firing", "first notification", make_alert()))
    assert info.value.retryable is False
