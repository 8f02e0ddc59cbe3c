"""The weekly review as Markdown (GitHub-flavoured tables)."""

from __future__ import annotations

from monitor.report.records import mark_command
from monitor.report.review import AgentReview, AlertsReview, CategoryShare, MetricComparison, WeeklyReview
from monitor.report.text import (
    WEEKDAYS,
    fmt_change,
    fmt_count,
    fmt_duration,
    fmt_pct,
    fmt_usd,
    fmt_value,
    fmt_when,
    marker,
)

MAX_OUTLIER_ROWS = 20


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _metric_rows(metrics: list[MetricComparison]) -> list[list[str]]:
    return [
        [m.label, fmt_value(m.current, m.unit), fmt_value(m.previous, m.unit), fmt_value(m.baseline, m.unit),
         marker(m), fmt_change(m.change_vs_previous)]
        for m in metrics
    ]


def _shares(rows: list[CategoryShare], with_rate: bool) -> list[list[str]]:
    out = []
    for c in rows:
        row = [c.category + (" **(rising)**" if c.rising else ""), str(c.escalations),
               fmt_count(c.previous_escalations), fmt_pct(c.share_of_escalations),
               fmt_pct(c.previous_share_of_escalations)]
        if with_rate:
            row += [fmt_pct(c.escalation_rate), fmt_pct(c.previous_escalation_rate)]
        out.append(row)
    return out


def _alerts(review: AlertsReview) -> list[str]:
    lines = [f"Fired {review.fired}, resolved {review.resolved}, still firing at week end "
             f"{review.open_at_week_end}; median time to resolve {fmt_duration(review.median_time_to_resolve_s)}.", ""]
    if review.episodes:
        lines += _table(
            ["rule", "severity", "fired", "resolved", "time to resolve", "labels", "runbook"],
            [[e.rule, e.severity, fmt_when(e.fired_at), fmt_when(e.resolved_at) if e.resolved_at else "still firing",
              fmt_duration(e.time_to_resolve_s), ", ".join(f"{k}={v}" for k, v in e.labels.items()),
              f"[runbook]({e.runbook_url})" + (f" (after: {'; '.join(e.preceded_by)})" if e.preceded_by else "")]
             for e in review.episodes],
        )
    return lines


def _team(a: AgentReview) -> list[str]:
    """The changes timeline, last week's verdicts and the regression runs."""
    out = ["### What changed", ""]
    if a.changes:
        out += _table(["#", "at", "what", "change"],
                      [[str(n), fmt_when(c.at), c.kind, c.text] for n, c in enumerate(a.changes, 1)])
    else:
        out += ["No new agent version or model checkpoint, no operator's note this week."]
    out += [""]
    v = a.verdicts
    if v is not None:
        out += ["### Last week's review verdicts", "",
                f"{v.passed} of {v.verdicts} reviewed executions passed ({fmt_pct(v.pass_rate)}; the week before: "
                f"{v.previous_verdicts} verdicts, {fmt_pct(v.previous_pass_rate)}).", ""]
        if v.by_category:
            out += _table(["failure category", "failures", "signal", "reviewed week", "this week", "since",
                           "executions"],
                          [[c.category, str(c.failures), c.signal, fmt_value(c.before, c.unit),
                            fmt_value(c.after, c.unit),
                            "improved" if c.improved else "**not improved**" if c.improved is False else "n/a",
                            ", ".join(c.executions[:8])] for c in v.by_category]) + [""]
    if a.regressions:
        out += ["### Regression runs", ""]
        for s in a.regressions:
            runs = ", ".join(f"{r.run} ({r.passed}/{r.cases})" for r in s.runs) or "no run this week"
            out += [f"**{s.suite}**: pass rate {fmt_pct(s.pass_rate)} in the week's last run (last week's last run: "
                    f"{fmt_pct(s.previous_pass_rate)}); runs: {runs}. Flaky: {', '.join(s.flaky) or 'none'}.", ""]
            if s.newly_failing:
                out += _table(["newly failing case", "expected", "actual"],
                              [[c.case, c.expected, c.actual] for c in s.newly_failing]) + [""]
    return out


def _agenda(review: WeeklyReview) -> list[str]:
    out = ["## This week's agenda", ""]
    if not review.agenda:
        return out + ["Nothing on the agenda: no open incident, review failure, regression, rising escalation "
                      "category or cost outlier.", ""]
    return out + _table(["what", "agent", "detail", "act on it"],
                        [[i.kind, i.agent_id or "", i.text, i.action if i.action.startswith(("http", "#"))
                          else f"`{i.action}`"] for i in review.agenda]) + [""]


def _agent(a: AgentReview) -> list[str]:
    out = [f"## {a.agent_id}", ""]
    if a.findings:
        out += ["**Findings**", ""] + [f"- {f}" for f in a.findings] + [""]
    out += ["### Week over week", ""]
    out += _table(["metric", "this week", "previous week", "baseline", "vs baseline", "vs previous"],
                  _metric_rows(a.metrics + a.tool_error_shares + a.outcomes))
    b = a.budget
    budget = (f"{fmt_usd(b.monthly_budget_usd)} ({b.budget_source})" if b.monthly_budget_usd is not None
              else "no budget set")
    out += ["", f"Spend this week {fmt_usd(b.week_spend_usd)}; {b.month} to date {fmt_usd(b.month_to_date_usd)}"
            f"{'' if b.month_to_date_complete else ' (incomplete: earlier rollups not loaded)'}; projected month end "
            f"{fmt_usd(b.projected_month_end_usd)} at {fmt_usd(b.daily_run_rate_usd)}/day; budget {budget}"
            + (f", {fmt_pct(b.projected_share_of_budget)} of it." if b.projected_share_of_budget is not None else "."),
            ""]

    out += _team(a)
    out += ["### Executions to review", "",
            "A stratified random sample of the week (escalated, low quality, costly, ordinary). Record each verdict "
            "with the command beside it (`--fail --category C`: silent failure, tool issue, context issue, model "
            "drift); next week's review opens with them.", ""]
    out += _table(["stratum", "execution_id", "at", "status", "task_type", "quality", "cost", "steps",
                   "duration", "escalation reason", "record the verdict"],
                  [[p.stratum, f"`{p.execution.execution_id}`", fmt_when(p.execution.occurred_at), p.execution.status,
                    p.execution.task_type or "", fmt_value(p.execution.quality_score, "score"),
                    fmt_usd(p.execution.cost_usd), fmt_value(p.execution.steps),
                    fmt_value(p.execution.duration_ms, "ms"),
                    p.execution.escalation_reason or "",
                    f"`{mark_command(a.agent_id, p.execution.execution_id, passed=True)}`"] for p in a.sample])

    e = a.escalations
    out += ["", "### Escalations", "",
            f"{e.escalations} escalations (previous week {fmt_count(e.previous_escalations)}).", "",
            "By task_type:", ""]
    out += _table(["task_type", "escalations", "previous", "share", "previous share", "rate", "previous rate"],
                  _shares(e.by_task_type, True))
    out += ["", "By reason:", ""]
    out += _table(["reason", "escalations", "previous", "share", "previous share"], _shares(e.by_reason, False))

    c = a.cost
    out += ["", "### Cost", "",
            f"Spend {fmt_usd(c.spend_usd)} over {c.priced_executions} priced executions "
            f"({c.unpriced_executions} unpriced); median {fmt_usd(c.median_cost_usd)} per execution. "
            f"Top {c.top_share * 100:g} % = {c.top_count} executions, from {fmt_usd(c.p99_cost_usd)} up"
            + ("" if c.outliers_complete else " (list may miss executions: an hour's bounded top list was full)")
            + ".", ""]
    rows = [[str(o.rank), f"`{o.execution.execution_id}`", fmt_usd(o.execution.cost_usd),
             "n/a" if o.times_median is None else f"{o.times_median:,.1f}x", fmt_when(o.execution.occurred_at),
             o.execution.status, o.execution.task_type or ""] for o in c.outliers[:MAX_OUTLIER_ROWS]]
    out += _table(["#", "execution_id", "cost", "x median", "at", "status", "task_type"], rows)
    if len(c.outliers) > MAX_OUTLIER_ROWS:
        out += ["", f"... and {len(c.outliers) - MAX_OUTLIER_ROWS} more in the JSON report."]
    out += ["", "Trend:", ""]
    out += _table(["day", "spend", "executions", "cost per execution"],
                  [[d.day, fmt_usd(d.spend_usd), str(d.executions), fmt_usd(d.cost_per_execution)] for d in c.daily])
    out += ["", "Weekly spend: " + ", ".join(f"{w} {fmt_usd(v)}" for w, v in c.weekly_spend_usd.items()), ""]

    h = a.tool_errors
    out += ["### Tool errors by hour of week (UTC)", ""]
    if h.hottest is None:
        out += ["No tool errors in hours with enough calls."]
    else:
        cell = h.hottest
        out += [f"Hottest: {WEEKDAYS[cell.weekday]} {cell.hour:02d}:00 - {cell.errors} of {cell.calls} calls failed "
                f"({fmt_pct(cell.error_share)}; week {fmt_pct(h.week_error_share)})."]
        if h.hot_cells:
            out += ["", *_table(["hour of week", "errors", "calls", "share", "tools"],
                                [[f"{WEEKDAYS[x.weekday]} {x.hour:02d}:00", str(x.errors), str(x.calls),
                                  fmt_pct(x.error_share), ", ".join(f"{t} {n}" for t, n in x.tools.items())]
                                 for x in h.hot_cells])]
    out += ["", "### Alerts", ""] + _alerts(a.alerts)

    m = a.model_versions
    out += ["", "### Model versions", ""]
    out += _table(["model", "resolved checkpoint", "first seen", "last seen", "new"],
                  [[s.model, s.resolved_model, fmt_when(s.first_seen), fmt_when(s.last_seen),
                    "yes" if s.new_this_week else ""] for s in m.seen])
    for ch in m.changes:
        out += ["", f"**Checkpoint change**: {ch.model}: {', '.join(ch.before)} -> {ch.after} "
                f"(first seen {fmt_when(ch.first_seen)})"]
    if a.rollouts:
        out += ["", "### Rollouts", ""]
        out += _table(["candidate", "baseline", "from", "to", "candidate share", "verdict", "worse on", "ended"],
                      [[r.candidate_version, r.baseline_version, fmt_when(r.first_seen), fmt_when(r.last_seen),
                        fmt_pct(r.candidate_share), r.verdict, ", ".join(r.worse), r.ended or "running"]
                       for r in a.rollouts])
    out += ["", "### Evaluations", ""]
    out += _table(["evaluator", "count", "mean score", "pass rate", "previous count", "previous mean"],
                  [[v.evaluator, str(v.count), fmt_value(v.mean_score, "score"), fmt_pct(v.pass_rate),
                    str(v.previous_count), fmt_value(v.previous_mean_score, "score")] for v in a.evaluations])
    if a.notes:
        out += ["", "Notes: " + "; ".join(a.notes) + "."]
    return out + [""]


def render_markdown(review: WeeklyReview) -> str:
    out = [f"# Weekly maintenance review {review.week}", "",
           f"{review.starts_at:%Y-%m-%d} to {review.ends_at:%Y-%m-%d} (UTC, end exclusive); baseline: "
           f"{', '.join(review.baseline_weeks)}; source: {review.source or 'n/a'}.", ""]
    out += _agenda(review)
    if review.findings:
        out += ["## Findings", ""] + [f"- {f}" for f in review.findings] + [""]
    else:
        out += ["No findings this week.", ""]
    for a in review.agents:
        out += _agent(a)
    out += ["## Pipeline-wide alerts", ""] + _alerts(review.pipeline_alerts) + [""]
    # Agent ids, tools and reasons are event data: a "<" could open raw HTML in a Markdown
    # renderer. This renderer writes no HTML of its own, so every "<" is shown as text.
    return "\n".join(out).replace("<", "&lt;")
