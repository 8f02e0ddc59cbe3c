"""Delivery: drain the outbox of the notification log through the notifiers.

- At most one send in flight per (fingerprint, receiver), in enqueue order: a resolve never overtakes
  its firing, a failing head blocks only its own fingerprint.
- Retries with bounded exponential backoff; a server's Retry-After is honoured (never sooner); a
  Retry-After longer than `max_retry_after_s` defers to a later pass instead of blocking the worker.
- A receiver that fails a whole pass is skipped for the rest of that pass (an outage costs one
  backoff sequence, not one per alert).
- Ambiguous failures (timeouts, lost connections) and sends that were in flight when the process
  stopped are checked with the notifier's `find_delivered` before sending again: no double posts.
- After a failed pass: an ERROR log and a counter, and the row stays pending for the next pass.
  After `give_up_after_s`, or on a non-retryable error: a CRITICAL/ERROR log, the `dead` counter,
  and the row is kept with status `dead` for inspection. Nothing is ever dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from alerts import metrics as m
from alerts.clock import Clock
from alerts.config import RetryConfig
from alerts.errors import DeliveryError
from alerts.metrics import AlertMetrics
from alerts.notification_log import OutboxRow, SqliteNotificationLog
from alerts.notifiers.base import Notification, Notifier, Receipt

log = logging.getLogger("agentmon.alerts.delivery")


def backoff_delay(attempt: int, policy: RetryConfig) -> float:
    """Delay after the `attempt`-th failed attempt (1-based): base * 2^(attempt-1), capped. Pure."""
    if attempt < 1:
        raise ValueError(f"attempt is 1-based, got {attempt}")
    return float(min(policy.max_delay_s, policy.base_delay_s * 2 ** min(attempt - 1, 30)))


def retry_delay(attempt: int, retry_after_s: float | None, policy: RetryConfig) -> float:
    """Retry-After wins when the server sent one (it says when it will accept us again)."""
    return float(retry_after_s) if retry_after_s is not None else backoff_delay(attempt, policy)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FOUND = "found after ambiguous failure"
    DEFERRED = "deferred"
    FAILED = "failed pass"
    DEAD = "dead"
    NOT_DUE = "not due"
    BLOCKED = "blocked behind earlier notification"


@dataclass
class DrainResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # notification_id -> outcome

    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    @property
    def delivered(self) -> int:
        return self.count(Outcome.DELIVERED) + self.count(Outcome.FOUND)


class Deliverer:
    def __init__(
        self,
        log_store: SqliteNotificationLog,
        notifiers: Mapping[str, Notifier],
        policy: RetryConfig,
        clock: Clock,
        metrics: AlertMetrics,
    ) -> None:
        self.log_store = log_store
        self.notifiers = dict(notifiers)
        self.policy = policy
        self.clock = clock
        self.metrics = metrics
        # A receiver that failed a whole pass rests until its deferred retry (in memory: after a
        # restart one row probes it again, which is what we want).
        self._resting_until: dict[str, datetime] = {}

    def drain(self) -> DrainResult:
        result = DrainResult()
        blocked: set[tuple[str, str]] = set()
        now = self.clock.now()
        down = {r for r, until in self._resting_until.items() if until > now}
        for row in self.log_store.pending():
            key = (row.fingerprint, row.receiver)
            if key in blocked or row.receiver in down:
                blocked.add(key)
                result.outcomes[row.notification_id] = Outcome.BLOCKED
                continue
            if row.next_attempt_at > self.clock.now():
                blocked.add(key)
                result.outcomes[row.notification_id] = Outcome.NOT_DUE
                continue
            outcome = self._deliver(row)
            result.outcomes[row.notification_id] = outcome
            if outcome in (Outcome.FAILED, Outcome.DEFERRED):
                blocked.add(key)
                down.add(row.receiver)
                self._resting_until[row.receiver] = self.log_store.next_attempt_at(row.seq)
            elif outcome in (Outcome.DELIVERED, Outcome.FOUND):
                self._resting_until.pop(row.receiver, None)
        return result

    def _notification(self, row: OutboxRow) -> Notification:
        thread = firing = None
        if row.kind != "firing":
            found = self.log_store.thread_of(row.fingerprint, row.receiver)
            if found is not None:
                thread, firing = found
        return Notification(
            notification_id=row.notification_id,
            receiver=row.receiver,
            kind=row.kind,
            reason=row.reason,
            alert=row.alert,
            thread=thread,
            firing_alert=firing,
            created_at=row.created_at,
        )

    def _describe(self, row: OutboxRow) -> str:
        return f"{row.kind} {row.fingerprint} to {row.receiver} ({row.reason}) [notification {row.notification_id}]"

    def _deliver(self, row: OutboxRow) -> Outcome:
        notifier = self.notifiers.get(row.receiver)
        if notifier is None:
            return self._dead(row, f"no notifier configured for receiver {row.receiver!r}")
        notification = self._notification(row)
        if row.kind == "mark_resolved" and notification.thread is None:
            # The firing message never landed (dead or sent before this log existed): nothing to edit.
            self.log_store.delivered(row.seq, self.clock.now(), None, None)
            return Outcome.DELIVERED
        if (row.in_flight or row.ambiguous) and (found := self._find(notifier, notification)) is not None:
            return self._found(row, found)

        for attempt in range(1, self.policy.max_attempts + 1):
            self.log_store.start_attempt(row.seq)
            try:
                receipt = notifier.send(notification)
            except DeliveryError as exc:
                error: DeliveryError = exc
            except Exception as exc:  # a notifier bug must not lose the alert; treat as unknown outcome
                log.exception("notifier %s raised unexpectedly for %s", row.receiver, self._describe(row))
                error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True, ambiguous=True)
            else:
                now = self.clock.now()
                self.log_store.delivered(row.seq, now, receipt.channel, receipt.ts)
                self.metrics.inc(m.DELIVERED, receiver=row.receiver, kind=row.kind)
                log.info("notified %s after %d attempt(s)", self._describe(row), attempt)
                return Outcome.DELIVERED

            self.metrics.inc(m.ATTEMPT_FAILED, receiver=row.receiver)
            now = self.clock.now()
            if not error.retryable:
                return self._dead(row, f"not retryable: {error}")
            if error.ambiguous and (found := self._find(notifier, notification)) is not None:
                return self._found(row, found)
            if now - row.created_at >= timedelta(seconds=self.policy.give_up_after_s):
                return self._dead(row, f"still failing after {self.policy.give_up_after_s:.0f}s: {error}")
            if error.retry_after_s is not None and error.retry_after_s > self.policy.max_retry_after_s:
                until = now + timedelta(seconds=error.retry_after_s)
                self.log_store.failed(row.seq, str(error), until, error.ambiguous)
                log.warning(
                    "receiver %s asked to wait %.0fs (Retry-After); deferring %s to %s",
                    row.receiver,
                    error.retry_after_s,
                    self._describe(row),
                    until.isoformat(),
                )
                return Outcome.DEFERRED
            if attempt == self.policy.max_attempts:
                return self._failed_pass(row, error, now, attempt)
            delay = retry_delay(attempt, error.retry_after_s, self.policy)
            self.log_store.failed(row.seq, str(error), now + timedelta(seconds=delay), error.ambiguous)
            log.warning(
                "attempt %d/%d of %s failed (%s); retrying in %.2fs",
                attempt,
                self.policy.max_attempts,
                self._describe(row),
                error,
                delay,
            )
            self.clock.sleep(delay)
        raise AssertionError("unreachable: the attempt loop always returns")  # pragma: no cover

    def _find(self, notifier: Notifier, notification: Notification) -> Receipt | None:
        try:
            return notifier.find_delivered(notification)
        except Exception as exc:  # the lookup is best effort; sending again is the fallback
            log.warning("could not check whether %s arrived: %s", notification.notification_id, exc)
            return None

    def _found(self, row: OutboxRow, receipt: Receipt) -> Outcome:
        self.log_store.delivered(row.seq, self.clock.now(), receipt.channel, receipt.ts)
        self.metrics.inc(m.RECOVERED_AMBIGUOUS, receiver=row.receiver)
        self.metrics.inc(m.DELIVERED, receiver=row.receiver, kind=row.kind)
        log.info("%s had arrived despite the failed/unknown response; not sending again", self._describe(row))
        return Outcome.FOUND

    def _failed_pass(self, row: OutboxRow, error: DeliveryError, now: datetime, attempts: int) -> Outcome:
        until = now + timedelta(seconds=self.policy.defer_s)
        self.log_store.failed(row.seq, str(error), until, error.ambiguous)
        self.metrics.inc(m.PASS_FAILED, receiver=row.receiver)
        log.error(
            "ALERT NOT DELIVERED: %s failed %d attempts (last error: %s); kept pending, next pass at %s",
            self._describe(row),
            attempts,
            error,
            until.isoformat(),
        )
        return Outcome.FAILED

    def _dead(self, row: OutboxRow, why: str) -> Outcome:
        self.log_store.dead(row.seq, why)
        self.metrics.inc(m.DEAD, receiver=row.receiver)
        log.critical(
            "ALERT DELIVERY ABANDONED: %s: %s (kept as 'dead' in the notification log)",
            self._describe(row),
            why,
        )
        return Outcome.DEAD
