"""Hourly per-agent rollup: what the weekly review needs about one agent-hour.

The engine emits one `Rollup` per agent and closed event-time hour in which the agent had any
traffic (executions, scores or outcomes). Events that arrive after the hour was closed feed the
baselines but are not in its rollup (a rollup, like an alert, is a decision already made).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from monitor.contract.review import ReviewExtras

ROLLUP_SCHEMA_VERSION = 1


class ToolRollup(BaseModel):
    model_config = ConfigDict(frozen=True)

    calls: int = Field(ge=0)
    errors: int = Field(ge=0, description="status error or timeout")
    rate_limited: int = Field(ge=0)
    ok: int = Field(ge=0)


class RolloutRollup(BaseModel):
    """One version comparison at the end of an hour (monitor/core/rollout.py)."""

    model_config = ConfigDict(frozen=True)

    baseline_version: str
    candidate_version: str
    verdict: Literal["promote", "hold", "rollback"] = Field(description="as of the hour's end")
    baseline_runs: int = Field(ge=0, description="the baseline version's executions this hour")
    candidate_runs: int = Field(ge=0, description="the candidate's executions this hour (shadow runs included)")
    worse: list[str] = Field(default_factory=list, description="signals on which the candidate is worse")
    ended: str | None = Field(default=None, description="why the comparison ended in this hour (None: running)")


class MetricRollup(BaseModel):
    model_config = ConfigDict(frozen=True)

    sum: float
    count: int = Field(ge=0)


class Rollup(BaseModel):
    """One agent-hour. Means are derived by the reader (sum / count) so rollups add up over a week."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = ROLLUP_SCHEMA_VERSION
    agent_id: str
    hour: AwareDatetime = Field(description="start of the event-time hour (UTC)")
    executions: int = Field(ge=0)
    completed: int = Field(ge=0)
    escalations: int = Field(ge=0)
    failures: int = Field(ge=0, description="status failed")
    timeouts: int = Field(ge=0)
    repeats: int = Field(ge=0)
    quality_sum: float
    quality_count: int = Field(ge=0)
    cost_usd_sum: float
    cost_count: int = Field(ge=0, description="executions whose cost is known")
    unpriced_executions: int = Field(ge=0)
    tokens_sum: float
    tokens_count: int = Field(ge=0)
    steps_mean: float | None
    steps_p95: float | None
    duration_ms_mean: float | None
    duration_ms_p95: float | None = Field(description="upper edge of the 13 %-wide histogram bin")
    tools: dict[str, ToolRollup] = Field(default_factory=dict)
    outcomes: dict[str, MetricRollup] = Field(default_factory=dict)
    resolved_models: dict[str, list[str]] = Field(
        default_factory=dict, description="requested model -> resolved checkpoints seen this hour"
    )
    alerts_firing: list[str] = Field(default_factory=list, description="fingerprints firing in this hour")
    review: ReviewExtras | None = Field(
        default=None, description="bounded extras for the weekly review (monitor/core/review_sample.py)"
    )
    rollouts: list[RolloutRollup] = Field(
        default_factory=list, description="the agent's version comparisons running at the hour's end or ended in it"
    )

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)

    @property
    def key(self) -> str:
        return f"{self.agent_id}/{self.hour.isoformat()}"
