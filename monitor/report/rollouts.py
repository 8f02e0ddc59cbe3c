"""The week's rollouts of one agent: each candidate version compared with the incumbent (from the
`rollouts` of the hourly rollups, monitor/core/rollout.py) with its verdict, the candidate's share
of the runs, the signals it was worse on, and the `rollout_regression` pages it caused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.contract.alert import Alert
from monitor.contract.rollup import Rollup
from monitor.report.review import RolloutItem


@dataclass(slots=True)
class _Seen:
    first: datetime
    last: datetime
    verdict: str = "hold"
    base: int = 0
    cand: int = 0
    worse: set[str] = field(default_factory=set)
    ended: str | None = None


def rollout_review(week: Sequence[Rollup], alerts: Sequence[Alert]) -> list[RolloutItem]:
    """`week`: the agent's rollups of the week; `alerts`: its alerts (any rule, any time)."""
    seen: dict[tuple[str, str], _Seen] = {}
    for r in sorted(week, key=lambda r: r.hour):
        for ro in r.rollouts:
            it = seen.setdefault((ro.baseline_version, ro.candidate_version), _Seen(r.hour, r.hour))
            it.last, it.verdict, it.ended = r.hour, ro.verdict, ro.ended
            it.base += ro.baseline_runs
            it.cand += ro.candidate_runs
            it.worse.update(ro.worse)
    out = []
    for (base, cand), it in sorted(seen.items(), key=lambda kv: kv[1].first):
        pages = [a for a in alerts if a.rule == "rollout_regression" and a.state == "firing"
                 and a.labels.get("candidate_version") == cand and a.labels.get("baseline_version") == base
                 and it.first <= a.at]
        runs = it.base + it.cand
        out.append(RolloutItem(
            baseline_version=base, candidate_version=cand, first_seen=it.first, last_seen=it.last,
            verdict=it.verdict, candidate_runs=it.cand, baseline_runs=it.base,
            candidate_share=it.cand / runs if runs else None,
            worse=sorted(it.worse | {s for a in pages if (s := a.labels.get("signal"))}),
            pages=len(pages), ended=it.ended,
        ))
    return out
