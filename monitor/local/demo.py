"""`agentmon demo` (`make run`): the whole pipeline on the local default, as a new user sees it.

1. starts the local Kafka (KRaft, 127.0.0.1) unless it runs, and creates this run's topics;
2. simulates nine days of four agents ending now, with two incidents that start and end
   (an upstream auth change that makes every tool call fail; escalations rising), and emits them;
3. runs a real `agentmon worker` process on them and the alert pipeline with the console
   notifier in this process, so alerts print as the worker publishes them;
4. waits until the worker has applied every event, stops both, and compares the live alerts with
   a backtest of the same events.

Each run uses its own topics and consumer group (`demo-<run>-…`), so runs never mix. The broker
stays up afterwards (`agentmon broker stop` stops it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.core.engine import Engine
from monitor.core.pricing import PricingTable
from monitor.core.replay import replay
from monitor.kafka.emit import emit_lines
from monitor.kafka.topics import create_topics
from monitor.local.broker import LocalBroker, free_port
from monitor.local.simulate import Incident, default_agents, generate
from monitor.settings import Settings, TopicSettings
from monitor.stream.worker import worker_environment

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def scenario(now: datetime, days: float = 9.0, agents: int = 4) -> tuple[list[bytes], list[Incident]]:
    profiles = default_agents(agents, 50.0, seed=42)
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(days=days)
    # Incidents in working hours of the latest weekday that fits, whatever time it is now: at
    # night, traffic is too thin for a rate rise to be significant, and the demo should show the
    # same thing whenever it runs.
    day = end.replace(hour=0)
    while day.weekday() >= 5 or day + timedelta(hours=21) > end:
        day -= timedelta(days=1)
    incidents = [
        Incident(rule="tool_calls_all_failing", agent_id=profiles[0].agent_id,
                 onset=day + timedelta(hours=9), duration_h=3.0),
        Incident(rule="escalation_rate_rise", agent_id=profiles[1].agent_id,
                 onset=day + timedelta(hours=13), duration_h=6.0),
    ]
    lines = [json.dumps(e, separators=(",", ":")).encode()
             for e in generate(profiles, start, days, incidents=incidents, seed=42)]
    return lines, incidents


def _state(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/state", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def run_demo(settings: Settings) -> int:
    from alerts.runner import run_alerts_from_kafka

    # aiokafka logs the broker's normal start-up answers (coordinator not yet available) as errors.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    broker = LocalBroker(settings.broker)
    t0 = time.monotonic()
    status = broker.start()
    print(f"1. kafka {status.describe()} ({time.monotonic() - t0:.1f} s)")

    run = uuid.uuid4().hex[:6]
    settings = settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap}),
        "topics": TopicSettings(**{
            name: f"demo-{run}-{getattr(settings.topics, name)}"
            for name in ("events", "dlq", "alerts", "rollups", "silences", "notifications")
        }, events_partitions=settings.topics.events_partitions),
    })
    asyncio.run(create_topics(settings))
    print(f"   topics demo-{run}-agent-events ({settings.topics.events_partitions} partitions), -dlq, -alerts, "
          "-rollups, -silences")

    lines, incidents = scenario(datetime.now(UTC))
    summary = asyncio.run(emit_lines(settings, lines, total=len(lines)))
    print(f"2. simulated 9 days of 4 agents; {summary.describe()}")
    for inc in incidents:
        print(f"   injected: {inc.rule} on {inc.agent_id} from {inc.onset:%a %H:%M} UTC for {inc.duration_h:g} h")

    web_port = free_port()
    with tempfile.TemporaryDirectory(prefix="agentmon-demo-") as tmp:
        log_path = Path(tmp) / "worker.log"
        with open(log_path, "wb") as worker_log:
            worker = subprocess.Popen([sys.executable, "-m", "monitor.cli.main", "worker"], cwd=PROJECT_ROOT,
                                      env={**worker_environment(settings, f"agentmon-demo-{run}", web_port),
                                           "AGENTMON_WORKER__LOG_LEVEL": "warning",
                                           "AGENTMON_WORKER__DATA_DIR": str(Path(tmp) / "worker-data")},
                                      stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
        print(f"3. worker pid {worker.pid}: http://127.0.0.1:{web_port}/state and /metrics; alerts as they come:\n")
        alerting = settings.alerting.model_copy(update={
            "receivers": [], "routes": [], "default_receiver": "console", "group_wait_s": 2.0,
            "notification_log_path": Path(tmp) / "notification-log.sqlite3"})
        pipeline_settings = settings.model_copy(update={"alerting": alerting})
        try:
            state = asyncio.run(_watch(pipeline_settings, worker, web_port, len(lines), run_alerts_from_kafka))
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=10)
        if state is None:
            print("the worker did not finish; its log:\n" + log_path.read_text(errors="replace")[-3000:])
            return 1

    result = replay(lines, Engine(settings.detection, pricing=PricingTable(settings.pricing),
                                  runbook_base_url=settings.runbook_base_url))
    events = sum(p["counters"]["events"] for p in state["partitions"].values())
    # partitions that had events (a worker may also hold an engine for an empty partition)
    fed = sum(1 for p in state["partitions"].values() if p["counters"]["events"])
    published = state["alerts_published"]
    print(f"\n4. worker applied {events} events ({state['dead_letters']} dead letters) from "
          f"{fed} of {settings.topics.events_partitions} partitions and published "
          f"{sum(published.values())} alert state changes: "
          f"{', '.join(f'{k} x{v}' for k, v in published.items()) or 'none'}")
    print(f"   backtest of the same events: {result.events} events, {len(result.alerts)} alert state changes "
          f"(the worker keeps its last minutes open for late events; the backtest closes them)")
    print(f"   kafka keeps running on {broker.bootstrap}: `agentmon broker stop` (or `make broker-stop`) stops it")
    return 0


async def _watch(settings: Settings, worker: subprocess.Popen[bytes], web_port: int, total: int,
                 run_alerts: Any) -> dict[str, Any] | None:
    stop = asyncio.Event()
    pipeline = asyncio.create_task(run_alerts(settings, group_id=f"{settings.topics.alerts}-console",
                                              console=True, stop=stop, tick_s=0.5))
    state: dict[str, Any] | None = None
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and worker.poll() is None:
            state = await asyncio.to_thread(_state, web_port)
            if state and sum(p["next_offset"] for p in state["partitions"].values()) >= total:
                await asyncio.sleep(4)  # let the last alerts reach the console (group wait 2 s)
                return state
            await asyncio.sleep(0.5)
        return None
    finally:
        stop.set()
        await pipeline
