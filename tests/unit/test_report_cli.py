"""`agentmon report` in JSONL mode: the files it writes carry the review of the requested week."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from monitor.report.cli import add_report_arguments, run_report_command
from tests.support.report_week import (
    AGENT,
    EXPENSIVE_ID,
    REPORT_WEEK,
    simulated_alerts,
    simulated_rollups,
    write_jsonl,
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agentmon report")
    parser.add_argument("--config", default=None)
    add_report_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("recorded")
    rollups = write_jsonl(folder / "rollups.jsonl", simulated_rollups())
    with rollups.open("ab") as out:
        out.write(b'{"not": "a rollup"}\n')  # counted as invalid, never fatal
    return rollups, write_jsonl(folder / "alerts.jsonl", simulated_alerts())


def test_report_from_jsonl_writes_md_html_json(recorded: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rollups, alerts = recorded
    code = run_report_command(_parse(["--week", REPORT_WEEK, "--rollups", str(rollups), "--alerts", str(alerts),
                                      "--out", str(tmp_path), "--monthly-budget", "250"]))
    assert code == 0
    out = capsys.readouterr().out
    assert "weekly review 2026-W46: 2 agent(s)" in out and "1 invalid" in out
    data = json.loads((tmp_path / f"weekly-review-{REPORT_WEEK}.json").read_text())
    agent = next(a for a in data["agents"] if a["agent_id"] == AGENT)
    assert (agent["tool_errors"]["hottest"]["weekday"], agent["tool_errors"]["hottest"]["hour"]) == (1, 3)
    assert agent["cost"]["outliers"][0]["execution"]["execution_id"] == EXPENSIVE_ID
    assert agent["budget"]["monthly_budget_usd"] == 250 and agent["budget"]["budget_source"] == "report"
    assert (tmp_path / f"weekly-review-{REPORT_WEEK}.md").read_text().startswith("# Weekly maintenance review")
    assert "<img" in (tmp_path / f"weekly-review-{REPORT_WEEK}.html").read_text()


def test_one_agent_one_format(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    rollups, alerts = recorded
    code = run_report_command(_parse(["--week", REPORT_WEEK, "--agent", AGENT, "--format", "json",
                                      "--rollups", str(rollups), "--alerts", str(alerts), "--out", str(tmp_path)]))
    assert code == 0
    assert [p.name for p in tmp_path.iterdir()] == [f"weekly-review-{REPORT_WEEK}-{AGENT}.json"]
    data = json.loads(next(tmp_path.iterdir()).read_text())
    assert [a["agent_id"] for a in data["agents"]] == [AGENT]


def test_bad_input_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["--week", "2026-46"])
    assert "expected YYYY-Www" in capsys.readouterr().err
    code = run_report_command(_parse(["--week", REPORT_WEEK, "--rollups", str(tmp_path / "missing.jsonl")]))
    assert code == 2 and "no such file" in capsys.readouterr().err
    code = run_report_command(_parse(["--week", REPORT_WEEK, "--alerts", str(tmp_path / "a.jsonl")]))
    assert code == 2 and "--alerts needs --rollups" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["--format", "pdf"])
