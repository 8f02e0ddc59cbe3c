"""Learned baselines of one agent: an hourly history and the running sums of its reference period.

The reference period is the `reference_days` before the newest `reference_exclude_recent_h` hours:
an hour joins the baseline that many hours after it closed (so an incident in progress is judged
against the time before it, and the detection windows never overlap the baseline), and leaves it
`reference_days` later. Joining and leaving are one `Agg.merge` each: a baseline costs the same
whatever the traffic.

Periods with a firing (or pending) alert are excluded: the alert marks the hours it covers with its
field group (e.g. `escalation`, `tool:crm.update`), and those fields of those hours never enter the
baseline, so an incident never becomes the new normal.

Volume has a time-of-day profile: per day type (weekday / weekend, UTC) and hour of day, the median
count over the reference days of that type, used only where every such day had traffic.
"""

from __future__ import annotations

import statistics
from typing import Any

from monitor.core.signals import HOURS, Agg, N, hist_quantile_bin


class HourRecord:
    __slots__ = ("agg", "excluded", "contrib")

    def __init__(self, agg: Agg | None) -> None:
        self.agg = agg  # None: an hour without traffic
        self.excluded: set[str] = set()
        self.contrib: Agg | None = None  # what this hour added to the baseline (None: not in it)

    def count(self) -> float:
        return self.agg.s[N] if self.agg is not None else 0.0

    def to_data(self) -> list[Any]:
        return [
            self.agg.to_data() if self.agg is not None else None,
            sorted(self.excluded),
            self.contrib.to_data() if self.contrib is not None else None,
        ]

    @classmethod
    def from_data(cls, data: list[Any]) -> HourRecord:
        rec = cls(Agg.from_data(data[0]) if data[0] is not None else None)
        rec.excluded = set(data[1])
        rec.contrib = Agg.from_data(data[2]) if data[2] is not None else None
        return rec


class AgentBaseline:
    """Hourly history and reference-period sums of one agent."""

    __slots__ = ("reference_h", "exclude_h", "hours", "base", "frozen", "by_operator", "profile", "_p95_bin")

    def __init__(self, reference_days: int, exclude_recent_h: int) -> None:
        self.reference_h = reference_days * 24
        self.exclude_h = exclude_recent_h
        self.hours: dict[int, HourRecord] = {}  # hour index (epoch hours) -> record
        self.base = Agg()
        self.frozen = False
        self.by_operator = False  # `frozen` was last set by an operator: automatic freezing leaves it
        self.profile: dict[int, float] = {}  # (weekend * 24 + hour of day) -> usual executions
        self._p95_bin: int | None = None

    # -- history ----------------------------------------------------------------------------------
    def close_hour(self, hour: int, agg: Agg | None, profile_min_days: int) -> None:
        """Record a closed hour and slide the reference period."""
        if agg is not None:
            agg.s[HOURS] = 1.0
        self.hours[hour] = HourRecord(agg)
        joining = self.hours.get(hour - self.exclude_h)
        if joining is not None and joining.agg is not None and not self.frozen:
            contrib = Agg()
            contrib.merge(joining.agg, masked=frozenset(joining.excluded))
            joining.contrib = contrib
            self.base.merge(contrib)
        oldest = hour - self.exclude_h - self.reference_h
        for h in [h for h in self.hours if h <= oldest]:
            rec = self.hours.pop(h)
            if rec.contrib is not None and not self.frozen:
                self.base.merge(rec.contrib, sign=-1.0)
        if hour % 24 == 0 or not self.profile:
            self.base.prune()
        self._p95_bin = None
        self._update_profile(hour, profile_min_days)

    def add_late(self, hour: int, agg: Agg) -> bool:
        """Fold events that came after their hour closed into history and baseline."""
        rec = self.hours.get(hour)
        if rec is None:
            return False
        if rec.agg is None:
            rec.agg = Agg()
            rec.agg.s[HOURS] = 1.0
        rec.agg.merge(agg)
        if rec.contrib is not None and not self.frozen:
            masked = frozenset(rec.excluded)
            rec.contrib.merge(agg, masked=masked)
            self.base.merge(agg, masked=masked)
        return True

    def exclude(self, group: str, first_hour: int, last_hour: int) -> None:
        """Keep `group` of these hours out of the baseline (hours already in it stay)."""
        for h in range(first_hour, last_hour + 1):
            rec = self.hours.get(h)
            if rec is not None and rec.contrib is None:
                rec.excluded.add(group)

    # -- derived ----------------------------------------------------------------------------------
    def hours_in_base(self) -> float:
        return self.base.s[HOURS]

    def p95_bin(self) -> int | None:
        if self._p95_bin is None:
            self._p95_bin = hist_quantile_bin(self.base.dur_hist, 0.95)
        return self._p95_bin

    def _update_profile(self, newest: int, min_days: int) -> None:
        by_slot: dict[int, list[float]] = {}
        first = newest - self.reference_h + 1
        for h, rec in self.hours.items():
            if h < first or "volume" in rec.excluded:
                continue
            by_slot.setdefault(slot_of_hour(h), []).append(rec.count())
        self.profile = {
            slot: float(statistics.median(counts))
            for slot, counts in by_slot.items()
            if len(counts) >= min_days and min(counts) > 0
        }

    def expected_between(self, start: float, end: float) -> float:
        """Executions the profile expects in [start, end) (event time, seconds)."""
        total = 0.0
        t = start
        while t < end:
            h = int(t // 3600)
            nxt = min(end, (h + 1) * 3600.0)
            total += self.profile.get(slot_of_hour(h), 0.0) * (nxt - t) / 3600.0
            t = nxt
        return total

    # -- serialisation ----------------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return {
            "hours": {str(h): rec.to_data() for h, rec in self.hours.items()},
            "base": self.base.to_data(),
            "frozen": self.frozen,
            "by_operator": self.by_operator,
            "profile": {str(k): v for k, v in self.profile.items()},
        }

    def load_data(self, data: dict[str, Any]) -> None:
        self.hours = {int(h): HourRecord.from_data(v) for h, v in data["hours"].items()}
        self.base = Agg.from_data(data["base"])
        self.frozen = bool(data["frozen"])
        self.by_operator = bool(data.get("by_operator", False))  # absent in older snapshots
        self.profile = {int(k): float(v) for k, v in data["profile"].items()}
        self._p95_bin = None


def slot_of_hour(hour: int) -> int:
    """Day type (0 weekday, 1 weekend; UTC) * 24 + hour of day. Epoch hour 0 was a Thursday."""
    weekday = (hour // 24 + 3) % 7  # Monday = 0
    return (24 if weekday >= 5 else 0) + hour % 24
