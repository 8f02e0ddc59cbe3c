"""The review extras of one agent-hour, as they travel inside its hourly `Rollup` (field `review`):
a bounded sample of executions, the most expensive ones, counts by category and evaluator, and
log-binned histograms. Built by `monitor.core.review_sample.ReviewAccumulator`, which documents
the bounds; read by the weekly review."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from monitor.contract.events import ExecutionStatus

REVIEW_EXTRAS_VERSION = 1


class ExecutionSample(BaseModel):
    """One execution as the review shows it (enough to pick it and open its trace)."""

    model_config = ConfigDict(frozen=True)

    execution_id: str
    occurred_at: datetime
    status: ExecutionStatus
    task_type: str | None = None
    quality_score: float | None = None
    cost_usd: float | None = None
    steps: int | None = None
    duration_ms: float | None = None
    escalation_reason: str | None = None


class CategoryCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    executions: int = Field(default=0, ge=0)
    escalations: int = Field(default=0, ge=0)


class EvaluatorStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    score_sum: float = 0.0
    count: int = Field(default=0, ge=0)
    passed: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)


class ReviewExtras(BaseModel):
    """The bounded review extras of one agent-hour (see the module docstring for the bounds)."""

    model_config = ConfigDict(frozen=True)

    version: int = REVIEW_EXTRAS_VERSION
    executions_seen: int = Field(ge=0, description="executions observed (the sample's population)")
    sample: list[ExecutionSample] = Field(default_factory=list, description="uniform sample, by priority")
    top_cost: list[ExecutionSample] = Field(default_factory=list, description="most expensive first")
    priced_seen: int = Field(default=0, ge=0, description="executions with a known cost (top_cost population)")
    task_types: dict[str, CategoryCounts] = Field(default_factory=dict)
    escalation_reasons: dict[str, int] = Field(default_factory=dict)
    evaluators: dict[str, EvaluatorStats] = Field(default_factory=dict)
    duration_ms_hist: dict[int, int] = Field(default_factory=dict, description="log bin -> executions")
    steps_hist: dict[int, int] = Field(default_factory=dict, description="log bin -> executions")
