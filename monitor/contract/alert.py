"""The alert contract (shared/design/CONTRACT.md section 2): one alert state change.

Written to `agent-alerts` (key = agent id, `*` for pipeline-wide rules) by the workers and as
JSON lines by the backtest; read by the alert pipeline, the report, and anything else downstream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from monitor.contract.catalogue import RuleName, Severity

AlertState: TypeAlias = Literal["firing", "resolved"]


class AlertMetric(BaseModel):
    """The evidence: what was measured against what. Rule-specific extras (the test statistic,
    p-value, quantile) are kept as extra fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    current: float | None
    baseline: float | None
    change: float | None = Field(description="Relative change, (current - baseline) / baseline.")
    window: str = Field(description="The window `current` covers, e.g. `1h` or `6h`.")
    n: int = Field(ge=0, description="Observations behind `current`.")


class Suspect(BaseModel):
    """One value of one event dimension that explains a share of an alert's change."""

    model_config = ConfigDict(extra="allow", frozen=True)

    dimension: str = Field(description="`task_type`, `agent_version`, `resolved_model`, `tool`, `provider`, "
                           "`escalation_reason`")
    value: str
    share_of_change: float = Field(description="Share of the excess (or deficit) attributable to this value.")
    window_share: float = Field(description="Its share of the window's executions (or calls).")
    baseline_share: float | None = Field(description="Its share of the baseline's executions (None: unknown).")
    first_seen: AwareDatetime | None = None
    text: str = Field(description="One line, e.g. '93 % of the excess escalations came from task type billing'.")


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    alert_id: Annotated[str, Field(min_length=1)]
    fingerprint: Annotated[str, Field(min_length=1)]
    rule: RuleName
    agent_id: str | None
    severity: Severity
    state: AlertState
    at: AwareDatetime
    summary: str
    metric: AlertMetric
    labels: dict[str, str] = Field(default_factory=dict)
    samples: Annotated[list[str], Field(max_length=10)] = Field(default_factory=list)
    runbook_url: str
    episode_start: AwareDatetime | None = Field(
        default=None,
        description="First firing of the episode this state change belongs to. A firing whose "
        "`episode_start` is before its `at` re-opens an episode that resolved shortly before (the same "
        "incident, not a new one): notifiers continue its thread instead of paging anew.",
    )

    suspects: list[Suspect] = Field(
        default_factory=list,
        description="For a firing rate, mean or quantile alert: the values of one dimension the events "
        "carry (task type, agent version, resolved model, tool, provider, escalation reason) that explain "
        "most of the change against the baseline, best first (empty when the change is spread evenly).",
    )
    related: list[str] = Field(
        default_factory=list,
        description="Fingerprints of the same agent's alerts firing (or resolved within the last hours) "
        "when this one fired, oldest first: notifiers post it in the thread of the first of them.",
    )

    def to_json(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)


ALERT_ADAPTER: TypeAdapter[Alert] = TypeAdapter(Alert)


def decode_alert(raw: bytes | str) -> Alert:
    return Alert.model_validate_json(raw)


def alert_fingerprint(rule: str, agent_id: str | None, labels: dict[str, str] | None = None) -> str:
    """Stable identity of a problem: `rule/agent[/k=v...]`, labels sorted so order never matters."""
    parts = [rule, agent_id or "*"]
    if labels:
        parts.extend(f"{k}={v}" for k, v in sorted(labels.items()))
    return "/".join(parts)


def alert_json_schema() -> dict[str, Any]:
    schema = ALERT_ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentmon alert state change"
    return schema
