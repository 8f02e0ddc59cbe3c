"""Generic webhook notifier: HTTP POST of JSON, signed with HMAC-SHA256.

Headers:
- `X-Agentmon-Timestamp`: unix seconds of the send;
- `X-Agentmon-Signature`: `sha256=` + hex HMAC-SHA256 over `"{timestamp}." + body` with the shared
  secret (the receiver recomputes it and rejects a mismatch or an old timestamp: replay protection);
- `X-Agentmon-Notification-Id`: the idempotency key; the same notification always carries the same id,
  so a receiver that remembers ids never acts twice on a retried delivery.

Failures: connection errors, timeouts, 429 (with Retry-After) and 5xx are retryable; other 4xx not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from pydantic import SecretStr

from alerts.notifiers.base import Notification, Receipt
from alerts.notifiers.http import post_json

SIGNATURE_HEADER = "X-Agentmon-Signature"
TIMESTAMP_HEADER = "X-Agentmon-Timestamp"
ID_HEADER = "X-Agentmon-Notification-Id"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookNotifier:
    def __init__(
        self,
        url: str,
        secret: SecretStr | None,
        *,
        timeout_s: float = 10.0,
        wall_time: Callable[[], float] = time.time,
    ) -> None:
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s), got {url!r}")
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self._wall_time = wall_time  # only stamps the signature; no decision depends on it

    def __repr__(self) -> str:
        return f"WebhookNotifier(url={self.url!r}, secret={'**********' if self._secret else None})"

    def payload(self, notification: Notification) -> bytes:
        body: dict[str, object] = {
            "version": 1,
            "notification_id": notification.notification_id,
            "kind": notification.kind,
            "reason": notification.reason,
            "alert": json.loads(notification.alert.to_json()),
        }
        if notification.kind == "digest":
            body["alerts"] = [json.loads(a.to_json()) for a in notification.digest]
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    def send(self, notification: Notification) -> Receipt:
        if notification.kind == "mark_resolved":
            return Receipt()
        body = self.payload(notification)
        timestamp = str(int(self._wall_time()))
        headers = {
            ID_HEADER: notification.notification_id,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret.get_secret_value().encode(), timestamp, body)
        post_json(self.url, body, headers, timeout_s=self.timeout_s, what=f"webhook {self.url}")
        return Receipt()

    def find_delivered(self, notification: Notification) -> Receipt | None:
        return None  # the receiver dedups by X-Agentmon-Notification-Id

