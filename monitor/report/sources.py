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
from monitor.report.records import (
    OperatorNote,
    Recorded,
    RegressionResult,
    Verdict,
    VersionSeen,
    decode_notes,
    decode_recorded,
)
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
    #: verdicts, regression results, agent versions (monitor/report/records.py) and notes
    recorded: list[Recorded] = field(default_factory=list)
    notes: list[OperatorNote] = field(default_factory=list)
    team_sources: list[str] = field(default_factory=list)  # where they came from, and what was missing

    def describe(self) -> str:
        parts = []
        for s in (self.rollup_stats, self.alert_stats):
            text = f"{s.source}: {s.kept} of {s.records_read} records in range"
            if s.invalid:
                text += f", {s.invalid} invalid (first: {s.first_errors[0]})"
            parts.append(text)
        return "; ".join(parts + self.team_sources)


def _team_summary(source: str, recorded: list[Recorded]) -> str:
    verdicts = sum(1 for r in recorded if isinstance(r, Verdict))
    cases = sum(1 for r in recorded if isinstance(r, RegressionResult))
    versions = len({(r.agent_id, r.version) for r in recorded if isinstance(r, VersionSeen)})
    return f"{source}: {verdicts} verdicts, {cases} regression results, {versions} agent versions"


def first_versions(recorded: list[Recorded]) -> list[Recorded]:
    """Only the first sighting of each agent version is needed: the rest are dropped (a week of
    executions can carry millions)."""
    first: dict[tuple[str, str], VersionSeen] = {}
    rest: list[Recorded] = []
    for r in recorded:
        if isinstance(r, VersionSeen):
            key = (r.agent_id, r.version)
            if key not in first or r.at < first[key].at:
                first[key] = r
        else:
            rest.append(r)
    return rest + list(first.values())


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
    *, events_file: Path | None = None, notes_file: Path | None = None, records_from: datetime | None = None,
) -> RecordedHistory:
    """`events_file`: events (JSON lines, as `agentmon emit` takes them) with the verdicts, regression
    results and agent versions of [records_from, end); `notes_file`: operators' notes, one JSON object a line."""
    rollups, rstats = _read_jsonl(rollups_file, decode_rollup, lambda r: r.hour, start, end, max_records)
    if alerts_file is None:
        alerts: list[Alert] = []
        astats = ReadStats(source="(no alerts file)")
    else:
        alerts, astats = _read_jsonl(alerts_file, decode_alert, lambda a: a.at, start, end, max_records)
    history = RecordedHistory(rollups, alerts, rstats, astats)
    if events_file is not None:
        if not events_file.is_file():
            raise ReportSourceError(f"no such file: {events_file}")
        since = records_from or start
        with events_file.open("rb") as lines:
            found = [r for line in lines if (r := decode_recorded(line)) is not None and since <= r.at < end]
        history.recorded = first_versions(found)
        history.team_sources.append(_team_summary(str(events_file), history.recorded))
    if notes_file is not None:
        if not notes_file.is_file():
            raise ReportSourceError(f"no such file: {notes_file}")
        with notes_file.open("rb") as lines:
            notes, invalid = decode_notes({str(n): line for n, line in enumerate(lines) if line.strip()})
        if invalid:
            raise ReportSourceError(f"{notes_file}: {invalid} line(s) are not notes (id, agent_id, at, text)")
        history.notes = notes
        history.team_sources.append(f"{notes_file}: {len(notes)} notes")
    return history


# ---- Kafka ---------------------------------------------------------------------------------------

async def _read_topic(
    settings: Settings, topic: str, decode: Callable[[bytes], T | None], time_of: Callable[[T], datetime],
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
        if record is None:  # not of interest; its own time is unknown, so it never ends the read
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
    max_records: int = 2_000_000, timeout_s: float = 30.0, records_from: datetime | None = None,
    max_event_records: int = 5_000_000,
) -> RecordedHistory:
    """Rollups and alerts of [start, end) from the topics named in `settings.topics`; with
    `records_from`, also what the team recorded in [records_from, end) (`_read_team_records`)."""
    rollups, rstats = await _read_topic(settings, settings.topics.rollups, decode_rollup, lambda r: r.hour,
                                        start, end, slack, max_records, timeout_s)
    alerts, astats = await _read_topic(settings, settings.topics.alerts, decode_alert, lambda a: a.at,
                                       start, end, slack, max_records, timeout_s)
    history = RecordedHistory(rollups, alerts, rstats, astats)
    if records_from is not None:
        await _read_team_records(settings, history, records_from, end, slack, max_event_records, timeout_s)
    return history


async def _read_team_records(
    settings: Settings, history: RecordedHistory, start: datetime, end: datetime, slack: timedelta,
    max_event_records: int, timeout_s: float,
) -> None:
    """Verdicts and regression results from the review log, notes from the notes topic (both
    compacted, read whole), agent versions from the events topic (what it still holds of [start, end))."""
    from monitor.kafka.team_records import TeamRecordsError, notes_topic, read_table, records_topic

    try:
        log = await read_table(settings, records_topic(settings), timeout_s=timeout_s)
        notes = await read_table(settings, notes_topic(settings), timeout_s=timeout_s)
    except TeamRecordsError as exc:
        raise ReportSourceError(str(exc)) from None
    recorded = [r for raw in log.values() if (r := decode_recorded(raw)) is not None and start <= r.at < end]
    history.notes, invalid = decode_notes(notes)
    history.team_sources.append(f"topic {records_topic(settings)}: {len(recorded)} verdicts and regression results; "
                                f"topic {notes_topic(settings)}: {len(history.notes)} notes"
                                + (f" ({invalid} unreadable)" if invalid else ""))
    first: dict[tuple[str, str], VersionSeen] = {}

    def version(raw: bytes) -> VersionSeen | None:
        seen = decode_recorded(raw)
        if isinstance(seen, VersionSeen) and start <= seen.at < end:
            key = (seen.agent_id, seen.version)
            if key not in first or seen.at < first[key].at:
                first[key] = seen
        return None  # only the first sighting per version is kept, above

    try:
        _, stats = await _read_topic(settings, settings.topics.events, version, lambda v: v.at, start, end, slack,
                                     max_event_records, timeout_s)
        history.team_sources.append(f"topic {settings.topics.events}: {stats.records_read} events read for "
                                    f"{len(first)} agent versions")
    except ReportSourceError as exc:
        history.team_sources.append(f"agent versions unknown ({exc})")
    history.recorded = recorded + list(first.values())

