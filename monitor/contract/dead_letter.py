"""Dead letters: an event that broke the contract, kept with everything needed to fix and replay it.

The record on `agent-events-dlq` is JSON (so any consumer can read it) holding the original bytes
(base64, exactly as received), the reason, and where it came from. The same facts travel in
Kafka headers so that tools can filter without parsing the value. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

# A dead letter must always fit in a Kafka record (the producer's 1 MB request limit; base64 adds a
# third): a larger original is kept in part, with its size and SHA-256, and stays whole in the
# source topic at the source offset for the topic's retention.
MAX_ORIGINAL_BYTES = 512 * 1024
MAX_KEY_CHARS = 1024


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    error: str = Field(description="why the event was refused, naming the field")
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None = Field(description="the Kafka record timestamp of the original")
    key: str | None = Field(description="the original key, decoded as UTF-8 (replacement chars if not)")
    original_b64: str = Field(description="the original value bytes, base64 (the first MAX_ORIGINAL_BYTES of them "
                              "when original_truncated)")
    original_size: int
    original_truncated: bool = Field(default=False, description="the original was larger than a dead letter "
                                     "carries: it is whole in the source topic at the source offset")
    original_sha256: str | None = Field(default=None, description="hex SHA-256 of the whole original, when "
                                        "truncated")

    @classmethod
    def of(cls, value: bytes | None, key: bytes | None, error: str, *, topic: str, partition: int,
           offset: int, timestamp_ms: int | None) -> DeadLetter:
        raw = value or b""
        truncated = len(raw) > MAX_ORIGINAL_BYTES
        text_key = None if key is None else key.decode("utf-8", errors="replace")
        if text_key is not None and len(text_key) > MAX_KEY_CHARS:
            text_key = text_key[: MAX_KEY_CHARS - 1] + "\u2026"
        return cls(error=error[:1000], source_topic=topic, source_partition=partition, source_offset=offset,
                   source_timestamp_ms=timestamp_ms, key=text_key,
                   original_b64=base64.b64encode(raw[:MAX_ORIGINAL_BYTES]).decode("ascii"), original_size=len(raw),
                   original_truncated=truncated,
                   original_sha256=hashlib.sha256(raw).hexdigest() if truncated else None)

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("agentmon.error", self.error[:1000].encode()),
            ("agentmon.source", f"{self.source_topic}/{self.source_partition}/{self.source_offset}".encode()),
        ]

    def source_time(self) -> datetime | None:
        if self.source_timestamp_ms is None:
            return None
        return datetime.fromtimestamp(self.source_timestamp_ms / 1000, tz=UTC)
