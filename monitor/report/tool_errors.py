"""Tool errors by hour of week: a 7 x 24 grid (UTC), so a recurring maintenance window of an
upstream API stands out. Cells are ranked by how surely their error share exceeds the rest of the
week's (the engine's exact beta-binomial test), not by count (busy hours have more errors of every
kind) nor by raw share (2 failures in 12 calls is a high share and no evidence). A hot cell (a
finding) must be significant after correction for the 168 cells of the week."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.contract.rollup import Rollup
from monitor.core.significance import share_rise_p
from monitor.report.review import HeatCell, ToolErrorHeatmap

HOT_MIN_RATIO = 3.0
HOT_MIN_SHARE = 0.2
HOT_MIN_ERRORS = 3
MAX_HOT_CELLS = 10
#: a hot cell's p-value against the rest of the week, before the correction for 168 cells
HOT_ALPHA = 1e-3


def tool_error_heatmap(rollups: Sequence[Rollup], min_calls: int) -> ToolErrorHeatmap:
    calls = [[0] * 24 for _ in range(7)]
    errors = [[0] * 24 for _ in range(7)]
    per_tool: dict[tuple[int, int], dict[str, int]] = {}
    for r in rollups:
        d, h = r.hour.weekday(), r.hour.hour
        for tool, t in r.tools.items():
            calls[d][h] += t.calls
            errors[d][h] += t.errors
            if t.errors:
                cell = per_tool.setdefault((d, h), {})
                cell[tool] = cell.get(tool, 0) + t.errors
    total_calls = sum(map(sum, calls))
    total_errors = sum(map(sum, errors))
    week_share = total_errors / total_calls if total_calls else None
    cells = [
        HeatCell(weekday=d, hour=h, calls=calls[d][h], errors=errors[d][h],
                 error_share=errors[d][h] / calls[d][h], tools=dict(sorted(per_tool.get((d, h), {}).items())))
        for d in range(7) for h in range(24)
        if calls[d][h] >= min_calls and errors[d][h] > 0
    ]
    p = {(c.weekday, c.hour): share_rise_p(c.errors, c.calls, total_errors - c.errors, total_calls - c.calls)
         for c in cells}
    cells.sort(key=lambda c: (p[(c.weekday, c.hour)], -c.error_share, c.weekday, c.hour))
    hot = [
        c for c in cells
        if week_share is not None and c.errors >= HOT_MIN_ERRORS
        and c.error_share >= max(HOT_MIN_SHARE, HOT_MIN_RATIO * week_share)
        and p[(c.weekday, c.hour)] < HOT_ALPHA / (7 * 24)
    ]
    return ToolErrorHeatmap(
        calls=calls, errors=errors, week_error_share=week_share,
        hottest=cells[0] if cells else None, hot_cells=hot[:MAX_HOT_CELLS],
    )
