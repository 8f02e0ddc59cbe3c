"""The weekly review as one self-contained HTML page.

Nothing is loaded from anywhere: styles are inline, charts are PNGs in `data:` URIs, there are
no scripts and no web fonts, and a Content-Security-Policy forbids the browser any other load.
Runbook links are plain `<a>` links (followed only when a reader clicks them)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from html import escape

from monitor.report.charts import agent_charts
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

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MAX_OUTLIER_ROWS = 20

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1180px; color: #1c2833; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #d5d8dc; padding-bottom: 4px;
       margin-top: 2em; } h3 { margin-top: 1.4em; color: #34495e; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.86em; }
th, td { border: 1px solid #d5d8dc; padding: 3px 8px; text-align: left; vertical-align: top; }
td:first-child { white-space: nowrap; }
th { background: #f2f3f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.worse { color: #c0392b; font-weight: 600; } .better { color: #1e8449; font-weight: 600; }
.neutral { color: #7f8c8d; } .rising { background: #fdedec; }
.findings { background: #fef9e7; border-left: 4px solid #f1c40f; padding: 8px 16px; margin: 8px 0; }
.findings li { margin: 2px 0; } .meta { color: #566573; font-size: 0.9em; }
code { font-size: 0.95em; background: #f4f6f6; padding: 0 3px; }
img.chart { display: block; max-width: 100%; margin: 8px 0; border: 1px solid #eaeded; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; } .charts img { max-width: 49%; }
.beside { display: flex; gap: 16px; align-items: flex-start; } .beside > img { max-width: 66%; }
.beside .timeline { flex: 1; min-width: 260px; } .agenda td:nth-child(4) code { user-select: all; }
td code.cmd { user-select: all; white-space: normal; overflow-wrap: anywhere; font-size: 0.82em; display: block;
              min-width: 260px; }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _img(png: bytes, alt: str) -> str:
    return f'<img class="chart" alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list[str]], row_class: Callable[[int], str] | None = None) -> str:
    """Cells are HTML already (escape with `_e`)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        f'<tr class="{row_class(i) if row_class else ""}">' + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metric_rows(metrics: list[MetricComparison]) -> list[list[str]]:
    return [
        [_e(m.label), _e(fmt_value(m.current, m.unit)), _e(fmt_value(m.previous, m.unit)),
         _e(fmt_value(m.baseline, m.unit)), f'<span class="{m.assessment}">{_e(marker(m))}</span>',
         _e(fmt_change(m.change_vs_previous))]
        for m in metrics
    ]


def _shares(rows: list[CategoryShare], with_rate: bool) -> str:
    header = ["category", "escalations", "previous", "share", "previous share"]
    if with_rate:
        header += ["rate", "previous rate"]
    body = []
    for c in rows:
        row = [_e(c.category) + (' <span class="worse">rising</span>' if c.rising else ""), str(c.escalations),
               fmt_count(c.previous_escalations), fmt_pct(c.share_of_escalations),
               fmt_pct(c.previous_share_of_escalations)]
        if with_rate:
            row += [fmt_pct(c.escalation_rate), fmt_pct(c.previous_escalation_rate)]
        body.append(row)
    return _table(header, body, lambda i: "rising" if rows[i].rising else "")


def _alerts(r: AlertsReview) -> str:
    text = (f"<p>Fired {r.fired}, resolved {r.resolved}, still firing at week end {r.open_at_week_end}; "
            f"median time to resolve {_e(fmt_duration(r.median_time_to_resolve_s))}.</p>")
    if not r.episodes:
        return text
    return text + _table(
        ["rule", "severity", "fired", "resolved", "time to resolve", "labels", "summary", "runbook"],
        [[_e(e.rule), _e(e.severity), _e(fmt_when(e.fired_at)),
          _e(fmt_when(e.resolved_at)) if e.resolved_at else '<span class="worse">still firing</span>',
          _e(fmt_duration(e.time_to_resolve_s)), _e(", ".join(f"{k}={v}" for k, v in e.labels.items())),
          _e(e.summary) + (f'<br><span class="worse">after: {_e("; ".join(e.preceded_by))}</span>'
                           if e.preceded_by else ""),
          f'<a href="{_e(e.runbook_url)}">runbook</a>'] for e in r.episodes],
    )


def _agent(a: AgentReview) -> str:
    charts = agent_charts(a)
    parts = [f'<h2 id="agent-{_e(a.agent_id)}">{_e(a.agent_id)}</h2>']
    if a.findings:
        parts.append('<div class="findings"><ul>' + "".join(f"<li>{_e(f)}</li>" for f in a.findings) + "</ul></div>")
    parts.append("<h3>Week over week</h3>")
    parts.append(_table(["metric", "this week", "previous week", "baseline", "vs baseline", "vs previous"],
                        _metric_rows(a.metrics + a.tool_error_shares + a.outcomes)))
    b = a.budget
    budget = (f"{fmt_usd(b.monthly_budget_usd)} ({b.budget_source})" if b.monthly_budget_usd is not None
              else "no budget set")
    share = f", {fmt_pct(b.projected_share_of_budget)} of it" if b.projected_share_of_budget is not None else ""
    over = "worse" if (b.projected_share_of_budget or 0) > 1 else ""
    parts.append(f'<p class="{over}">Spend this week {_e(fmt_usd(b.week_spend_usd))}; {b.month} to date '
                 f"{_e(fmt_usd(b.month_to_date_usd))}; projected month end {_e(fmt_usd(b.projected_month_end_usd))} "
                 f"at {_e(fmt_usd(b.daily_run_rate_usd))}/day; budget {_e(budget)}{_e(share)}.</p>")
    if "changes" in charts:
        parts.append(_img(charts["changes"], f"{a.agent_id}: changes against the baseline"))
    else:
        parts.append("<p>No earlier week and no baseline to compare with yet: the chart of changes appears "
                     "once the agent has a week of history.</p>")

    parts.append(_signals_and_changes(a, charts.get("signals")))
    parts.append(_verdicts(a))
    parts.append(_regressions(a))

    parts.append("<h3>Executions to review</h3><p>A stratified random sample of the week; open each trace by its "
                 "execution id, then record the verdict with the command beside it (<code>--fail</code> with "
                 "<code>--category</code>: silent failure, tool issue, context issue, model drift). Next week's "
                 "review opens with them.</p>")
    parts.append(_table(
        ["stratum", "execution_id", "at", "status", "task_type", "quality", "cost", "steps", "duration", "reason",
         "record the verdict"],
        [[_e(p.stratum), f"<code>{_e(p.execution.execution_id)}</code>", _e(fmt_when(p.execution.occurred_at)),
          _e(p.execution.status), _e(p.execution.task_type or ""), _e(fmt_value(p.execution.quality_score, "score")),
          _e(fmt_usd(p.execution.cost_usd)), _e(fmt_value(p.execution.steps)),
          _e(fmt_value(p.execution.duration_ms, "ms")), _e(p.execution.escalation_reason or ""),
          f'<code class="cmd">{_e(mark_command(a.agent_id, p.execution.execution_id, passed=True))}</code>']
         for p in a.sample]))

    e = a.escalations
    parts.append(f'<h3 id="escalations-{_e(a.agent_id)}">Escalations</h3>' f"<p>{e.escalations} escalations "
                 f"(previous week {fmt_count(e.previous_escalations)}).</p>")
    parts.append(_img(charts["escalations"], f"{a.agent_id}: escalations by task_type"))
    parts.append("<p>By task_type:</p>" + _shares(e.by_task_type, True))
    parts.append("<p>By reason:</p>" + _shares(e.by_reason, False))

    c = a.cost
    parts.append(f'<h3 id="cost-{_e(a.agent_id)}">Cost</h3>'
                 f"<p>Spend {_e(fmt_usd(c.spend_usd))} over {c.priced_executions} priced executions "
                 f"({c.unpriced_executions} unpriced); median {_e(fmt_usd(c.median_cost_usd))}. Top "
                 f"{c.top_share * 100:g} % = {c.top_count} executions, from {_e(fmt_usd(c.p99_cost_usd))} up"
                 + ("" if c.outliers_complete else " (may be incomplete)") + ".</p>")
    parts.append(_img(charts["cost"], f"{a.agent_id}: cost trend"))
    parts.append(_table(
        ["#", "execution_id", "cost", "x median", "at", "status", "task_type"],
        [[str(o.rank), f"<code>{_e(o.execution.execution_id)}</code>", _e(fmt_usd(o.execution.cost_usd)),
          "n/a" if o.times_median is None else f"{o.times_median:,.1f}x", _e(fmt_when(o.execution.occurred_at)),
          _e(o.execution.status), _e(o.execution.task_type or "")] for o in c.outliers[:MAX_OUTLIER_ROWS]]))
    if len(c.outliers) > MAX_OUTLIER_ROWS:
        parts.append(f"<p>... and {len(c.outliers) - MAX_OUTLIER_ROWS} more in the JSON report.</p>")

    h = a.tool_errors
    parts.append("<h3>Tool errors by hour of week (UTC)</h3>")
    parts.append(_img(charts["tool_errors"], f"{a.agent_id}: tool errors by hour of week"))
    if h.hot_cells:
        parts.append(_table(["hour of week", "errors", "calls", "share", "tools"],
                            [[f"{WEEKDAYS[x.weekday]} {x.hour:02d}:00", str(x.errors), str(x.calls),
                              fmt_pct(x.error_share), _e(", ".join(f"{t} {n}" for t, n in x.tools.items()))]
                             for x in h.hot_cells]))
    parts.append("<h3>Alerts</h3>" + _alerts(a.alerts))
    m = a.model_versions
    parts.append("<h3>Model versions</h3>" + _table(
        ["model", "resolved checkpoint", "first seen", "last seen", "new"],
        [[_e(s.model), _e(s.resolved_model), _e(fmt_when(s.first_seen)), _e(fmt_when(s.last_seen)),
          '<span class="worse">new</span>' if s.new_this_week else ""] for s in m.seen]))
    for ch in m.changes:
        parts.append(f'<p class="worse">Checkpoint change: {_e(ch.model)}: {_e(", ".join(ch.before))} &rarr; '
                     f"{_e(ch.after)} (first seen {_e(fmt_when(ch.first_seen))})</p>")
    if a.rollouts:
        parts.append("<h3>Rollouts</h3>" + _table(
            ["candidate", "baseline", "from", "to", "candidate share", "verdict", "worse on", "ended"],
            [[_e(r.candidate_version), _e(r.baseline_version), _e(fmt_when(r.first_seen)), _e(fmt_when(r.last_seen)),
              fmt_pct(r.candidate_share),
              f'<span class="worse">{_e(r.verdict)}</span>' if r.verdict == "rollback" else _e(r.verdict),
              _e(", ".join(r.worse)), _e(r.ended or "running")] for r in a.rollouts]))
    parts.append("<h3>Evaluations</h3>" + _table(
        ["evaluator", "count", "mean score", "pass rate", "previous count", "previous mean"],
        [[_e(v.evaluator), str(v.count), fmt_value(v.mean_score, "score"), fmt_pct(v.pass_rate),
          str(v.previous_count), fmt_value(v.previous_mean_score, "score")] for v in a.evaluations]))
    if a.notes:
        parts.append(f'<p class="meta">Notes: {_e("; ".join(a.notes))}.</p>')
    return "\n".join(parts)


def _signals_and_changes(a: AgentReview, chart: bytes | None) -> str:
    rows = [[str(n), _e(fmt_when(c.at)), _e(c.kind), _e(c.text)] for n, c in enumerate(a.changes, 1)]
    timeline = (_table(["#", "at", "what", "change"], rows) if rows else
                "<p>No change recorded this week: no new agent version or model checkpoint, no operator's note "
                f"(<code>agentmon note add --agent {_e(a.agent_id)} \"...\"</code>).</p>")
    left = _img(chart, f"{a.agent_id}: signals over the week") if chart else "<p>No signal this week.</p>"
    return (f"<h3>Signals over the week and what changed</h3><div class=\"beside\">{left}"
            f'<div class="timeline"><p><b>Changes timeline</b></p>{timeline}</div></div>')


def _verdicts(a: AgentReview) -> str:
    v = a.verdicts
    if v is None:
        return ""
    head = (f"<h3>Last week's review verdicts</h3><p>{v.passed} of {v.verdicts} reviewed executions passed "
            f"({_e(fmt_pct(v.pass_rate))}; the week before: {v.previous_verdicts} verdicts, "
            f"{_e(fmt_pct(v.previous_pass_rate))}).</p>")
    if not v.by_category:
        return head
    rows = [[_e(c.category), str(c.failures), _e(c.signal), _e(fmt_value(c.before, c.unit)),
             _e(fmt_value(c.after, c.unit)),
             '<span class="better">improved</span>' if c.improved else
             '<span class="worse">not improved</span>' if c.improved is False else "n/a",
             _e(", ".join(c.executions[:8]))] for c in v.by_category]
    return head + _table(["failure category", "failures", "signal", "reviewed week", "this week", "since",
                          "executions"], rows)


def _regressions(a: AgentReview) -> str:
    if not a.regressions:
        return ""
    parts = [f'<h3 id="regressions-{_e(a.agent_id)}">Regression runs</h3>']
    for s in a.regressions:
        runs = ", ".join(f"{r.run} ({r.passed}/{r.cases})" for r in s.runs) or "no run this week"
        parts.append(f"<p><b>{_e(s.suite)}</b>: pass rate {_e(fmt_pct(s.pass_rate))} in the week's last run "
                     f"(last week's last run: {_e(fmt_pct(s.previous_pass_rate))}); runs: {_e(runs)}. "
                     f"Flaky: {_e(', '.join(s.flaky) or 'none')}.</p>")
        if s.newly_failing:
            parts.append(_table(["newly failing case", "expected", "actual"],
                                [[f'<span class="worse">{_e(c.case)}</span>', _e(c.expected), _e(c.actual)]
                                 for c in s.newly_failing]))
    return "".join(parts)


def _agenda(review: WeeklyReview) -> str:
    if not review.agenda:
        return "<p>Nothing on the agenda: no open incident, review failure, regression, rising escalation " \
               "category or cost outlier.</p>"
    rows = []
    for item in review.agenda:
        if item.action.startswith(("http://", "https://")):
            action = f'<a href="{_e(item.action)}">runbook</a>'
        elif item.action.startswith("#"):
            action = f'<a href="{_e(item.action)}">details</a>'
        else:
            action = f"<code>{_e(item.action)}</code>"
        agent = f'<a href="#agent-{_e(item.agent_id)}">{_e(item.agent_id)}</a>' if item.agent_id else ""
        rows.append([_e(item.kind), agent, _e(item.text), action])
    return '<div class="agenda">' + _table(["what", "agent", "detail", "act on it"], rows) + "</div>"


_GLANCE = ("executions", "escalation_rate", "failure_rate", "quality_mean", "cost_per_execution", "spend_usd")


def _at_a_glance(review: WeeklyReview) -> str:
    if not review.agents:
        return "<p>No agent had traffic or alerts in this week.</p>"
    rows = []
    for a in review.agents:
        row = [f'<a href="#agent-{_e(a.agent_id)}">{_e(a.agent_id)}</a>']
        for name in _GLANCE:
            m = a.metric(name)
            row.append(f'{_e(fmt_value(m.current, m.unit))} <span class="{m.assessment}">{_e(marker(m))}</span>')
        row += [str(a.alerts.fired), str(len(a.findings))]
        rows.append(row)
    labels = [next(m.label for m in review.agents[0].metrics if m.name == n) for n in _GLANCE]
    return _table(["agent", *map(_e, labels), "alerts fired", "findings"], rows)


def render_html(review: WeeklyReview) -> str:
    pipeline = [f for f in review.findings if f.startswith(("pipeline:", "Partial week"))]  # not an agent's
    findings = ("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in pipeline) + "</ul>") if pipeline else ""
    toc = " &middot; ".join(f'<a href="#agent-{_e(a.agent_id)}">{_e(a.agent_id)}</a>' for a in review.agents)
    body = "\n".join(_agent(a) for a in review.agents)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agentmon weekly review {_e(review.week)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Weekly maintenance review {_e(review.week)}</h1>
<p class="meta">{review.starts_at:%Y-%m-%d} to {review.ends_at:%Y-%m-%d} (UTC, end exclusive); baseline:
{_e(", ".join(review.baseline_weeks))}; source: {_e(review.source or "n/a")}. Agents: {toc}</p>
<h2>This week's agenda</h2>
{_agenda(review)}
<h2>At a glance</h2>
{_at_a_glance(review)}
{f'<div class="findings">{findings}</div>' if findings else ""}
{body}
<h2>Pipeline-wide alerts</h2>
{_alerts(review.pipeline_alerts)}
</body>
</html>
"""
