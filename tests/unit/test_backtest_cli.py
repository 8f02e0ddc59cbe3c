"""`agentmon backtest`: replay a JSONL file in arrival order (or by event time with `--sort`),
write alert state changes, count invalid lines, print a summary."""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.cli.backtest import add_backtest_arguments, build_engine, run_backtest_command
from monitor.contract.alert import decode_alert
from monitor.core.engine import Engine
from monitor.core.replay import read_baseline_commands, replay
from monitor.local.simulate import AgentProfile, Incident, generate
from tests.unit.test_engine_support import T0

ONSET = T0 + timedelta(days=2, hours=12)


def write_stream(path: Path, order: str = "sorted") -> list[str]:
    events = list(generate([AgentProfile("lead-qualifier")], T0, 2.6,
                           incidents=[Incident("tool_calls_all_failing", "lead-qualifier", ONSET)], seed=2))
    lines = [json.dumps(e) for e in events]
    if order == "reversed":
        lines.reverse()
    elif order == "local":
        rng = random.Random(1)
        keyed = sorted((i + rng.uniform(0, 8), line) for i, line in enumerate(lines))  # a few lines
        lines = [line for _, line in keyed]
    lines[10:10] = ["{not json", json.dumps({"kind": "execution"}), ""]
    path.write_text("\n".join(lines) + "\n")
    return lines


def backtest(tmp_path: Path, *extra: str, config: str | None = None) -> tuple[int, list, str]:
    code = run_backtest_command(_parse(tmp_path, *extra, *(["--config", config] if config else [])))
    alerts = [decode_alert(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    return code, alerts, ""


def test_backtest_writes_alerts_and_counts_invalid_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_stream(tmp_path / "events.jsonl")
    code, alerts, _ = backtest(tmp_path)
    out = capsys.readouterr().out
    assert code == 0
    assert any(a.rule == "tool_calls_all_failing" and a.state == "firing" for a in alerts)
    assert "2 invalid" in out
    assert "invalid line 11" in out and "invalid line 12" in out
    assert "tool_calls_all_failing" in out and "lead-qualifier" in out


@pytest.mark.parametrize("order,flags", [("local", ()), ("reversed", ("--sort",)), ("local", ("--sort",))])
def test_disorder_within_the_allowed_lateness_or_sorted_gives_the_same_alerts(
        tmp_path: Path, order: str, flags: tuple[str, ...]) -> None:
    write_stream(tmp_path / "events.jsonl")
    _, expected, _ = backtest(tmp_path)
    write_stream(tmp_path / "events.jsonl", order)
    _, got, _ = backtest(tmp_path, *flags)
    assert [(a.fingerprint, a.state, a.at) for a in got] == [(a.fingerprint, a.state, a.at) for a in expected]


def test_a_file_read_backwards_is_replayed_as_it_arrives_unless_sorted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without `--sort` the lines arrive newest first, as a live worker would read them: all but
    the first few minutes' worth are late (folded into the baseline only, or too late to use),
    and the command says why."""
    write_stream(tmp_path / "events.jsonl", "reversed")
    code, alerts, _ = backtest(tmp_path)
    captured = capsys.readouterr()
    assert code == 0 and "replayed in file order" in captured.err and "--sort" in captured.err
    folded = int(captured.out.split(" late (baseline only)")[0].rsplit(" ", 1)[1])
    dropped = int(captured.out.split(" too late to use")[0].rsplit(" ", 1)[1])
    assert folded + dropped > 1000


def test_config_file_is_used(tmp_path: Path) -> None:
    write_stream(tmp_path / "events.jsonl")
    cfg = tmp_path / "agentmon.toml"
    cfg.write_text(
        'runbook_base_url = "https://wiki.example/ops"\n'
        '[detection.rules]\nmin_baseline_hours = 12\n'
        '[detection.rules.severity]\ntool_calls_all_failing = "P2"\n'
    )
    code, alerts, _ = backtest(tmp_path, config=str(cfg))
    assert code == 0
    hit = next(a for a in alerts if a.rule == "tool_calls_all_failing")
    assert hit.severity == "P2"
    assert hit.runbook_url == "https://wiki.example/ops/runbooks/tool_calls_all_failing.md"


def test_missing_events_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    args = parser.parse_args(["--events", str(tmp_path / "nope.jsonl"), "--alerts-out", str(tmp_path / "o.jsonl")])
    assert run_backtest_command(args) == 2


def test_rollups_are_built_only_for_rollups_out_and_change_no_alert(tmp_path: Path) -> None:
    write_stream(tmp_path / "events.jsonl")
    _, without, _ = backtest(tmp_path)
    rollups = tmp_path / "rollups.jsonl"
    _, with_rollups, _ = backtest(tmp_path, "--rollups-out", str(rollups))
    got = [json.loads(line) for line in rollups.read_text().splitlines()]
    assert len(got) >= 2 * 24  # one per agent-hour of the 2.6 days
    assert all(r["review"]["executions_seen"] == r["executions"] for r in got)
    assert sum(r["executions"] for r in got) > 1000
    assert [a.to_json() for a in without] == [a.to_json() for a in with_rollups]
    assert any(a.state == "firing" for a in without)
    assert not build_engine(None, rollups=False)[0].config.emit_rollups
    assert build_engine(None)[0].config.emit_rollups


# ---- baseline commands ----------------------------------------------------------------------

def _command(target: str, frozen: bool, at: datetime) -> str:
    return json.dumps({"target": target, "frozen": frozen, "at": at.isoformat(), "by": "alice", "reason": "launch"})


def test_baseline_commands_take_effect_from_their_time_and_an_agents_own_wins_over_all(tmp_path: Path) -> None:
    agents = [AgentProfile("lead-qualifier"), AgentProfile("support-triage")]
    lines = [json.dumps(e).encode() for e in generate(agents, T0, 1.0, seed=3)]
    freeze_lead, unfreeze_lead, freeze_all = (T0 + timedelta(hours=h) for h in (10, 15, 19))
    path = tmp_path / "commands.jsonl"
    path.write_text("\n".join([_command("*", True, freeze_all), _command("lead-qualifier", True, freeze_lead),
                               _command("lead-qualifier", False, unfreeze_lead)]) + "\n")
    commands = read_baseline_commands(path)
    assert [c[1] for c in commands] == ["lead-qualifier", "lead-qualifier", "*"]  # by time

    engine = Engine()
    seen: list[tuple[datetime, dict[str, bool]]] = []

    def recording() -> Iterator[bytes]:
        for line in lines:
            if engine.watermark is not None:
                seen.append((engine.watermark, engine.baseline_flags()))
            yield line

    replay(recording(), engine, baseline_commands=commands)
    bucket = timedelta(seconds=engine.config.bucket_s)

    def flags_between(start: datetime, end: datetime) -> set[tuple[bool, bool]]:
        return {(f["lead-qualifier"], f["support-triage"]) for w, f in seen
                if start + bucket <= w < end and len(f) == 2}

    assert flags_between(T0 + timedelta(hours=1), freeze_lead) == {(False, False)}
    assert flags_between(freeze_lead, unfreeze_lead) == {(True, False)}
    assert flags_between(unfreeze_lead, freeze_all) == {(False, False)}
    assert flags_between(freeze_all, T0 + timedelta(days=1)) == {(False, True)}  # its own unfreeze wins


def test_a_frozen_baseline_stops_taking_hours_in_a_backtest(tmp_path: Path) -> None:
    agents = [AgentProfile("lead-qualifier"), AgentProfile("support-triage")]
    lines = [json.dumps(e).encode() for e in generate(agents, T0, 1.5, seed=3)]
    path = tmp_path / "commands.jsonl"
    path.write_text(_command("lead-qualifier", True, T0 + timedelta(hours=12)) + "\n")
    engine = Engine()
    replay(lines, engine, baseline_commands=read_baseline_commands(path))
    in_base = {a: engine._agents[a].baseline.hours_in_base() for a in engine.agent_ids()}
    # an hour joins the baseline when the hour 6 h after it closes: by the freeze at 12:00 the
    # hours up to 10:00-11:00 have closed, so hours 00-04 joined; the other agent's go on
    assert in_base["lead-qualifier"] == 5
    assert in_base["support-triage"] >= 28


def test_baseline_commands_round_trip_from_the_list_command_and_bad_lines_are_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from io import StringIO

    from monitor.cli.baselines import print_baseline_commands
    from monitor.core.baseline_commands import BaselineCommand

    listed = StringIO()
    command = BaselineCommand(frozen=True, at=T0 + timedelta(hours=3), by="bob", reason="after the launch")
    print_baseline_commands({"*": command, "lead-qualifier": command}, listed, as_json=True)
    path = tmp_path / "commands.jsonl"
    path.write_text(listed.getvalue())
    assert read_baseline_commands(path) == [(command.at.timestamp(), "*", command),
                                            (command.at.timestamp(), "lead-qualifier", command)]

    write_stream(tmp_path / "events.jsonl")
    path.write_text(listed.getvalue() + json.dumps({"target": "a", "frozen": "yes", "at": "soon"}) + "\n")
    code = run_backtest_command(_parse(tmp_path, "--baseline-commands", str(path)))
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path} line 3: frozen: Input should be a valid boolean" in err and "at: " in err
    path.write_text(json.dumps({"frozen": True, "at": T0.isoformat()}) + "\n")
    assert run_backtest_command(_parse(tmp_path, "--baseline-commands", str(path))) == 2
    assert 'line 1: no "target"' in capsys.readouterr().err


def _parse(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_backtest_arguments(parser)
    return parser.parse_args(["--events", str(tmp_path / "events.jsonl"), "--alerts-out",
                              str(tmp_path / "alerts.jsonl"), *extra])
