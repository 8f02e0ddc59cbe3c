"""Report settings. `Settings` has no `report` section yet: the CLI uses
`getattr(settings, "report", None)` and falls back to these defaults, so the lead can add
`report: ReportSettings = ReportSettings()` to `Settings` without touching the report code.

In a settings file (once wired)::

    [report]
    weekday = 0            # Monday
    time_of_day = "07:00"  # UTC
    monthly_budget_usd = 3000.0
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ReportFormat = Literal["md", "html", "json"]


class ReportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weekday: int = Field(default=0, ge=0, le=6, description="scheduled run: 0 = Monday")
    time_of_day: time = Field(default=time(7, 0), description="scheduled run, UTC")
    out_dir: Path = Path("reports")
    formats: tuple[ReportFormat, ...] = ("md", "html", "json")
    slack_channel: str | None = Field(default=None, description="channel ID for uploads (default: slack.channel)")
    baseline_weeks: int = Field(
        default=4, ge=1, le=12, description="the baseline: this many weeks before the reported one"
    )
    sample_size: int = Field(default=16, ge=10, le=20, description="executions to review by hand, per agent")
    monthly_budget_usd: float | None = Field(
        default=None, gt=0, description="used when settings.detection sets no budget for the agent"
    )
    flat_within: float = Field(default=0.05, ge=0, lt=1, description="|relative change| shown as '='")
    significance_alpha: float = Field(
        default=1e-3, gt=0, lt=1,
        description="a change is called worse or better only when significant at this level (two-sided) and at "
        "least half the engine's effect gate (monitor/core/significance.py)",
    )
    rising_min_share_increase: float = Field(
        default=0.05, ge=0, le=1, description="a category's share of escalations rose by at least this much"
    )
    rising_min_ratio: float = Field(default=1.25, ge=1, description="... and by at least this factor")
    rising_min_escalations: int = Field(default=5, ge=1, description="... with at least this many this week")
    heatmap_min_calls: int = Field(default=5, ge=1, description="cells with fewer tool calls are not ranked")
    top_cost_share: float = Field(default=0.01, gt=0, le=0.2, description="the cost outliers: top 1 %")
    kafka_slack_s: int = Field(
        default=6 * 3600, ge=0, description="read this much before/after the range (publish delay, clock skew)"
    )
    max_records: int = Field(default=2_000_000, ge=1000, description="bound of records read per topic")
    notes_topic: str = Field(
        default="agent-notes", description="compacted: operators' notes (`agentmon note add`), shown in the "
        "review's changes timeline")
    change_window_h: float = Field(
        default=24.0, gt=0, le=24 * 7, description="an incident names the changes of its agent seen up to this "
        "many hours before its onset")
    max_event_records: int = Field(
        default=5_000_000, ge=1000, description="bound of events read for verdicts, regression runs and agent "
        "versions (two weeks of the events topic)")
    records_topic: str = Field(
        default="agent-review-records", description="compacted: a durable copy of review verdicts and regression "
        "results (the events topic keeps a week only)")
