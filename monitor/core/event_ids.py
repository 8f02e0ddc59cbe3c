"""The engine's memory of event ids: each event counts once, for as long as it can change state.

Two sets rotated every `dedup_window_s` of event time (or when the newer one holds half of
`max_dedup_ids`): an id is remembered for at least one window, and memory is bounded. A late event
older than the arrival of the oldest id still remembered (`floor`) could be a resend of an event
that was forgotten; the engine drops it rather than fold it into history and baselines twice.
Pure: event time only.
"""

from __future__ import annotations

import math
from typing import Any


class EventIdMemory:
    __slots__ = ("floor", "half", "prev", "rotate_at", "seen", "started", "window")

    def __init__(self, window_s: float, max_ids: int) -> None:
        self.window = window_s
        self.half = max_ids // 2
        self.seen: set[str] = set()
        self.prev: set[str] = set()
        self.rotate_at = -math.inf
        self.started = -math.inf  # the watermark when the newer set began
        self.floor = -math.inf  # ids that arrived before this watermark are forgotten

    def rotate(self, t: float) -> None:
        """Start a new set at watermark `t`; the older one is forgotten."""
        if self.prev:
            # those ids arrived before the newer set began: an event older than that is unverifiable
            self.floor = self.started
        self.prev = self.seen
        self.seen = set()
        self.started = t
        self.rotate_at = t + self.window

    def floor_s(self) -> float | None:
        return self.floor if self.floor > -math.inf else None

    def to_data(self) -> dict[str, Any]:
        """The snapshot's keys, in the snapshot's order."""
        return {
            "seen": sorted(self.seen),
            "seen_prev": sorted(self.prev),
            "seen_rotate_at": self.rotate_at if self.rotate_at > -math.inf else None,
            "seen_started": self.started if self.started > -math.inf else None,
            "dedup_floor": self.floor_s(),
        }

    def load(self, data: dict[str, Any]) -> None:
        self.seen = set(data["seen"])
        self.prev = set(data["seen_prev"])
        self.rotate_at = data["seen_rotate_at"] if data["seen_rotate_at"] is not None else -math.inf
        if "seen_started" in data:
            self.started = data["seen_started"] if data["seen_started"] is not None else -math.inf
            self.floor = data["dedup_floor"] if data["dedup_floor"] is not None else -math.inf
        elif self.rotate_at > -math.inf:
            # a snapshot from before the floor was kept: every rotation sets rotate_at = start + window,
            # and the older set began before the newer one, so its start is a floor never too low
            self.started = self.rotate_at - self.window
            self.floor = self.started if self.prev else -math.inf


__all__ = ["EventIdMemory"]
