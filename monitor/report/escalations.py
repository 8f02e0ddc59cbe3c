"""Escalations by task_type and by reason, this week against the previous one, with the
categories whose share of escalations rose."""

from __future__ import annotations

from monitor.report.config import ReportSettings
from monitor.report.review import CategoryShare, EscalationReview
from monitor.report.totals import PeriodTotals


def _is_rising(share: float, previous_share: float, escalations: int, cfg: ReportSettings) -> bool:
    if escalations < cfg.rising_min_escalations:
        return False
    if share - previous_share < cfg.rising_min_share_increase:
        return False
    return previous_share == 0 or share / previous_share >= cfg.rising_min_ratio


def _shares(
    current: dict[str, tuple[int | None, int]], previous: dict[str, tuple[int | None, int]], cfg: ReportSettings,
    has_previous: bool = True,
) -> list[CategoryShare]:
    """`has_previous`: whether the previous week had any data (else its figures are n/a, not 0)."""
    total = sum(e for _, e in current.values())
    prev_total = sum(e for _, e in previous.values())
    # Without escalations in the previous week (e.g. no data yet) there is no share to rise from.
    comparable = prev_total >= cfg.rising_min_escalations
    out = []
    for name in sorted(set(current) | set(previous)):
        n, e = current.get(name, (0, 0))
        pn, pe = previous.get(name, (0, 0))
        share = e / total if total else 0.0
        prev_share = pe / prev_total if prev_total else 0.0
        out.append(CategoryShare(
            category=name,
            executions=n,
            escalations=e,
            escalation_rate=e / n if n else None,
            share_of_escalations=share,
            previous_escalations=pe if has_previous else None,
            previous_escalation_rate=pe / pn if pn else None,
            previous_share_of_escalations=prev_share if has_previous else None,
            rising=comparable and _is_rising(share, prev_share, e, cfg),
        ))
    out.sort(key=lambda c: (-c.escalations, c.category))
    return out


def escalation_review(week: PeriodTotals, previous: PeriodTotals, cfg: ReportSettings) -> EscalationReview:
    by_type = _shares(
        {k: (v[0], v[1]) for k, v in week.task_types.items()},
        {k: (v[0], v[1]) for k, v in previous.task_types.items()},
        cfg, previous.hours > 0,
    )
    by_reason = _shares(
        {k: (None, v) for k, v in week.reasons.items()},
        {k: (None, v) for k, v in previous.reasons.items()},
        cfg, previous.hours > 0,
    )
    by_reason = [c.model_copy(update={"executions": None}) for c in by_reason]
    return EscalationReview(
        escalations=week.escalations,
        previous_escalations=previous.escalations if previous.hours > 0 else None,
        by_task_type=by_type,
        by_reason=by_reason,
        covered_executions=week.reviewed_executions,
    )
