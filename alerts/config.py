"""Configuration of the alert pipeline (layer 3, `alerts/`): grouping, repeat interval, routes,
receivers, the notification log, retries, and the inhibition rules.

Plain pydantic models (no environment access here); `monitor.settings.Settings.alerting` holds one,
so every field can come from the TOML file or `AGENTMON_ALERTING__...` environment variables.

Example (the settings TOML file):

    [slack]
    channel = "C0AGENTS"            # a channel ID: the idempotency lookup reads its history
    # bot_token: only from AGENTMON_SLACK__BOT_TOKEN (or the file, if it is kept secret)

    [alerting]
    group_wait_s = 30
    group_wait_by_severity_s = { P1 = 5 }
    digest_rules = ["floating_model_label"]   # hygiene: one daily message, never a page
    digest_hour_utc = 9
    repeat_interval_s = 14400
    default_receiver = "slack-default"
    notification_log = "kafka"      # the log in a compacted topic: any number of instances, no disk
    agent_teams = { "invoice-matcher" = "payments", "refund-bot" = "payments" }

    [[alerting.receivers]]
    name = "slack-default"
    kind = "slack"

    [[alerting.receivers]]
    name = "slack-payments"
    kind = "slack"
    channel = "C0PAYMENTS"

    [[alerting.receivers]]
    name = "pager"
    kind = "webhook"
    url = "https://pager.example.com/hooks/agentmon"
    # secret: AGENTMON_ALERTING__RECEIVERS is a list, so keep the secret in the file or use
    # alerting.webhook_url / AGENTMON_ALERTING__WEBHOOK_SECRET for a single webhook

    [[alerting.receivers]]
    name = "alertmanager"
    kind = "alertmanager"
    url = "http://alertmanager:9093"   # POST /api/v2/alerts; its routes page PagerDuty/Opsgenie

    [[alerting.routes]]
    name = "payments"
    teams = ["payments"]
    receivers = ["slack-payments"]
    continue_matching = true

    [[alerting.routes]]
    name = "p1-pager"
    severities = ["P1"]
    receivers = ["slack-default", "pager"]

    [alerting.retry]
    max_attempts = 5
    base_delay_s = 1
    max_delay_s = 60
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.contract.catalogue import Severity


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteConfig(_Section):
    """One routing rule. Every given criterion must hold (AND); a list means any of its values (OR).
    Routes are tried in order; the first match wins unless `continue_matching` is set."""

    name: str
    severities: list[Severity] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list, description="exact agent ids; '*' = pipeline-wide alerts")
    teams: list[str] = Field(default_factory=list, description="owning team, from AlertingConfig.agent_teams")
    rules: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description="label equality matchers")
    receivers: list[str] = Field(min_length=1)
    continue_matching: bool = False


class ReceiverConfig(_Section):
    """Where a notification goes. `slack` posts to `channel` (prefer a channel ID such as C0123: the
    idempotency lookup after an ambiguous failure reads that channel's history, which needs an ID or
    a channel the bot has posted to before); `webhook` POSTs signed JSON to `url`; `alertmanager` POSTs
    to `url`/api/v2/alerts of a Prometheus Alertmanager (its base URL, e.g. http://alertmanager:9093);
    `console` prints."""

    name: str
    kind: Literal["slack", "console", "webhook", "alertmanager"]
    channel: str | None = None
    url: str | None = None
    secret: SecretStr | None = None
    hold_s: float | None = Field(
        default=None,
        gt=0,
        description="alertmanager: endsAt of a firing alert this far ahead (default 1.5 x repeat_interval_s)",
    )

    @model_validator(mode="after")
    def _check_kind_fields(self) -> ReceiverConfig:
        if self.kind in ("webhook", "alertmanager") and not self.url:
            raise ValueError(f"receiver {self.name!r}: a {self.kind} receiver needs `url`")
        return self


class RetryConfig(_Section):
    """Bounded exponential backoff. Slack's Retry-After is always honoured (never retried sooner)."""

    max_attempts: int = Field(default=5, ge=1, description="attempts per delivery pass before deferring")
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=60.0, ge=0)
    max_retry_after_s: float = Field(
        default=300.0, ge=0, description="a longer Retry-After defers the delivery to a later pass instead"
    )
    request_timeout_s: float = Field(default=10.0, gt=0)
    defer_s: float = Field(default=60.0, ge=0, description="wait before the next pass after a failed pass")
    give_up_after_s: float = Field(
        default=24 * 3600.0, gt=0, description="a delivery failing this long is marked dead (loudly)"
    )


class InhibitRuleConfig(_Section):
    """A firing `source_rule` alert mutes `target_rule` alerts that agree on every `equal` field."""

    source_rule: str
    target_rule: str
    equal: list[str] = Field(default_factory=lambda: ["agent_id"])


DEFAULT_RECEIVER = "slack-default"


def _default_receivers() -> list[ReceiverConfig]:
    return [ReceiverConfig(name=DEFAULT_RECEIVER, kind="slack")]


def _default_group_waits() -> dict[Severity, float]:
    return {"P1": 5.0}


def _default_inhibit_rules() -> list[InhibitRuleConfig]:
    return [InhibitRuleConfig(source_rule="tool_calls_all_failing", target_rule="tool_error_rate")]


class AlertingConfig(_Section):
    group_wait_s: float = Field(
        default=30.0, ge=0, description="how long a new per-agent group collects alerts before sending"
    )
    group_wait_by_severity_s: dict[Severity, float] = Field(
        default_factory=_default_group_waits,
        description="a shorter group wait for these severities (never longer than group_wait_s):"
        " a P1 reaches on-call within seconds, P2/P3 are batched",
    )
    repeat_interval_s: float = Field(default=4 * 3600.0, gt=0, description="re-notify a still-firing alert")
    related_thread_s: float = Field(
        default=6 * 3600.0,
        ge=0,
        description="a page whose `related` names an alert of the same agent posted to the same Slack channel,"
        " still firing or resolved at most this long before, is posted in that alert's thread (0 = never thread)",
    )
    receivers: list[ReceiverConfig] = Field(default_factory=_default_receivers)
    routes: list[RouteConfig] = Field(default_factory=list)
    default_receiver: str = DEFAULT_RECEIVER
    agent_teams: dict[str, str] = Field(default_factory=dict, description="agent_id -> owning team")
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=_default_inhibit_rules)
    notification_log: Literal["kafka", "sqlite"] = Field(
        default="kafka",
        description="where `agentmon alerts run` keeps its notification log: kafka = the compacted topic"
        " topics.notifications (any number of instances, nothing on disk; the default), sqlite = the file at"
        " notification_log_path (one process only; `--from-file` always uses the file)",
    )
    notification_log_path: Path = Path(".local/alerts/notification-log.sqlite3")
    notification_log_retention_s: float = Field(
        default=100 * 86400.0,
        gt=0,
        description="settled notifications older than this are pruned (the latest firing per alert is kept);"
        " keep it longer than the agent-alerts retention (90 d) so a full replay never re-notifies",
    )
    retry: RetryConfig = RetryConfig()
    webhook_url: str | None = Field(default=None, description="shorthand: adds a receiver named 'webhook'")
    webhook_secret: SecretStr | None = None
    runbooks_dir: Path = Field(
        default=Path("runbooks"), description="where the notifier reads each runbook's first immediate action"
    )
    runbook_first_actions: dict[str, str] = Field(
        default_factory=dict, description="rule -> first immediate action; overrides the runbook file"
    )
    silence_command: str = Field(default="agentmon silence add", description="shown in every Slack alert")
    digest_rules: list[str] = Field(
        default_factory=lambda: ["floating_model_label"],
        description="hygiene rules that never page: their findings go into one daily digest message;"
        " [] pages them like any other rule",
    )
    digest_receiver: str | None = Field(default=None, description="where the digest goes (default_receiver)")
    digest_hour_utc: int = Field(default=9, ge=0, le=23, description="the digest goes out daily at this hour")
    http_host: str = Field(default="127.0.0.1", description="where `agentmon alerts run` serves /metrics, /healthz")
    http_port: int | None = Field(
        default=6068, ge=0, le=65535, description="port of /metrics and /healthz; 0 = any free port, null = off"
    )
    healthz_stale_s: float = Field(
        default=60.0, gt=0, description="/healthz answers 503 when the pipeline's loop has not run for this long"
    )
    log_level: str = Field(default="INFO", description="level of the JSON log lines of `agentmon alerts run`")

    @model_validator(mode="after")
    def _check_receivers(self) -> AlertingConfig:
        names = [r.name for r in self.all_receivers()]
        if len(names) != len(set(names)):
            raise ValueError(f"duplicate receiver names: {sorted(names)}")
        known = set(names)
        wanted = {self.default_receiver, *(r for route in self.routes for r in route.receivers)}
        if self.digest_receiver is not None:
            wanted.add(self.digest_receiver)
        missing = sorted(wanted - known)
        if missing:
            raise ValueError(f"routes name unknown receivers {missing}; known: {sorted(known)}")
        return self

    def all_receivers(self) -> list[ReceiverConfig]:
        receivers = list(self.receivers)
        if self.webhook_url and not any(r.name == "webhook" for r in receivers):
            receivers.append(
                ReceiverConfig(name="webhook", kind="webhook", url=self.webhook_url, secret=self.webhook_secret)
            )
        return receivers
