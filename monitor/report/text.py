"""Formatting shared by the renderers: values with their units, change markers, times."""

from __future__ import annotations

from datetime import datetime

from monitor.report.review import MetricComparison

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MARKERS = {"up": "▲", "down": "▼", "flat": "=", "n/a": "·"}


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value * 100:.1f} %"
    if unit == "USD":
        return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "score":
        return f"{value:.3f}"
    if unit == "ms":
        return f"{value:,.0f} ms"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_count(count: int | None) -> str:
    """A count, or n/a when there is nothing to count from (e.g. no previous week)."""
    return "n/a" if count is None else str(count)


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def fmt_change(change: float | None) -> str:
    return "n/a" if change is None else f"{change * 100:+.0f} %"


def fmt_usd(value: float | None) -> str:
    return fmt_value(value, "USD")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{seconds / 3600:.1f} h"


def fmt_when(moment: datetime | None) -> str:
    if moment is None:
        return "before the period read"
    return f"{WEEKDAYS[moment.weekday()]} {moment:%Y-%m-%d %H:%M} UTC"


def marker(m: MetricComparison) -> str:
    """▲ / ▼ / = with the relative change against the baseline (else the previous week), and
    whether that is better or worse."""
    change = m.change_vs_baseline if m.change_vs_baseline is not None else m.change_vs_previous
    text = MARKERS[m.direction]
    if m.direction in ("up", "down") and change is not None:
        text += f" {fmt_change(change)}"
    if m.assessment != "neutral":
        text += f" ({m.assessment})"
    return text
