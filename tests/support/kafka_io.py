"""Sending records to and reading them from the real local broker in integration tests, and
reading a worker's /state: one copy for the worker, fault-suite and chaos tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer

from monitor.kafka.producer import AgentEventProducer
from monitor.settings import Settings


async def send(settings: Settings, records: Any) -> int:
    """Send (value, agent id) records through the SDK's producer; returns how many."""
    n = 0
    async with AgentEventProducer(settings) as producer:
        for value, agent_id in records:
            await producer.send_encoded(value, agent_id)
            n += 1
        await producer.flush()
    return n


async def send_paced(settings: Settings, records: Any, per_s: float) -> None:
    """Send `records` at about `per_s` records a second (in steps of 1/20 s)."""
    step = max(1, int(per_s / 20))
    async with AgentEventProducer(settings) as producer:
        for i in range(0, len(records), step):
            for value, agent_id in records[i:i + step]:
                await producer.send_encoded(value, agent_id)
            await asyncio.sleep(0.05)
        await producer.flush()


async def read_topic(settings: Settings, topic: str, *, quiet_s: float = 2.0, limit_s: float = 30.0) -> list[Any]:
    """Every record of `topic` from the start, until none came for `quiet_s` (at most `limit_s`)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        last_new = loop.time()
        while loop.time() < deadline and loop.time() - last_new < quiet_s:
            batch = await consumer.getmany(timeout_ms=250)
            for messages in batch.values():
                records.extend(messages)
                last_new = loop.time()
    finally:
        await consumer.stop()
    return records


def applied(state: dict[str, Any]) -> int:
    """Records a worker has applied, over its partitions (its /state)."""
    return sum(p["next_offset"] for p in state["partitions"].values())


def counter(state: dict[str, Any], name: str) -> int:
    """One engine counter summed over a worker's partitions (its /state)."""
    return sum(p["counters"][name] for p in state["partitions"].values())


__all__ = ["applied", "counter", "read_topic", "send", "send_paced"]
