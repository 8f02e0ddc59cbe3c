"""Charts of the weekly review as PNG bytes (matplotlib, object API with the Agg canvas: no
pyplot global state, no display, safe in a worker thread). PNG metadata is left out so the same
review gives the same bytes."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from monitor.report.review import AgentReview, MetricComparison, WeeklyReview
from monitor.report.text import WEEKDAYS, fmt_value, marker

COLOURS = {"worse": "#c0392b", "better": "#1e8449", "neutral": "#7f8c8d"}
THIS_WEEK = "#2e86c1"
PREVIOUS_WEEK = "#aeb6bf"
_HEAT = LinearSegmentedColormap.from_list("errors", ["#fdfefe", "#f9e79f", "#e67e22", "#922b21"])
_SUMMARY_METRICS = ("executions", "escalation_rate", "failure_rate", "quality_mean", "cost_per_execution",
                    "spend_usd")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None}, bbox_inches="tight")
    return buf.getvalue()


def comparable_metrics(a: AgentReview) -> list[MetricComparison]:
    """The metrics that have a baseline or a previous week to be compared with."""
    return [m for m in a.metrics + a.tool_error_shares + a.outcomes
            if (m.change_vs_baseline if m.change_vs_baseline is not None else m.change_vs_previous) is not None]


def metric_changes_chart(a: AgentReview) -> bytes:
    """Relative change against the baseline (else the previous week), coloured better / worse."""
    rows = comparable_metrics(a)
    fig = Figure(figsize=(7, max(2.0, 0.24 * len(rows) + 0.8)))
    ax = fig.add_subplot()
    changes = [100 * ((m.change_vs_baseline if m.change_vs_baseline is not None else m.change_vs_previous) or 0.0)
               for m in rows]
    ax.barh(range(len(rows)), changes, color=[COLOURS[m.assessment] for m in rows])
    ax.set_yticks(range(len(rows)), [m.label for m in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("% change against the baseline (red: worse, green: better)")
    ax.set_title(f"{a.agent_id}: this week against the baseline")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def cost_trend_chart(a: AgentReview) -> bytes:
    c = a.cost
    fig = Figure(figsize=(8, 3.2))
    ax, ax_w = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    days = [d.day[5:] for d in c.daily]
    ax.bar(days, [d.spend_usd for d in c.daily], color=THIS_WEEK)
    ax.set_ylabel("spend per day (USD)")
    ax.set_title("Daily spend and cost per execution", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax2 = ax.twinx()
    ax2.plot(days, [d.cost_per_execution or np.nan for d in c.daily], color="#c0392b", marker="o")
    ax2.set_ylabel("USD per execution", color="#c0392b")
    ax2.set_ylim(bottom=0)  # from zero: a flat cost must look flat
    weeks = list(c.weekly_spend_usd)
    ax_w.bar([w[5:] for w in weeks], [c.weekly_spend_usd[w] for w in weeks],
             color=[PREVIOUS_WEEK] * (len(weeks) - 1) + [THIS_WEEK])
    ax_w.set_title("Weekly spend (USD)", fontsize=10)
    ax_w.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return _png(fig)


def tool_error_heatmap_chart(a: AgentReview) -> bytes:
    h = a.tool_errors
    calls = np.array(h.calls, dtype=float)
    errors = np.array(h.errors, dtype=float)
    share = np.divide(errors, calls, out=np.zeros_like(errors), where=calls > 0)
    fig = Figure(figsize=(10, 3.3))
    ax = fig.add_subplot()
    vmax = max(5.0, float(share.max()) * 100)
    image = ax.imshow(share * 100, cmap=_HEAT, aspect="auto", vmin=0, vmax=vmax)
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("hour (UTC)")
    ax.set_title(f"{a.agent_id}: tool error share by hour of week (%)")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    for cell in h.hot_cells[:3]:  # only cells far above the week's share are marked
        ax.add_patch(_rect(cell.hour, cell.weekday))
        dark = cell.error_share * 100 > 0.6 * vmax
        ax.annotate(f"{cell.errors}/{cell.calls}", (cell.hour, cell.weekday),
                    ha="center", va="center", fontsize=7, color="white" if dark else "black")
    return _png(fig)


def _rect(x: int, y: int) -> Rectangle:
    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="#1b4f72", linewidth=2)


def escalations_chart(a: AgentReview) -> bytes:
    rows = a.escalations.by_task_type[:12]
    fig = Figure(figsize=(8, max(2.2, 0.45 * len(rows) + 1)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [100 * (c.previous_share_of_escalations or 0.0) for c in rows], height=0.4, color=PREVIOUS_WEEK,
            label="previous week")
    ax.barh(y + 0.2, [100 * c.share_of_escalations for c in rows], height=0.4,
            color=[COLOURS["worse"] if c.rising else THIS_WEEK for c in rows], label="this week (red: rising)")
    ax.set_yticks(y, [c.category for c in rows])
    ax.invert_yaxis()
    ax.set_xlabel("share of the agent's escalations (%)")
    ax.set_title(f"{a.agent_id}: escalations by task_type")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def summary_chart(review: WeeklyReview) -> bytes:
    """One picture for Slack: per agent, the headline metrics with their markers."""
    agents = review.agents
    fig = Figure(figsize=(11, 0.55 * len(agents) + 1.6))
    ax = fig.add_subplot()
    ax.axis("off")
    header = ["agent"] + [_label(m) for m in _SUMMARY_METRICS] + ["alerts fired"]
    cells: list[list[str]] = []
    colours: list[list[str]] = []
    for a in agents:
        row, colour = [a.agent_id], ["white"]
        for name in _SUMMARY_METRICS:
            m = a.metric(name)
            row.append(f"{fmt_value(m.current, m.unit)}\n{marker(m)}")
            colour.append({"worse": "#fadbd8", "better": "#d5f5e3", "neutral": "white"}[m.assessment])
        row.append(str(a.alerts.fired))
        colour.append("white")
        cells.append(row)
        colours.append(colour)
    if cells:
        table = ax.table(cellText=cells, cellColours=colours, colLabels=header, loc="center", cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.scale(1, 2.2)
    ax.set_title(f"agentmon weekly review {review.week}: {len(review.findings)} findings", fontsize=11)
    return _png(fig)


def _label(name: str) -> str:
    return {"executions": "executions", "escalation_rate": "escalation rate", "failure_rate": "failure rate",
            "quality_mean": "quality", "cost_per_execution": "cost / execution", "spend_usd": "spend"}[name]


_INCIDENT_SHADE = {"P1": "#e74c3c", "P2": "#f39c12"}


def signal_timeseries_chart(a: AgentReview) -> bytes | None:
    """The week's signals over time (one panel each) against the baseline weeks' range at the same
    time of week, with P1/P2 incidents shaded and the changes of the timeline as numbered lines."""
    series = a.series
    if series is None or not series.lines:
        return None
    lines = list(series.lines.values())
    fig = Figure(figsize=(8.2, 1.55 * len(lines) + 0.9))
    axes = fig.subplots(len(lines), 1, sharex=True, squeeze=False)[:, 0]
    x = np.array([s.timestamp() for s in series.starts]) + series.bin_hours * 1800  # bin centres
    week_start, week_end = series.starts[0].timestamp(), series.starts[-1].timestamp() + series.bin_hours * 3600
    scale = {"%": 100.0}
    for ax, line in zip(axes, lines, strict=True):
        k = scale.get(line.unit, 1.0)

        def arr(values: list[float | None], k: float = k) -> np.ndarray:
            return np.array([np.nan if v is None else v * k for v in values], dtype=float)

        low, high = arr(line.low), arr(line.high)
        if not np.all(np.isnan(low)):
            ax.fill_between(x, low, high, color=PREVIOUS_WEEK, alpha=0.45, linewidth=0, label="baseline weeks' range")
        ax.plot(x, arr(line.values), color=THIS_WEEK, marker=".", linewidth=1.4, label="this week")
        for e in a.alerts.episodes:
            if e.severity in _INCIDENT_SHADE:
                left = e.fired_at.timestamp() if e.fired_at else week_start
                right = e.resolved_at.timestamp() if e.resolved_at else week_end
                ax.axvspan(max(left, week_start), min(right, week_end), color=_INCIDENT_SHADE[e.severity], alpha=0.18)
        for n, change in enumerate(a.changes, 1):
            ax.axvline(change.at.timestamp(), color="#6c3483", linestyle="--", linewidth=0.9)
            if ax is axes[0]:
                ax.annotate(str(n), (change.at.timestamp(), 1.0), xycoords=("data", "axes fraction"),
                            ha="center", va="bottom", fontsize=7, color="#6c3483")
        unit = {"%": " (%)", "USD": " (USD)"}.get(line.unit, "")
        ax.set_ylabel(line.label.replace(" (mean score)", "") + unit, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlim(week_start, week_end)
    days = [week_start + d * 86400 for d in range(7)]
    axes[-1].set_xticks(days, [f"{WEEKDAYS[d]}" for d in range(7)])
    axes[0].set_title(f"{a.agent_id}: signals over the week (shaded: P1 red, P2 orange incidents; "
                      "dashed: changes, numbered as in the timeline)", fontsize=8)
    axes[0].legend(fontsize=7, loc="upper left", ncols=2)
    fig.tight_layout()
    return _png(fig)


def agent_charts(a: AgentReview) -> dict[str, bytes]:
    """Every chart of one agent, by a stable name ("changes" only when there is something to
    compare with: an empty frame says nothing)."""
    charts = {
        "cost": cost_trend_chart(a),
        "tool_errors": tool_error_heatmap_chart(a),
        "escalations": escalations_chart(a),
    }
    if comparable_metrics(a):
        charts["changes"] = metric_changes_chart(a)
    signals = signal_timeseries_chart(a)
    if signals is not None:
        charts["signals"] = signals
    return charts


__all__ = ["MetricComparison", "agent_charts", "summary_chart"]
