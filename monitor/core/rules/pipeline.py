"""`invalid_events`: a pipeline-wide rule (no agent): too large a share of the last hour's events
broke the contract and went to the dead-letter topic."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from monitor.contract.alert import alert_fingerprint
from monitor.core.config import RuleThresholds
from monitor.core.evidence import fmt_pct1, metric_fields
from monitor.core.rules.base import OK, Check, Evidence

INVALID_EVENTS_FP = alert_fingerprint("invalid_events", None)


def check_invalid_events(
    thr: RuleThresholds, valid: float, invalid: float, state_of: Callable[[str], int],
) -> Iterator[Check]:
    """`valid` and `invalid` events over the last hour; `state_of`: the pipeline's alert states."""
    total = valid + invalid
    if invalid < thr.invalid_min_invalid and state_of(INVALID_EVENTS_FP) == OK:
        return
    share = invalid / total if total else 0.0
    detected = (
        total >= thr.invalid_min_events and invalid >= thr.invalid_min_invalid
        and share >= thr.invalid_max_share
    )
    clear = share < thr.invalid_max_share / 2
    ev = Evidence(
        metric_fields("invalid_event_share", share, thr.invalid_max_share, 3600, total, None,
                      invalid=int(invalid)),
        f"pipeline: {fmt_pct1(share)} of events in the last hour broke the contract "
        f"({int(invalid)} of {int(total)}, sent to the DLQ); threshold {fmt_pct1(thr.invalid_max_share)}",
    )
    yield Check("invalid_events", {}, detected, clear, ev, pending_checks=1, fp=INVALID_EVENTS_FP)
