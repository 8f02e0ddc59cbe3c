"""Settings: one pydantic-settings class, read from a TOML file and `AGENTMON_` environment
variables (nested with `__`, e.g. `AGENTMON_KAFKA__BOOTSTRAP_SERVERS`). Environment wins over
the file. Nothing is read at import time: call `load_settings()`.
"""

from __future__ import annotations

import logging
import os
import ssl
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alerts.config import AlertingConfig
from monitor.contract.events import DEFAULT_MAX_EVENT_BYTES
from monitor.core.config import DetectionConfig
from monitor.core.pricing import ModelPrice
from monitor.otel.config import OtelSettings
from monitor.report.config import ReportSettings

log = logging.getLogger("agentmon.settings")

_CONFIG_FILE: ContextVar[Path | None] = ContextVar("agentmon_config_file", default=None)


#: the default runbook base: a placeholder; `agentmon alerts run` warns while it is in use
PLACEHOLDER_RUNBOOK_BASE_URL = "https://github.com/agentmon/agentmon/blob/main"

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "agentmon"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def client_options(self) -> dict[str, Any]:
        """Connection keyword arguments for aiokafka clients (producer, consumer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            context = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
            if self.ssl_certfile:
                context.load_cert_chain(
                    str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
                )
            options["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return options


class TopicSettings(_Section):
    events: str = "agent-events"
    dlq: str = "agent-events-dlq"
    alerts: str = "agent-alerts"
    rollups: str = "agent-rollups"
    silences: str = "agent-silences"
    notifications: str = Field(
        default="agentmon-alerts-notifications",
        description="compacted: the alert pipelines' notification log, partition p for agent-alerts partition p")
    baseline_control: str = Field(
        default="agent-baseline-control",
        description="compacted: operators' freeze/unfreeze commands for learned baselines (key agent id or *)")
    events_partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    events_retention_hours: int = Field(default=7 * 24, ge=1)
    dlq_retention_hours: int = Field(default=14 * 24, ge=1)
    alerts_retention_hours: int = Field(default=90 * 24, ge=1)
    # The weekly review is rebuilt from rollups for any week inside this retention.
    rollups_retention_hours: int = Field(default=400 * 24, ge=1)


class ProducerSettings(_Section):
    compression: Literal["lz4", "gzip", "none"] = "lz4"
    linger_ms: int = Field(default=5, ge=0)
    max_batch_bytes: int = Field(default=256 * 1024, ge=1024)
    max_pending: int = Field(default=10_000, ge=1, description="events buffered but not yet acknowledged")
    when_full: Literal["block", "drop"] = Field(
        default="block",
        description="block: wait up to block_timeout_s, then raise; drop: discard the event and count it",
    )
    block_timeout_s: float = Field(default=1.0, ge=0)
    request_timeout_s: float = Field(default=30.0, gt=0)


class LocalBrokerSettings(_Section):
    kafka_dir: Path | None = Field(
        default=None, description="folder holding pom.xml and libs/ (default: the repository's kafka/)"
    )
    data_dir: Path = Path(".local/kafka")
    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = "512m"
    start_timeout_s: float = Field(default=90.0, gt=0)


REMOVED_WORKER_KEYS = frozenset({"direct_delivery", "direct_handoff", "batch_max_records", "batch_max_wait_s"})


class WorkerSettings(_Section):
    app_id: str = Field(default="agentmon", description="consumer group and prefix of state topics")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535, description="/healthz, /metrics, /state")
    checkpoint_interval_s: float = Field(default=10.0, gt=0, description="wall seconds between state checkpoints")
    checkpoint_max_records: int = Field(
        default=50_000, ge=1, description="records a partition may apply before it checkpoints regardless")
    tick_interval_s: float = Field(default=15.0, gt=0, description="how often the idle tick runs")
    idle_after_s: float = Field(
        default=120.0, ge=0,
        description="wall seconds without records after which event time follows the wall clock (0: never)")
    session_timeout_s: float = Field(default=10.0, ge=6.0, description="consumer group session timeout")
    stop_timeout_s: float = Field(
        default=12.0, gt=0, description="after SIGTERM or SIGINT the worker exits within this long, with code 1 "
        "and a line saying so if Kafka kept it from stopping cleanly (monitor/stream/stop_deadline.py)")
    stall_after_s: float = Field(
        default=60.0, gt=0, description="a partition with records waiting whose next offset has not moved for "
        "this long has its fetch resumed from that offset (monitor/stream/stall_watch.py)")
    stall_max_restarts: int = Field(
        default=3, ge=1, description="a partition still stalled after this many resumed fetches in a row makes "
        "the worker exit with an error, for its supervisor to restart it")
    weekly_report: bool = Field(
        default=False, description="run the weekly review at report.weekday / report.time_of_day (UTC) and post it "
        "to Slack when a bot token is set; of several workers, the owner of agent-events partition 0 runs it")
    data_dir: str | None = Field(
        default=None, description="faust's data directory; by default faust's own, {app_id}-data in the "
        "working directory")
    log_level: str = "info"
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="the worker's event loop; uvloop cuts faust's per-event cost "
        "(docs/benchmarks.md)")
    faust_monitor: bool = Field(
        default=False, description="keep faust's built-in Monitor sensor (per-event bookkeeping behind faust's own "
        "/stats pages; agentmon's /metrics does not use it)")
    fetch_max_wait_ms: int = Field(
        default=100, ge=1, le=1500, description="longest a fetch request waits at the broker for records (faust's "
        "fixed 1500 ms held records of busy partitions back by up to that long: monitor/stream/faust_fetch.py)")

    @model_validator(mode="before")
    @classmethod
    def _ignore_removed_keys(cls, data: Any) -> Any:
        """Keys of record routes the worker no longer has (records always go straight from faust's
        fetch loop to the engine): a config file or environment that still sets them loads, with a
        warning, instead of failing on `extra="forbid"`."""
        if isinstance(data, dict) and (removed := sorted(REMOVED_WORKER_KEYS & data.keys())):
            log.warning("worker settings %s no longer exist and are ignored: the worker always hands records "
                        "straight to the engine (monitor/stream/faust_direct.py)", ", ".join(removed))
            data = {k: v for k, v in data.items() if k not in REMOVED_WORKER_KEYS}
        return data


class SlackSettings(_Section):
    bot_token: SecretStr | None = None
    channel: str = "#agent-alerts"
    api_url: str = "https://slack.com/api/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTMON_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    producer: ProducerSettings = ProducerSettings()
    broker: LocalBrokerSettings = LocalBrokerSettings()
    slack: SlackSettings = SlackSettings()
    worker: WorkerSettings = WorkerSettings()
    alerting: AlertingConfig = AlertingConfig()
    pricing: dict[str, ModelPrice] = Field(default_factory=dict, description="overrides of model prices")
    runbook_base_url: str = PLACEHOLDER_RUNBOOK_BASE_URL
    max_event_bytes: int = Field(default=DEFAULT_MAX_EVENT_BYTES, ge=1024)
    detection: DetectionConfig = DetectionConfig()
    report: ReportSettings = ReportSettings()
    otel: OtelSettings = OtelSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, file_secret_settings]
        config_file = _CONFIG_FILE.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def masked(self) -> dict[str, Any]:
        """Settings as printable JSON data; secrets show as '**********'."""
        return self.model_dump(mode="json")


class SettingsError(ValueError):
    pass


@contextmanager
def _config_file(path: Path | None) -> Iterator[None]:
    token = _CONFIG_FILE.set(path)
    try:
        yield
    finally:
        _CONFIG_FILE.reset(token)


#: `AGENTMON_` variables that are not settings: the config file's path, the compose file's
#: partition count (read on the host by docker compose) and a test's screenshot switch
NOT_SETTINGS = frozenset({"CONFIG", "EVENTS_PARTITIONS", "REPORT_SCREENSHOT"})


def unknown_environment(environ: dict[str, str] | None = None) -> list[str]:
    """`AGENTMON_` variables naming no section or top-level setting. pydantic-settings looks up
    only the names it knows, so a misspelled section (`AGENTMON_WORKERS__...`) would be ignored
    without a word; misspelled keys inside a known section are refused by the section itself."""
    fields = {name.upper() for name in Settings.model_fields}
    out = []
    for name in sorted(os.environ if environ is None else environ):
        upper = name.upper()
        if not upper.startswith("AGENTMON_"):
            continue
        rest = upper.removeprefix("AGENTMON_")
        if rest not in NOT_SETTINGS and rest.split("__", 1)[0] not in fields:
            out.append(name)
    return out


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from `config_file` (else `$AGENTMON_CONFIG`, else none), the environment, and
    keyword overrides (highest precedence)."""
    if unknown := unknown_environment():
        sections = ", ".join(sorted(Settings.model_fields))
        raise SettingsError(f"bad settings in the environment: {unknown[0]}: unknown setting (the variables are "
                            f"AGENTMON_<SECTION>__<KEY> with a section of: {sections})")
    path = config_file or os.environ.get("AGENTMON_CONFIG") or None
    resolved = Path(path) if path else None
    if resolved is not None and not resolved.is_file():
        raise SettingsError(f"config file {resolved} does not exist")
    with _config_file(resolved):
        try:
            return Settings(**overrides)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, resolved)) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {resolved} is not valid TOML: {exc}") from None


def _describe(exc: ValidationError, path: Path | None) -> str:
    """One line per bad value: where it is (the TOML key and its environment variable) and why."""
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "<settings>"
        env = "AGENTMON_" + "__".join(p.upper() for p in loc)
        got = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err.get('input')!r})"
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{key}: {msg}{got} [{env}]")
    more = exc.error_count() - len(parts)
    where = f" in {path} or the environment" if path else " in the environment"
    return f"bad settings{where}: " + "; ".join(parts) + (f"; ... and {more} more" if more > 0 else "")
