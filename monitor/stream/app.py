"""The worker's faust app: `AgentmonApp` (faust's App with a clean stop, the direct record route
and a short fetch wait) and `create_app`, which wires the topics, the checkpoint table, the
runtime, its timers and tasks, and the web pages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import StreamT
from prometheus_client import CollectorRegistry

from monitor.settings import KafkaSettings, Settings
from monitor.stream.checkpointing import CHECKPOINT_TABLE, CheckpointTable
from monitor.stream.faust_direct import DirectTransport
from monitor.stream.faust_fetch import DEFAULT_FETCH_MAX_WAIT_MS
from monitor.stream.route import HELD_LOOK_EVERY_S
from monitor.stream.runtime import WorkerRuntime
from monitor.stream.views import WorkerCollector, add_pages

log = logging.getLogger("agentmon.worker")


class AgentmonApp(faust.App):
    """faust's App with these changes: a clean stop (SIGTERM) stops following baseline commands
    and checkpoints every partition before faust stops the consumer and commits, so a restart
    resumes exactly where this one stopped; faust's Monitor sensor is left out unless
    `worker.faust_monitor` (it does bookkeeping on every event for faust's own stats pages, which
    agentmon's /metrics does not read); its consumer fetches with a short wait (faust_fetch.py)
    and hands the records of `direct_topic` (the events topic) straight to `direct_take`
    (`WorkerRuntime.take`, faust_direct.py)."""

    keep_faust_monitor = True
    fetch_max_wait_ms = DEFAULT_FETCH_MAX_WAIT_MS
    direct_topic = ""
    direct_take: Callable[[Any], None] | None = None

    def _new_transport(self) -> Any:
        return DirectTransport(self.conf.broker_consumer, self)

    def on_init_dependencies(self) -> Any:
        dependencies = super().on_init_dependencies()
        if not self.keep_faust_monitor:
            self.sensors.remove(self.monitor)
        return dependencies

    async def on_start(self) -> None:
        await super().on_start()
        runtime: WorkerRuntime | None = getattr(self, "agentmon", None)
        if runtime is not None:
            # Not a timer: faust starts timers (and the web server) only once the first table
            # recovery has completed, and that recovery is one of the things this loop watches.
            self.add_future(runtime.watch_recovery_forever())

    async def on_stop(self) -> None:
        runtime: WorkerRuntime | None = getattr(self, "agentmon", None)
        if runtime is not None:
            runtime.stopping = True  # nothing is applied after the final checkpoints
            await runtime.control.stop()
            runtime.checkpoint_all()
        await super().on_stop()


def broker_urls(kafka: KafkaSettings) -> list[str]:
    return [f"kafka://{hostport.strip()}" for hostport in kafka.bootstrap_servers.split(",") if hostport.strip()]


def broker_credentials(kafka: KafkaSettings) -> Any:
    options = kafka.client_options()
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=options["sasl_plain_username"], password=options["sasl_plain_password"],
            ssl_context=options.get("ssl_context"), mechanism=options["sasl_mechanism"])
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return None


def create_app(settings: Settings, *, registry: CollectorRegistry | None = None) -> faust.App:
    """Build the worker's faust app (nothing happens at import time)."""
    w = settings.worker
    partitions = settings.topics.events_partitions
    data_dir: dict[str, Any] = {"datadir": w.data_dir} if w.data_dir else {}  # else faust's {app_id}-data
    app = AgentmonApp(
        w.app_id,
        broker=broker_urls(settings.kafka),
        broker_credentials=broker_credentials(settings.kafka),
        store="memory://",
        topic_partitions=partitions,
        topic_replication_factor=settings.topics.replication_factor,
        consumer_auto_offset_reset="earliest",
        web_enabled=True, web_host=w.web_host, web_port=w.web_port, web_bind=w.web_host,
        # Records are acked after their checkpoint; waiting for all acks at shutdown could hang.
        stream_wait_empty=False,
        producer_acks=-1,
        # A crashed worker's partitions move after this long (faust's default is 60 s).
        broker_session_timeout=w.session_timeout_s,
        broker_heartbeat_interval=min(3.0, w.session_timeout_s / 3),
        producer_compression_type="lz4",
        topic_disable_leader=True,
        **data_dir,
    )
    app.fetch_max_wait_ms = w.fetch_max_wait_ms  # before anything creates the transport

    def raw_topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", **kw)

    events = raw_topic(settings.topics.events, partitions=partitions)
    topics = {"alerts": raw_topic(settings.topics.alerts), "rollups": raw_topic(settings.topics.rollups),
              "dlq": raw_topic(settings.topics.dlq)}
    table = CheckpointTable(
        app, name=CHECKPOINT_TABLE, default=None, beacon=app.tables.beacon, key_type=str, value_type=bytes,
        partitions=partitions, help="engine checkpoints per input partition",
        extra_topic_configs={"max.message.bytes": str(2 * 1024 * 1024)},
    )
    app.tables.add(table)
    app.keep_faust_monitor = w.faust_monitor
    runtime = WorkerRuntime(app, settings, table, topics)
    app.agentmon = runtime  # type: ignore[attr-defined]  # for the CLI, tests and pages
    app.direct_topic, app.direct_take = settings.topics.events, runtime.take  # read by DirectConsumer
    registry = registry or CollectorRegistry()
    registry.register(WorkerCollector(runtime))

    @app.agent(events, name="agentmon.events", concurrency=1)
    async def subscribe_events(stream: StreamT) -> None:
        # Subscribes the consumer to the events topic; its records go to `runtime.take` and never
        # reach this stream.
        async for _ in stream.noack():  # type: ignore[attr-defined]  # Stream has it, StreamT not
            pass

    @app.task
    async def refetch_held() -> None:
        # A loop, not a faust timer: mode's timers log a warning each time they run late, which an
        # interval this short on a busy event loop would do often.
        while not app.should_stop:
            await asyncio.sleep(HELD_LOOK_EVERY_S)
            runtime.refetch_held()

    @app.timer(interval=w.tick_interval_s)
    async def tick() -> None:
        await runtime.tick()

    @app.task
    async def baseline_control() -> None:
        # Loads the commands in force, then follows them; on errors it logs and retries (bounded
        # backoff) while the stream runs on. Cancelled with the app's other tasks at stop.
        await runtime.control.start_following()

    async def on_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        await runtime.revoke({tp.partition for tp in revoked if tp.topic == settings.topics.events})

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode's signal typing

    if w.weekly_report:
        @app.task
        async def weekly_report() -> None:
            from monitor.report.cli import run_scheduled_report
            from monitor.report.week import next_report_due

            cfg = settings.report
            while not app.should_stop:
                due = next_report_due(datetime.now(UTC), cfg.weekday, cfg.time_of_day)
                while not app.should_stop and (wait := (due - datetime.now(UTC)).total_seconds()) > 0:
                    await asyncio.sleep(min(wait, 60.0))
                if app.should_stop or not runtime.owns(0):
                    continue  # another worker owns partition 0 and runs it
                try:
                    review = await run_scheduled_report(settings, due, upload=settings.slack.bot_token is not None)
                    log.info("weekly review %s written", review.week)
                except Exception:  # noqa: BLE001 - a failed report must not stop the stream
                    log.exception("weekly review at %s failed", due.isoformat())

    add_pages(app, runtime, registry)
    return app
