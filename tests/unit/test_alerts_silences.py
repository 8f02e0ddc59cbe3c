"""Silences: matchers, state over time, matching, stores; table-driven."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from alerts.errors import SilenceError
from alerts.silences import (
    FileSilenceStore,
    MemorySilenceStore,
    SilenceMuter,
    matching_silence,
    new_silence,
    parse_duration,
    parse_matcher,
)
from tests.support.alert_factory import T0, make_alert

ALERT = make_alert("tool_error_rate", "lead-qualifier", labels={"tool": "crm.update"}, severity="P1")

MATCHER_CASES = [
    ("rule=tool_error_rate", True),
    ("rule=quality_drop", False),
    ("agent=lead-qualifier", True),
    ("agent_id=lead-qualifier", True),
    ("agent!=lead-qualifier", False),
    ("tool=crm.update", True),
    ("tool=~crm\\..*", True),
    ("tool=~crm", False),  # anchored, as in Alertmanager
    ("tool!~search.*", True),
    ("severity=P1", True),
    ("region=", True),  # an absent label matches the empty string
    ("region=eu", False),
]


@pytest.mark.parametrize(("text", "matches"), MATCHER_CASES)
def test_matcher(text: str, matches: bool) -> None:
    assert parse_matcher(text).matches(ALERT) is matches


@pytest.mark.parametrize("bad", ["", "rule", "=x", "tool=~(unclosed", "9x=1"])
def test_bad_matchers_are_rejected_with_the_text(bad: str) -> None:
    with pytest.raises(SilenceError):
        parse_matcher(bad)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("2h", 7200), ("1.5d", 129600), ("1w", 604800), ("30s", 30)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["2", "h", "-1h", "2 hours", ""])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(SilenceError):
        parse_duration(bad)


def silence(*matchers: str, start_min: float = 0, minutes: float = 60, sid: str | None = None):
    return new_silence(
        [parse_matcher(m) for m in matchers],
        now=T0,
        duration=timedelta(minutes=minutes),
        starts_at=T0 + timedelta(minutes=start_min),
        created_by="alice",
        comment="planned CRM migration",
        silence_id=sid,
    )


STATE_CASES = [(-1, "pending"), (0, "active"), (59, "active"), (60, "expired"), (600, "expired")]


@pytest.mark.parametrize(("at_min", "state"), STATE_CASES)
def test_silence_state_over_time(at_min: float, state: str) -> None:
    assert silence("rule=tool_error_rate").state(T0 + timedelta(minutes=at_min)) == state


def test_all_matchers_must_match_and_only_active_silences_mute() -> None:
    both = silence("rule=tool_error_rate", "agent=lead-qualifier", sid="both")
    other_agent = silence("rule=tool_error_rate", "agent=other", sid="other")
    later = silence("agent=lead-qualifier", start_min=30, sid="later")
    silences = [both, other_agent, later]
    assert matching_silence(ALERT, silences, T0) == both
    assert matching_silence(ALERT, [other_agent], T0) is None
    assert matching_silence(ALERT, [later], T0 + timedelta(minutes=10)) is None
    assert matching_silence(ALERT, [later], T0 + timedelta(minutes=40)) == later
    assert matching_silence(ALERT, silences, T0 + timedelta(hours=3)) is None


def test_expire_ends_a_silence_now_and_keeps_it_listable() -> None:
    store = MemorySilenceStore([silence("rule=tool_error_rate", sid="s1")])
    muter = SilenceMuter(store)
    assert muter.mutes(ALERT, T0 + timedelta(minutes=5)) is not None
    expired = store.expire("s1", T0 + timedelta(minutes=10))
    assert expired.ends_at == T0 + timedelta(minutes=10) and expired.updated_at is not None
    assert muter.mutes(ALERT, T0 + timedelta(minutes=11)) is None
    assert [s.id for s in store.silences()] == ["s1"]
    with pytest.raises(SilenceError, match="nope"):
        store.expire("nope", T0)


def test_a_silence_that_matches_everything_is_refused() -> None:
    with pytest.raises(SilenceError, match="match everything"):
        silence("rule=~.*")
    with pytest.raises(SilenceError):
        silence("rule=x", minutes=0)


def test_file_store_survives_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "silences.json"
    FileSilenceStore(path).put(silence("agent=lead-qualifier", sid="f1"))
    again = FileSilenceStore(path)
    assert [s.id for s in again.silences()] == ["f1"]
    again.expire("f1", T0 + timedelta(minutes=1))
    assert FileSilenceStore(path).get("f1").state(T0 + timedelta(minutes=2)) == "expired"
