from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.contract.events import LlmCall
from monitor.core.pricing import DEFAULT_PRICES, ModelPrice, PricingTable
from monitor.settings import SettingsError, load_settings

CONFIG = """
runbook_base_url = "https://wiki.example/agentmon"
[kafka]
bootstrap_servers = "kafka-1:9092"
security_protocol = "SASL_PLAINTEXT"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "agentmon"
sasl_password = "hunter2-secret"
[topics]
events_partitions = 3
[pricing."in-house-llm"]
input = 0.5
output = 1.5
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agentmon.toml"
    path.write_text(CONFIG)
    return path


def test_settings_come_from_the_file(config_file: Path) -> None:
    s = load_settings(config_file)
    assert s.kafka.bootstrap_servers == "kafka-1:9092"
    assert s.topics.events_partitions == 3
    assert s.topics.events == "agent-events"  # defaults fill what the file leaves out
    assert s.pricing["in-house-llm"].output == 1.5
    assert s.runbook_base_url == "https://wiki.example/agentmon"


def test_environment_wins_over_the_file_field_by_field(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMON_TOPICS__EVENTS_PARTITIONS", "12")
    monkeypatch.setenv("AGENTMON_KAFKA__CLIENT_ID", "worker-7")
    s = load_settings(config_file)
    assert s.topics.events_partitions == 12
    assert s.kafka.client_id == "worker-7"
    assert s.kafka.bootstrap_servers == "kafka-1:9092"


def test_config_file_can_be_named_by_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMON_CONFIG", str(config_file))
    assert load_settings().kafka.bootstrap_servers == "kafka-1:9092"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[kafka]\nbootstrap = 'x'\n")
    with pytest.raises(ValueError, match="bootstrap"):
        load_settings(path)


def test_removed_worker_settings_are_ignored_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "old.toml"
    path.write_text("[worker]\ndirect_delivery = false\nbatch_max_records = 10\ntick_interval_s = 3\n")
    monkeypatch.setenv("AGENTMON_WORKER__BATCH_MAX_WAIT_S", "0.2")
    with caplog.at_level("WARNING", logger="agentmon.settings"):
        s = load_settings(path)
    assert s.worker.tick_interval_s == 3
    assert "batch_max_records, batch_max_wait_s, direct_delivery" in caplog.text
    assert "direct_delivery" not in s.worker.model_dump()

    path.write_text("[worker]\ndirect_deliveri = true\n")  # any other unknown key is still refused
    with pytest.raises(ValueError, match="direct_deliveri"):
        load_settings(path)


def test_secrets_are_masked_in_repr_and_dumps(config_file: Path) -> None:
    s = load_settings(config_file)
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in json.dumps(s.masked())
    assert s.kafka.client_options()["sasl_plain_password"] == "hunter2-secret"
    assert s.kafka.client_options()["sasl_mechanism"] == "SCRAM-SHA-512"


def test_defaults_point_at_the_local_broker_without_any_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTMON_CONFIG", raising=False)
    s = load_settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.kafka.client_options() == {"bootstrap_servers": "127.0.0.1:9092", "client_id": "agentmon",
                                        "security_protocol": "PLAINTEXT"}


def call(**kw: object) -> LlmCall:
    base: dict[str, object] = {"provider": "openai", "model": "gpt-4o", "input_tokens": 0, "output_tokens": 0}
    base.update(kw)
    return LlmCall.model_validate(base)


def test_cost_is_computed_from_tokens_with_cached_input_at_the_cached_rate() -> None:
    table = PricingTable()
    # gpt-4o: 2.50 in, 10.00 out, 1.25 cached (USD per million tokens)
    cost = table.call_cost(call(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000))
    assert cost == pytest.approx(0.6 * 2.50 + 0.4 * 1.25 + 0.1 * 10.00)


def test_reported_cost_wins_over_the_table() -> None:
    assert PricingTable().call_cost(call(input_tokens=10**6, cost_usd=0.5)) == 0.5


def test_resolved_checkpoint_is_priced_by_the_longest_known_prefix() -> None:
    table = PricingTable()
    mini = table.call_cost(call(model="gpt-4o-mini", resolved_model="gpt-4o-mini-2024-07-18", input_tokens=10**6))
    assert mini == pytest.approx(DEFAULT_PRICES["gpt-4o-mini"].input)
    full = table.call_cost(call(model="gpt-4o", resolved_model="gpt-4o-2024-08-06", input_tokens=10**6))
    assert full == pytest.approx(DEFAULT_PRICES["gpt-4o"].input)


def test_unknown_model_is_unpriced_and_counted() -> None:
    table = PricingTable()
    total, unpriced = table.calls_cost([call(model="mystery-1", input_tokens=5), call(input_tokens=10**6)])
    assert unpriced == 1
    assert total == pytest.approx(2.50)


def test_overrides_replace_and_extend_the_defaults() -> None:
    table = PricingTable({"gpt-4o": ModelPrice(input=1, output=1), "in-house": ModelPrice(input=2, output=4)})
    assert table.call_cost(call(input_tokens=10**6, cached_input_tokens=10**6)) == pytest.approx(1.0)
    assert table.call_cost(call(model="in-house", output_tokens=10**6)) == pytest.approx(4.0)
