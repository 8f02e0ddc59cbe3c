"""How alert evidence is worded and rounded: the `metric` fields of an alert (contract's
`AlertMetric`) and the small formatters its summary uses. Shared by every rule and the lifecycle,
so that the same quantity always reads the same way."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class StatResult:
    """What a test said about one window or CUSUM segment, as the evidence quotes it."""

    p_value: float | None
    statistic: float | None
    effect: float | None


def stat_result(det: Any) -> StatResult:
    """A detector's current result (detectors reuse their state: copy it before the next update)."""
    return StatResult(det.p_value, det.statistic, det.effect)


def fmt_window(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{int(seconds)}s"


def fmt_pct(x: float) -> str:
    """A share in percent: no decimal from 10 % up, one below."""
    return f"{100 * x:.0f} %" if x >= 0.1 else f"{100 * x:.1f} %"


def fmt_pct1(x: float) -> str:
    """A share in percent, always with one decimal (thresholds such as 2.0 %)."""
    return f"{100 * x:.1f} %"


def fmt_num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.4f}"


def relative_change(current: float, baseline: float) -> float | None:
    return (current - baseline) / baseline if baseline else None


def rounded(x: float | None) -> float | None:
    """Six significant digits; None for a missing or non-finite value (JSON has no inf / nan)."""
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.6g}")


def metric_fields(name: str, current: float | None, baseline: float | None, window_s: float, n: float,
                  res: StatResult | None = None, **extra: Any) -> dict[str, Any]:
    """An alert's `metric`: the quantity now and usually, over which window and how many
    observations, the test's statistic and p-value when there is one, and rule-specific `extra`."""
    m: dict[str, Any] = {
        "name": name,
        "current": rounded(current),
        "baseline": rounded(baseline),
        "change": rounded(relative_change(current, baseline))
        if current is not None and baseline is not None else None,
        "window": fmt_window(window_s),
        "n": int(round(n)),
    }
    if res is not None:
        if res.statistic is not None and math.isfinite(res.statistic):
            m["statistic"] = rounded(res.statistic)
        if res.p_value is not None:
            m["p_value"] = float(f"{res.p_value:.3g}")
    m.update(extra)
    return m
