"""Exceptions of the alert pipeline. Messages name the value and where it came from; never a secret."""

from __future__ import annotations


class AlertsError(Exception):
    """Base of every error raised by `alerts/`."""


class SilenceError(AlertsError, ValueError):
    """A silence or matcher that is malformed, or an unknown silence id."""


class NotificationLogError(AlertsError):
    """The notification log (idempotency record) cannot be opened or written."""


class DeliveryError(AlertsError):
    """A notifier failed. `retryable` says whether trying again can help (Alertmanager's
    `notify.Retrier` idea); `retry_after_s` carries the server's Retry-After when it sent one;
    `ambiguous` means the request may have reached the receiver (timeout, connection lost after
    sending), so the outcome must be checked before sending again."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.ambiguous = ambiguous
