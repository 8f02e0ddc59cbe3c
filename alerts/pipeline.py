"""The alert pipeline: alert state changes in, notifications out, as a chain of small stages.

    receive (decode, drop stale) -> group (per agent, group_wait) -> mute (inhibit, silence)
        -> dedup (notification log, reason code) -> route (receivers) -> outbox -> deliver

`receive()` takes one state change (from an iterator in tests, from `agent-alerts` in production);
`tick()` runs everything that is due at the clock's now: flushes groups, re-evaluates still-firing
alerts (reminders after the repeat interval, alerts whose silence ended), and drains the outbox.
Every decision is logged with its reason code. Nothing here imports Kafka or faust.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from alerts import metrics as m
from alerts.clock import Clock, SystemClock
from alerts.config import AlertingConfig, ReceiverConfig
from alerts.dedup import DedupDecision, DedupReason, LogEntry, dedup_decision
from alerts.delivery import Deliverer, DrainResult
from alerts.group import Grouper
from alerts.metrics import AlertMetrics
from alerts.mute import Inhibitor, Mute, MuteStage, state_as_of
from alerts.notification_log import NewNotification, SqliteNotificationLog, ThreadParent
from alerts.notifiers.base import Notifier
from alerts.route import RouteDecision, route_alert
from alerts.runbooks import runbook_first_action
from alerts.silences import MemorySilenceStore, SilenceMuter, SilenceSource
from monitor.contract.alert import Alert, decode_alert
from monitor.settings import Settings

log = logging.getLogger("agentmon.alerts.pipeline")
PRUNE_EVERY = timedelta(hours=1)
HISTORY_PER_FINGERPRINT = 8
SILENCE_NOTE = "silence_note:"  # meta key per fingerprint: the silence noted in its thread


@dataclass(frozen=True, slots=True)
class Decision:
    """What happened to one alert state change at one evaluation (for logs and tests)."""

    fingerprint: str
    state: str
    mute: Mute | None = None
    dedup: DedupDecision | None = None
    route: RouteDecision | None = None

    @property
    def sent(self) -> bool:
        return self.dedup is not None and self.dedup.send

    def describe(self) -> str:
        if self.mute is not None:
            return self.mute.describe()
        assert self.dedup is not None
        text = self.dedup.reason.value
        return f"{text}; {self.route.reason} -> {', '.join(self.route.receivers)}" if self.route else text


@dataclass
class TickResult:
    decisions: list[Decision] = field(default_factory=list)
    drain: DrainResult = field(default_factory=DrainResult)


class AlertPipeline:
    def __init__(
        self,
        config: AlertingConfig,
        *,
        notifiers: Mapping[str, Notifier],
        notification_log: SqliteNotificationLog,
        silences: SilenceSource | None = None,
        clock: Clock | None = None,
        metrics: AlertMetrics | None = None,
        resting: dict[str, datetime] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.metrics = metrics or AlertMetrics()
        self.log_store = notification_log
        self.silences = silences if silences is not None else MemorySilenceStore()
        self.grouper = Grouper(
            timedelta(seconds=config.group_wait_s),
            {sev: timedelta(seconds=s) for sev, s in config.group_wait_by_severity_s.items()},
        )
        self.repeat_interval = timedelta(seconds=config.repeat_interval_s)
        self.related_thread = timedelta(seconds=config.related_thread_s)
        self._receiver_kinds = {r.name: r.kind for r in config.all_receivers()}
        self._receiver_channels = {r.name: r.channel for r in config.all_receivers()}  # None: the default
        missing = sorted(set(self._receiver_kinds) - set(notifiers))
        if missing:
            log.warning("receivers %s have no notifier; their notifications will be marked dead", missing)
        # Latest state change per fingerprint that is not settled yet (rebuilt after a restart), and
        # the recent state changes of each, so inhibition can ask "was the source firing at t?".
        self._active: dict[str, Alert] = {a.fingerprint: a for a in notification_log.active()}
        self._history: dict[str, list[Alert]] = {fp: [a] for fp, a in self._active.items()}
        self._watermark: datetime | None = max((a.at for a in self._active.values()), default=None)
        now = self.clock.now()
        for alert in self._active.values():
            self.grouper.add(alert, now)
        self.mute_stage = MuteStage([Inhibitor(config.inhibit_rules, self._firing_at), SilenceMuter(self.silences)])
        self.deliverer = Deliverer(notification_log, notifiers, config.retry, self.clock, self.metrics, resting)
        self._pruned_at: datetime | None = None
        self.last_loop_at: datetime | None = None  # the dead-man's metric

    # --- stage 1: receive ---------------------------------------------------------------------
    def receive(self, alert: Alert) -> bool:
        """Accept one alert state change; False if it is older than what we hold for its fingerprint
        (a replay or an out-of-order duplicate)."""
        self.metrics.inc(m.RECEIVED, state=alert.state)
        held = self._active.get(alert.fingerprint)
        if held is not None and (alert.at < held.at or alert.alert_id == held.alert_id):
            log.debug(
                "ignored %s %s (%s): not newer than held state",
                alert.fingerprint,
                alert.state,
                alert.alert_id,
            )
            return False
        self._active[alert.fingerprint] = alert
        history = self._history.setdefault(alert.fingerprint, [])
        history.append(alert)
        history.sort(key=lambda a: a.at)
        del history[:-HISTORY_PER_FINGERPRINT]
        self._watermark = alert.at if self._watermark is None else max(self._watermark, alert.at)
        self.log_store.save_active(alert)
        self.grouper.add(alert, self.clock.now())
        return True

    def receive_raw(self, raw: bytes | str, where: str = "input") -> bool:
        """Decode one message of `agent-alerts`; a bad one is logged loudly and counted, never fatal."""
        try:
            alert = decode_alert(raw)
        except (ValidationError, ValueError) as exc:
            self.metrics.inc(m.INVALID)
            log.error("invalid alert message at %s: %s", where, str(exc).splitlines()[0][:300])
            return False
        return self.receive(alert)

    # --- the rest, when due -------------------------------------------------------------------
    def tick(self, budget_s: float | None = None) -> TickResult:
        """`budget_s` bounds how long delivery may wait for retries inside this call (see
        `Deliverer.drain`); the Kafka runner passes its poll interval."""
        result = TickResult()
        now = self.clock.now()
        grouped: set[str] = set()
        for group in self.grouper.due(now):
            for alert in group:
                grouped.add(alert.fingerprint)
                result.decisions.append(self._decide(alert, reevaluation=False))
        pending_in_groups = self.grouper.pending_fingerprints()
        for alert in list(self._active.values()):
            if alert.state == "firing" and alert.fingerprint not in grouped | pending_in_groups:
                decision = self._decide(alert, reevaluation=True, event_time=self._watermark)
                if decision.sent:
                    result.decisions.append(decision)
        self._maybe_seal_digest(now)
        result.drain = self.deliverer.drain(budget_s)
        self._maybe_prune(now)
        self.last_loop_at = self.clock.now()
        return result

    def _maybe_prune(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        removed = self.log_store.prune(now - timedelta(seconds=self.config.notification_log_retention_s))
        if removed:
            log.info("pruned %d settled records from the notification log", removed)

    def run(self, alerts: Iterable[Alert], *, tick_every: int = 1) -> list[TickResult]:
        """Feed an iterator (tests, replays), ticking after every `tick_every` alerts and at the end."""
        results = []
        for i, alert in enumerate(alerts, start=1):
            self.receive(alert)
            if i % tick_every == 0:
                results.append(self.tick())
        results.append(self.tick())
        return results

    def flush(self) -> TickResult:
        """Decide every buffered group now, ignoring group_wait (shutdown, demo), and deliver."""
        result = TickResult()
        for group in self.grouper.flush_all():
            for alert in group:
                result.decisions.append(self._decide(alert, reevaluation=False))
        self.log_store.seal_digest(self._digest_receiver(), self.clock.now(), self.clock.now())
        result.drain = self.deliverer.drain()
        return result

    def _firing_at(self, event_time: datetime) -> list[Alert]:
        firing = []
        for history in self._history.values():
            current = state_as_of(history, event_time)
            if current is not None and current.state == "firing":
                firing.append(current)
        return firing

    def _decide(self, alert: Alert, *, reevaluation: bool, event_time: datetime | None = None) -> Decision:
        """A fresh state change is judged as of its own event time plus the group wait (a source
        firing up to group_wait later still inhibits it, as in Alertmanager); a re-evaluation of a
        still-firing alert as of the newest event time seen."""
        now = self.clock.now()
        level = logging.DEBUG if reevaluation else logging.INFO
        as_of = event_time or (alert.at + self.grouper.group_wait)
        mute = self.mute_stage.check(alert, now, as_of)
        if alert.state == "firing":
            self._note_silence(alert, mute, now)
        if mute is not None:
            self.metrics.inc(m.MUTED, kind=mute.kind)
            self._count_decision(mute.kind, reevaluation)
            log.log(
                level,
                "muted %s %s [%s]: %s",
                alert.fingerprint,
                alert.state,
                alert.alert_id,
                mute.describe(),
                extra=_decision_fields(alert, mute.kind, f"{mute.kind} by {mute.by}", by=mute.by, why=mute.reason),
            )
            return Decision(alert.fingerprint, alert.state, mute=mute)
        entry = self.log_store.entry(alert.fingerprint)
        dedup = dedup_decision(
            state=alert.state, alert_at=alert.at, entry=entry, now=now, repeat_interval=self.repeat_interval,
            episode_start=alert.episode_start,
        )
        self.metrics.inc(m.DEDUP, reason=dedup.reason.value)
        if not dedup.send or dedup.kind is None:
            self._count_decision("deduplicated", reevaluation)
            log.log(
                level,
                "not notifying %s %s [%s]: %s",
                alert.fingerprint,
                alert.state,
                alert.alert_id,
                dedup.reason,
                extra=_decision_fields(alert, "deduplicated", dedup.reason.value),
            )
            self._settle(alert, dedup)
            return Decision(alert.fingerprint, alert.state, dedup=dedup)
        if alert.rule in self.config.digest_rules:
            return self._digest(alert, dedup, entry, now, level)
        route = route_alert(
            alert,
            self.config.routes,
            agent_teams=self.config.agent_teams,
            default_receiver=self.config.default_receiver,
        )
        repeats = entry.repeats + 1 if (entry is not None and dedup.kind == "repeat") else 0
        notifications = []
        for receiver in route.receivers:
            parent = self._thread_parent(alert, receiver) if dedup.kind == "firing" else None
            notifications.append(
                NewNotification(receiver, dedup.kind, dedup.reason.value, alert, repeats, thread_parent=parent)
            )
            if dedup.kind == "resolved" and self._receiver_kinds.get(receiver) == "slack":
                notifications.append(NewNotification(receiver, "mark_resolved", dedup.reason.value, alert))
        new_entry = LogEntry(
            fingerprint=alert.fingerprint,
            state=alert.state,
            alert_id=alert.alert_id,
            alert_at=alert.at,
            notified_at=now,
            repeats=repeats,
        )
        inserted = self.log_store.record(new_entry, notifications, now)
        self.metrics.inc(m.ENQUEUED, amount=inserted)
        for receiver in route.receivers:
            self.metrics.inc(m.DECISIONS, decision="notified", receiver=receiver)
        threads = {n.receiver: n.thread_parent.fingerprint for n in notifications if n.thread_parent is not None}
        log.info(
            "notifying %s %s [%s]: %s; %s -> %s%s",
            alert.fingerprint,
            alert.state,
            alert.alert_id,
            dedup.reason,
            route.reason,
            ", ".join(route.receivers),
            "".join(f"; in the thread of {fp} ({r})" for r, fp in threads.items()),
            extra=_decision_fields(
                alert,
                "notified",
                dedup.reason.value,
                route=route.reason,
                receivers=list(route.receivers),
                **({"threads": threads} if threads else {}),
            ),
        )
        self._settle(alert, dedup)
        return Decision(alert.fingerprint, alert.state, dedup=dedup, route=route)

    def _thread_parent(self, alert: Alert, receiver: str) -> ThreadParent | None:
        """One thread per agent incident: the first of the alert's `related` alerts (oldest first) of
        the same agent whose page went, or is going, to the same Slack channel, and that is still
        firing or resolved within `related_thread_s` of this firing. Decided once, here, and kept in
        the outbox row, so a restart or another instance taking the partition over threads the same.

        A related alert with no message of its own finds nothing here, and this page goes out on its
        own, naming it by rule: one that was muted (silenced or inhibited: nobody was paged), a hygiene
        finding in the daily digest, or one that resolved within the group wait (collapsed, never
        sent). One grouped with this alert went out first in the group (event-time order), so its
        row exists and this page waits for its message. A page to another channel or receiver kind
        is posted normally and names the related alert by rule."""
        if self._receiver_kinds.get(receiver) != "slack" or alert.agent_id is None or not alert.related:
            return None
        if self.related_thread <= timedelta(0):
            return None
        channel = self._receiver_channels.get(receiver)
        same_channel = [receiver] + sorted(
            r for r, kind in self._receiver_kinds.items()
            if kind == "slack" and r != receiver and self._receiver_channels.get(r) == channel
        )
        for fingerprint in alert.related:
            if fingerprint == alert.fingerprint:
                continue
            entry = self.log_store.entry(fingerprint)
            if entry is None:
                continue  # never told (muted, collapsed, pruned): nothing to join
            if entry.state == "resolved" and alert.at - entry.alert_at > self.related_thread:
                continue
            for candidate in same_channel:
                posted = self.log_store.firing_message(fingerprint, candidate)
                if posted is not None and posted.agent_id == alert.agent_id:
                    return ThreadParent(fingerprint, candidate)
        return None

    def _digest(
        self, alert: Alert, dedup: DedupDecision, entry: LogEntry | None, now: datetime, level: int
    ) -> Decision:
        """A hygiene finding never pages: a first firing joins the daily digest, a resolve before the
        digest went out leaves it, a reminder is not sent (the next digest is the reminder)."""
        repeats = entry.repeats + 1 if (entry is not None and dedup.kind == "repeat") else 0
        new_entry = LogEntry(alert.fingerprint, alert.state, alert.alert_id, alert.at, now, repeats)
        receiver = self._digest_receiver()
        # a reminder (repeat) lists a still-open finding again in the next digest
        self.log_store.collect(new_entry, alert if dedup.kind != "resolved" else None, now)
        reason = (
            "hygiene finding resolved: not paged"
            if dedup.kind == "resolved"
            else f"hygiene finding: in the daily digest at {self.config.digest_hour_utc:02d}:00 UTC"
        )
        self.metrics.inc(m.DECISIONS, decision="digested", receiver=receiver)
        log.log(
            level,
            "digest %s %s [%s]: %s (%s)",
            alert.fingerprint,
            alert.state,
            alert.alert_id,
            reason,
            dedup.reason,
            extra=_decision_fields(alert, "digested", reason, dedup=dedup.reason.value, receivers=[receiver]),
        )
        self._settle(alert, dedup)
        return Decision(alert.fingerprint, alert.state, dedup=DedupDecision(False, dedup.reason))

    def _note_silence(self, alert: Alert, mute: Mute | None, now: datetime) -> None:
        """A silence that mutes a firing alert humans were told about, and the silence's end while the
        alert still fires, are noted in the alert's thread once each, with author and reason."""
        key = SILENCE_NOTE + alert.fingerprint
        noted = self.log_store.get_meta(key)
        held = json.loads(noted) if noted else None
        if mute is not None and mute.kind == "silenced":
            if held is not None and held.get("id") == mute.by:
                return
            entry = self.log_store.entry(alert.fingerprint)
            if entry is None or entry.state != "firing":
                return  # never told: nothing to explain in a thread
            until = f" until {_utc_text(mute.ends_at)}" if mute.ends_at is not None else ""
            text = (
                f"Silenced by {mute.author or 'unknown'}{until} (silence {mute.by}): {mute.comment or mute.reason}."
                " Reminders are muted; the resolve will still be posted here."
            )
            self._enqueue_note(alert, f"silence {mute.by} began", text, now)
            self.log_store.set_meta(key, json.dumps({"id": mute.by, "author": mute.author, "comment": mute.comment}))
        elif held is not None:
            text = (
                f"Silence {held.get('id')} by {held.get('author') or 'unknown'} ended at {_utc_text(now)}"
                f" ({held.get('comment') or 'no reason given'}). Still firing: reminders resume."
            )
            self._enqueue_note(alert, f"silence {held.get('id')} ended", text, now)
            self.log_store.delete_meta(key)

    def _enqueue_note(self, alert: Alert, key: str, text: str, now: datetime) -> None:
        config = self.config
        route = route_alert(
            alert, config.routes, agent_teams=config.agent_teams, default_receiver=config.default_receiver
        )
        receivers = [r for r in route.receivers if self._receiver_kinds.get(r) == "slack"]
        notes = [NewNotification(r, "note", text, alert, key=key) for r in receivers]
        inserted = self.log_store.record(None, notes, now) if notes else 0
        self.metrics.inc(m.ENQUEUED, amount=inserted)
        log.info(
            "note in the thread of %s: %s",
            alert.fingerprint,
            text,
            extra=_decision_fields(alert, "noted", key, receivers=receivers, note=text),
        )

    def _digest_receiver(self) -> str:
        return self.config.digest_receiver or self.config.default_receiver

    def _maybe_seal_digest(self, now: datetime) -> None:
        slot = now.replace(hour=self.config.digest_hour_utc, minute=0, second=0, microsecond=0)
        if slot > now:
            slot -= timedelta(days=1)
        sealed = self.log_store.digest_slot()
        if sealed is None:  # a new log: the first digest goes out at the next slot
            self.log_store.set_meta("digest_slot", slot.isoformat())
            return
        if sealed >= slot:
            return
        count = self.log_store.seal_digest(self._digest_receiver(), slot, now)
        if count:
            self.metrics.inc(m.ENQUEUED)
            log.info(
                "daily digest of %d hygiene findings -> %s",
                count,
                self._digest_receiver(),
                extra={"decision": "digest", "reason": "daily digest", "findings": count},
            )

    def _count_decision(self, decision: str, reevaluation: bool) -> None:
        if not reevaluation:  # a still-firing alert is re-evaluated every loop: count it once
            self.metrics.inc(m.DECISIONS, decision=decision, receiver="")

    # --- what /metrics and /healthz read ----------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    def queue_stats(self) -> dict[str, tuple[int, datetime]]:
        return self.log_store.pending_stats()

    def grouped(self) -> int:
        return self.grouper.pending()

    def _settle(self, alert: Alert, dedup: DedupDecision) -> None:
        """A decided resolve (sent or not) ends the fingerprint's life in the active set."""
        if alert.state == "resolved" or dedup.reason == DedupReason.STALE:
            held = self._active.get(alert.fingerprint)
            if held is not None and held.alert_id == alert.alert_id:
                del self._active[alert.fingerprint]
                self._history.pop(alert.fingerprint, None)
            self.log_store.drop_active(alert.fingerprint, alert.alert_id)
            if alert.state == "resolved" and self.log_store.get_meta(SILENCE_NOTE + alert.fingerprint) is not None:
                self.log_store.delete_meta(SILENCE_NOTE + alert.fingerprint)

    def active_alerts(self) -> list[Alert]:
        return list(self._active.values())


def _utc_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _decision_fields(alert: Alert, decision: str, reason: str, **more: object) -> dict[str, object]:
    """The structured fields of one decision's log line (JSON logs: `alerts.observability`)."""
    return {
        "decision": decision,
        "reason": reason,
        "fingerprint": alert.fingerprint,
        "alert_id": alert.alert_id,
        "rule": alert.rule,
        "agent_id": alert.agent_id,
        "severity": alert.severity,
        "state": alert.state,
        **more,
    }


def build_notifiers(
    settings: Settings,
    *,
    channel_ids: MutableMapping[str, str] | None = None,
    console_stream: TextIO | None = None,
    first_action: Callable[[str], str | None] | None = None,
) -> dict[str, Notifier]:
    """One notifier per configured receiver. The Slack token comes only from `settings.slack`."""
    cfg = settings.alerting
    if first_action is None:

        def first_action(rule: str) -> str | None:
            return runbook_first_action(rule, Path(cfg.runbooks_dir), cfg.runbook_first_actions)

    out: dict[str, Notifier] = {}
    for receiver in cfg.all_receivers():
        out[receiver.name] = _notifier_for(receiver, settings, channel_ids, console_stream, first_action)
    return out


def _notifier_for(
    receiver: ReceiverConfig,
    settings: Settings,
    channel_ids: MutableMapping[str, str] | None,
    console_stream: TextIO | None,
    first_action: Callable[[str], str | None],
) -> Notifier:
    from alerts.notifiers.alertmanager import AlertmanagerNotifier
    from alerts.notifiers.console import ConsoleNotifier
    from alerts.notifiers.slack import SlackNotifier
    from alerts.notifiers.webhook import WebhookNotifier

    retry = settings.alerting.retry
    if receiver.kind == "slack":
        token = settings.slack.bot_token
        if token is None:
            raise ValueError(
                f"receiver {receiver.name!r} is a Slack receiver but no bot token is set: set"
                " AGENTMON_SLACK__BOT_TOKEN (or slack.bot_token in the config file), or, for a local demo,"
                ' AGENTMON_ALERTING__RECEIVERS=\'[{"name": "console", "kind": "console"}]\''
                " AGENTMON_ALERTING__DEFAULT_RECEIVER=console"
            )
        return SlackNotifier(
            token=token,
            channel=receiver.channel or settings.slack.channel,
            api_url=settings.slack.api_url,
            timeout_s=retry.request_timeout_s,
            first_action=first_action,
            silence_command=settings.alerting.silence_command,
            channel_ids=channel_ids,
        )
    if receiver.kind == "webhook":
        assert receiver.url is not None
        return WebhookNotifier(receiver.url, receiver.secret, timeout_s=retry.request_timeout_s)
    if receiver.kind == "alertmanager":
        assert receiver.url is not None
        hold_s = receiver.hold_s or 1.5 * settings.alerting.repeat_interval_s
        return AlertmanagerNotifier(
            receiver.url, hold_s=hold_s, timeout_s=retry.request_timeout_s, now=lambda: datetime.now(UTC)
        )
    return ConsoleNotifier(stream=console_stream, first_action=first_action)
