"""Drivers of the alert pipeline: the thin Kafka adapter for `agent-alerts`, and a JSONL file runner
(the backtest's `--alerts-out`, for demos).

At-least-once from the topic: an alert is written to the notification log's `active` table by
`receive()`, and (with the Kafka log, `alerts.partitions`) acked by the broker, before its offset is
committed, so a crash after the commit loses nothing (the next owner of the partition rebuilds
groups and reminders from the log) and a crash before it replays alerts that dedup then
recognises. Per-fingerprint order holds because the topic is keyed by agent id (all of an agent on
one partition).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import CollectorRegistry

from alerts.clock import SystemClock
from alerts.config import AlertingConfig, ReceiverConfig, RouteConfig
from alerts.errors import DeliveryError, NotificationLogError
from alerts.metrics import AlertMetrics
from alerts.notification_log import ChannelIdCache, SqliteNotificationLog
from alerts.notifiers.base import Notifier
from alerts.notifiers.console import ConsoleNotifier
from alerts.notifiers.slack import SlackNotifier
from alerts.observability import ObservabilityServer, PipelineCollector, PipelineState, health
from alerts.partitions import KafkaLogPipelines, PipelineSet, SqliteLogPipelines
from alerts.pipeline import AlertPipeline, build_notifiers
from alerts.runbooks import runbook_first_action
from alerts.silence_kafka import KafkaSilenceStore
from alerts.silences import SilenceSource
from monitor.settings import PLACEHOLDER_RUNBOOK_BASE_URL, Settings

log = logging.getLogger("agentmon.alerts.runner")
CONSOLE_RECEIVER = "console"


def with_console(config: AlertingConfig) -> AlertingConfig:
    """Every alert also to the console (demo): a catch-all route that continues matching."""
    if any(r.name == CONSOLE_RECEIVER for r in config.receivers):
        return config
    return config.model_copy(
        update={
            "receivers": [*config.receivers, ReceiverConfig(name=CONSOLE_RECEIVER, kind="console")],
            "routes": [
                RouteConfig(name="console", receivers=[CONSOLE_RECEIVER], continue_matching=True),
                *config.routes,
                # without any other route the default receiver must still get everything
                RouteConfig(name="default", receivers=[config.default_receiver]),
            ],
        }
    )


def _notifiers(settings: Settings, console: bool, channel_ids: dict[str, str]) -> dict[str, Notifier]:
    """One notifier per receiver, shared by the pipelines of every partition (settings already carry
    the console route when `console`)."""
    config = settings.alerting
    notifiers = build_notifiers(settings, channel_ids=channel_ids)
    if console and CONSOLE_RECEIVER not in notifiers:
        notifiers[CONSOLE_RECEIVER] = ConsoleNotifier(
            first_action=lambda rule: runbook_first_action(rule, config.runbooks_dir, config.runbook_first_actions)
        )
    return notifiers


def build_pipeline(
    settings: Settings,
    *,
    silences: SilenceSource | None = None,
    console: bool = False,
    metrics: AlertMetrics | None = None,
    notifiers: dict[str, Notifier] | None = None,
) -> AlertPipeline:
    config = with_console(settings.alerting) if console else settings.alerting
    settings = settings.model_copy(update={"alerting": config})
    store = SqliteNotificationLog(config.notification_log_path)
    if notifiers is None:
        notifiers = build_notifiers(settings, channel_ids=ChannelIdCache(store))
    if console and CONSOLE_RECEIVER not in notifiers:
        notifiers[CONSOLE_RECEIVER] = ConsoleNotifier(
            first_action=lambda rule: runbook_first_action(rule, config.runbooks_dir, config.runbook_first_actions)
        )
    return AlertPipeline(
        config,
        notifiers=notifiers,
        notification_log=store,
        silences=silences,
        clock=SystemClock(),
        metrics=metrics,
    )


def run_alerts_from_file(settings: Settings, path: Path, *, console: bool = True) -> int:
    try:
        pipeline = build_pipeline(settings, console=console)
    except ValueError as exc:
        print(f"agentmon alerts: {exc}", file=sys.stderr)
        return 2
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                pipeline.receive_raw(line, where=f"{path}:{number}")
    pipeline.flush()
    counts = pipeline.log_store.counts()
    print(f"notifications: {counts}", file=sys.stderr)
    return 0 if not counts.get("pending") and not counts.get("dead") else 1


async def run_alerts_from_kafka(
    settings: Settings,
    *,
    group_id: str = "agentmon-alerts",
    console: bool = False,
    stop: asyncio.Event | None = None,
    tick_s: float = 1.0,
) -> int:
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if stop is None:  # a CLI run: stop on Ctrl-C / SIGTERM
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)

    config = with_console(settings.alerting) if console else settings.alerting
    settings = settings.model_copy(update={"alerting": config})
    warn_placeholder_runbooks(settings)
    silences = await KafkaSilenceStore(settings).start()
    silences.follow()
    metrics = AlertMetrics()
    clock = SystemClock()
    resting: dict[str, datetime] = {}  # a receiver that asked us to wait rests for every partition
    owner: KafkaLogPipelines | SqliteLogPipelines
    try:
        channel_ids: dict[str, str] = {}
        notifiers = _notifiers(settings, console, channel_ids)
        await asyncio.to_thread(resolve_slack_channels, notifiers)

        def factory(store: SqliteNotificationLog) -> AlertPipeline:
            return AlertPipeline(
                config,
                notifiers=notifiers,
                notification_log=store,
                silences=silences,
                clock=clock,
                metrics=metrics,
                resting=resting,
            )

        if config.notification_log == "sqlite":
            owner = SqliteLogPipelines(settings, factory)
        else:
            owner = await KafkaLogPipelines.start(settings, factory)
    except (ValueError, NotificationLogError, KafkaError) as exc:
        await silences.stop()
        print(f"agentmon alerts: {exc}", file=sys.stderr)
        return 2
    pipelines = PipelineSet(owner, clock)
    server = _serve(settings, pipelines, metrics) if settings.alerting.http_port is not None else None
    consumer = AIOKafkaConsumer(
        **settings.kafka.client_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    consumer.subscribe([settings.topics.alerts], listener=owner.listener())
    log.info(
        "alert pipeline consuming %s as %s; notification log: %s",
        settings.topics.alerts,
        group_id,
        owner.describe(),
        extra={"group_id": group_id, "notification_log": config.notification_log},
    )
    try:
        while not stop.is_set():
            if isinstance(owner, KafkaLogPipelines):
                await _take_missing(consumer, owner)
            batch = await consumer.getmany(timeout_ms=int(tick_s * 1000))
            if batch:
                offsets: dict[TopicPartition, int] = {}
                async with owner.lock:
                    for tp, records in batch.items():
                        pipeline = owner.pipeline_for(tp.partition)
                        if pipeline is None:
                            continue  # not ours (revoked, or its log unread): not committed, read again
                        for record in records:
                            if record.value is not None:
                                where = f"{tp.topic}/{tp.partition}@{record.offset}"
                                pipeline.receive_raw(record.value, where=where)
                        offsets[tp] = records[-1].offset + 1
                    try:
                        # received == in the notification log's `active` table, acked before the commit
                        await owner.persist()
                    except NotificationLogError as exc:
                        log.error("%s; not committing, the alerts will be read again", exc)
                        offsets = {}
                if offsets:
                    try:
                        await consumer.commit(offsets)
                    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
                        # a rebalance took partitions away meanwhile: their new owner reads the log
                        # (persisted above) and sees these alerts again from the last commit
                        log.warning("offset commit skipped during a rebalance: %s", exc)
            async with owner.lock:
                try:
                    # Delivery may sleep between retries: keep the event loop (and Kafka heartbeats) free.
                    await asyncio.to_thread(pipelines.tick, tick_s)
                    await owner.persist()
                except NotificationLogError as exc:
                    # the broker did not take the log: nothing was sent without its in-flight mark; retried
                    log.error("%s; delivery waits for the notification log", exc)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        if server is not None:
            server.stop()
        with contextlib.suppress(NotificationLogError):
            await owner.persist()
        await consumer.stop()
        await owner.close()
        await silences.stop()
    return 0


async def _take_missing(consumer: AIOKafkaConsumer, owner: KafkaLogPipelines) -> None:
    """Partitions assigned whose log could not be read in the rebalance callback (the broker was
    away): read it now and go back to the committed offset, so their alerts are not skipped."""
    assigned = {tp.partition: tp for tp in consumer.assignment()}
    missing = sorted(set(assigned) - set(owner.owned()))
    if not missing:
        return
    try:
        await owner.take(missing)
    except (NotificationLogError, KafkaError) as exc:
        log.error("cannot take over partitions %s yet: %s", missing, exc)
        return
    for p in missing:
        tp = assigned[p]
        try:
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        except KafkaError as exc:  # IllegalStateError: a rebalance took it away meanwhile
            # Not read from its committed offset: drop the pipeline again, so that alerts fetched
            # before it existed are not skipped. Still assigned at the next loop: taken again here;
            # revoked: its new owner reads the log and the alerts from the committed offset.
            log.warning("partition %d changed hands while being taken over: %s", p, exc)
            await owner.release([p])


def resolve_slack_channels(notifiers: dict[str, Notifier]) -> None:
    """Each Slack receiver's channel name to its ID at start-up (the after-crash history lookup needs
    the ID); a failure is one clear ERROR line, and alerts are still posted."""
    for name, notifier in notifiers.items():
        if not isinstance(notifier, SlackNotifier):
            continue
        try:
            channel_id = notifier.resolve_channel()
        except DeliveryError as exc:
            hint = (
                "the Slack app lacks the scope channels:read (public channel) or groups:read (private channel):"
                " add it and reinstall the app, or configure the channel ID (C...)"
                if "missing_scope" in str(exc)
                else "check the token and the channel, or configure the channel ID (C...)"
            )
            log.error(
                "Slack receiver %s: cannot resolve channel %s to its ID (%s): %s; until then a post whose outcome"
                " is unknown cannot be looked up and may be repeated",
                name,
                notifier.channel,
                exc,
                hint,
                extra={"decision": "config", "reason": "slack channel not resolved", "receiver": name},
            )
            continue
        if channel_id is None:
            log.error(
                "Slack receiver %s: no channel %s visible to the bot: check the name, invite the bot, or configure"
                " the channel ID (C...)",
                name,
                notifier.channel,
                extra={"decision": "config", "reason": "slack channel not found", "receiver": name},
            )
        else:
            log.info("Slack receiver %s posts to %s (%s)", name, notifier.channel, channel_id)


def warn_placeholder_runbooks(settings: Settings) -> bool:
    """A runbook link to the placeholder repository sends on-call to someone else's docs: say so."""
    if settings.runbook_base_url.rstrip("/") != PLACEHOLDER_RUNBOOK_BASE_URL:
        return False
    log.warning(
        "runbook_base_url is the placeholder default %s: every alert's runbook link points there. Set"
        " AGENTMON_RUNBOOK_BASE_URL (or runbook_base_url in the settings file) to where your copy of"
        " runbooks/ is published",
        PLACEHOLDER_RUNBOOK_BASE_URL,
        extra={"decision": "config", "reason": "runbook_base_url is the placeholder default"},
    )
    return True


def _serve(settings: Settings, pipeline: PipelineState, metrics: AlertMetrics) -> ObservabilityServer | None:
    """/metrics and /healthz on the pipeline's own port. A port that cannot be bound is an ERROR but
    does not stop the alerts: the missing scrape is what Prometheus's `absent()` rule pages on."""
    cfg = settings.alerting
    assert cfg.http_port is not None
    registry = CollectorRegistry()
    registry.register(metrics.collector())
    registry.register(PipelineCollector(pipeline))
    try:
        server = ObservabilityServer(
            cfg.http_host, cfg.http_port, registry, lambda: health(pipeline, cfg.healthz_stale_s)
        )
    except OSError as exc:
        log.error(
            "NO /metrics AND /healthz: %s; alerts are still delivered (set alerting.http_port, or"
            " AGENTMON_ALERTING__HTTP_PORT)",
            exc,
        )
        return None
    return server.start()
