"""Dedup stage: the pure decision and its reason codes, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.dedup import DedupReason, LogEntry, dedup_decision

T = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
REPEAT = timedelta(hours=4)


def entry(state: str, *, at_min: float = 0, notified_min: float = 0) -> LogEntry:
    return LogEntry(
        fingerprint="fp",
        state=state,  # type: ignore[arg-type]
        alert_id="a1",
        alert_at=T + timedelta(minutes=at_min),
        notified_at=T + timedelta(minutes=notified_min),
    )


CASES = [
    # (name, state, alert_at_min, log entry, now_min, send, reason, kind)
    ("new firing", "firing", 0, None, 0, True, DedupReason.FIRST, "firing"),
    ("firing again soon", "firing", 5, entry("firing"), 10, False, DedupReason.ALREADY_NOTIFIED, None),
    (
        "firing, just before interval",
        "firing",
        5,
        entry("firing"),
        239,
        False,
        DedupReason.ALREADY_NOTIFIED,
        None,
    ),
    ("firing, interval elapsed", "firing", 5, entry("firing"), 240, True, DedupReason.REPEAT, "repeat"),
    ("same alert replayed late", "firing", 0, entry("firing"), 300, True, DedupReason.REPEAT, "repeat"),
    (
        "firing after resolve",
        "firing",
        90,
        entry("resolved", at_min=60),
        91,
        True,
        DedupReason.REFIRING,
        "firing",
    ),
    (
        "resolve of notified firing",
        "resolved",
        30,
        entry("firing"),
        31,
        True,
        DedupReason.RESOLVED,
        "resolved",
    ),
    (
        "resolve always sent, even at once",
        "resolved",
        0,
        entry("firing"),
        0,
        True,
        DedupReason.RESOLVED,
        "resolved",
    ),
    ("resolve never notified", "resolved", 30, None, 31, False, DedupReason.RESOLVED_NEVER_NOTIFIED, None),
    (
        "resolve twice",
        "resolved",
        40,
        entry("resolved", at_min=30),
        41,
        False,
        DedupReason.ALREADY_RESOLVED,
        None,
    ),
    (
        "stale firing replayed after resolve",
        "firing",
        0,
        entry("resolved", at_min=30),
        60,
        False,
        DedupReason.STALE,
        None,
    ),
    ("stale resolve", "resolved", 10, entry("firing", at_min=20), 60, False, DedupReason.STALE, None),
]


@pytest.mark.parametrize(
    ("state", "at_min", "log_entry", "now_min", "send", "reason", "kind"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_dedup_decision(
    state: str,
    at_min: float,
    log_entry: LogEntry | None,
    now_min: float,
    send: bool,
    reason: DedupReason,
    kind: str | None,
) -> None:
    decision = dedup_decision(
        state=state,  # type: ignore[arg-type]
        alert_at=T + timedelta(minutes=at_min),
        entry=log_entry,
        now=T + timedelta(minutes=now_min),
        repeat_interval=REPEAT,
    )
    assert (decision.send, decision.reason, decision.kind) == (send, reason, kind)


def test_reason_codes_are_the_alertmanager_phrases() -> None:
    assert DedupReason.FIRST == "first notification"
    assert DedupReason.REPEAT == "repeat interval elapsed"
    assert DedupReason.RESOLVED == "resolved"
    assert DedupReason.ALREADY_NOTIFIED == "already notified"


def test_a_refire_of_the_same_episode_goes_to_its_thread_and_a_new_episode_pages() -> None:
    resolved = entry("resolved", at_min=30)
    same = dedup_decision(state="firing", alert_at=T + timedelta(minutes=45), entry=resolved,
                          now=T + timedelta(minutes=46), repeat_interval=REPEAT, episode_start=T)
    assert (same.send, same.reason, same.kind) == (True, DedupReason.REOPENED, "repeat")
    new = dedup_decision(state="firing", alert_at=T + timedelta(minutes=45), entry=resolved,
                         now=T + timedelta(minutes=46), repeat_interval=REPEAT,
                         episode_start=T + timedelta(minutes=45))
    assert (new.send, new.reason, new.kind) == (True, DedupReason.REFIRING, "firing")
