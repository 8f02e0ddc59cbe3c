"""Writing the rendered review: `weekly-review-<week>[-<agent>].{md,html,json}` in a folder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from monitor.report.config import ReportFormat
from monitor.report.html import render_html
from monitor.report.markdown import render_markdown
from monitor.report.review import WeeklyReview

RENDERERS = {"md": render_markdown, "html": render_html, "json": WeeklyReview.to_json}


def report_stem(review: WeeklyReview, agent_id: str | None = None) -> str:
    return f"weekly-review-{review.week}" + (f"-{agent_id}" if agent_id else "")


def write_report(
    review: WeeklyReview, out_dir: Path, formats: Iterable[ReportFormat], agent_id: str | None = None
) -> dict[str, Path]:
    """Render and write each format; returns format -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt in formats:
        path = out_dir / f"{report_stem(review, agent_id)}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(RENDERERS[fmt](review), encoding="utf-8")
        tmp.replace(path)  # readers never see a half-written report
        written[fmt] = path
    return written
