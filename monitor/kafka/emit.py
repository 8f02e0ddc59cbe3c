"""`agentmon emit`: send JSON-lines events to Kafka, validating each line first.

Invalid lines are not sent; they are reported with their line number and reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tqdm import tqdm

from monitor.contract.events import EventError
from monitor.contract.wire import read_event
from monitor.kafka.producer import AgentEventProducer
from monitor.kafka.topics import require_events_topic
from monitor.settings import Settings

MAX_REPORTED_INVALID = 20


@dataclass
class EmitSummary:
    lines: int = 0
    sent: int = 0
    invalid: int = 0
    dropped: int = 0
    failed: int = 0
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)

    def describe(self) -> str:
        text = (f"sent {self.sent} events from {self.lines} lines: {self.invalid} invalid, "
                f"{self.dropped} dropped (buffer full), {self.failed} failed delivery")
        for number, reason in self.invalid_lines:
            text += f"\n  line {number}: {reason}"
        if self.invalid > len(self.invalid_lines):
            text += f"\n  ... and {self.invalid - len(self.invalid_lines)} more invalid lines"
        return text


async def emit_lines(settings: Settings, lines: Iterable[bytes], *, progress: bool | None = None,
                     total: int | None = None) -> EmitSummary:
    """Validate and send each non-blank line; wait until all are acknowledged. Raises TopicError
    when the events topic does not exist: sending would create it with the broker's defaults
    (one partition, its retention), which `agentmon topics create` would then leave as it is."""
    await require_events_topic(settings)
    summary = EmitSummary()
    async with AgentEventProducer(settings) as producer:
        bar = tqdm(lines, total=total, unit="ev", disable=progress is False if progress is not None else None,
                   desc="emit", leave=False)
        for number, raw in enumerate(bar, start=1):
            line = raw.strip()
            if not line:
                continue
            summary.lines += 1
            try:
                event = read_event(line, max_bytes=settings.max_event_bytes)
            except EventError as exc:
                summary.invalid += 1
                if len(summary.invalid_lines) < MAX_REPORTED_INVALID:
                    summary.invalid_lines.append((number, exc.reason))
                continue
            await producer.send_encoded(line, event.agent_id)
        bar.close()
        await producer.flush()
    summary.sent = producer.stats.acked
    summary.failed = producer.stats.failed
    summary.dropped = producer.stats.dropped
    return summary
