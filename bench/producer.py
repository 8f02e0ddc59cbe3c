"""Producer throughput into a real local Kafka (started here on free ports, stopped at the end).

Measures, in one run against the same broker, the median of --runs runs of --events events each:
  sdk       AgentEventProducer.send(model): encode + bounded buffer + idempotent acks=all lz4
  encoded   AgentEventProducer.send_encoded(bytes): the `agentmon emit` path (lines pre-validated)
  aiokafka  a bare AIOKafkaProducer with the same settings (the ceiling for the SDK)

    .venv/bin/python bench/producer.py --events 100000 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaProducer  # noqa: E402

from monitor.contract.events import encode_event  # noqa: E402
from monitor.kafka.producer import AgentEventProducer  # noqa: E402
from monitor.kafka.topics import create_topics  # noqa: E402
from monitor.local.broker import LocalBroker, free_port  # noqa: E402
from monitor.sdk import execution  # noqa: E402
from monitor.settings import KafkaSettings, LocalBrokerSettings, Settings, TopicSettings  # noqa: E402


def make_events(n: int) -> list:
    start = datetime(2026, 11, 16, tzinfo=UTC)
    return [
        execution(f"agent-{i % 50}", execution_id=f"tr-{i}", task_id=f"task-{i}", status="completed",
                  occurred_at=start + timedelta(seconds=i), steps=4, duration_ms=1200.0, quality_score=0.9,
                  llm_calls=[{"provider": "openai", "model": "gpt-4o", "resolved_model": "gpt-4o-2024-08-06",
                              "input_tokens": 1800, "output_tokens": 250}],
                  tool_calls=[{"tool": "crm.update", "status": "ok", "latency_ms": 120}])
        for i in range(n)
    ]


async def run_sdk(settings: Settings, events: list) -> float:
    async with AgentEventProducer(settings) as producer:
        t = time.perf_counter()
        for e in events:
            await producer.send(e)
        await producer.flush()
        elapsed = time.perf_counter() - t
    assert producer.stats.acked == len(events), producer.stats
    return len(events) / elapsed


async def run_encoded(settings: Settings, encoded: list[tuple[bytes, str]]) -> float:
    async with AgentEventProducer(settings) as producer:
        t = time.perf_counter()
        for value, agent in encoded:
            await producer.send_encoded(value, agent)
        await producer.flush()
        elapsed = time.perf_counter() - t
    assert producer.stats.acked == len(encoded), producer.stats
    return len(encoded) / elapsed


async def run_aiokafka(settings: Settings, encoded: list[tuple[bytes, str]]) -> float:
    c = settings.producer
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all",
                                enable_idempotence=True, compression_type="lz4", linger_ms=c.linger_ms,
                                max_batch_size=c.max_batch_bytes)
    await producer.start()
    try:
        t = time.perf_counter()
        pending = []
        for value, agent in encoded:
            pending.append(await producer.send(settings.topics.events, value, key=agent.encode()))
            if len(pending) >= c.max_pending:
                await asyncio.gather(*pending)
                pending.clear()
        await producer.flush()
        await asyncio.gather(*pending)
        return len(encoded) / (time.perf_counter() - t)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="agentmon-bench-") as tmp:
        broker = LocalBroker(LocalBrokerSettings(data_dir=Path(tmp), port=free_port(), controller_port=free_port()))
        t = time.perf_counter()
        broker.start()
        print(f"broker started in {time.perf_counter() - t:.2f} s")
        try:
            settings = Settings(kafka=KafkaSettings(bootstrap_servers=broker.bootstrap),
                                topics=TopicSettings(events_partitions=6))
            asyncio.run(create_topics(settings))
            events = make_events(args.events)
            encoded = [(encode_event(e), e.agent_id) for e in events]
            print(f"{args.events} events of {statistics.mean(len(v) for v, _ in encoded):.0f} bytes, "
                  f"{args.runs} runs each, 6 partitions")
            results: dict[str, list[float]] = {"sdk": [], "encoded": [], "aiokafka": []}
            for _ in range(args.runs):  # interleaved, so machine noise hits every variant alike
                results["sdk"].append(asyncio.run(run_sdk(settings, events)))
                results["encoded"].append(asyncio.run(run_encoded(settings, encoded)))
                results["aiokafka"].append(asyncio.run(run_aiokafka(settings, encoded)))
            base = statistics.median(results["aiokafka"])
            for name, rates in results.items():
                med = statistics.median(rates)
                print(f"{name:>9}: median {med:>9,.0f} events/s  (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
                      f"  {med / base:.2f} x aiokafka")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
