"""What the team recorded, as sections of the review: last week's verdicts, the regression runs,
and the changes timeline (agent versions, model checkpoints, operators' notes). Pure.

Verdicts are counted in the week they were given: the review of week W opens with the verdicts
given during W, which judge the sample of W - 1 (the review of W - 1 is read on W's Monday).
Each failing category is held against the review metric it shows in, from W - 1 (when the
judged executions ran) to W: improved, or not (then it is on the agenda again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from monitor.report.records import OperatorNote, RegressionResult, Verdict, VersionSeen
from monitor.report.review import (
    AlertEpisode,
    ChangeItem,
    CheckpointSeen,
    FailureCategory,
    RegressionCase,
    RegressionRun,
    RegressionSuiteReview,
    VerdictItem,
    VerdictReview,
)
from monitor.report.text import fmt_when
from monitor.report.totals import PeriodTotals

#: the review metric each failure category shows in, and the direction that is worse
CATEGORY_SIGNALS: dict[str, tuple[str, str, str, Callable[[PeriodTotals], float | None]]] = {
    "silent failure": ("Quality (mean score)", "score", "down", lambda t: t.quality_mean),
    "context issue": ("Quality (mean score)", "score", "down", lambda t: t.quality_mean),
    "model drift": ("Quality (mean score)", "score", "down", lambda t: t.quality_mean),
    "tool issue": ("Tool error share (all tools)", "%", "up", lambda t: _tool_error_share(t)),
}
#: categories outside the list above: the failure rate
OTHER_SIGNAL: tuple[str, str, str, Callable[[PeriodTotals], float | None]] = (
    "Failure rate (failed + timeout)", "%", "up", lambda t: t.failure_rate)


def _tool_error_share(t: PeriodTotals) -> float | None:
    calls = sum(x.calls for x in t.tools.values())
    return sum(x.errors for x in t.tools.values()) / calls if calls else None


def _newest_per_execution(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """One verdict per execution: the newest (a reviewer who corrects a verdict records it again)."""
    newest: dict[str, Verdict] = {}
    for v in sorted(verdicts, key=lambda v: (v.at, v.event_id)):
        newest[v.execution_id] = v
    return sorted(newest.values(), key=lambda v: (v.at, v.execution_id))


def verdict_review(
    this_week: Iterable[Verdict], previous_week: Iterable[Verdict], t_now: PeriodTotals, t_prev: PeriodTotals,
) -> VerdictReview | None:
    now, prev = _newest_per_execution(this_week), _newest_per_execution(previous_week)
    if not now and not prev:
        return None
    failures = [v for v in now if not v.passed]
    by_category: dict[str, list[Verdict]] = defaultdict(list)
    for v in failures:
        by_category[v.category or "uncategorised"].append(v)
    categories = []
    for name, items in sorted(by_category.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        label, unit, worse, fn = CATEGORY_SIGNALS.get(name, OTHER_SIGNAL)
        before, after = fn(t_prev), fn(t_now)
        improved = None if before is None or after is None else (after < before if worse == "up" else after > before)
        categories.append(FailureCategory(category=name, failures=len(items),
                                          executions=[v.execution_id for v in items], signal=label, unit=unit,
                                          before=before, after=after, improved=improved))
    passed = sum(1 for v in now if v.passed)
    prev_passed = sum(1 for v in prev if v.passed)
    return VerdictReview(
        verdicts=len(now), passed=passed, pass_rate=passed / len(now) if now else None,
        previous_verdicts=len(prev), previous_pass_rate=prev_passed / len(prev) if prev else None,
        by_category=categories,
        failures=[VerdictItem(execution_id=v.execution_id, passed=v.passed, category=v.category, note=v.note,
                              by=v.by, at=v.at) for v in failures],
    )


def _runs(results: Iterable[RegressionResult]) -> list[tuple[str, datetime, dict[str, RegressionResult]]]:
    """The runs of one suite, oldest first: (run id, time, case -> result)."""
    by_run: dict[str, dict[str, RegressionResult]] = defaultdict(dict)
    for r in sorted(results, key=lambda r: (r.at, r.event_id)):
        by_run[r.run][r.case] = r
    runs = [(run, min(r.at for r in cases.values()), cases) for run, cases in by_run.items()]
    return sorted(runs, key=lambda x: (x[1], x[0]))


def _rate(cases: dict[str, RegressionResult]) -> float | None:
    return sum(1 for r in cases.values() if r.passed) / len(cases) if cases else None


def regression_review(this_week: Sequence[RegressionResult],
                      previous_week: Sequence[RegressionResult]) -> list[RegressionSuiteReview]:
    suites = sorted({r.suite for r in this_week} | {r.suite for r in previous_week})
    out = []
    for suite in suites:
        runs = _runs(r for r in this_week if r.suite == suite)
        before = _runs(r for r in previous_week if r.suite == suite)
        last = runs[-1][2] if runs else {}
        last_before = before[-1][2] if before else {}
        outcomes: dict[str, set[bool]] = defaultdict(set)
        for _, _, cases in runs:
            for case, r in cases.items():
                outcomes[case].add(r.passed)
        out.append(RegressionSuiteReview(
            suite=suite,
            runs=[RegressionRun(run=run, at=at, cases=len(cases), passed=sum(1 for r in cases.values() if r.passed))
                  for run, at, cases in runs],
            pass_rate=_rate(last), previous_pass_rate=_rate(last_before),
            newly_failing=[RegressionCase(case=c, expected=r.expected, actual=r.actual)
                           for c, r in sorted(last.items()) if not r.passed and c in last_before
                           and last_before[c].passed],
            flaky=sorted(c for c, seen in outcomes.items() if len(seen) == 2),
            failing=sorted(c for c, r in last.items() if not r.passed),
        ))
    return out


def changes_timeline(
    agent_id: str, start: datetime, end: datetime, versions: Iterable[VersionSeen],
    checkpoints: Iterable[CheckpointSeen], notes: Iterable[OperatorNote],
) -> list[ChangeItem]:
    """What changed for the agent in [start, end): agent versions first seen (not seen before
    `start` in what was read), new model checkpoints, notes for the agent or for every agent."""
    first: dict[str, datetime] = {}
    for v in versions:
        if v.agent_id == agent_id and (v.version not in first or v.at < first[v.version]):
            first[v.version] = v.at
    items = [ChangeItem(at=at, kind="agent version", text=f"agent version {version} first seen")
             for version, at in first.items() if start <= at < end]
    items += [ChangeItem(at=c.first_seen, kind="model checkpoint",
                         text=f"{c.model} served by new checkpoint {c.resolved_model}")
              for c in checkpoints if c.new_this_week]
    items += [ChangeItem(at=n.at, kind="note", text=n.text + (f" ({n.by})" if n.by else ""))
              for n in notes if n.agent_id in (agent_id, "*") and start <= n.at < end]
    return sorted(items, key=lambda c: (c.at, c.kind, c.text))


def name_preceding_changes(episodes: Sequence[AlertEpisode], changes: Sequence[ChangeItem],
                           window: timedelta) -> list[AlertEpisode]:
    """Each P1/P2 episode with the changes seen within `window` before it fired (newest first)."""
    out = []
    for e in episodes:
        if e.fired_at is None or e.severity not in ("P1", "P2"):
            out.append(e)
            continue
        fired = e.fired_at
        before = [c for c in changes if fired - window <= c.at <= fired]
        named = [f"{c.text} at {fmt_when(c.at)} ({_ago(fired - c.at)} before)"
                 for c in sorted(before, key=lambda c: c.at, reverse=True)]
        out.append(e.model_copy(update={"preceded_by": named}) if named else e)
    return out


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
