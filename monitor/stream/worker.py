"""The stream worker: a thin faust-streaming shell around `PartitionEngine` (the pure core).

    records of agent-events ──► PartitionEngine.process ──► agent-alerts (key fingerprint)
                                   │ (one per partition)  ├─► agent-rollups (key agent/hour)
                                   │                      └─► agent-events-dlq (broken records)
                                   └─ every few seconds: checkpoint ──► changelog table, then ack

faust's fetch loop hands each record of agent-events straight to `WorkerRuntime.take`
(faust_direct.py); faust still runs the group, the assignment, the table recovery and the commits.
Hot state lives in plain objects of the pure core; nothing is written to a table per event.
Every `checkpoint_interval_s` (or `checkpoint_max_records` records) each partition's engine
snapshot and its next offset go to a changelog-backed table, and only then are the records it
covers acked, so the offsets faust commits never run ahead of the persisted state. Outputs are
enqueued with `send_soon` before that, and faust flushes its producer before each commit.
After a crash the restored state skips the records it already holds (see monitor/core/partition.py).

Baselines can be frozen by command: the worker follows the compacted `agent-baseline-control`
topic (monitor/kafka/baseline_control.py) and applies the commands in force to every partition engine it
holds, when the engine is created or restored and on every tick; never on the per-record path.

Modules: app.py (the faust app and its wiring), runtime.py (`WorkerRuntime`: tick, watches, views)
on route.py (the record route), checkpointing.py and engines.py; views.py (/metrics, /state).
This module is the entry point: the process's logging and environment, and `run_worker`.

Operations: `/healthz`, `/metrics` (Prometheus) and `/state` (JSON) on the worker's web port;
logs as JSON lines; SIGTERM stops gracefully (faust commits what is acked and flushes).
"""

from __future__ import annotations

import os
from typing import Any

from monitor.logs import JsonLogFormatter
from monitor.settings import Settings
from monitor.stream import kafka_backoff
from monitor.stream.app import AgentmonApp, create_app
from monitor.stream.log_repeats import RepeatSuppressor
from monitor.stream.runtime import WorkerRuntime
from monitor.stream.stop_deadline import DeadlineWorker
from monitor.stream.views import WorkerCollector

__all__ = ["AgentmonApp", "JsonLogFormatter", "WorkerCollector", "WorkerRuntime", "create_app", "logging_config",
           "run_worker", "worker_environment"]


def logging_config(level: str) -> dict[str, Any]:
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLogFormatter}},
        # the Kafka client's repeated lines (a broker outage) are thinned: monitor/stream/log_repeats.py
        "filters": {"repeats": {"()": RepeatSuppressor}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr",
                                "filters": ["repeats"]}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}, "faust": {"level": "WARNING"}, "mode": {"level": "WARNING"}},
    }


def worker_environment(settings: Settings, app_id: str, web_port: int) -> dict[str, str]:
    """The environment of an `agentmon worker` subprocess that sees these Kafka and topic settings
    (the demo and the tests start workers this way); other AGENTMON_ variables are left out."""
    t = settings.topics
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTMON_")}
    env.update({
        "AGENTMON_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "AGENTMON_TOPICS__EVENTS": t.events, "AGENTMON_TOPICS__DLQ": t.dlq, "AGENTMON_TOPICS__ALERTS": t.alerts,
        "AGENTMON_TOPICS__ROLLUPS": t.rollups, "AGENTMON_TOPICS__SILENCES": t.silences,
        "AGENTMON_TOPICS__BASELINE_CONTROL": t.baseline_control,
        "AGENTMON_TOPICS__EVENTS_PARTITIONS": str(t.events_partitions),
        "AGENTMON_WORKER__APP_ID": app_id, "AGENTMON_WORKER__WEB_PORT": str(web_port),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT (faust's worker stops gracefully on both)."""
    if settings.worker.event_loop == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")  # before anything creates a loop: faust's own `--loop uvloop`
    kafka_backoff.install()  # a broker that refuses connections is retried with backoff, not 250 times a second
    app = create_app(settings)
    worker = DeadlineWorker(app, loglevel=settings.worker.log_level, quiet=True,
                            logging_config=logging_config(settings.worker.log_level),
                            stop_timeout_s=settings.worker.stop_timeout_s)
    worker.execute_from_commandline()
