"""POST JSON over HTTP for the notifiers that speak plain HTTP (webhook, Alertmanager), with one
mapping of failures to `DeliveryError`: connection errors, timeouts, 429 (with its Retry-After) and
5xx are retryable; a 5xx, a timeout or a lost connection may have been processed (ambiguous); any
other 4xx is not retryable (the request itself is wrong)."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from urllib.error import HTTPError, URLError

from alerts.errors import DeliveryError


def post_json(url: str, body: bytes, headers: Mapping[str, str], *, timeout_s: float, what: str) -> bytes:
    """POST `body` to `url`; the response body, or `DeliveryError` naming `what` and the status."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (callers check http(s))
            return bytes(response.read())
    except HTTPError as exc:
        status = exc.code
        detail = _detail(exc)
        retry_after = retry_after_s(exc.headers.get("Retry-After") if exc.headers else None)
        if status == 429 or status >= 500:
            raise DeliveryError(
                f"{what} -> HTTP {status}{detail}",
                retryable=True,
                retry_after_s=retry_after,
                ambiguous=status >= 500,
            ) from None
        raise DeliveryError(f"{what} -> HTTP {status}{detail}", retryable=False) from None
    except TimeoutError:
        raise DeliveryError(f"{what} timed out", retryable=True, ambiguous=True) from None
    except URLError as exc:
        ambiguous = isinstance(exc.reason, TimeoutError)
        raise DeliveryError(f"{what}: {exc.reason}", retryable=True, ambiguous=ambiguous) from None
    except (HTTPException, ConnectionError) as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}", retryable=True, ambiguous=True) from None


def _detail(exc: HTTPError) -> str:
    try:
        text = exc.read(300).decode("utf-8", "replace").strip()
    except Exception:  # the status is what matters; the body is a courtesy
        return ""
    return f": {text}" if text else ""


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form); None when absent or not a number."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
