"""Reading what the pipeline recorded: rollups and alerts, from JSON-lines files or from the
`agent-rollups` / `agent-alerts` topics, for one time range and no more.

Kafka: each partition is read from the offset of the first message at or after `start - slack`
(`offsets_for_times`, on the message timestamp) up to the partition's end offset taken when the
read began, stopping early at the first record that is past `end + slack` by both its message
timestamp and its own time (rollup `hour`, alert `at`). Records are kept by their own time.
`slack` covers the delay between an hour's end and its rollup being published, and moderate
producer clock skew. Workers should publish rollups with the message timestamp = the hour's start
and alerts with `at`, so the seek is exact; records republished later (a replay) are still found,
at the cost of reading from an earlier offset. The read is bounded by `max_records` per topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from monitor.contract.alert import Alert, decode_alert
from monitor.contract.rollup import Rollup
from monitor.report.errors import ReportSourceError
from monitor.settings import Settings

T = TypeVar("T")


@dataclass(slots=True)
class ReadStats:
    """What a read saw: for the report's notes and for tests of boundedness."""

    source: str
    records_read: int = 0
    kept: int = 0
    invalid: int = 0
    first_errors: list[str] = field(default_factory=list)

    def invalid_record(self, where: str, error: str) -> None:
        self.invalid += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(f"{where}: {error}")


@dataclass(slots=True)
class RecordedHistory:
    rollups: list[Rollup]
    alerts: list[Alert]
    rollup_stats: ReadStats
    alert_stats: ReadStats

    def describe(self) -> str:
        parts = []
        for s in (self.rollup_stats, self.alert_stats):
            text = f"{s.source}: {s.kept} of {s.records_read} records in range"
            if s.invalid:
                text += f", {s.invalid} invalid (first: {s.first_errors[0]})"
            parts.append(text)
        return "; ".join(parts)


def decode_rollup(raw: bytes | str) -> Rollup:
    return Rollup.model_validate_json(raw)


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors(include_url=False)[0]
        return f"{'.'.join(map(str, err['loc'])) or '<record>'}: {err['msg']}"
    return str(exc)[:200]


def _read_jsonl(
    path: Path, decode: Callable[[bytes], T], time_of: Callable[[T], datetime], start: datetime, end: datetime,
    max_records: int,
) -> tuple[list[T], ReadStats]:
    stats = ReadStats(source=str(path))
    if not path.is_file():
        raise ReportSourceError(f"no such file: {path}")
    kept: list[T] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            stats.records_read += 1
            if stats.records_read > max_records:
                raise ReportSourceError(f"{path}: more than {max_records} records; raise report.max_records")
            try:
                record = decode(line)
            except (ValidationError, ValueError) as exc:
                stats.invalid_record(f"{path}:{number}", _short_error(exc))
                continue
            if start <= time_of(record) < end:
                kept.append(record)
    stats.kept = len(kept)
    return kept, stats


def read_jsonl_history(
    rollups_file: Path, alerts_file: Path | None, start: datetime, end: datetime, max_records: int = 2_000_000,
) -> RecordedHistory:
    rollups, rstats = _read_jsonl(rollups_file, decode_rollup, lambda r: r.hour, start, end, max_records)
    if alerts_file is None:
        alerts: list[Alert] = []
        astats = ReadStats(source="(no alerts file)")
    else:
        alerts, astats = _read_jsonl(alerts_file, decode_alert, lambda a: a.at, start, end, max_records)
    return RecordedHistory(rollups, alerts, rstats, astats)


# ---- Kafka ---------------------------------------------------------------------------------------

async def _read_topic(
    settings: Settings, topic: str, decode: Callable[[bytes], T], time_of: Callable[[T], datetime],
    start: datetime, end: datetime, slack: timedelta, max_records: int, timeout_s: float,
) -> tuple[list[T], ReadStats]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError
    from aiokafka.structs import ConsumerRecord

    from monitor.kafka.table import ReadTimeout, read_to_end, topic_partitions

    stats = ReadStats(source=f"topic {topic}")
    consumer = AIOKafkaConsumer(
        **settings.kafka.client_options(), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
    )
    kept: list[T] = []
    stop_ms = int((end + slack).timestamp() * 1000)

    def keep(msg: ConsumerRecord[bytes, bytes]) -> bool:
        """Keep a record in range; True (the partition is done) past the range by both clocks."""
        stats.records_read += 1
        if stats.records_read > max_records:
            raise ReportSourceError(f"topic {topic}: more than {max_records} records in range; "
                                    "raise report.max_records")
        try:
            record = decode(msg.value or b"")
        except (ValidationError, ValueError) as exc:
            stats.invalid_record(f"{topic}/{msg.partition}@{msg.offset}", _short_error(exc))
            return False
        at = time_of(record)
        if start <= at < end:
            kept.append(record)
        return msg.timestamp > stop_ms and at >= end + slack

    try:
        await consumer.start()
        ids = await topic_partitions(consumer, topic)
        if not ids:
            raise ReportSourceError(f"topic {topic} does not exist on {settings.kafka.bootstrap_servers}")
        from_ms = int((start - slack).timestamp() * 1000)
        found = await consumer.offsets_for_times({TopicPartition(topic, p): from_ms for p in ids})
        # partitions with nothing at or after the range start are not read
        first = {tp.partition: at.offset for tp, at in found.items() if at is not None}
        await read_to_end(consumer, topic, keep, timeout_s=timeout_s, start=first)
    except ReadTimeout as exc:
        raise ReportSourceError(str(exc)) from None
    except KafkaError as exc:
        raise ReportSourceError(f"topic {topic} on {settings.kafka.bootstrap_servers}: {exc}") from None
    finally:
        await consumer.stop()
    stats.kept = len(kept)
    return kept, stats


async def read_kafka_history(
    settings: Settings, start: datetime, end: datetime, *, slack: timedelta = timedelta(hours=6),
    max_records: int = 2_000_000, timeout_s: float = 30.0,
) -> RecordedHistory:
    """Rollups and alerts of [start, end) from the topics named in `settings.topics`."""
    rollups, rstats = await _read_topic(settings, settings.topics.rollups, decode_rollup, lambda r: r.hour,
                                        start, end, slack, max_records, timeout_s)
    alerts, astats = await _read_topic(settings, settings.topics.alerts, decode_alert, lambda a: a.at,
                                       start, end, slack, max_records, timeout_s)
    return RecordedHistory(rollups, alerts, rstats, astats)

