"""`agentmon simulate`: seeded, valid, seasonal streams with incidents by name."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.contract.catalogue import RULES
from monitor.contract.events import EventError, validate_event
from monitor.local.simulate import (
    AgentProfile,
    Incident,
    add_simulate_arguments,
    default_agents,
    generate,
    parse_incident,
    run_simulate_command,
)

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def test_same_seed_same_stream_and_every_event_valid() -> None:
    a = list(generate(default_agents(2), T0, 0.5, seed=4))
    b = list(generate(default_agents(2), T0, 0.5, seed=4))
    assert a == b
    for ev in a:
        validate_event(ev)
    assert {e["kind"] for e in a} == {"execution", "evaluation", "outcome"}


def test_weekends_and_nights_are_quieter() -> None:
    events = [e for e in generate([AgentProfile("a", peak_hour_utc=14)], T0, 7, seed=1, duplicate_share=0)
              if e["kind"] == "execution"]
    by_day = Counter(datetime.fromisoformat(e["occurred_at"]).weekday() for e in events)
    by_hour = Counter(datetime.fromisoformat(e["occurred_at"]).hour for e in events)
    assert by_day[5] < 0.6 * by_day[2] and by_day[6] < 0.6 * by_day[2]
    assert by_hour[2] < 0.4 * by_hour[14]


def test_evaluations_and_outcomes_arrive_late_and_slightly_out_of_order() -> None:
    events = list(generate([AgentProfile("a")], T0, 1, seed=3))
    times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
    assert any(t2 < t1 for t1, t2 in zip(times, times[1:], strict=False))  # disorder
    assert max(t1 - t2 for t1, t2 in zip(times, times[1:], strict=False)) < timedelta(minutes=2)
    executed = {e["execution_id"]: datetime.fromisoformat(e["occurred_at"]) for e in events if e["kind"] == "execution"}
    delays = [datetime.fromisoformat(e["occurred_at"]) - executed[e["execution_id"]]
              for e in events if e["kind"] == "evaluation"]
    assert min(delays) > timedelta(0) and sorted(delays)[len(delays) // 2] > timedelta(minutes=5)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_has_an_injectable_incident(rule: str) -> None:
    inc = parse_incident(f"{rule}@2026-11-02T06:00Z,agent=a,ramp=1")
    assert inc.rule == rule and inc.ramp_h == 1 and inc.agent_id == "a"
    before = list(generate([AgentProfile("a")], T0, 0.25, seed=9))
    after = list(generate([AgentProfile("a")], T0, 0.5, incidents=[inc], seed=9))
    assert after[: len([e for e in before if e["occurred_at"] < "2026-11-02T05:50"])] != [] or rule == "agent_silent"
    assert len(after) > 0


def test_invalid_events_incident_breaks_the_contract() -> None:
    inc = Incident("invalid_events", None, T0, magnitude=0.5)
    bad = 0
    for ev in generate([AgentProfile("a")], T0, 0.2, incidents=[inc], seed=1):
        try:
            validate_event(ev)
        except EventError:
            bad += 1
    assert bad > 10


def test_unknown_incident_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_incident("everything_on_fire@2026-11-02T00:00Z")


def test_cli_writes_jsonl(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    out = tmp_path / "events.jsonl"
    args = parser.parse_args(["--out", str(out), "--days", "0.2", "--agents", "2", "--seed", "3",
                              "--incident", "agent_silent@2026-11-02T02:00Z"])
    assert run_simulate_command(args) == 0
    lines = out.read_text().splitlines()
    assert len(lines) > 50
    assert {json.loads(line)["agent_id"] for line in lines} == {a.agent_id for a in default_agents(2, seed=3)}


def test_incident_outside_the_simulated_days_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    out = tmp_path / "events.jsonl"
    args = parser.parse_args(["--out", str(out), "--days", "2", "--agents", "1",
                              "--incident", "quality_drop@2026-11-20T09:00Z"])
    assert run_simulate_command(args) == 2
    err = capsys.readouterr().err
    assert "outside the simulated 2026-11-02T00:00:00+00:00 .. 2026-11-04T00:00:00+00:00" in err
    assert not out.exists()


def test_cli_says_which_incident_it_injected_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "e.jsonl"), "--days", "0.2", "--agents", "2", "--seed", "3",
                              "--incident", "agent_silent@2026-11-02T02:00Z,hours=1"])
    assert run_simulate_command(args) == 0
    first = default_agents(2, seed=3)[0].agent_id
    assert f"injected agent_silent on {first} from 2026-11-02T02:00:00+00:00 for 1 h" in capsys.readouterr().err
