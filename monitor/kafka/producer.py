"""Producer SDK: agent code emits contract events to Kafka.

`AgentEventProducer` (asyncio, on aiokafka) validates every event before it leaves the process
(an invalid one raises `EventError` naming the field), keys it by `agent_id` so each agent's
events stay in order on one partition, and sends with an idempotent producer, `acks=all`,
compression and batching. The number of events buffered but not yet acknowledged is bounded:
when the broker is slow the agent is blocked at most `block_timeout_s` (then `BufferFullError`),
or, with `when_full="drop"`, the event is dropped and counted, so monitoring never stalls the
agent it watches. After a broker outage longer than `request_timeout_s`, events that waited past it
fail (counted in `stats.failed`); if the broker then refuses the producer's sequence, a new client
takes over (`stats.restarts`) so that later events are delivered again.

`SyncAgentEventProducer` gives the same to code without an event loop: it runs the async
producer on a background thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber, UnknownProducerId
from aiokafka.structs import RecordMetadata

from monitor.contract.events import AgentEvent, encode_event, validate_event
from monitor.settings import ProducerSettings, Settings

log = logging.getLogger(__name__)

FAILURE_LOG_EVERY_S = 10.0
#: the broker refuses the idempotent producer's sequence: only a new producer id helps
SEQUENCE_REFUSED = (OutOfOrderSequenceNumber, UnknownProducerId)


class BufferFullError(RuntimeError):
    """The producer's pending buffer stayed full for `block_timeout_s`: the broker is too slow."""


class ProducerClosedError(RuntimeError):
    pass


@dataclass
class ProducerStats:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    dropped: int = 0
    restarts: int = 0  # clients replaced after Kafka refused their sequence (see _new_sequence)

    @property
    def pending(self) -> int:
        return self.sent - self.acked - self.failed


class AgentEventProducer:
    """Async producer of agent events. Use `async with AgentEventProducer(settings) as p:`."""

    def __init__(self, settings: Settings, *, producer: ProducerSettings | None = None,
                 log_failures: bool = True) -> None:
        self._settings = settings
        self._config = producer or settings.producer
        self._topic = settings.topics.events
        self._max_bytes = settings.max_event_bytes
        self._slots: asyncio.Semaphore | None = None
        self._kafka: AIOKafkaProducer | None = None
        self._sequence_broken = False
        self._restarting = asyncio.Lock()
        self._retiring: set[asyncio.Future[None]] = set()
        self._abandoned = not log_failures  # a caller that reports failures itself
        self._failures_logged_at = float("-inf")
        self._failures_unlogged = 0
        self.stats = ProducerStats()

    def _client(self) -> AIOKafkaProducer:
        c = self._config
        return AIOKafkaProducer(
            **self._settings.kafka.client_options(),
            acks="all",
            enable_idempotence=True,
            compression_type=None if c.compression == "none" else c.compression,
            linger_ms=c.linger_ms,
            max_batch_size=c.max_batch_bytes,
            request_timeout_ms=int(c.request_timeout_s * 1000),
        )

    async def _started(self) -> AIOKafkaProducer:
        kafka = self._client()
        try:
            await kafka.start()
        except BaseException:
            await kafka.stop()  # a producer that never started holds sockets and warns when collected
            raise
        return kafka

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self._config.max_pending)
        self._kafka = await self._started()

    async def stop(self) -> None:
        """Deliver what is buffered, then close."""
        if self._kafka is not None:
            kafka, self._kafka = self._kafka, None
            await kafka.stop()
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def _new_sequence(self) -> None:
        """Replace the client after the broker refused its sequence. A batch that waited longer
        than `request_timeout_s` for a partition leader (a broker outage longer than that) fails and
        leaves a gap in the idempotent producer's sequence numbers; the broker then refuses every
        later batch of that partition (OutOfOrderSequenceNumber) for as long as the client lives.
        A new client gets a new producer id and starts a new sequence; the old one is closed in the
        background, its refused batches counted as failed."""
        async with self._restarting:
            if not self._sequence_broken or self._kafka is None:
                return
            fresh = await self._started()
            old, self._kafka = self._kafka, fresh
            self._sequence_broken = False
            self.stats.restarts += 1
            log.warning("Kafka refused this producer's sequence after an outage longer than its request timeout "
                        "(%s s): started a new producer; events it had refused count as failed",
                        self._config.request_timeout_s)
            self._retiring.add(retiring := asyncio.ensure_future(old.stop()))
            retiring.add_done_callback(self._retiring.discard)

    async def __aenter__(self) -> AgentEventProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def send(self, event: AgentEvent | Mapping[str, Any]) -> asyncio.Future[RecordMetadata] | None:
        """Validate and enqueue one event. Returns the delivery future, or None if it was dropped
        because the buffer was full (`when_full="drop"`). Raises `EventError` for an invalid event."""
        model = validate_event(dict(event) if isinstance(event, Mapping) else event)
        return await self.send_encoded(encode_event(model), model.agent_id)

    async def send_encoded(self, value: bytes, agent_id: str) -> asyncio.Future[RecordMetadata] | None:
        """Enqueue an event already validated and encoded (e.g. a line checked by `decode_event`)."""
        if self._kafka is None or self._slots is None:
            raise ProducerClosedError("producer is not started (use `async with` or await start())")
        if self._sequence_broken:
            await self._new_sequence()
        if not await self._take_slot(self._slots):
            return None
        try:
            delivery = await self._kafka.send(self._topic, value, key=agent_id.encode())
        except BaseException:
            self._slots.release()
            raise
        self.stats.sent += 1
        delivery.add_done_callback(self._delivered)
        return delivery

    async def send_and_wait(self, event: AgentEvent | Mapping[str, Any]) -> RecordMetadata | None:
        delivery = await self.send(event)
        return None if delivery is None else await delivery

    async def flush(self) -> None:
        if self._kafka is not None:
            await self._kafka.flush()

    def abandon(self) -> None:
        """Stop delivering: `stop()` then returns at once instead of retrying what is buffered for
        as long as the broker is away (the idempotent client never expires a batch it has sent).
        Events not yet acknowledged stay so: for a caller that gives up and says where to resume."""
        self._abandoned = True
        if self._kafka is not None and self._kafka._sender.sender_task is not None:
            # aiokafka has no public call for this; a cancelled sender fails no batch, and `stop()`
            # waits for the accumulator or the sender, whichever ends first
            self._kafka._sender.sender_task.cancel()

    async def _take_slot(self, slots: asyncio.Semaphore) -> bool:
        if not slots.locked():
            await slots.acquire()
            return True
        if self._config.when_full == "drop":
            self.stats.dropped += 1
            return False
        try:
            await asyncio.wait_for(slots.acquire(), timeout=self._config.block_timeout_s)
        except TimeoutError:
            raise BufferFullError(
                f"{self._config.max_pending} events are waiting for the broker "
                f"({self._settings.kafka.bootstrap_servers}) for over {self._config.block_timeout_s} s"
            ) from None
        return True

    def _delivered(self, delivery: asyncio.Future[RecordMetadata]) -> None:
        if self._slots is not None:
            self._slots.release()
        if delivery.cancelled() or delivery.exception() is not None:
            self.stats.failed += 1
            if isinstance(delivery.exception() if not delivery.cancelled() else None, SEQUENCE_REFUSED):
                self._sequence_broken = True
            if self._abandoned:
                return  # the caller gave up on these, or reports failures itself
            # one line per FAILURE_LOG_EVERY_S, not one per event: an outage fails thousands at once
            now = time.monotonic()
            if now - self._failures_logged_at < FAILURE_LOG_EVERY_S:
                self._failures_unlogged += 1
                return
            reason = "cancelled" if delivery.cancelled() else repr(delivery.exception())
            more = f" (and {self._failures_unlogged} more since the last such line)" if self._failures_unlogged else ""
            log.warning("agent event not delivered to %s: %s%s", self._topic, reason, more)
            self._failures_logged_at, self._failures_unlogged = now, 0
        else:
            self.stats.acked += 1


class SyncAgentEventProducer:
    """The producer for code without an event loop; thread-safe. Use as a context manager."""

    def __init__(self, settings: Settings, *, start_timeout_s: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentmon-producer", daemon=True)
        self._thread.start()
        self._producer = AgentEventProducer(settings)
        self._wait_extra = settings.producer.block_timeout_s + 5.0
        try:
            self._call(self._producer.start(), start_timeout_s)
        except BaseException:
            self._shutdown_loop()
            raise

    @property
    def stats(self) -> ProducerStats:
        return self._producer.stats

    def send(self, event: AgentEvent | Mapping[str, Any]) -> bool:
        """Validate (here, in the caller's thread) and enqueue. False if dropped on a full buffer."""
        model = validate_event(dict(event) if isinstance(event, Mapping) else event)
        queued = self._call(self._producer.send_encoded(encode_event(model), model.agent_id), self._wait_extra)
        return queued is not None

    def flush(self, timeout_s: float = 30.0) -> None:
        self._call(self._producer.flush(), timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._call(self._producer.stop(), timeout_s)
        finally:
            self._shutdown_loop()

    def __enter__(self) -> SyncAgentEventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Any, timeout_s: float) -> Any:
        future: ThreadFuture[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=timeout_s)

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

