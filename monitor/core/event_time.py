"""Admission of an event's time: which `occurred_at` may move a partition's event time.

The watermark is the newest event time seen, so one event far in the future (a producer clock
set wrong, milliseconds read as seconds, a hostile writer) would make every later event of its
partition "too late" and blind detection for all the agents on it. An event is therefore held
against when it *arrived*, not only against the events before it:

- **ahead of its arrival** by more than `max_ahead_s` (default 300 s: the clock drift a producer
  may have; NTP-synchronised hosts are within milliseconds): refused, `occurred_at is N s in the
  future`. Live, the arrival is the Kafka record's timestamp, or the worker's wall clock when
  that is earlier (a producer whose clock runs ahead stamps both); in a backtest, which has no
  arrival times, estimated from the lines after it in file order (`FileOrderClock`).
- **before the floor** (`min_occurred_at`, default 2000-01-01): refused as a clock or unit bug.
- **older than anything it could change**: more than the engine's history span behind the
  partition's event time (`Engine.history_floor_s`), refused rather than counted in silence.

Refused events go to the dead-letter topic with the reason (live) or are counted as invalid
lines with it (backtest), and count for `invalid_events`. Pure: no clock of its own.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

DEFAULT_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)


def _span(seconds: float) -> str:
    s = abs(seconds)
    if s < 120:
        return f"{seconds:.0f} s"
    if s < 2 * 3600:
        return f"{seconds:.0f} s ({s / 60:.0f} min)"
    if s < 2 * 86400:
        return f"{seconds:.0f} s ({s / 3600:.1f} h)"
    return f"{seconds:.0f} s ({s / 86400:.0f} days)"


@dataclass(frozen=True)
class EventTimeGate:
    """The bounds an event time must keep (see the module docstring)."""

    max_ahead_s: float = 300.0
    floor_s: float = DEFAULT_FLOOR.timestamp()

    def refusal(self, t: float, arrival: float | None, history_floor: float | None) -> str | None:
        """Why an event at `t` (epoch seconds) is refused, or None when it is admitted.
        `arrival`: when it arrived (None: unknown); `history_floor`: the oldest event time the
        engine could still use (None: no event yet)."""
        if arrival is not None and t > arrival + self.max_ahead_s:
            return (f"occurred_at is {_span(t - arrival)} in the future (ahead of its arrival by more "
                    f"than the {self.max_ahead_s:.0f} s a producer clock may drift)")
        if t < self.floor_s:
            floor = datetime.fromtimestamp(self.floor_s, tz=UTC).isoformat().replace("+00:00", "Z")
            return f"occurred_at is before {floor}, the oldest time accepted (a clock or unit bug)"
        if history_floor is not None and t < history_floor:
            return (f"occurred_at is {_span(history_floor - t)} older than anything it could still change "
                    f"(the history kept behind the partition's event time)")
        return None


T = TypeVar("T")


class FileOrderClock(Generic[T]):
    """Arrival times for a file of events, which has none. A line no more than `max_ahead_s` past
    the newest admitted time has arrived by then (it is admitted at once: the common path). A line
    further ahead waits for the `k` lines after it: its arrival is the lower median of its own time
    and theirs. When the stream goes on from there (a gap in traffic, a sparse or first line), that
    is its own time; when the lines after it fall back (one bad clock, a unit bug), it is theirs,
    and the gate refuses it. So a run of up to `k // 2` far-off lines never moves event time, and a
    real jump does at once. A far-off last line has nothing after it to tell, and is admitted.

    `admits` each line's time as it comes; `hold` those it does not admit, and take them back from
    `decided` with their arrival."""

    def __init__(self, max_ahead_s: float, k: int = 8) -> None:
        self.max_ahead_s = max_ahead_s
        self.k = k
        self.newest = -math.inf  # newest admitted event time; a hot loop may keep it up to date itself
        # held lines: (time, item, times of the lines after it); empty on the common path
        self.waiting: deque[tuple[float, T, list[float]]] = deque()

    def admits(self, t: float) -> bool:
        """Take one line's time. True: it is admitted at once (no more than `max_ahead_s` past the
        newest admitted time, and no earlier line waiting: the file's order is kept); False: the
        caller must `hold` it until `decided` hands it back."""
        if self.waiting:
            for w in self.waiting:
                w[2].append(t)
            return False
        if t <= self.newest + self.max_ahead_s:
            if t > self.newest:
                self.newest = t
            return True
        return False

    def hold(self, t: float, item: T) -> None:
        """Keep a line `admits` did not admit until the `k` lines after it are known."""
        self.waiting.append((t, item, []))

    def decided(self, final: bool = False) -> list[tuple[float, T, float]]:
        """The held lines whose `k` following lines are known (all of them when `final`), in file
        order, each as (time, item, its arrival)."""
        out: list[tuple[float, T, float]] = []
        waiting = self.waiting
        while waiting:
            t = waiting[0][0]
            if t <= self.newest + self.max_ahead_s:
                # it waited only behind an earlier held line, to keep the file's order
                _, item, _ = waiting.popleft()
                out.append((t, item, max(t, self.newest)))
                if t > self.newest:
                    self.newest = t
                continue
            if not (final or len(waiting[0][2]) >= self.k):
                break
            t, item, after = waiting.popleft()
            window = sorted([t, *after[:self.k]])
            arrival = max(window[(len(window) - 1) // 2], self.newest)
            if t > self.newest and t <= arrival + self.max_ahead_s:
                self.newest = t
            out.append((t, item, arrival))
        return out
