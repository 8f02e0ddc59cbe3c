"""The notification log: the durable idempotency record of what was decided and what was delivered.

Two parts, written in one SQLite transaction so they never disagree:
- per fingerprint, the last state humans were (or are being) told (`LogEntry`, the dedup input);
- an outbox of notifications per receiver, each with a unique `notification_id`, a status
  (`pending` -> `delivered` | `dead`), attempts, the next attempt time, whether an attempt was in
  flight when we stopped, and where it landed (Slack channel + ts, for threading the resolve).

Because the dedup entry is written together with the outbox rows, replaying the alert topic after a
restart sees "already notified" and the outbox delivers what was pending: nothing twice, nothing lost.
Where it lives: with a `Changelog` (the Kafka runner's default, `alerts.notification_kafka`), the
SQLite database is an in-memory working copy and every committed change of a row is also handed to
the changelog as one record (key `<table>/<rowid>`, value the row as JSON, None when deleted): a
compacted Kafka topic, one partition per partition of `agent-alerts`, from which a new instance
rebuilds the log (`restore`). `start_attempt` waits until the changelog holds the "in flight" mark
before the send goes out, so whoever takes over checks the receiver before sending again. Without
a changelog the database is a file (`--from-file`, tests, a single local process).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias

from alerts.dedup import LogEntry, NotificationKind
from alerts.errors import NotificationLogError
from monitor.contract.alert import Alert, decode_alert

OutboxStatus: TypeAlias = Literal["pending", "delivered", "dead"]
# A Slack resolve is two steps: the threaded reply, then the edit of the firing message. Separate
# rows, so a failed edit is retried without posting the reply again.
# A digest row carries many alerts (the `digest` table); its `alert_json` is the first of them.
# A `note` is a line in the alert's thread that is not a state change (a silence began or ended).
OutboxKind: TypeAlias = NotificationKind | Literal["mark_resolved", "digest", "note"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nflog (
    fingerprint TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    alert_at TEXT NOT NULL,
    notified_at TEXT NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    receiver TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    alert_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    in_flight INTEGER NOT NULL DEFAULT 0,
    ambiguous INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    delivered_at TEXT,
    channel TEXT,
    message_ts TEXT,
    thread_parent TEXT,
    thread_parent_receiver TEXT,
    thread_ts TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, seq);
CREATE INDEX IF NOT EXISTS outbox_thread ON outbox (fingerprint, receiver, kind, status);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS active (fingerprint TEXT PRIMARY KEY, alert_json TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS digest (
    fingerprint TEXT NOT NULL,
    alert_json TEXT NOT NULL,
    added_at TEXT NOT NULL,
    notification_id TEXT  -- NULL while collecting; the digest's outbox row once sealed
);
CREATE UNIQUE INDEX IF NOT EXISTS digest_collecting ON digest (fingerprint) WHERE notification_id IS NULL;
"""


TABLES = ("nflog", "outbox", "meta", "active", "digest")
# Columns added after the first release: a log file written before them gains them on open.
_ADDED_COLUMNS = {"outbox": ("thread_parent", "thread_parent_receiver", "thread_ts")}
# Every change of a row is noted here (by triggers) and handed to the changelog at commit.
_CHANGE_TRACKING = "CREATE TEMP TABLE IF NOT EXISTS _changes (tbl TEXT NOT NULL, rid INTEGER NOT NULL," \
    " PRIMARY KEY (tbl, rid));\n" + "".join(
    f"CREATE TEMP TRIGGER IF NOT EXISTS {t}_{op[0]} AFTER {op} ON main.{t} BEGIN"
    f" INSERT OR IGNORE INTO _changes VALUES ('{t}', {'OLD' if op == 'DELETE' else 'NEW'}.rowid); END;\n"
    for t in TABLES
    for op in ("INSERT", "UPDATE", "DELETE")
)


class Changelog(Protocol):
    """Where the committed row changes of a log go (`alerts.notification_kafka.PartitionChangelog`)."""

    def append(self, records: Sequence[tuple[str, bytes | None]]) -> None:
        """Take these records (key, value or None) in order; they need not be durable yet."""

    def sync(self) -> None:
        """Return once everything appended so far is durable (raise NotificationLogError if not)."""


def notification_id(fingerprint: str, kind: OutboxKind, alert_id: str, repeats: int, receiver: str) -> str:
    """Deterministic, so the same decision replayed yields the same id (and INSERT OR IGNORE)."""
    raw = json.dumps([fingerprint, kind, alert_id, repeats, receiver])
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """A thread in a channel. `ts` opens the thread (replies go there); `message_ts` is the
    fingerprint's own message when that is itself a reply in it (a related alert's page, threaded
    under the first alert of the agent's incident): the message a resolve edits."""

    channel: str
    ts: str
    message_ts: str | None = None

    @property
    def message(self) -> str:
        return self.message_ts or self.ts


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    notification_id: str
    fingerprint: str
    receiver: str
    kind: OutboxKind
    reason: str
    alert: Alert
    status: OutboxStatus
    attempts: int
    in_flight: bool
    ambiguous: bool
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    thread_parent: ThreadParent | None = None


@dataclass(frozen=True, slots=True)
class ThreadParent:
    """A firing to be posted in the thread of a related alert of the same agent: that alert's
    fingerprint and the receiver its message went to (the same channel)."""

    fingerprint: str
    receiver: str


@dataclass(frozen=True, slots=True)
class NewNotification:
    receiver: str
    kind: OutboxKind
    reason: str
    alert: Alert
    repeats: int = 0
    key: str = ""  # tells notes about one alert apart (e.g. which silence, began or ended)
    thread_parent: ThreadParent | None = None  # decided with the notification, kept in its row

    def notification_id(self) -> str:
        alert_id = f"{self.alert.alert_id}|{self.key}" if self.key else self.alert.alert_id
        return notification_id(self.alert.fingerprint, self.kind, alert_id, self.repeats, self.receiver)


class SqliteNotificationLog:
    """Thread-safe; one file per pipeline (path in `AlertingConfig.notification_log_path`)."""

    def __init__(self, path: str | Path, *, changelog: Changelog | None = None) -> None:
        self.path = Path(path)
        self.changelog = changelog
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_new_columns()
            if changelog is not None:
                self._db.executescript(_CHANGE_TRACKING)
        except sqlite3.Error as exc:
            raise NotificationLogError(f"cannot open the notification log at {path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _add_new_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA main.table_info({table})")}

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                records = self._changed_rows() if self.changelog is not None else []
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            if records and self.changelog is not None:
                self.changelog.append(records)

    def _changed_rows(self) -> list[tuple[str, bytes | None]]:
        """The rows this transaction touched, as changelog records, in a stable order."""
        records: list[tuple[str, bytes | None]] = []
        for table, rid in self._db.execute("SELECT tbl, rid FROM _changes ORDER BY tbl, rid").fetchall():
            cur = self._db.execute(f"SELECT * FROM main.{table} WHERE rowid = ?", (rid,))  # noqa: S608 (our names)
            row = cur.fetchone()
            value = None
            if row is not None:
                names = [d[0] for d in cur.description]
                value = json.dumps(dict(zip(names, row, strict=True)), separators=(",", ":")).encode()
            records.append((f"{table}/{rid}", value))
        self._db.execute("DELETE FROM _changes")
        return records

    def restore(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> int:
        """Rebuild the log from changelog records (key, value) in offset order, before it is used.
        Returns the records applied; ones that are not ours are skipped (and counted out)."""
        applied = 0
        with self._lock:
            # A record may name a column this version does not have (written by a newer one): it is
            # left out rather than failing the whole restore.
            known = {table: self._columns(table) for table in TABLES}
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for key, value in records:
                    if key is None:
                        continue
                    table, _, rid = key.decode("utf-8", "replace").partition("/")
                    if table not in TABLES or not rid.isdigit():
                        continue
                    if value is None:
                        self._db.execute(f"DELETE FROM main.{table} WHERE rowid = ?", (int(rid),))  # noqa: S608
                    else:
                        row: dict[str, Any] = {k: v for k, v in json.loads(value).items() if k in known[table]}
                        names = ", ".join(["rowid", *row])
                        marks = ", ".join("?" * (len(row) + 1))
                        self._db.execute(
                            f"INSERT OR REPLACE INTO main.{table} ({names}) VALUES ({marks})",  # noqa: S608
                            (int(rid), *row.values()),
                        )
                    applied += 1
                if self.changelog is not None:
                    self._db.execute("DELETE FROM _changes")  # restored rows are in the changelog already
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return applied

    def dump(self) -> list[tuple[str, bytes]]:
        """Every row as a changelog record (key, value): the one-time import of an older SQLite log."""
        out: list[tuple[str, bytes]] = []
        with self._lock:
            for table in TABLES:
                cur = self._db.execute(f"SELECT rowid AS _rid, * FROM main.{table} ORDER BY rowid")  # noqa: S608
                names = [d[0] for d in cur.description][1:]
                for rid, *values in cur.fetchall():
                    data = dict(zip(names, values, strict=True))
                    out.append((f"{table}/{rid}", json.dumps(data, separators=(",", ":")).encode()))
        return out

    # --- dedup side -------------------------------------------------------------------------
    def entry(self, fingerprint: str) -> LogEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, state, alert_id, alert_at, notified_at, repeats FROM nflog WHERE fingerprint = ?",
                (fingerprint,),
            ).fetchone()
        if row is None:
            return None
        return LogEntry(
            fingerprint=row[0],
            state=row[1],
            alert_id=row[2],
            alert_at=datetime.fromisoformat(row[3]),
            notified_at=datetime.fromisoformat(row[4]),
            repeats=row[5],
        )

    @staticmethod
    def _upsert_entry(db: sqlite3.Connection, entry: LogEntry) -> None:
        db.execute(
            "INSERT INTO nflog (fingerprint, state, alert_id, alert_at, notified_at, repeats)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO UPDATE SET state=excluded.state,"
            " alert_id=excluded.alert_id, alert_at=excluded.alert_at,"
            " notified_at=excluded.notified_at, repeats=excluded.repeats",
            (
                entry.fingerprint,
                entry.state,
                entry.alert_id,
                entry.alert_at.isoformat(),
                entry.notified_at.isoformat(),
                entry.repeats,
            ),
        )

    def record(self, entry: LogEntry | None, notifications: Sequence[NewNotification], now: datetime) -> int:
        """Atomically: the new dedup entry (None: unchanged) and its outbox rows. Returns rows inserted."""
        inserted = 0
        try:
            with self._tx() as db:
                if entry is not None:
                    self._upsert_entry(db, entry)
                for n in notifications:
                    parent = n.thread_parent
                    cur = db.execute(
                        "INSERT OR IGNORE INTO outbox (notification_id, fingerprint, receiver, kind, reason,"
                        " alert_json, created_at, next_attempt_at, thread_parent, thread_parent_receiver)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            n.notification_id(),
                            n.alert.fingerprint,
                            n.receiver,
                            n.kind,
                            n.reason,
                            n.alert.to_json().decode(),
                            now.isoformat(),
                            now.isoformat(),
                            parent.fingerprint if parent is not None else None,
                            parent.receiver if parent is not None else None,
                        ),
                    )
                    inserted += cur.rowcount
        except sqlite3.Error as exc:
            raise NotificationLogError(f"cannot write the notification log at {self.path}: {exc}") from exc
        return inserted

    # --- daily digest -------------------------------------------------------------------------
    def collect(self, entry: LogEntry, alert: Alert | None, now: datetime) -> None:
        """Atomically: the dedup entry, and the alert into the digest being collected (None: take it
        out again, e.g. resolved before the digest went out)."""
        try:
            with self._tx() as db:
                self._upsert_entry(db, entry)
                db.execute("DELETE FROM digest WHERE fingerprint = ? AND notification_id IS NULL", (entry.fingerprint,))
                if alert is not None:
                    db.execute(
                        "INSERT INTO digest (fingerprint, alert_json, added_at) VALUES (?, ?, ?)",
                        (alert.fingerprint, alert.to_json().decode(), now.isoformat()),
                    )
        except sqlite3.Error as exc:
            raise NotificationLogError(f"cannot write the notification log at {self.path}: {exc}") from exc

    def seal_digest(self, receiver: str, slot: datetime, now: datetime) -> int:
        """Turn what was collected into one outbox row (kind `digest`) for `receiver`; the slot is
        remembered either way, so each slot is sealed once. Returns the number of alerts in it."""
        slot_key = slot.isoformat()
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('digest_slot', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (slot_key,),
            )
            rows = db.execute(
                "SELECT alert_json FROM digest WHERE notification_id IS NULL ORDER BY added_at, fingerprint"
            ).fetchall()
            if not rows:
                return 0
            first = decode_alert(rows[0][0])
            nid = notification_id(f"digest/{slot_key}", "digest", slot_key, 0, receiver)
            db.execute(
                "INSERT OR IGNORE INTO outbox (notification_id, fingerprint, receiver, kind, reason,"
                " alert_json, created_at, next_attempt_at) VALUES (?, ?, ?, 'digest', 'daily digest', ?, ?, ?)",
                (nid, f"digest/{slot_key}", receiver, first.to_json().decode(), now.isoformat(), now.isoformat()),
            )
            db.execute("UPDATE digest SET notification_id = ? WHERE notification_id IS NULL", (nid,))
        return len(rows)

    def digest_slot(self) -> datetime | None:
        value = self.get_meta("digest_slot")
        return datetime.fromisoformat(value) if value else None

    def digest_items(self, notification_id: str) -> list[Alert]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alert_json FROM digest WHERE notification_id = ? ORDER BY added_at, fingerprint",
                (notification_id,),
            ).fetchall()
        return [decode_alert(r[0]) for r in rows]

    # --- outbox side ------------------------------------------------------------------------
    def pending(self) -> list[OutboxRow]:
        """Every pending row in enqueue order (the deliverer enforces per-fingerprint order)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, notification_id, fingerprint, receiver, kind, reason, alert_json, status,"
                " attempts, in_flight, ambiguous, created_at, next_attempt_at, last_error, thread_parent,"
                " thread_parent_receiver FROM outbox WHERE status = 'pending' ORDER BY seq"
            ).fetchall()
        return [
            OutboxRow(
                seq=r[0],
                notification_id=r[1],
                fingerprint=r[2],
                receiver=r[3],
                kind=r[4],
                reason=r[5],
                alert=decode_alert(r[6]),
                status=r[7],
                attempts=r[8],
                in_flight=bool(r[9]),
                ambiguous=bool(r[10]),
                created_at=datetime.fromisoformat(r[11]),
                next_attempt_at=datetime.fromisoformat(r[12]),
                last_error=r[13],
                thread_parent=ThreadParent(r[14], r[15]) if r[14] is not None and r[15] is not None else None,
            )
            for r in rows
        ]

    def pending_stats(self) -> dict[str, tuple[int, datetime]]:
        """Per receiver: pending notifications and the enqueue time of the oldest (for /metrics)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT receiver, COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending' GROUP BY receiver"
            ).fetchall()
        return {r[0]: (int(r[1]), datetime.fromisoformat(r[2])) for r in rows}

    def start_attempt(self, seq: int) -> None:
        """Durably note that a send is about to happen: if we die before `delivered`, the restart
        knows the outcome is unknown and checks the receiver before sending again."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, in_flight = 1 WHERE seq = ?", (seq,))
        if self.changelog is not None:
            self.changelog.sync()

    def delivered(
        self, seq: int, now: datetime, channel: str | None, ts: str | None, thread_ts: str | None = None
    ) -> None:
        """`thread_ts`: the message went into that thread (a related alert's page) and its own
        repeats, notes and resolve follow it there."""
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET status = 'delivered', in_flight = 0, ambiguous = 0, delivered_at = ?,"
                " channel = ?, message_ts = ?, thread_ts = ?, last_error = NULL WHERE seq = ?",
                (now.isoformat(), channel, ts, thread_ts, seq),
            )

    def failed(self, seq: int, error: str, next_attempt_at: datetime, ambiguous: bool) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET in_flight = 0, ambiguous = ?, last_error = ?, next_attempt_at = ? WHERE seq = ?",
                (int(ambiguous), error[:500], next_attempt_at.isoformat(), seq),
            )

    def next_attempt_at(self, seq: int) -> datetime:
        with self._lock:
            row = self._db.execute("SELECT next_attempt_at FROM outbox WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise NotificationLogError(f"no outbox row {seq}")
        return datetime.fromisoformat(row[0])

    def dead(self, seq: int, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET status = 'dead', in_flight = 0, last_error = ? WHERE seq = ?",
                (error[:500], seq),
            )

    def thread_of(self, fingerprint: str, receiver: str) -> tuple[ThreadRef, Alert] | None:
        """Where the latest delivered firing message of this fingerprint went, and its alert (a repeat
        or resolve threads there; the Slack notifier re-renders that message as resolved). A message
        that was itself a reply names the thread it went into."""
        with self._lock:
            row = self._db.execute(
                "SELECT channel, message_ts, alert_json, thread_ts FROM outbox WHERE fingerprint = ?"
                " AND receiver = ? AND kind = 'firing' AND status = 'delivered' AND message_ts IS NOT NULL"
                " ORDER BY seq DESC LIMIT 1",
                (fingerprint, receiver),
            ).fetchone()
        if row is None:
            return None
        thread = ThreadRef(row[0], row[3], row[1]) if row[3] else ThreadRef(row[0], row[1])
        return thread, decode_alert(row[2])

    def firing_message(self, fingerprint: str, receiver: str) -> Alert | None:
        """The alert of the latest firing message of this fingerprint to this receiver that was
        posted or is still to be (not one given up as dead): a thread a related alert can join."""
        with self._lock:
            row = self._db.execute(
                "SELECT alert_json FROM outbox WHERE fingerprint = ? AND receiver = ? AND kind = 'firing'"
                " AND (status = 'pending' OR (status = 'delivered' AND message_ts IS NOT NULL))"
                " ORDER BY seq DESC LIMIT 1",
                (fingerprint, receiver),
            ).fetchone()
        return decode_alert(row[0]) if row else None

    def prune(self, before: datetime) -> int:
        """Forget what no decision needs any more: delivered/dead outbox rows created before `before`
        (except the latest delivered firing per fingerprint and receiver: a later resolve threads to
        it), and dedup entries of fingerprints resolved before `before`. Returns rows removed."""
        cutoff = before.isoformat()
        with self._tx() as db:
            removed = db.execute(
                "DELETE FROM outbox WHERE status != 'pending' AND created_at < ? AND seq NOT IN ("
                " SELECT MAX(seq) FROM outbox WHERE kind = 'firing' AND status = 'delivered'"
                " GROUP BY fingerprint, receiver)",
                (cutoff,),
            ).rowcount
            removed += db.execute("DELETE FROM nflog WHERE state = 'resolved' AND notified_at < ?", (cutoff,)).rowcount
            removed += db.execute(
                "DELETE FROM digest WHERE notification_id IS NOT NULL AND added_at < ?", (cutoff,)
            ).rowcount
        return removed

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
        return {status: n for status, n in rows}

    def rows(self, status: OutboxStatus | None = None) -> list[tuple[str, str, str, str, str | None]]:
        """(fingerprint, receiver, kind, status, last_error) for inspection and tests."""
        query = "SELECT fingerprint, receiver, kind, status, last_error FROM outbox"
        params: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status,)
        with self._lock:
            return [tuple(r) for r in self._db.execute(query + " ORDER BY seq", params).fetchall()]

    # --- received, not yet settled ------------------------------------------------------------
    def save_active(self, alert: Alert) -> None:
        """The latest state change per fingerprint, kept until it is resolved and decided: so the
        input offset can be committed as soon as an alert is received, and a restart rebuilds the
        inhibition sources, the group buffer and the reminders from here."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO active (fingerprint, alert_json, at) VALUES (?, ?, ?)"
                " ON CONFLICT(fingerprint) DO UPDATE SET alert_json = excluded.alert_json, at = excluded.at",
                (alert.fingerprint, alert.to_json().decode(), alert.at.isoformat()),
            )

    def drop_active(self, fingerprint: str, alert_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM active WHERE fingerprint = ? AND json_extract(alert_json, '$.alert_id') = ?",
                (fingerprint, alert_id),
            )

    def active(self) -> list[Alert]:
        with self._lock:
            rows = self._db.execute("SELECT alert_json FROM active ORDER BY at, fingerprint").fetchall()
        return [decode_alert(r[0]) for r in rows]

    def delete_meta(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class ChannelIdCache(MutableMapping[str, str]):
    """Slack channel name -> ID learned from `chat.postMessage` responses, kept in the log's meta
    table, so the idempotency lookup after a restart can read the channel's history."""

    _PREFIX = "slack_channel_id:"

    def __init__(self, log_store: SqliteNotificationLog) -> None:
        self._log = log_store

    def __getitem__(self, key: str) -> str:
        value = self._log.get_meta(self._PREFIX + key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: str) -> None:
        self._log.set_meta(self._PREFIX + key, value)

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("channel ids are never forgotten")

    def __iter__(self) -> Iterator[str]:
        with self._log._lock:
            rows = self._log._db.execute("SELECT key FROM meta WHERE key LIKE ?", (self._PREFIX + "%",)).fetchall()
        return iter([r[0][len(self._PREFIX) :] for r in rows])

    def __len__(self) -> int:
        return sum(1 for _ in self)
