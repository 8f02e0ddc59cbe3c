"""ISO weeks and the schedule of the weekly review."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest

from monitor.report.errors import ReportError
from monitor.report.week import IsoWeek, next_report_due, week_to_report


def test_iso_week_bounds_and_shift() -> None:
    w = IsoWeek.parse("2026-W46")
    assert w.start == datetime(2026, 11, 9, tzinfo=UTC) and w.end == datetime(2026, 11, 16, tzinfo=UTC)
    assert str(w.shift(-1)) == "2026-W45" and str(w.shift(8)) == "2027-W01"
    assert str(IsoWeek.parse("2026-W01")) == "2026-W01" and IsoWeek.parse("2026-W01").start.date().isoformat() \
        == "2025-12-29"
    assert IsoWeek.containing(datetime(2026, 11, 15, 23, 59, tzinfo=UTC)) == w
    assert IsoWeek.containing(datetime(2026, 11, 16, 0, 30, tzinfo=timezone(timedelta(hours=1)))) == w


@pytest.mark.parametrize("text", ["2026-46", "2026-W54", "W46", "2026-W00", ""])
def test_bad_weeks_are_refused_with_the_value(text: str) -> None:
    with pytest.raises(ReportError, match="week"):
        IsoWeek.parse(text)


@pytest.mark.parametrize(("now", "due"), [
    (datetime(2026, 11, 21, 12, tzinfo=UTC), datetime(2026, 11, 23, 7, tzinfo=UTC)),   # Saturday -> Monday
    (datetime(2026, 11, 23, 6, 59, tzinfo=UTC), datetime(2026, 11, 23, 7, tzinfo=UTC)),  # same day, before
    (datetime(2026, 11, 23, 7, 0, tzinfo=UTC), datetime(2026, 11, 30, 7, tzinfo=UTC)),   # exactly due: next week
    (datetime(2026, 12, 28, 8, tzinfo=UTC), datetime(2027, 1, 4, 7, tzinfo=UTC)),        # over the year end
])
def test_next_report_due(now: datetime, due: datetime) -> None:
    assert next_report_due(now, 0, time(7, 0)) == due


def test_next_report_due_in_a_local_zone_and_the_week_it_covers() -> None:
    cet = timezone(timedelta(hours=1))
    due = next_report_due(datetime(2026, 11, 21, 12, tzinfo=UTC), 0, time(8, 0, tzinfo=cet))
    assert due == datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert str(week_to_report(due)) == "2026-W47"
    with pytest.raises(ReportError, match="weekday"):
        next_report_due(datetime(2026, 11, 21, tzinfo=UTC), 7, time(7))
    with pytest.raises(ReportError, match="timezone-aware"):
        next_report_due(datetime(2026, 11, 21), 0, time(7))
