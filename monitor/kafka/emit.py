"""`agentmon emit`: send JSON-lines events to Kafka, validating each line first.

Invalid lines are not sent; they are reported with their line number and reason.

A broker outage does not lose work. The idempotent producer keeps retrying what it holds (without
duplicates) while emit stops reading and waits, saying so every `NOTICE_EVERY_S` rather than once
per event. When Kafka has acknowledged nothing for `give_up_after_s` while events wait, emit gives
up: it abandons what is unacknowledged and names the last line up to which every event is in Kafka,
so that `--from-line` resumes from the line after it. Events after that line that reached Kafka
anyway are counted: sending them again is safe, as the worker drops an `event_id` it has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.structs import RecordMetadata
from tqdm import tqdm

from monitor.contract.events import EventError
from monitor.contract.wire import read_event
from monitor.kafka.producer import AgentEventProducer, BufferFullError
from monitor.kafka.topics import require_events_topic
from monitor.settings import Settings

MAX_REPORTED_INVALID = 20
#: how long Kafka may acknowledge nothing while events wait before emit says so, and then how often
STALL_NOTICE_S = 5.0
NOTICE_EVERY_S = 10.0
DEFAULT_GIVE_UP_AFTER_S = 120.0
READ_CHUNK = 1 << 16
RESEND_BACKOFF_S = 1.0
INTERRUPT_FLUSH_S = 5.0


@dataclass
class EmitSummary:
    lines: int = 0
    sent: int = 0
    invalid: int = 0
    dropped: int = 0
    failed: int = 0
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)
    from_line: int = 1
    #: set when emit gave up: every valid line up to `last_line_sent` is in Kafka
    gave_up: str | None = None
    last_line_sent: int = 0
    sent_after_last_line: int = 0
    unacknowledged: int = 0
    interrupted: bool = False
    resent: int = 0
    #: longest time Kafka acknowledged nothing while events waited (an outage ridden out or not)
    longest_stall_s: float = 0.0

    def describe(self, source: str = "FILE") -> str:
        skipped = f" (from line {self.from_line})" if self.from_line > 1 else ""
        text = (f"sent {self.sent} events from {self.lines} lines{skipped}: {self.invalid} invalid, "
                f"{self.dropped} dropped (buffer full), {self.failed} failed delivery")
        if self.longest_stall_s >= STALL_NOTICE_S and self.gave_up is None:
            text += f"\n  Kafka acknowledged nothing for up to {self.longest_stall_s:.0f} s; every event was delivered"
            if self.resent:
                text += f" ({self.resent} sent again after the client's request timeout)"
        for number, reason in self.invalid_lines:
            text += f"\n  line {number}: {reason}"
        if self.invalid > len(self.invalid_lines):
            text += f"\n  ... and {self.invalid - len(self.invalid_lines)} more invalid lines"
        if self.gave_up is not None:
            waiting = f" with {self.unacknowledged} events unacknowledged" if self.unacknowledged else ""
            stopped = "stopped" if self.interrupted else "gave up"
            text += (f"\n{stopped}: {self.gave_up}{waiting}. Last line sent: {self.last_line_sent} (every event up "
                     f"to it is in Kafka). Resume with: agentmon emit {source} --from-line {self.last_line_sent + 1}")
            if self.sent_after_last_line:
                text += (f"\n  {self.sent_after_last_line} events after line {self.last_line_sent} reached Kafka "
                         "too; resending them is safe: the worker drops an event_id it has already seen")
        return text


class _Deliveries:
    """Which sent lines Kafka has not acknowledged yet, and since when nothing was acknowledged.
    Memory is bounded by the events waiting, not by the file."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.unacked: set[int] = set()
        self.failed: set[int] = set()
        self._window: deque[int] = deque()  # sent lines from the oldest unacknowledged one on
        self._waiting: dict[int, tuple[bytes, str]] = {}  # line and key of each unacknowledged event
        self.retry: list[int] = []
        self.first_error: str | None = None
        self.acked = 0
        self.resent = 0
        self.last_progress = now()

    def sending(self, number: int, line: bytes, agent_id: str) -> None:
        if not self.unacked:
            self.last_progress = self._now()  # the stall clock runs only while something waits
        self.unacked.add(number)
        self._waiting[number] = (line, agent_id)
        self._window.append(number)

    def done(self, number: int, delivery: asyncio.Future[RecordMetadata]) -> None:
        error = None if delivery.cancelled() else delivery.exception()
        if delivery.cancelled() or error is not None:
            # A batch whose partition had no leader for the client's request timeout fails with a
            # retriable error (a broker restart longer than it): send it again. Anything else is
            # final; it stays unacknowledged, so the resume line covers it.
            if isinstance(error, KafkaError) and error.retriable:
                self.retry.append(number)
            else:
                self.failed.add(number)
                self.first_error = self.first_error or repr(error)
            return
        self.unacked.discard(number)
        self._waiting.pop(number, None)
        self.acked += 1
        self.last_progress = self._now()
        while self._window and self._window[0] not in self.unacked:
            self._window.popleft()

    def take_retries(self) -> list[tuple[int, bytes, str]]:
        numbers, self.retry = sorted(self.retry), []
        return [(n, *self._waiting[n]) for n in numbers]

    def stalled_for(self) -> float:
        return self._now() - self.last_progress if self.unacked else 0.0

    def resume_point(self, last_read: int) -> tuple[int, int]:
        """(last line up to which every event is in Kafka, events acknowledged after it)."""
        if not self.unacked:
            return last_read, 0
        first = min(self.unacked)
        after = sum(1 for n in self._window if n > first and n not in self.unacked)
        return first - 1, after


async def _lines(source: Iterable[bytes] | BinaryIO) -> AsyncIterator[bytes]:
    """Lines of a list, or of a file or pipe read in chunks off the event loop: a pipe that goes
    quiet must not freeze the loop that delivers, and watches, the events already sent."""
    read = getattr(source, "read1", None)
    if read is None:
        for line in source:
            yield line
        return
    with contextlib.suppress(OSError, AttributeError):
        # the file descriptor itself: a thread blocked in a buffered object's read holds its lock,
        # and the interpreter aborts at exit when it cannot take it to close stdin
        read = functools.partial(os.read, source.fileno())  # type: ignore[union-attr]
    rest = b""
    while chunk := await _read_in_thread(read):
        *complete, rest = (rest + chunk).split(b"\n")
        for line in complete:
            yield line
    if rest:
        yield rest


def _read_in_thread(read1: Callable[[int], bytes]) -> asyncio.Future[bytes]:
    """One chunk read on a daemon thread: unlike the loop's executor, a read still blocked on a
    quiet pipe when emit gives up does not hold the process at exit."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bytes] = loop.create_future()

    def settle(data: bytes | None, error: BaseException | None) -> None:
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(data or b"")

    def work() -> None:
        try:
            data, error = read1(READ_CHUNK), None
        except BaseException as exc:  # handed to the loop, raised where the chunk is awaited
            data, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for this chunk
            loop.call_soon_threadsafe(settle, data, error)

    threading.Thread(target=work, name="agentmon-emit-read", daemon=True).start()
    return result


async def emit_lines(settings: Settings, lines: Iterable[bytes] | BinaryIO, *, progress: bool | None = None,
                     total: int | None = None, from_line: int = 1,
                     give_up_after_s: float = DEFAULT_GIVE_UP_AFTER_S,
                     notice: Callable[[str], None] | None = None,
                     summarise_interrupt: bool = False) -> EmitSummary:
    """Validate and send each non-blank line from `from_line` on; wait until all are acknowledged,
    or give up after Kafka acknowledged nothing for `give_up_after_s` (see the module docstring).
    Raises TopicError when the events topic does not exist: sending would create it with the
    broker's defaults (one partition, its retention), which `agentmon topics create` would then
    leave as it is. With `summarise_interrupt`, a cancellation (Ctrl-C under `asyncio.run`) ends
    the sending and returns the summary, marked `interrupted`, instead of raising."""
    if give_up_after_s <= 0:
        raise ValueError("give_up_after_s must be positive")
    say = notice or (lambda text: print(f"agentmon emit: {text}", file=sys.stderr, flush=True))
    await require_events_topic(settings)
    loop = asyncio.get_running_loop()
    summary = EmitSummary(from_line=from_line)
    deliveries = _Deliveries(loop.time)
    last_read = from_line - 1
    # Block (never drop, never raise) while the broker is away: the watch below decides when to stop.
    # The client's request timeout is also how long a batch may wait for a partition leader; one that
    # expires leaves a gap in the idempotent producer's sequence numbers, and every later batch of
    # that partition is then refused (OutOfOrderSequenceNumber): so it outlasts the watch.
    config = settings.producer.model_copy(update={
        "when_full": "block", "block_timeout_s": give_up_after_s + 60,
        "request_timeout_s": max(settings.producer.request_timeout_s, give_up_after_s + 60)})
    async with AgentEventProducer(settings, producer=config, log_failures=False) as producer:

        async def send_all() -> None:
            nonlocal last_read
            bar = tqdm(total=total, unit="ev", disable=progress is False if progress is not None else None,
                       desc="emit", leave=False)
            number = 0
            async for raw in _lines(lines):
                number += 1
                bar.update(1)
                if number < from_line:
                    continue
                line = raw.strip()
                if not line:
                    last_read = number
                    continue
                summary.lines += 1
                try:
                    event = read_event(line, max_bytes=settings.max_event_bytes)
                except EventError as exc:
                    summary.invalid += 1
                    if len(summary.invalid_lines) < MAX_REPORTED_INVALID:
                        summary.invalid_lines.append((number, exc.reason))
                    last_read = number
                    continue
                deliveries.sending(number, line, event.agent_id)
                last_read = number
                await send(number, line, event.agent_id)
                if deliveries.retry:
                    await resend()
            bar.close()
            await producer.flush()
            while deliveries.retry:  # each round waits for its own deliveries; the watch bounds it
                await resend()
                await producer.flush()

        async def send(number: int, line: bytes, agent_id: str) -> None:
            while True:
                try:
                    delivery = await producer.send_encoded(line, agent_id)
                    break
                except (KafkaTimeoutError, BufferFullError):
                    continue  # the client's own wait ran out; the watch decides when to stop
                except KafkaError as exc:
                    if not exc.retriable:
                        raise
                    await asyncio.sleep(RESEND_BACKOFF_S)  # a batch ahead of it failed (no leader): try again
            if delivery is not None:
                delivery.add_done_callback(functools.partial(deliveries.done, number))

        async def resend() -> None:
            await asyncio.sleep(RESEND_BACKOFF_S)
            for number, line, agent_id in deliveries.take_retries():
                deliveries.resent += 1
                await send(number, line, agent_id)

        sending = asyncio.ensure_future(send_all())
        noticed_at = 0.0
        try:
            while not sending.done():
                await asyncio.wait({sending}, timeout=1.0)
                stalled = deliveries.stalled_for()
                summary.longest_stall_s = max(summary.longest_stall_s, stalled)
                if stalled >= give_up_after_s:
                    summary.gave_up = (f"Kafka at {settings.kafka.bootstrap_servers} acknowledged nothing for "
                                       f"{stalled:.0f} s")
                    sending.cancel()
                    producer.abandon()
                    await asyncio.gather(sending, return_exceptions=True)
                    break
                if stalled >= STALL_NOTICE_S and (noticed_at == 0.0 or stalled - noticed_at >= NOTICE_EVERY_S):
                    noticed_at = stalled
                    say(f"Kafka at {settings.kafka.bootstrap_servers} has acknowledged nothing for {stalled:.0f} s; "
                        f"{len(deliveries.unacked)} events wait (last line read: {last_read}); retrying, giving up "
                        f"after {give_up_after_s:.0f} s")
                elif stalled < STALL_NOTICE_S and noticed_at:
                    say(f"Kafka answers again after {summary.longest_stall_s:.0f} s; sending goes on")
                    noticed_at = 0.0
            if not sending.cancelled():
                await sending
        except asyncio.CancelledError:
            sending.cancel()
            if not summarise_interrupt:
                producer.abandon()
                raise
            # Ctrl-C: stop reading, give what is in flight a moment, then say where to resume
            await asyncio.gather(sending, return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(producer.flush()), INTERRUPT_FLUSH_S)
            producer.abandon()
            summary.gave_up, summary.interrupted = "interrupted", True
        except BaseException:
            sending.cancel()
            producer.abandon()
            raise
    summary.sent = deliveries.acked
    summary.failed = len(deliveries.failed)
    summary.resent = deliveries.resent
    summary.unacknowledged = len(deliveries.unacked) - len(deliveries.failed)
    summary.dropped = producer.stats.dropped
    if summary.gave_up is not None or deliveries.failed:
        summary.last_line_sent, summary.sent_after_last_line = deliveries.resume_point(last_read)
        if summary.gave_up is None:
            summary.gave_up = f"{summary.failed} events were not delivered ({deliveries.first_error})"
    return summary
