"""The weekly maintenance review (issue 6), built from what the pipeline recorded
(`agent-rollups`, `agent-alerts`), never from raw events.

Layers: `sources` reads (JSONL, Kafka) -> `analysis.build_review` (pure) -> `markdown` / `html`
(+ `charts`) / JSON -> `output` writes files, `slack_upload` posts. `cli` is the command line and
the worker's scheduled run; `week` has ISO weeks and `next_report_due`.
"""

from monitor.report.analysis import build_review
from monitor.report.config import ReportSettings
from monitor.report.review import WeeklyReview
from monitor.report.week import IsoWeek, next_report_due, week_to_report

__all__ = ["IsoWeek", "ReportSettings", "WeeklyReview", "build_review", "next_report_due", "week_to_report"]
