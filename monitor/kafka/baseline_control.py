"""Freeze learned baselines by command: operators' freeze/unfreeze commands in a compacted topic
(`Settings.topics.baseline_control`, default `agent-baseline-control`) that every worker follows.

Key = agent id, or `*` for all agents; value = JSON `{"frozen": true|false, "at": ISO-8601 UTC,
"by": str, "reason": str}`; a tombstone (value null) withdraws the command. The newest record per
key is in force, which is what log compaction keeps. A command for one agent wins over `*`; an agent
no command names keeps whatever the engine decided (`detection.frozen_baseline_after_h`).

Readers load the whole topic from the beginning to its end offsets, then follow it, with a plain
consumer (no group, every partition assigned), so every worker sees every command. The worker
applies the desired flags to the engines it holds (monitor/stream/engines.py); the decision itself is the
pure `desired_changes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from monitor.core.baseline_commands import BaselineCommand, apply_record
from monitor.kafka.table import ReadTimeout, ensure_table_topic, read_to_end
from monitor.settings import Settings

log = logging.getLogger("agentmon.baseline_control")

class BaselineControlError(RuntimeError):
    """The control topic cannot be read or written."""


# ---- Kafka ------------------------------------------------------------------------------------

class BaselineControl:
    """The commands in force, read from the topic (`load`, `follow`, or `run` in a worker), and
    the writing side (`send`) for the CLI."""

    def __init__(self, settings: Settings, *, timeout_s: float = 30.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.topic = settings.topics.baseline_control
        self.timeout_s = timeout_s
        self.on_change = on_change
        self.commands: dict[str, BaselineCommand] = {}
        self.loaded = False  # the topic has been read to its end at least once
        self.error: str | None = None  # the last read error while it persists
        self._task: asyncio.Task[None] | None = None

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # noqa: BLE001 - the tick applies the commands again anyway
                log.exception("applying baseline commands failed")

    # ---- reading --------------------------------------------------------------------------
    async def ensure_topic(self) -> None:
        error = await ensure_table_topic(self.settings, self.topic, timeout_s=self.timeout_s)
        if error is not None:
            raise BaselineControlError(error)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(**self.settings.kafka.client_options(), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                request_timeout_ms=int(self.timeout_s * 1000))

    async def _read_to_end(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """Read every partition from the beginning to the end offsets into a fresh map, and only
        then replace the commands (a re-read after an error never shows a partial set)."""
        fresh: dict[str, BaselineCommand] = {}

        def apply(record: ConsumerRecord[bytes, bytes]) -> None:
            apply_record(fresh, record.key, record.value, f"{record.topic}/{record.partition}@{record.offset}")

        try:
            tps = await read_to_end(consumer, self.topic, apply, timeout_s=self.timeout_s)
        except ReadTimeout as exc:
            raise BaselineControlError(f"timed out reading the control topic {self.topic!r}: {exc}") from None
        self.commands = fresh
        self.loaded = True
        self.error = None
        return tps

    async def load(self) -> int:
        """Read the topic from the beginning to its current end; returns the commands in force."""
        consumer = self._consumer()
        await consumer.start()
        try:
            await self._read_to_end(consumer)
        finally:
            await consumer.stop()
        return len(self.commands)

    async def run(self, *, poll_ms: int = 1000, min_backoff_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
        """Load, then follow the topic until cancelled (a worker's background task). Errors are
        logged and retried after a bounded, growing pause; the commands known so far stay in force."""
        backoff = min_backoff_s
        while True:
            try:
                await self.ensure_topic()
                consumer = self._consumer()
                try:
                    await consumer.start()
                    tps = await self._read_to_end(consumer)
                    log.info("baseline control: %d command(s) in force from %s", len(self.commands), self.topic,
                             extra={"commands": {k: c.frozen for k, c in sorted(self.commands.items())}})
                    self._changed()
                    backoff = min_backoff_s
                    while True:
                        batch = await consumer.getmany(*tps, timeout_ms=poll_ms)
                        if not batch:
                            continue
                        for tp, records in batch.items():
                            for record in records:
                                where = f"{tp.topic}/{tp.partition}@{record.offset}"
                                apply_record(self.commands, record.key, record.value, where)
                                log.info("baseline control record at %s", where, extra={
                                    "target": record.key.decode("utf-8", "replace") if record.key else None,
                                    "value": record.value.decode("utf-8", "replace") if record.value else None})
                        self._changed()
                finally:
                    with contextlib.suppress(Exception):
                        await consumer.stop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker keeps running without fresh commands
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("baseline control topic %r unreadable, retrying in %.0f s: %s", self.topic, backoff,
                          self.error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff_s)

    def start_following(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="baseline-control")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # ---- writing --------------------------------------------------------------------------
    async def send(self, targets: Sequence[str], command: BaselineCommand | None) -> None:
        """Write `command` (None: a tombstone withdrawing the command) for each target (agent
        ids, or `*`), acknowledged by all in-sync replicas."""
        producer = AIOKafkaProducer(**self.settings.kafka.client_options(), acks="all", enable_idempotence=True,
                                    request_timeout_ms=int(self.timeout_s * 1000))
        await producer.start()
        try:
            value = command.to_json() if command is not None else None
            for target in targets:
                await producer.send_and_wait(self.topic, key=target.encode(), value=value)
                if command is None:
                    self.commands.pop(target, None)
                else:
                    self.commands[target] = command
        finally:
            await producer.stop()


async def freeze(settings: Settings, agents: Iterable[str] | str, frozen: bool, by: str, reason: str = "", *,
                 at: datetime | None = None, timeout_s: float = 10.0) -> BaselineCommand:
    """Freeze (or unfreeze) the baselines of `agents`, or of all agents with `"*"`: one command
    per target in the control topic. Raises `BaselineControlError` if Kafka does not take it
    within `timeout_s`."""
    targets = _targets(agents)
    command = BaselineCommand(frozen=frozen, at=at or datetime.now(UTC), by=by, reason=reason)
    await _bounded(settings, timeout_s, lambda control: control.send(targets, command))
    return command


async def clear(settings: Settings, agents: Iterable[str] | str, *, timeout_s: float = 10.0) -> None:
    """Withdraw the commands for `agents` (or the `*` one): those agents keep their current flag
    (an operator's choice, which `detection.frozen_baseline_after_h` does not override)."""
    targets = _targets(agents)
    await _bounded(settings, timeout_s, lambda control: control.send(targets, None))


def _targets(agents: Iterable[str] | str) -> list[str]:
    targets = [agents] if isinstance(agents, str) else sorted(set(agents))
    if not targets or not all(targets):
        raise ValueError("name at least one agent (or '*' for all)")
    return targets


async def commands_in_force(settings: Settings, *, timeout_s: float = 10.0) -> dict[str, BaselineCommand]:
    """The commands in the control topic now (target -> command)."""
    control = await _bounded(settings, timeout_s, lambda control: control.load())
    return dict(control.commands)


async def _bounded(settings: Settings, timeout_s: float,
                   action: Callable[[BaselineControl], Awaitable[object]]) -> BaselineControl:
    """Run `action` on a fresh `BaselineControl` within `timeout_s`; Kafka errors, an unreachable
    broker included, become `BaselineControlError`."""
    control = BaselineControl(settings, timeout_s=timeout_s)

    async def run() -> None:
        await control.ensure_topic()
        await action(control)

    try:
        await asyncio.wait_for(run(), timeout_s)
    except (KafkaError, TimeoutError, OSError) as exc:
        raise BaselineControlError(
            f"cannot use the control topic {control.topic!r} at {settings.kafka.bootstrap_servers}: "
            f"{str(exc) or type(exc).__name__}") from exc
    return control
