"""The alert lifecycle: pending -> firing -> resolved per fingerprint, from the rules' checks.

A detected check counts towards firing (`pending_checks` in a row, or one for overwhelming
evidence); a firing alert resolves after `resolve_checks` clear checks in a row (a clear check is
evidence of a return to normal, `rules.base.scan`; an undecided check neither counts nor resets).
Each state change is emitted once, as an `Alert`.

An episode is one incident from its first firing to its last resolve: a firing within
`flap_window_h` of the previous resolve continues the episode (the alert carries the episode's
first firing time as `episode_start`, so notifiers post it in the episode's thread instead of
paging anew) and doubles the clear checks its next resolve needs.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from monitor.contract.alert import Alert, AlertMetric, alert_fingerprint
from monitor.contract.catalogue import runbook_url
from monitor.core.config import RuleThresholds
from monitor.core.evidence import metric_fields
from monitor.core.rules.base import FIRING, OK, PENDING, Check, Evidence

#: a flapping alert's resolve needs at most 2**this times `resolve_checks` clear checks
MAX_FLAP_DOUBLINGS = 2
_ALERT_NS = uuid.UUID("5b0c1d52-6f0e-4c1e-9d55-6a6d6f6e0001")


class FingerprintState:
    """The lifecycle of one fingerprint. Persisted as the list
    `[state, positives, clears, since, resolved_at, refires, episode]` (`to_data`)."""

    __slots__ = ("state", "positives", "clears", "since", "resolved_at", "refires", "episode")

    def __init__(self, state: int = OK, positives: int = 0, clears: int = 0, since: float = 0.0,
                 resolved_at: float | None = None, refires: int = 0, episode: float | None = None) -> None:
        self.state = state  # OK, PENDING or FIRING
        self.positives = positives  # detected checks in a row (towards firing)
        self.clears = clears  # clear checks in a row while firing (towards resolving)
        self.since = since  # check time of the first of `positives`
        self.resolved_at = resolved_at  # the last resolve; windows before it are not used again
        self.refires = refires  # firings within `flap_window_h` of the previous resolve, capped
        self.episode = episode  # check time of the current (or last) episode's first firing

    def to_data(self) -> list[Any]:
        return [self.state, self.positives, self.clears, self.since, self.resolved_at, self.refires, self.episode]

    @classmethod
    def from_data(cls, data: list[Any]) -> FingerprintState:
        # snapshots from before `refires` have 5 fields, from before `episode` 6
        return cls(*data[:7], *[0, None][len(data) - 5:])


class AlertTracker:
    """Pending -> firing -> resolved per fingerprint; emits each state change once.

    `refires` counts firings that came within `flap_window_h` of the previous resolve (at most
    `MAX_FLAP_DOUBLINGS`): each doubles the clear checks the next resolve needs, so an alert whose
    signal hovers around its gate pages about twice, not at every crossing.
    """

    def __init__(self) -> None:
        self.states: dict[str, FingerprintState] = {}

    def state_of(self, fp: str) -> int:
        st = self.states.get(fp)
        return OK if st is None else st.state

    def allowed_since(self, fp: str) -> float:
        st = self.states.get(fp)
        return -math.inf if st is None or st.resolved_at is None else st.resolved_at

    def firing_since(self, fp: str) -> float:
        """Check time of the first positive check of a pending or firing alert (+inf when OK):
        evidence that it is over must come from after it."""
        st = self.states.get(fp)
        return math.inf if st is None or st.state == OK else st.since

    def step(
        self, check: Check, agent_id: str | None, at: float, thr: RuleThresholds, runbook_base: str
    ) -> Alert | None:
        fp = check.fp or alert_fingerprint(check.rule, agent_id, check.labels)
        st = self.states.get(fp)
        if st is None:
            if not check.detected:
                return None
            st = self.states[fp] = FingerprintState(since=at)
        need = check.pending_checks or thr.pending_checks
        if check.pending_checks is None and check.detected and check.evidence is not None:
            p = check.evidence.metric.get("p_value")
            if p is not None and p < thr.alpha * thr.strong_evidence_factor:
                need = 1  # overwhelming evidence: no pending period
        if st.state != FIRING:
            if check.detected:
                st.positives += 1
                if st.positives == 1:
                    st.since = at
                if st.positives >= need:
                    st.state, st.clears = FIRING, 0
                    flapping = st.resolved_at is not None and at - st.resolved_at <= thr.flap_window_h * 3600
                    st.refires = min(st.refires + 1, MAX_FLAP_DOUBLINGS) if flapping else 0
                    if not flapping or st.episode is None:
                        st.episode = at
                    return self._alert(check, agent_id, fp, "firing", at, thr, runbook_base)
                st.state = PENDING
            else:
                st.state, st.positives = OK, 0
                if st.resolved_at is None:
                    del self.states[fp]
            return None
        if check.clear:
            st.clears += 1
            if st.clears >= thr.resolve_checks << st.refires:
                st.state, st.positives, st.clears, st.resolved_at = OK, 0, 0, at
                return self._alert(check, agent_id, fp, "resolved", at, thr, runbook_base)
        elif check.clear is False:
            st.clears = 0
        return None

    def firing(self) -> list[str]:
        return [fp for fp, st in self.states.items() if st.state == FIRING]

    def _alert(
        self, check: Check, agent_id: str | None, fp: str, state: str, at: float, thr: RuleThresholds,
        runbook_base: str,
    ) -> Alert:
        ev = (check.resolved_evidence if state == "resolved" else None) or check.evidence or \
            Evidence(metric_fields(check.rule, None, None, 0, 0), f"{agent_id}: {check.rule}")
        when = datetime.fromtimestamp(at, tz=UTC)
        st = self.states[fp]
        episode = st.episode if st.episode is not None else st.since  # older snapshots: no episode
        return Alert(
            alert_id=str(uuid.uuid5(_ALERT_NS, f"{fp}|{state}|{at}")),
            fingerprint=fp,
            rule=check.rule,
            agent_id=agent_id,
            severity=thr.severity_of(check.rule),
            state=state,
            at=when,
            summary=ev.summary,
            metric=AlertMetric(**ev.metric),
            labels=dict(check.labels),
            samples=ev.samples[:10],
            runbook_url=runbook_url(runbook_base, check.rule),
            episode_start=datetime.fromtimestamp(episode, tz=UTC),
        )

    def to_data(self) -> dict[str, list[Any]]:
        return {fp: st.to_data() for fp, st in self.states.items()}

    def load_data(self, data: dict[str, list[Any]]) -> None:
        self.states = {fp: FingerprintState.from_data(st) for fp, st in data.items()}
