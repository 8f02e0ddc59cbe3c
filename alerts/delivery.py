"""Delivery: drain the outbox of the notification log through the notifiers.

- Per receiver, the most urgent due notification goes first: P1 before P2 before P3, then the oldest.
- At most one send in flight per (fingerprint, receiver), in enqueue order: a resolve never overtakes
  its firing, a failing head blocks only its own fingerprint.
- One attempt at a time. A failed attempt schedules its retry (the server's Retry-After exactly,
  never sooner, or bounded exponential backoff) and rests the receiver until then; after the rest the
  most urgent notification is chosen again, so a P1 never waits behind a P3's retries. A Retry-After
  longer than `max_retry_after_s` defers to a later pass instead of blocking the worker.
- After `max_attempts` failures in a row: an ERROR log ("ALERT NOT DELIVERED (yet)"), a counter, and
  the row stays pending; the receiver rests `defer_s`, or only the Retry-After when it sent one.
  When such a notification goes out later: "ALERT DELIVERED after N tries (X s late)".
- Ambiguous failures (timeouts, lost connections) and sends that were in flight when the process
  stopped are checked with the notifier's `find_delivered` before sending again: no double posts.
- After `give_up_after_s`, or on a non-retryable error: a CRITICAL/ERROR log, the `dead` counter,
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
from alerts.notification_log import OutboxRow, SqliteNotificationLog, ThreadRef
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


SEVERITY_RANK = {"P1": 0, "P2": 1, "P3": 2}
MAX_PASSES_PER_DRAIN = 2


def priority(row: OutboxRow) -> tuple[int, datetime, int]:
    """Delivery order within one receiver: severity first (P1 before P2 before P3), then age."""
    return (SEVERITY_RANK.get(row.alert.severity, len(SEVERITY_RANK)), row.created_at, row.seq)


class Deliverer:
    """One attempt at a time, always the most urgent due notification of a receiver first. A failed
    attempt schedules its retry (Retry-After exactly, or backoff) and rests its receiver until then, so
    after every wait the choice is made again: a P1 never waits behind a P3's retries."""

    def __init__(
        self,
        log_store: SqliteNotificationLog,
        notifiers: Mapping[str, Notifier],
        policy: RetryConfig,
        clock: Clock,
        metrics: AlertMetrics,
        resting: dict[str, datetime] | None = None,
    ) -> None:
        self.log_store = log_store
        self.notifiers = dict(notifiers)
        self.policy = policy
        self.clock = clock
        self.metrics = metrics
        # When each receiver accepts us again (in memory: after a restart one row probes it again);
        # shared by the deliverers of one process (one per partition), which share the receivers.
        self._resting_until: dict[str, datetime] = resting if resting is not None else {}
        # Failed attempts of the current pass per outbox row (seq); a pass ends after max_attempts.
        self._pass_failures: dict[int, int] = {}
        # Rows that went through a failed or deferred pass: their delivery is logged as late.
        self._late: set[int] = set()

    def drain(self, budget_s: float | None = None) -> DrainResult:
        """Deliver what is due. Waits inside the call only for a retry in progress (backoff or a
        Retry-After up to `max_retry_after_s`), and with `budget_s` never past that many seconds from
        the start, so a caller that also receives alerts (the Kafka runner) gets control back and a
        new P1 is chosen at the next call."""
        result = DrainResult()
        deadline = None if budget_s is None else self.clock.now() + timedelta(seconds=budget_s)
        failed_passes: dict[int, int] = {}
        while True:
            now = self.clock.now()
            if deadline is not None and now >= deadline:
                return result
            heads, waiting = self._heads(now, result, failed_passes)
            if heads:
                row = min(heads, key=priority)
                outcome = self._attempt(row)
                result.outcomes[row.notification_id] = outcome
                if outcome == Outcome.FAILED:
                    failed_passes[row.seq] = failed_passes.get(row.seq, 0) + 1
                continue
            if not waiting:
                return result
            wake = min(waiting)
            if deadline is not None and wake > deadline:
                return result
            self.clock.sleep(max(0.0, (wake - now).total_seconds()))

    def _heads(
        self, now: datetime, result: DrainResult, failed_passes: Mapping[int, int]
    ) -> tuple[list[OutboxRow], list[datetime]]:
        """The first pending row of each (fingerprint, receiver) that is due and whose receiver is not
        resting; and when rows in an inline retry become due (to wait for). A row that failed
        `MAX_PASSES_PER_DRAIN` passes in this drain waits for the next one (a receiver answering
        `Retry-After: 0` forever must not spin the loop)."""
        heads: list[OutboxRow] = []
        waiting: list[datetime] = []
        seen: set[tuple[str, str]] = set()
        for row in self.log_store.pending():
            key = (row.fingerprint, row.receiver)
            parent = row.thread_parent
            if key in seen or (parent is not None and (parent.fingerprint, parent.receiver) in seen):
                # A page to be threaded under a related alert waits for that alert's message (it was
                # enqueued earlier, so it comes first here even when it is the less severe one).
                seen.add(key)
                result.outcomes.setdefault(row.notification_id, Outcome.BLOCKED)
                continue
            seen.add(key)
            settled = result.outcomes.get(row.notification_id)
            if settled == Outcome.DEFERRED or failed_passes.get(row.seq, 0) >= MAX_PASSES_PER_DRAIN:
                continue  # the next drain takes it up again
            resting = self._resting_until.get(row.receiver)
            ready_at = max(row.next_attempt_at, resting) if resting is not None else row.next_attempt_at
            if ready_at <= now:
                heads.append(row)
            elif row.seq in self._pass_failures:
                waiting.append(ready_at)
                result.outcomes[row.notification_id] = Outcome.NOT_DUE
            elif settled is None:
                result.outcomes[row.notification_id] = (
                    Outcome.BLOCKED if resting is not None and resting > now else Outcome.NOT_DUE
                )
        return heads, waiting

    def _notification(self, row: OutboxRow) -> Notification:
        thread = firing = follows = None
        if row.kind == "firing" and row.thread_parent is not None:
            # The related alert's message: its thread is where this page goes. None (it was given up
            # as dead): a page of its own, which names the related alert instead.
            parent = self.log_store.thread_of(row.thread_parent.fingerprint, row.thread_parent.receiver)
            if parent is not None:
                thread, follows = ThreadRef(parent[0].channel, parent[0].ts), parent[1]
        elif row.kind not in ("firing", "digest"):
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
            follows=follows,
            created_at=row.created_at,
            digest=tuple(self.log_store.digest_items(row.notification_id)) if row.kind == "digest" else (),
        )

    def _describe(self, row: OutboxRow) -> str:
        return (
            f"{row.alert.severity} {row.kind} {row.fingerprint} to {row.receiver} ({row.reason})"
            f" [notification {row.notification_id}]"
        )

    def _attempt(self, row: OutboxRow) -> Outcome:
        """Exactly one send of `row` (or its lookup after an unknown outcome)."""
        notifier = self.notifiers.get(row.receiver)
        if notifier is None:
            return self._dead(row, f"no notifier configured for receiver {row.receiver!r}")
        notification = self._notification(row)
        if row.kind in ("mark_resolved", "note") and notification.thread is None:
            # The firing message never landed (dead or sent before this log existed): nothing to edit
            # or to reply to.
            self.log_store.delivered(row.seq, self.clock.now(), None, None)
            return Outcome.DELIVERED
        if (row.in_flight or row.ambiguous) and (found := self._find(notifier, notification)) is not None:
            return self._found(row, found, row.attempts)

        self.log_store.start_attempt(row.seq)
        try:
            receipt = notifier.send(notification)
        except DeliveryError as exc:
            error: DeliveryError = exc
        except Exception as exc:  # a notifier bug must not lose the alert; treat as unknown outcome
            log.exception("notifier %s raised unexpectedly for %s", row.receiver, self._describe(row))
            error = DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True, ambiguous=True)
        else:
            self.log_store.delivered(row.seq, self.clock.now(), receipt.channel, receipt.ts, receipt.thread_ts)
            self._delivered(row, row.attempts + 1)
            return Outcome.DELIVERED
        return self._after_failure(row, notifier, notification, error)

    def _after_failure(
        self, row: OutboxRow, notifier: Notifier, notification: Notification, error: DeliveryError
    ) -> Outcome:
        self.metrics.inc(m.ATTEMPT_FAILED, receiver=row.receiver)
        if error.retry_after_s is not None:
            self.metrics.inc(m.RATE_LIMITED, receiver=row.receiver)
        now = self.clock.now()
        if not error.retryable:
            return self._dead(row, f"not retryable: {error}")
        if error.ambiguous and (found := self._find(notifier, notification)) is not None:
            return self._found(row, found, row.attempts + 1)
        if now - row.created_at >= timedelta(seconds=self.policy.give_up_after_s):
            return self._dead(row, f"still failing after {self.policy.give_up_after_s:.0f}s: {error}")
        failures = self._pass_failures.get(row.seq, 0) + 1
        if error.retry_after_s is not None and error.retry_after_s > self.policy.max_retry_after_s:
            until = self._rest(row, error, now + timedelta(seconds=error.retry_after_s))
            log.warning(
                "receiver %s asked to wait %.0fs (Retry-After); deferring %s to %s",
                row.receiver,
                error.retry_after_s,
                self._describe(row),
                until.isoformat(),
            )
            return Outcome.DEFERRED
        if failures >= self.policy.max_attempts:
            return self._failed_pass(row, error, now, failures)
        self._pass_failures[row.seq] = failures
        self.metrics.inc(m.RETRIES, receiver=row.receiver)
        delay = retry_delay(failures, error.retry_after_s, self.policy)
        self._rest(row, error, now + timedelta(seconds=delay))
        log.warning(
            "attempt %d/%d of %s failed (%s); retrying in %.2fs",
            failures,
            self.policy.max_attempts,
            self._describe(row),
            error,
            delay,
        )
        return Outcome.NOT_DUE

    def _rest(self, row: OutboxRow, error: DeliveryError, until: datetime) -> datetime:
        """Schedule the row's next attempt and rest its receiver until then: whichever notification
        is most urgent at that moment goes next (never sooner than the receiver asked)."""
        self.log_store.failed(row.seq, str(error), until, error.ambiguous)
        self._resting_until[row.receiver] = until
        if until > self.clock.now():
            self._late.add(row.seq)
        return until

    def _delivered(self, row: OutboxRow, tries: int) -> None:
        now = self.clock.now()
        late_s = max(0.0, (now - row.created_at).total_seconds())
        self._pass_failures.pop(row.seq, None)
        self._resting_until.pop(row.receiver, None)
        self.metrics.inc(m.DELIVERED, receiver=row.receiver, kind=row.kind)
        self.metrics.observe(m.DELIVERY_LATENCY, late_s, receiver=row.receiver)
        fields = {
            "decision": "delivered",
            "reason": row.reason,
            "fingerprint": row.fingerprint,
            "rule": row.alert.rule,
            "agent_id": row.alert.agent_id,
            "severity": row.alert.severity,
            "kind": row.kind,
            "receiver": row.receiver,
            "notification_id": row.notification_id,
            "tries": tries,
            "late_s": round(late_s, 3),
        }
        if row.seq in self._late or tries > 1:
            self._late.discard(row.seq)
            log.warning(
                "ALERT DELIVERED after %d tries (%.1f s late): %s", tries, late_s, self._describe(row), extra=fields
            )
        else:
            log.info("notified %s after 1 attempt", self._describe(row), extra=fields)

    def _find(self, notifier: Notifier, notification: Notification) -> Receipt | None:
        try:
            return notifier.find_delivered(notification)
        except Exception as exc:  # the lookup is best effort; sending again is the fallback
            log.warning("could not check whether %s arrived: %s", notification.notification_id, exc)
            return None

    def _found(self, row: OutboxRow, receipt: Receipt, tries: int) -> Outcome:
        self.log_store.delivered(row.seq, self.clock.now(), receipt.channel, receipt.ts, receipt.thread_ts)
        self.metrics.inc(m.RECOVERED_AMBIGUOUS, receiver=row.receiver)
        log.info("%s had arrived despite the failed/unknown response; not sending again", self._describe(row))
        self._delivered(row, max(1, tries))
        return Outcome.FOUND

    def _failed_pass(self, row: OutboxRow, error: DeliveryError, now: datetime, attempts: int) -> Outcome:
        # A receiver that said when it will take us again is tried again then, not after a fixed rest.
        rest_s = error.retry_after_s if error.retry_after_s is not None else self.policy.defer_s
        self._pass_failures.pop(row.seq, None)
        until = self._rest(row, error, now + timedelta(seconds=rest_s))
        self.metrics.inc(m.PASS_FAILED, receiver=row.receiver)
        log.error(
            "ALERT NOT DELIVERED (yet): %s failed %d attempts (last error: %s); kept pending, next pass at %s"
            " (a line 'ALERT DELIVERED after N tries' follows when it goes out)",
            self._describe(row),
            attempts,
            error,
            until.isoformat(),
        )
        return Outcome.FAILED

    def _dead(self, row: OutboxRow, why: str) -> Outcome:
        self._pass_failures.pop(row.seq, None)
        self._late.discard(row.seq)
        self.log_store.dead(row.seq, why)
        self.metrics.inc(m.DEAD, receiver=row.receiver)
        log.critical(
            "ALERT DELIVERY ABANDONED: %s: %s (kept as 'dead' in the notification log)",
            self._describe(row),
            why,
        )
        return Outcome.DEAD
