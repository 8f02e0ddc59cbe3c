"""The alert lifecycle of `AlertTracker`: pending checks, resolve checks, and flap damping (an alert
that fires again within `flap_window_h` of its resolve needs twice the clear checks to resolve)."""

from __future__ import annotations

from monitor.core.config import RuleThresholds
from monitor.core.lifecycle import MAX_FLAP_DOUBLINGS, AlertTracker
from monitor.core.rules import FIRING, Check, Evidence

STEP = 300.0
THR = RuleThresholds()  # pending_checks 2, resolve_checks 6, flap_window_h 24


METRIC = {"name": "cost_usd", "current": 2.0, "baseline": 1.0, "change": 1.0, "window": "15m", "n": 20}


def check(detected: bool, clear: bool | None) -> Check:
    return Check("token_cost_spike", {}, detected, clear, Evidence(METRIC, "a: cost"), fp="fp-a")


class Feed:
    def __init__(self) -> None:
        self.tracker = AlertTracker()
        self.at = 0.0
        self.changes: list[tuple[str, float]] = []

    def run(self, detected: bool, clear: bool | None, checks: int) -> None:
        for _ in range(checks):
            self.at += STEP
            alert = self.tracker.step(check(detected, clear), "a", self.at, THR, "https://runbooks.example")
            if alert is not None:
                self.changes.append((alert.state, self.at))

    def checks_to_resolve(self) -> int:
        """Fire the alert, then count the clear checks until it resolves (bounded)."""
        self.run(True, False, THR.pending_checks)
        assert self.changes[-1][0] == "firing"
        for n in range(1, 200):
            self.run(False, True, 1)
            if self.changes[-1][0] == "resolved":
                return n
        raise AssertionError("never resolved")


def test_a_first_firing_resolves_after_resolve_checks() -> None:
    assert Feed().checks_to_resolve() == THR.resolve_checks


def test_firing_again_soon_after_a_resolve_doubles_the_clear_checks_up_to_a_cap() -> None:
    feed = Feed()
    needed = [feed.checks_to_resolve() for _ in range(MAX_FLAP_DOUBLINGS + 2)]
    assert needed == [6, 12, 24, 24]


def test_firing_again_a_day_later_is_a_new_incident() -> None:
    feed = Feed()
    assert feed.checks_to_resolve() == 6
    feed.run(False, None, int(THR.flap_window_h * 3600 / STEP) + 1)  # quiet for longer than the window
    assert feed.checks_to_resolve() == 6


def test_undecided_checks_neither_count_nor_reset_and_a_not_clear_one_resets() -> None:
    feed = Feed()
    feed.run(True, False, THR.pending_checks)
    feed.run(False, True, 5)
    feed.run(False, None, 3)  # undecided: the count stays at 5
    feed.run(False, True, 1)
    assert feed.changes[-1][0] == "resolved"
    feed.run(True, False, THR.pending_checks)  # fires again: 12 needed now
    feed.run(False, True, 11)
    feed.run(False, False, 1)  # not clear: the count starts over
    feed.run(False, True, 11)
    assert feed.changes[-1][0] == "firing"
    feed.run(False, True, 1)
    assert feed.changes[-1][0] == "resolved"


def test_states_saved_before_flap_damping_load_with_no_refires() -> None:
    tracker = AlertTracker()
    tracker.load_data({"fp-a": [FIRING, 0, 3, 100.0, None]})  # from a 5-field snapshot
    assert tracker.to_data() == {"fp-a": [FIRING, 0, 3, 100.0, None, 0, None]}
    assert tracker.states["fp-a"].refires == 0


def test_a_refire_within_the_flap_window_continues_the_episode_and_a_later_one_starts_anew() -> None:
    """Each alert carries `episode_start`: the first firing of its incident. A re-fire inside the
    flap window continues that episode (notifiers post in its thread, no new page); one after the
    window begins a new episode."""
    feed = Feed()
    alerts: list = []
    tracker, at = feed.tracker, 0.0

    def run(detected: bool, clear: bool | None, checks: int) -> None:
        nonlocal at
        for _ in range(checks):
            at += STEP
            got = tracker.step(check(detected, clear), "a", at, THR, "https://runbooks.example")
            if got is not None:
                alerts.append(got)

    run(True, False, THR.pending_checks)
    first = alerts[-1]
    assert first.state == "firing" and first.episode_start == first.at
    run(False, True, THR.resolve_checks)
    assert alerts[-1].state == "resolved" and alerts[-1].episode_start == first.at
    run(True, False, THR.pending_checks)  # back within minutes: the same incident
    assert alerts[-1].state == "firing" and alerts[-1].episode_start == first.at < alerts[-1].at
    run(False, True, 2 * THR.resolve_checks)
    run(False, None, int(THR.flap_window_h * 3600 / STEP) + 1)
    run(True, False, THR.pending_checks)
    assert alerts[-1].state == "firing" and alerts[-1].episode_start == alerts[-1].at > first.at
