"""Worker throughput on the local broker, in one run against the same pre-loaded topic:

  (a) a raw aiokafka consumer that only reads (the transport's ceiling),
  (b) a faust agent that only iterates (faust's own floor; bench/faust_floor.py),
  (c) an agentmon worker doing the full work (decode, dedup, engine, alerts, rollups, checkpoints),

the ratios c/a and c/b (medians of --runs interleaved runs), (b2) the floor with the faust
settings the worker uses by default (uvloop, no Monitor sensor) and c/b2, faust variants for (b), and the
event-to-alert latency (p50/p99) of incidents injected into a live, caught-up worker.

    .venv/bin/python bench/throughput.py --events 200000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402
from aiokafka.partitioner import murmur2  # noqa: E402

from monitor.contract.alert import decode_alert  # noqa: E402
from monitor.core.config import DetectionConfig  # noqa: E402
from monitor.kafka.producer import AgentEventProducer  # noqa: E402
from monitor.kafka.topics import create_topics  # noqa: E402
from monitor.local.broker import LocalBroker, free_port  # noqa: E402
from monitor.local.simulate import Incident, default_agents, generate  # noqa: E402
from monitor.settings import KafkaSettings, LocalBrokerSettings, Settings, TopicSettings  # noqa: E402
from tests.support.worker_process import WorkerProcess  # noqa: E402

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday


def simulated(agents: int, rate: float, start: datetime, days: float, seed: int,
              incidents: list[Incident] | None = None) -> list[tuple[bytes, str, float]]:
    profiles = default_agents(agents, rate, seed=7)
    return [(json.dumps(e, separators=(",", ":")).encode(), e["agent_id"],
             datetime.fromisoformat(e["occurred_at"]).timestamp())
            for e in generate(profiles, start, days, incidents=incidents or [], seed=seed)]


async def preload(settings: Settings, records: list[tuple[bytes, str, float]]) -> None:
    async with AgentEventProducer(settings) as producer:
        for value, agent, _ in records:
            await producer.send_encoded(value, agent)
        await producer.flush()


@contextmanager
def preloaded_broker(data_dir: Path, records: list[tuple[bytes, str, float]], what: str) -> Iterator[Settings]:
    """A local broker with the events topic (6 partitions) pre-loaded with `records`; stopped on exit."""
    broker = LocalBroker(LocalBrokerSettings(data_dir=data_dir, port=free_port(), controller_port=free_port()))
    broker.start()
    try:
        settings = Settings(kafka=KafkaSettings(bootstrap_servers=broker.bootstrap),
                            topics=TopicSettings(events_partitions=6))
        asyncio.run(create_topics(settings))
        t = time.perf_counter()
        asyncio.run(preload(settings, records))
        print(f"pre-loaded {len(records)} events ({what}) in {time.perf_counter() - t:.1f} s; 6 partitions",
              flush=True)
        yield settings
    finally:
        broker.stop()


async def raw_consumer(settings: Settings, n: int) -> float:
    consumer = AIOKafkaConsumer(settings.topics.events, bootstrap_servers=settings.kafka.bootstrap_servers,
                                group_id=f"raw-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
                                enable_auto_commit=True, max_poll_records=5000)
    await consumer.start()
    try:
        seen, t0 = 0, 0.0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                if seen == 0 and messages:
                    t0 = time.perf_counter()
                seen += len(messages)
        return n / (time.perf_counter() - t0)
    finally:
        await consumer.stop()


def faust_floor(settings: Settings, n: int, variant: str) -> float:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "faust_floor.py"), settings.kafka.bootstrap_servers,
                           settings.topics.events, str(n), "--variant", variant],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    for line in (done.stdout + done.stderr).splitlines():
        if "RESULT" in line:
            return float(line.split("RESULT", 1)[1].split()[0])
    raise RuntimeError(f"faust floor printed no result:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def full_worker(settings: Settings, n: int, log_dir: Path, *, keep: bool = False) -> tuple[float, WorkerProcess]:
    worker = WorkerProcess(settings, f"bench-{uuid.uuid4().hex[:6]}", log_dir / "worker.log",
                           AGENTMON_WORKER__CHECKPOINT_INTERVAL_S="10", AGENTMON_WORKER__TICK_INTERVAL_S="15",
                           AGENTMON_WORKER__SESSION_TIMEOUT_S="10", AGENTMON_WORKER__LOG_LEVEL="warning")

    def applied(s: dict[str, Any]) -> int:
        return sum(p["next_offset"] for p in s["partitions"].values())

    started = worker.wait_for(lambda s: applied(s) > 0, 120, "first record applied")
    t0, first = time.perf_counter(), applied(started)
    done = worker.wait_for(lambda s: applied(s) >= n, 900, "all records applied")
    elapsed = time.perf_counter() - t0
    rate = (n - first) / elapsed
    parts = done["partitions"].values()
    spent = sum(p["checkpoint_seconds"] for p in parts)
    count = sum(p["generation"] for p in parts)
    print(f"    c: {count} checkpoints took {spent:.1f} s of the {elapsed:.1f} s run "
          f"({spent / max(count, 1) * 1000:.0f} ms each on average)", flush=True)
    if not keep:
        worker.stop()
    return rate, worker


def latency(settings: Settings, worker: WorkerProcess, after: float, agents: int, rate: float,
            pace: float) -> list[float]:
    """Inject incidents into the caught-up worker at `pace` events/s; per alert, the wall time from
    sending the record that let its bucket close (same partition, event time >= bucket end +
    lateness) to the alert's record on agent-alerts."""
    config = DetectionConfig()
    start = datetime.fromtimestamp(after, tz=UTC)
    names = [a.agent_id for a in default_agents(agents, rate, seed=7)]
    onset = start + timedelta(hours=1)
    incidents = [Incident(rule="tool_calls_all_failing", onset=onset, agent_id=a) for a in names[: agents // 2]]
    incidents += [Incident(rule="escalation_rate_rise", onset=onset, agent_id=a) for a in names[agents // 2:]]
    records = simulated(agents, rate, start, 0.25, seed=99, incidents=incidents)
    partitions = settings.topics.events_partitions

    def part(agent: str) -> int:
        return (murmur2(agent.encode()) & 0x7FFFFFFF) % partitions

    sent: list[tuple[float, int, float]] = []  # (event time, partition, wall send time)
    arrived: list[tuple[Any, float]] = []  # (alert record, wall time it was read)

    async def send_paced() -> None:
        async with AgentEventProducer(settings) as producer:
            t0 = time.perf_counter()
            for i, (value, agent, t) in enumerate(records):
                delay = t0 + i / pace - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await producer.send_encoded(value, agent)
                sent.append((t, part(agent), time.time()))
            await producer.flush()

    async def read_alerts(done: asyncio.Event) -> None:
        # Alert records carry event-time timestamps: time them by when they can be read.
        consumer = AIOKafkaConsumer(settings.topics.alerts, bootstrap_servers=settings.kafka.bootstrap_servers,
                                    auto_offset_reset="latest", enable_auto_commit=False, fetch_max_wait_ms=20)
        await consumer.start()
        try:
            await consumer.seek_to_end()
            idle = 0
            while not done.is_set() or idle < 40:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                got = [m for ms in batch.values() for m in ms]
                arrived.extend((m, now) for m in got)
                idle = 0 if got else idle + 1
        finally:
            await consumer.stop()

    async def run() -> None:
        done = asyncio.Event()
        reader = asyncio.create_task(read_alerts(done))
        await asyncio.sleep(2)  # the reader is at the end of the topic
        await send_paced()
        done.set()
        await reader

    asyncio.run(run())
    latencies = []
    for record, read_at in arrived:
        alert = decode_alert(record.value)
        if alert.at.timestamp() < after or alert.agent_id is None:
            continue
        due = alert.at.timestamp() + config.allowed_lateness_s
        p = part(alert.agent_id)
        trigger = next((wall for t, q, wall in sent if q == p and t >= due), None)
        if trigger is not None:
            latencies.append(read_at - trigger)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="executions per hour per agent")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", default="uvloop,no-monitor,uvloop-no-monitor")
    parser.add_argument("--pace", type=float, default=2000.0, help="events/s of the live latency stream")
    args = parser.parse_args()

    days = args.events / (args.agents * args.rate * 24) * 1.05
    records = simulated(args.agents, args.rate, START, days, seed=1)[: args.events]
    n = len(records)
    with tempfile.TemporaryDirectory(prefix="agentmon-throughput-") as tmp, preloaded_broker(
        Path(tmp) / "kafka", records, f"{args.agents} agents, {days:.1f} days of event time",
    ) as settings:
        # b2: the floor with the faust settings the worker uses by default (uvloop, no Monitor sensor)
        results: dict[str, list[float]] = {"a": [], "b": [], "b2": [], "c": []}
        worker: WorkerProcess | None = None
        for run in range(args.runs):
            results["a"].append(asyncio.run(raw_consumer(settings, n)))
            results["b"].append(faust_floor(settings, n, "default"))
            results["b2"].append(faust_floor(settings, n, "uvloop-no-monitor"))
            last = run == args.runs - 1
            rate, worker = full_worker(settings, n, Path(tmp), keep=last)
            results["c"].append(rate)
            print(f"run {run + 1}: a {results['a'][-1]:,.0f}  b {results['b'][-1]:,.0f}  "
                  f"b2 {results['b2'][-1]:,.0f}  c {results['c'][-1]:,.0f} events/s", flush=True)
        a, b, b2, c = (statistics.median(results[k]) for k in ("a", "b", "b2", "c"))
        print(f"\nmedians of {args.runs} runs: (a) raw aiokafka {a:,.0f}/s  (b) faust iterate {b:,.0f}/s  "
              f"(b2) faust iterate, worker's settings {b2:,.0f}/s  (c) agentmon worker {c:,.0f}/s")
        print(f"c/b = {c / b:.2f}   c/b2 = {c / b2:.2f}   c/a = {c / a:.2f}   b/a = {b / a:.2f}")
        assert worker is not None
        try:
            lat = latency(settings, worker, records[-1][2] + 60, args.agents, args.rate, args.pace)
        finally:
            worker.stop()
        if lat:
            lat.sort()
            p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
            print(f"event-to-alert latency over {len(lat)} alerts at {args.pace:.0f} events/s: "
                  f"p50 {statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        else:
            print("event-to-alert latency: no alerts fired in the live segment")
        for variant in [v for v in args.variants.split(",") if v]:
            print(f"faust variant {variant}: {faust_floor(settings, n, variant):,.0f}/s "
                  f"(default {b:,.0f}/s)", flush=True)


if __name__ == "__main__":
    main()
