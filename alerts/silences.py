"""Silences: mute firing alerts that match a set of matchers for a time window, with an author and a
reason (after Alertmanager's `silence/`). Pure model, matching and expiry here; stores below
(in memory) and in `alerts.silence_kafka` (compacted topic, key = silence id).

Matchers compare `rule`, `agent` (= `agent_id`), `severity`, `fingerprint`, else a label, with
`=`, `!=`, `=~`, `!~` (regexes are anchored, as in Alertmanager). A silence is *pending* before
`starts_at`, *active* until `ends_at`, then *expired*; expiring one sets `ends_at` to now.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.errors import SilenceError
from alerts.mute import Mute, alert_field
from monitor.contract.alert import Alert

MatchOp: TypeAlias = Literal["=", "!=", "=~", "!~"]
SilenceState: TypeAlias = Literal["pending", "active", "expired"]
_MATCHER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class Matcher(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    op: MatchOp = "="
    value: str

    @model_validator(mode="after")
    def _check_regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.name}{self.op}{self.value!r}: bad regex: {exc}") from exc
        return self

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(self.value)

    def matches(self, alert: Alert) -> bool:
        actual = alert_field(alert, self.name)
        return self.matches_value("" if actual is None else actual)  # absent = "" (as in Alertmanager)

    def matches_value(self, text: str) -> bool:
        if self.op == "=":
            return text == self.value
        if self.op == "!=":
            return text != self.value
        found = self._pattern.fullmatch(text) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """`rule=tool_error_rate`, `agent!=x`, `tool=~crm\\..*`."""
    found = _MATCHER_RE.match(text)
    if not found:
        raise SilenceError(f"matcher {text!r} is not NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")
    name, op, value = found.groups()
    try:
        return Matcher.model_validate({"name": name, "op": op, "value": value})
    except ValueError as exc:
        raise SilenceError(str(exc)) from exc


class Silence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    matchers: list[Matcher] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1, description="why: planned work, known issue, ticket")
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None

    @field_validator("matchers")
    @classmethod
    def _not_match_all(cls, matchers: list[Matcher]) -> list[Matcher]:
        # A silence whose matchers all accept the empty string would mute every alert.
        if all(m.matches_value("") for m in matchers):
            raise ValueError("a silence needs at least one matcher that does not match everything")
        return matchers

    @model_validator(mode="after")
    def _check_window(self) -> Silence:
        if self.ends_at < self.starts_at:
            raise ValueError(f"silence {self.id}: ends_at {self.ends_at} is before starts_at {self.starts_at}")
        return self

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        if now < self.ends_at:
            return "active"
        return "expired"

    def matches(self, alert: Alert) -> bool:
        return all(m.matches(alert) for m in self.matchers)

    def expired_at(self, now: datetime) -> Silence:
        """This silence ended at `now` (or unchanged if already over)."""
        if self.state(now) == "expired":
            return self
        return self.model_copy(update={"ends_at": max(now, self.starts_at), "updated_at": now})

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)

    def describe(self) -> str:
        return " ".join(str(m) for m in self.matchers)


def new_silence(
    matchers: Sequence[Matcher],
    *,
    now: datetime,
    duration: timedelta,
    created_by: str,
    comment: str,
    starts_at: datetime | None = None,
    silence_id: str | None = None,
) -> Silence:
    if duration <= timedelta(0):
        raise SilenceError(f"a silence needs a positive duration, got {duration}")
    start = starts_at or now
    try:
        return Silence(
            id=silence_id or uuid.uuid4().hex[:12],
            matchers=list(matchers),
            starts_at=start,
            ends_at=start + duration,
            created_by=created_by,
            comment=comment,
            created_at=now,
        )
    except ValueError as exc:
        raise SilenceError(str(exc)) from exc


def matching_silence(alert: Alert, silences: Iterable[Silence], now: datetime) -> Silence | None:
    """The active silence that mutes `alert` at `now` (the one ending last), or None. Pure."""
    hits = [s for s in silences if s.state(now) == "active" and s.matches(alert)]
    return max(hits, key=lambda s: (s.ends_at, s.id)) if hits else None


_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`90m`, `2h`, `1.5d`, `1w`."""
    found = _DURATION_RE.match(text.strip())
    if not found:
        raise SilenceError(f"duration {text!r} is not a number followed by s, m, h, d or w (e.g. 2h)")
    return timedelta(seconds=float(found.group(1)) * _UNIT_S[found.group(2)])


class SilenceSource(Protocol):
    """What the muter reads on every decision: a cheap in-memory snapshot."""

    def silences(self) -> list[Silence]: ...


class SilenceStore(SilenceSource, Protocol):
    """A synchronous store (memory, file). The Kafka store (`alerts.silence_kafka`) has the same
    operations as coroutines, because its writes wait for the broker's acknowledgement."""

    def put(self, silence: Silence) -> None: ...

    def expire(self, silence_id: str, now: datetime) -> Silence: ...


class MemorySilenceStore:
    """Thread-safe in-process store (tests, single-process demo, and the cache of the Kafka store)."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Silence] = {s.id: s for s in silences}

    def silences(self) -> list[Silence]:
        with self._lock:
            return list(self._by_id.values())

    def get(self, silence_id: str) -> Silence:
        with self._lock:
            try:
                return self._by_id[silence_id]
            except KeyError:
                raise SilenceError(f"no silence with id {silence_id!r}") from None

    def put(self, silence: Silence) -> None:
        with self._lock:
            self._by_id[silence.id] = silence

    def remove(self, silence_id: str) -> None:
        with self._lock:
            self._by_id.pop(silence_id, None)

    def expire(self, silence_id: str, now: datetime) -> Silence:
        expired = self.get(silence_id).expired_at(now)
        self.put(expired)
        return expired


class FileSilenceStore(MemorySilenceStore):
    """Silences in one JSON file (single host: the demo, a laptop). Re-read when the file changes,
    written atomically (temp file + rename)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._mtime: float | None = None
        self._reload()

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if self._mtime == stat.st_mtime:
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8") or "[]")
            loaded = [Silence.model_validate(item) for item in raw]
        except (ValueError, TypeError) as exc:
            raise SilenceError(f"silences file {self.path} is not a JSON list of silences: {exc}") from exc
        with self._lock:
            self._by_id = {s.id: s for s in loaded}
        self._mtime = stat.st_mtime

    def silences(self) -> list[Silence]:
        self._reload()
        return super().silences()

    def put(self, silence: Silence) -> None:
        self._reload()
        super().put(silence)
        self._write()

    def expire(self, silence_id: str, now: datetime) -> Silence:
        self._reload()
        return super().expire(silence_id, now)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = [json.loads(s.to_json()) for s in super().silences()]
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".silences-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime


class SilenceMuter:
    """The silence side of the one Muter interface."""

    def __init__(self, store: SilenceSource) -> None:
        self.store = store

    def mutes(self, alert: Alert, now: datetime, event_time: datetime | None = None) -> Mute | None:
        silence = matching_silence(alert, self.store.silences(), now)
        if silence is None:
            return None
        return Mute(
            "silenced",
            silence.id,
            f"{silence.describe()} until {silence.ends_at.isoformat()} by {silence.created_by}: {silence.comment}",
            author=silence.created_by,
            comment=silence.comment,
            ends_at=silence.ends_at,
        )
