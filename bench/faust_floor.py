"""faust's own floor for bench/throughput.py: an agent that only iterates over the events topic.

    python bench/faust_floor.py BOOTSTRAP TOPIC N [--variant NAME]

Prints one line `RESULT <events/s> <seconds>` timed from the first record to the N-th, then exits.
Variants try the settings that could narrow the gap to a raw aiokafka consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import faust

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "big-buffers": {"stream_buffer_maxsize": 32768, "broker_max_poll_records": 5000,
                    "consumer_max_fetch_size": 16 * 1024 * 1024},
    "slow-commit": {"broker_commit_interval": 30.0},
    "manual-ack": {},
    "uvloop": {},  # the event loop: uvloop instead of asyncio's (faust: --loop uvloop / F_LOOP)
    "no-monitor": {},  # without faust's Monitor sensor (per-event bookkeeping for its web stats)
    "uvloop-no-monitor": {},
    "confluent": {},  # faust's confluent-kafka (librdkafka) driver: broker URL confluent://
    # An experiment, not a setting: faust hands each fetched message to the stream through
    # `wait_first(callback(message), suspend_flow.wait())`, i.e. two tasks and an asyncio.wait per
    # message; this variant awaits the callback directly while the flow is not suspended.
    "direct-drain": {},
    "uvloop-no-monitor-direct-drain": {},
}


def direct_drain() -> None:
    from faust.transport.consumer import Consumer

    original = Consumer.wait_first

    async def wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if len(coros) == 2 and timeout is None and not self.suspend_flow.is_set():
            coros[1].close()
            await coros[0]
            return None
        return await original(self, *coros, timeout=timeout)

    Consumer.wait_first = wait_first  # type: ignore[method-assign]


class FloorApp(faust.App):
    """faust.App, optionally without its default Monitor sensor (removed as the worker's
    AgentmonApp does)."""

    drop_monitor = False

    def on_init_dependencies(self) -> Any:
        dependencies = super().on_init_dependencies()
        if self.drop_monitor:
            self.sensors.remove(self.monitor)
        return dependencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("n", type=int)
    parser.add_argument("--variant", default="default", choices=list(VARIANTS))
    args = parser.parse_args()
    conf = VARIANTS.get(args.variant, {})
    if "uvloop" in args.variant:
        import mode.loop

        mode.loop.use("uvloop")
    if "direct-drain" in args.variant:
        direct_drain()
    scheme = "confluent" if args.variant == "confluent" else "kafka"
    app = FloorApp(f"floor-{os.getpid()}", broker=f"{scheme}://{args.bootstrap}", store="memory://",
                   web_enabled=False, consumer_auto_offset_reset="earliest", topic_disable_leader=True, **conf)
    app.drop_monitor = "no-monitor" in args.variant
    source = app.topic(args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "t0": 0.0}

    @app.agent(source)
    async def iterate(stream: Any) -> None:
        if args.variant == "manual-ack":  # the worker's pattern: no auto ack, ack in bulk later
            manual = stream.noack()
            pending: list[Any] = []
            async for _ in manual:
                pending.append(manual.current_event)
                if len(pending) >= 5000 or seen["n"] + 1 == args.n:
                    for event in pending:
                        await manual.ack(event)
                    pending.clear()
                if seen["n"] == 0:
                    seen["t0"] = time.perf_counter()
                seen["n"] += 1
                if seen["n"] == args.n:
                    elapsed = time.perf_counter() - seen["t0"]
                    print(f"RESULT {args.n / elapsed:.0f} {elapsed:.3f}", flush=True)
                    asyncio.ensure_future(app.stop()).add_done_callback(lambda _: os._exit(0))
            return
        async for _ in stream:
            if seen["n"] == 0:
                seen["t0"] = time.perf_counter()
            seen["n"] += 1
            if seen["n"] == args.n:
                elapsed = time.perf_counter() - seen["t0"]
                print(f"RESULT {args.n / elapsed:.0f} {elapsed:.3f}", flush=True)
                asyncio.ensure_future(app.stop()).add_done_callback(lambda _: os._exit(0))

    faust.Worker(app, loglevel="error", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    sys.exit(main())
