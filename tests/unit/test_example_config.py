"""The production example the README points to loads, and means what its comments say."""

from __future__ import annotations

from pathlib import Path

from monitor.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agentmon.toml"


def test_example_config_loads_with_its_per_agent_overrides() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.topics.events_partitions == 12
    assert settings.slack.channel == "C0AGENTS1"
    overridden = settings.detection.for_agent("invoice-matcher")
    default = settings.detection.for_agent("any-other-agent")
    assert overridden.quality_min_drop == 0.10
    assert default.quality_min_drop == 0.20
    assert overridden.daily_budget_usd == 250
    assert default.daily_budget_usd is None


def test_example_config_keeps_secrets_out_of_the_file() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "sasl_password" not in text
    assert "bot_token" not in text
