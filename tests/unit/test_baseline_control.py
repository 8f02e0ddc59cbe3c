"""Baselines frozen by command, without Kafka: which agents get which flag given the records of the
control topic, applying that to an engine, and the `agentmon baselines` argument errors."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import pytest

from monitor.cli.baselines import cmd_baselines, print_baseline_commands
from monitor.cli.main import build_parser, main
from monitor.contract.wire import read_event
from monitor.core.baseline_commands import (
    BaselineCommand,
    apply_record,
    apply_to_engine,
    command_for,
    desired_changes,
)
from monitor.core.config import DetectionConfig
from monitor.core.engine import Engine
from monitor.local.simulate import default_agents, generate
from monitor.settings import KafkaSettings, Settings

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def record(frozen: bool, by: str = "alice", reason: str = "launch") -> bytes:
    return json.dumps({"frozen": frozen, "at": AT.isoformat(), "by": by, "reason": reason}).encode()


def fold(*records: tuple[bytes | None, bytes | None]) -> dict[str, BaselineCommand]:
    commands: dict[str, BaselineCommand] = {}
    for key, value in records:
        apply_record(commands, key, value)
    return commands


def flags(commands: dict[str, BaselineCommand], current: dict[str, bool]) -> dict[str, bool]:
    return {agent: command.frozen for agent, command in desired_changes(commands, current).items()}


# ---- the pure decision ----------------------------------------------------------------------

def test_a_per_agent_command_wins_over_the_all_agents_one() -> None:
    commands = fold((b"*", record(True)), (b"support-bot", record(False)))
    assert command_for(commands, "support-bot").frozen is False  # type: ignore[union-attr]
    assert command_for(commands, "lead-qualifier").frozen is True  # type: ignore[union-attr]
    current = {"support-bot": True, "lead-qualifier": False, "invoice-parser": True}
    assert flags(commands, current) == {"support-bot": False, "lead-qualifier": True}


def test_the_order_of_star_and_agent_records_does_not_matter() -> None:
    a = fold((b"*", record(True)), (b"support-bot", record(False)))
    b = fold((b"support-bot", record(False)), (b"*", record(True)))
    current = {"support-bot": True, "other": False}
    assert flags(a, current) == flags(b, current) == {"support-bot": False, "other": True}


def test_the_newest_record_per_key_is_in_force_so_unfreeze_undoes_freeze() -> None:
    commands = fold((b"lead-qualifier", record(True)), (b"lead-qualifier", record(False, reason="rollback")))
    assert flags(commands, {"lead-qualifier": True}) == {"lead-qualifier": False}
    assert commands["lead-qualifier"].reason == "rollback"


def test_agents_without_a_command_keep_their_flag() -> None:
    commands = fold((b"lead-qualifier", record(True)))
    # frozen by detection.frozen_baseline_after_h, or not: either way no command asks otherwise
    assert flags(commands, {"support-bot": True, "invoice-parser": False}) == {}
    assert command_for(commands, "support-bot") is None


def test_only_agents_whose_flag_differs_change() -> None:
    commands = fold((b"*", record(True)))
    assert flags(commands, {"a": True, "b": False}) == {"b": True}


def test_a_tombstone_withdraws_a_command_and_the_star_one_applies_again() -> None:
    commands = fold((b"*", record(True)), (b"support-bot", record(False)), (b"support-bot", None))
    assert set(commands) == {"*"}
    assert flags(commands, {"support-bot": False}) == {"support-bot": True}
    commands = fold((b"*", record(True)), (b"*", None))
    assert commands == {}
    assert flags(commands, {"support-bot": True, "x": False}) == {}


def test_a_tombstone_for_an_unknown_key_changes_nothing() -> None:
    assert fold((b"never-commanded", None)) == {}


def test_commands_for_agents_the_engine_does_not_hold_change_nothing() -> None:
    commands = fold((b"agent-on-another-partition", record(True)))
    assert flags(commands, {"lead-qualifier": False}) == {}


def test_invalid_records_are_ignored_and_the_others_still_apply() -> None:
    commands = fold((b"a", b"not json"), (None, record(True)), (b"b", b'{"frozen": "yes", "at": "2026-11-02T00:00Z"}'),
                    (b"c", b'{"frozen": true, "at": "2026-11-02T00:00:00"}'),  # naive time
                    (b"d", record(True)))
    assert set(commands) == {"d"}


def test_a_command_round_trips_through_its_json() -> None:
    command = BaselineCommand(frozen=True, at=AT, by="bob", reason="CHG-1")
    assert fold((b"x", command.to_json()))["x"] == command


# ---- applying to an engine --------------------------------------------------------------------

@lru_cache(maxsize=1)
def events() -> tuple[bytes, ...]:
    agents = default_agents(3, 30.0, seed=5)
    return tuple(json.dumps(e, separators=(",", ":")).encode()
                 for e in generate(agents, datetime(2026, 11, 2, tzinfo=UTC), 0.5, seed=5))


def engine_with_agents() -> Engine:
    engine = Engine(DetectionConfig())
    for line in events():
        engine.observe(read_event(line))
    assert len(engine.agent_ids()) == 3
    return engine


def test_applying_commands_sets_the_flags_and_survives_a_snapshot() -> None:
    engine = engine_with_agents()
    first, second, third = engine.agent_ids()
    assert engine.baseline_flags() == {first: False, second: False, third: False}
    commands = fold((b"*", record(True)), (second.encode(), record(False)))
    changed = apply_to_engine(commands, engine, partition=0)
    assert set(changed) == {first, third}
    assert engine.baseline_flags() == {first: True, second: False, third: True}
    assert apply_to_engine(commands, engine) == {}  # idempotent: nothing left to change
    restored = Engine.restore(engine.snapshot(), DetectionConfig())
    assert restored.baseline_flags() == {first: True, second: False, third: True}



def test_an_operators_unfreeze_holds_against_the_automatic_freeze_after_launch() -> None:
    config = DetectionConfig(frozen_baseline_after_h=1)
    lines = events()
    engine = Engine(config)
    for line in lines[: len(lines) // 4]:
        engine.observe(read_event(line))
    agent = engine.agent_ids()[0]
    assert engine.baseline_flags()[agent] is True  # frozen automatically an hour after first seen
    engine.freeze_baselines(agent, False)
    restored = Engine.restore(engine.snapshot(), config)  # and the choice survives a checkpoint
    for line in lines[len(lines) // 4:]:
        restored.observe(read_event(line))
    restored.flush()
    flags = restored.baseline_flags()
    assert flags[agent] is False
    assert all(flag for other, flag in flags.items() if other != agent)

# ---- the command line -----------------------------------------------------------------------

UNREACHABLE = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))


@pytest.mark.parametrize("argv", [
    ["baselines"],
    ["baselines", "freeze"],
    ["baselines", "freeze", "--agent", "a", "--all"],
    ["baselines", "unfreeze"],
    ["baselines", "freeze", "--agent"],
    ["baselines", "thaw", "--all"],
    ["baselines", "list", "--agent", "a"],
])
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("agentmon") and err[0].endswith("--help)"), err


@pytest.mark.parametrize("agent", ["*", "", "  "])
def test_an_agent_id_that_is_not_one_exits_2_before_kafka_is_contacted(
    agent: str, capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["baselines", "freeze", "--agent", "ok", "--agent", agent])
    assert cmd_baselines(args, settings=UNREACHABLE) == 2
    assert "is not an agent id" in capsys.readouterr().err


def test_an_unreachable_kafka_exits_1_within_the_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["baselines", "freeze", "--all", "--timeout", "3"], ["baselines", "list", "--timeout", "3"]):
        started = datetime.now(UTC)
        assert cmd_baselines(build_parser().parse_args(argv), settings=UNREACHABLE) == 1
        assert datetime.now(UTC) - started < timedelta(seconds=6)
        assert "cannot use the control topic" in capsys.readouterr().err


def test_list_prints_the_star_command_first_and_says_when_there_is_none() -> None:
    out = io.StringIO()
    print_baseline_commands(fold((b"zeta-bot", record(False, by="bob")), (b"*", record(True))), out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["TARGET", "STATE", "AT", "BY", "REASON"]
    assert lines[1].split()[:2] == ["*", "frozen"] and lines[2].split()[:2] == ["zeta-bot", "unfrozen"]
    assert "bob" in lines[2] and lines[2].endswith("launch")
    out = io.StringIO()
    print_baseline_commands({}, out)
    assert out.getvalue().startswith("no baseline commands in force")
