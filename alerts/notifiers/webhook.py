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
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from urllib.error import HTTPError, URLError

from pydantic import SecretStr

from alerts.errors import DeliveryError
from alerts.notifiers.base import Notification, Receipt

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
        body = {
            "version": 1,
            "notification_id": notification.notification_id,
            "kind": notification.kind,
            "reason": notification.reason,
            "alert": json.loads(notification.alert.to_json()),
        }
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()

    def send(self, notification: Notification) -> Receipt:
        if notification.kind == "mark_resolved":
            return Receipt()
        body = self.payload(notification)
        timestamp = str(int(self._wall_time()))
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: notification.notification_id,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret.get_secret_value().encode(), timestamp, body)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (http(s) checked)
                response.read()
                return Receipt()
        except HTTPError as exc:
            status = exc.code
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            if status == 429 or status >= 500:
                raise DeliveryError(
                    f"webhook {self.url} -> HTTP {status}",
                    retryable=True,
                    retry_after_s=retry_after,
                    ambiguous=status >= 500,
                ) from None
            raise DeliveryError(f"webhook {self.url} -> HTTP {status}", retryable=False) from None
        except TimeoutError:
            raise DeliveryError(f"webhook {self.url} timed out", retryable=True, ambiguous=True) from None
        except URLError as exc:
            ambiguous = isinstance(exc.reason, TimeoutError)
            raise DeliveryError(f"webhook {self.url}: {exc.reason}", retryable=True, ambiguous=ambiguous) from None
        except (HTTPException, ConnectionError) as exc:
            raise DeliveryError(f"webhook {self.url}: {type(exc).__name__}", retryable=True, ambiguous=True) from None

    def find_delivered(self, notification: Notification) -> Receipt | None:
        return None  # the receiver dedups by X-Agentmon-Notification-Id


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
