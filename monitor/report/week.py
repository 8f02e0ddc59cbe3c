"""ISO weeks (the unit of the review) and when the scheduled review is due.

Weeks run Monday 00:00 to the next Monday 00:00 UTC: rollups are keyed by UTC event-time hours,
so a UTC week is the one every worker and every backtest agree on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from monitor.report.errors import ReportError

_WEEK_RE = re.compile(r"^(\d{4})-?W(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class IsoWeek:
    """One ISO 8601 week, e.g. `IsoWeek.parse("2026-W46")`.

    >>> w = IsoWeek.parse("2026-W46")
    >>> w.start.isoformat(), w.end.isoformat()
    ('2026-11-09T00:00:00+00:00', '2026-11-16T00:00:00+00:00')
    >>> str(w.shift(-1))
    '2026-W45'
    """

    year: int
    week: int

    def __post_init__(self) -> None:
        try:
            date.fromisocalendar(self.year, self.week, 1)
        except ValueError:
            raise ReportError(f"week: {self.year}-W{self.week:02d} does not exist") from None

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        match = _WEEK_RE.match(text.strip())
        if not match:
            raise ReportError(f"week: expected YYYY-Www (e.g. 2026-W46), got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def containing(cls, moment: datetime) -> IsoWeek:
        if moment.tzinfo is None:
            raise ReportError(f"week: need a timezone-aware time, got {moment!r}")
        iso = moment.astimezone(UTC).isocalendar()
        return cls(iso.year, iso.week)

    @property
    def start(self) -> datetime:
        return datetime.combine(date.fromisocalendar(self.year, self.week, 1), time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive end: the next Monday 00:00 UTC."""
        return self.start + timedelta(days=7)

    def shift(self, weeks: int) -> IsoWeek:
        return IsoWeek.containing(self.start + timedelta(weeks=weeks))

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def next_report_due(now: datetime, weekday: int, time_of_day: time) -> datetime:
    """The first scheduled run strictly after `now` (weekday 0 = Monday; time of day in UTC,
    or in its own `tzinfo` when it has one).

    >>> next_report_due(datetime(2026, 11, 21, 12, tzinfo=UTC), 0, time(7, 0)).isoformat()
    '2026-11-23T07:00:00+00:00'
    """
    if now.tzinfo is None:
        raise ReportError(f"now: need a timezone-aware time, got {now!r}")
    if not 0 <= weekday <= 6:
        raise ReportError(f"weekday: 0 (Monday) .. 6 (Sunday), got {weekday}")
    zone = time_of_day.tzinfo or UTC
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), time_of_day.replace(tzinfo=None), tzinfo=zone)
    candidate += timedelta(days=(weekday - local.weekday()) % 7)
    if candidate <= local:
        candidate += timedelta(days=7)
    return candidate.astimezone(UTC)


def week_to_report(due: datetime) -> IsoWeek:
    """The week a run at `due` covers: the last complete week before it.

    >>> str(week_to_report(datetime(2026, 11, 23, 7, tzinfo=UTC)))
    '2026-W47'
    """
    return IsoWeek.containing(due).shift(-1)
