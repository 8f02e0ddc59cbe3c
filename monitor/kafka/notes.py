"""Operators' notes in a compacted topic (`settings.report.notes_topic`, default `agent-notes`):
what changed that the events cannot show ("knowledge base: pricing pages updated"). The weekly
review puts them in each agent's changes timeline.

Key = note id, value = the note as JSON; the newest record per key is the note (as with the
silences, alerts/silence_kafka.py), so a note is corrected by writing its id again and withdrawn
with a tombstone (value null). Readers load the topic from the beginning to its end offsets
(`monitor/kafka/table.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from monitor.kafka.table import ReadTimeout, ensure_table_topic, read_to_end, topic_partitions
from monitor.settings import Settings


class NotesError(RuntimeError):
    """The notes topic cannot be read or written."""


class OperatorNote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    agent_id: str = Field(min_length=1, max_length=128, description="the agent, or * for every agent")
    at: AwareDatetime = Field(description="when the change happened (default: when the note was written)")
    text: str = Field(min_length=1, max_length=1000)
    by: str = Field(default="", max_length=128)

    @classmethod
    def new(cls, agent_id: str, text: str, at: datetime, by: str = "") -> OperatorNote:
        return cls(id=uuid.uuid4().hex[:16], agent_id=agent_id, at=at, text=text.strip(), by=by)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


def notes_topic(settings: Settings) -> str:
    return settings.report.notes_topic


async def write_note(settings: Settings, note: OperatorNote, *, timeout_s: float = 15.0) -> None:
    topic = notes_topic(settings)
    error = await ensure_table_topic(settings, topic, timeout_s=timeout_s)
    if error is not None:
        raise NotesError(error)
    producer = AIOKafkaProducer(**settings.kafka.client_options(), acks="all", enable_idempotence=True,
                                request_timeout_ms=int(timeout_s * 1000))
    try:
        await producer.start()
        await producer.send_and_wait(topic, key=note.id.encode(), value=note.to_json())
    except KafkaError as exc:
        raise NotesError(f"could not write note to {topic!r} at {settings.kafka.bootstrap_servers}: {exc}") from exc
    finally:
        await producer.stop()


async def read_notes(settings: Settings, *, timeout_s: float = 15.0) -> tuple[list[OperatorNote], int]:
    """Every note in force, oldest first, and the number of unreadable records skipped. A topic
    that does not exist yet holds no notes."""

    topic = notes_topic(settings)
    notes: dict[str, OperatorNote | None] = {}
    invalid = 0

    def apply(record: ConsumerRecord[bytes, bytes]) -> None:
        nonlocal invalid
        if record.key is None:
            invalid += 1
            return
        key = record.key.decode("utf-8", "replace")
        if record.value is None:
            notes[key] = None
            return
        try:
            notes[key] = OperatorNote.model_validate_json(record.value)
        except ValidationError:
            invalid += 1

    consumer = AIOKafkaConsumer(**settings.kafka.client_options(), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
        if not await topic_partitions(consumer, topic):
            return [], 0
        await read_to_end(consumer, topic, apply, timeout_s=timeout_s)
    except ReadTimeout as exc:
        raise NotesError(f"timed out reading the notes topic {topic!r}: {exc}") from None
    except KafkaError as exc:
        raise NotesError(f"could not read notes from {topic!r} at {settings.kafka.bootstrap_servers}: {exc}") from exc
    finally:
        await consumer.stop()
    return sorted((n for n in notes.values() if n is not None), key=lambda n: (n.at, n.id)), invalid
