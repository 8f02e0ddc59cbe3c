"""Back off between connection attempts to a broker that refuses them.

aiokafka retries a lost broker every `retry_backoff_ms` (100 ms) from each of its tasks (fetcher,
sender, group coordinator, metadata): during a 30 s broker stop a worker made ~250 attempts a
second, each one logged. This wraps `AIOKafkaClient._get_conn` so that after a failed attempt to
a node, the next one waits `base_s`, doubling per consecutive failure up to `max_s` (with jitter
so several clients do not knock in step), and a success resets it. A broker that comes back is
found within `max_s`. Installed once per process by the worker (`install`).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiokafka.client import AIOKafkaClient

_installed = False


class _NodeBackoff:
    __slots__ = ("failures", "next_at")

    def __init__(self) -> None:
        self.failures = 0
        self.next_at = 0.0


def install(base_s: float = 0.1, max_s: float = 2.0) -> None:
    """Wrap `AIOKafkaClient._get_conn` (idempotent)."""
    global _installed
    if _installed:
        return
    original = AIOKafkaClient._get_conn

    async def _get_conn(self: AIOKafkaClient, node_id: Any, **kwargs: Any) -> Any:
        table: dict[Any, _NodeBackoff] = self.__dict__.setdefault("_agentmon_backoff", {})
        key = (node_id, kwargs.get("group"))
        state = table.get(key)
        loop = asyncio.get_running_loop()
        if state is not None and state.failures:
            wait = state.next_at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        conn = await original(self, node_id, **kwargs)
        if conn is None:
            if state is None:
                state = table[key] = _NodeBackoff()
            state.failures += 1
            delay = min(max_s, base_s * 2 ** (state.failures - 1))
            state.next_at = loop.time() + delay * random.uniform(0.8, 1.2)
        elif state is not None:
            state.failures = 0
        return conn

    AIOKafkaClient._get_conn = _get_conn
    _installed = True


__all__ = ["install"]
