"""The notification log's changelog: every committed row change becomes one record, and a log rebuilt
from those records (what a new instance does from the Kafka topic) is the same log; `start_attempt`
waits for the changelog before the send; an older version's SQLite file splits by partition."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from aiokafka.partitioner import DefaultPartitioner

from alerts.clock import ManualClock
from alerts.config import AlertingConfig
from alerts.dedup import LogEntry
from alerts.metrics import AlertMetrics
from alerts.notification_kafka import legacy_records
from alerts.notification_log import NewNotification, SqliteNotificationLog
from alerts.pipeline import AlertPipeline
from tests.support.alert_factory import T0, make_alert
from tests.support.fake_notifier import ScriptedNotifier


class ListChangelog:
    """A changelog kept in a list, in order, like one partition of the topic (what compaction keeps
    is the newest record per key, which `restore` reads the same way)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None]] = []
        self.synced_at: list[int] = []

    def append(self, records: Sequence[tuple[str, bytes | None]]) -> None:
        self.records.extend(records)

    def sync(self) -> None:
        self.synced_at.append(len(self.records))

    def compacted(self) -> list[tuple[bytes | None, bytes | None]]:
        newest = {key: (i, value) for i, (key, value) in enumerate(self.records)}
        return [(key.encode(), value) for key, (_, value) in sorted(newest.items(), key=lambda kv: kv[1][0])]


def snapshot(log: SqliteNotificationLog) -> dict[str, object]:
    return {
        "rows": log.rows(),
        "pending": [(r.seq, r.notification_id, r.attempts, r.in_flight) for r in log.pending()],
        "active": [a.alert_id for a in log.active()],
        "entry": log.entry("quality_drop/support-bot"),
        "meta": log.get_meta("digest_slot"),
    }


def pipeline(log: SqliteNotificationLog, clock: ManualClock, notifier: ScriptedNotifier) -> AlertPipeline:
    config = AlertingConfig.model_validate(
        {"group_wait_s": 0, "receivers": [{"name": "r", "kind": "console"}], "default_receiver": "r"}
    )
    return AlertPipeline(config, notifiers={"r": notifier}, notification_log=log, clock=clock, metrics=AlertMetrics())


@pytest.mark.parametrize("compact", [False, True])
def test_a_log_rebuilt_from_its_changelog_is_the_same_log(compact: bool) -> None:
    changelog = ListChangelog()
    log = SqliteNotificationLog(":memory:", changelog=changelog)
    clock = ManualClock(T0)
    notifier = ScriptedNotifier()
    first = pipeline(log, clock, notifier)
    first.run(
        [
            make_alert("quality_drop", "support-bot", minutes=0),
            make_alert("agent_silent", "lead-qualifier", minutes=1),
            make_alert("quality_drop", "support-bot", "resolved", minutes=30),
        ]
    )
    clock.advance(200 * 86400)  # a prune deletes rows: tombstones in the changelog
    first.receive(make_alert("token_cost_spike", "refund-bot", minutes=60 * 24 * 200))
    first.tick()
    assert any(value is None for _, value in changelog.records), "deleted rows leave tombstones"

    records = changelog.compacted() if compact else [(k.encode(), v) for k, v in changelog.records]
    rebuilt = SqliteNotificationLog(":memory:", changelog=ListChangelog())
    assert rebuilt.restore(records) == len(records)
    assert snapshot(rebuilt) == snapshot(log)
    assert rebuilt.thread_of("agent_silent/lead-qualifier", "r") == log.thread_of("agent_silent/lead-qualifier", "r")


def test_the_in_flight_mark_is_synced_before_the_send() -> None:
    changelog = ListChangelog()
    log = SqliteNotificationLog(":memory:", changelog=changelog)
    alert = make_alert()
    entry = LogEntry(alert.fingerprint, alert.state, alert.alert_id, alert.at, T0)
    log.record(entry, [NewNotification("r", "firing", "first notification", alert)], T0)
    assert changelog.synced_at == []  # a decision alone is made durable before the offset commit
    seq = log.pending()[0].seq
    log.start_attempt(seq)
    assert changelog.synced_at == [len(changelog.records)]
    in_flight = [v for k, v in changelog.records if k == f"outbox/{seq}"][-1]
    assert in_flight is not None and b'"in_flight":1' in in_flight


def test_a_restored_log_writes_no_records_of_its_own() -> None:
    changelog = ListChangelog()
    log = SqliteNotificationLog(":memory:", changelog=changelog)
    log.set_meta("digest_slot", T0.isoformat())
    again = ListChangelog()
    SqliteNotificationLog(":memory:", changelog=again).restore([(k.encode(), v) for k, v in changelog.records])
    assert again.records == []


def test_an_older_sqlite_log_splits_by_the_partition_of_each_agent(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = SqliteNotificationLog(path)
    agents = ["support-bot", "lead-qualifier", "refund-bot", "invoice-matcher", None]
    for agent in agents:
        alert = make_alert("quality_drop" if agent else "invalid_events", agent)
        entry = LogEntry(alert.fingerprint, alert.state, alert.alert_id, alert.at, T0)
        old.record(entry, [NewNotification("r", "firing", "first notification", alert)], T0)
        old.save_active(alert)
    old.set_meta("digest_slot", T0.isoformat())
    old.close()

    partitioner = DefaultPartitioner()
    seen: dict[str, int] = {}
    for p in range(3):
        rows = legacy_records(path, p, 3)
        assert any(k.startswith("meta/") for k, _ in rows)  # the settings go to every partition
        log = SqliteNotificationLog(":memory:")
        log.restore([(k.encode(), v) for k, v in rows])
        for alert in log.active():
            seen[alert.fingerprint] = p
            key = (alert.agent_id or "*").encode()
            assert partitioner(key, [0, 1, 2], [0, 1, 2]) == p
            assert log.entry(alert.fingerprint) is not None
    assert len(seen) == len(agents)  # every alert in exactly one partition
