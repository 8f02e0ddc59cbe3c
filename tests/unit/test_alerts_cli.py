"""`agentmon silence add|list|expire` through the argparse wiring, on the file store."""

from __future__ import annotations

import argparse
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from alerts.cli import add_silence_arguments, run_silence_command
from alerts.silences import FileSilenceStore, SilenceMuter
from monitor.settings import Settings
from tests.support.alert_factory import T0, make_alert


def agentmon() -> argparse.ArgumentParser:
    """Stand-in for monitor/cli/main.py's top-level parser, wired the way the lead wires it."""
    parser = argparse.ArgumentParser(prog="agentmon")
    parser.add_argument("--config", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    add_silence_arguments(sub)
    return parser


def run(argv: list[str], now_min: float = 0) -> tuple[int, str]:
    out = io.StringIO()
    args = agentmon().parse_args(argv)
    code = run_silence_command(args, settings=Settings(), now=T0 + timedelta(minutes=now_min), out=out)
    return code, out.getvalue()


def test_add_list_expire_round_trip(tmp_path: Path) -> None:
    f = str(tmp_path / "silences.json")
    code, out = run(
        [
            "silence",
            "add",
            "--rule",
            "tool_error_rate",
            "--agent",
            "lead-qualifier",
            "--label",
            "tool=crm.update",
            "--duration",
            "2h",
            "--author",
            "alice",
            "--reason",
            "CRM migration",
            "--silences-file",
            f,
        ]
    )
    assert code == 0 and "added" in out
    silence_id = out.split()[1]

    muter = SilenceMuter(FileSilenceStore(f))
    assert muter.mutes(make_alert("tool_error_rate", "lead-qualifier"), T0 + timedelta(minutes=5)) is not None
    assert muter.mutes(make_alert("tool_error_rate", "other"), T0 + timedelta(minutes=5)) is None

    code, out = run(["silence", "list", "--silences-file", f], now_min=5)
    assert code == 0 and silence_id in out and "active" in out and "alice" in out

    code, out = run(["silence", "expire", silence_id, "--silences-file", f], now_min=10)
    assert code == 0 and "expired" in out
    assert muter.mutes(make_alert("tool_error_rate", "lead-qualifier"), T0 + timedelta(minutes=11)) is None

    code, out = run(["silence", "list", "--silences-file", f], now_min=11)
    assert "no silences" in out
    code, out = run(["silence", "list", "--all", "--json", "--silences-file", f], now_min=11)
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["state"] == "expired" and row["created_by"] == "alice" and row["comment"] == "CRM migration"


@pytest.mark.parametrize(
    "argv",
    [
        ["silence", "add", "--duration", "2h", "--author", "a", "--reason", "r"],  # no matcher
        ["silence", "add", "--rule", "x", "--duration", "soon", "--author", "a", "--reason", "r"],
        ["silence", "add", "--matcher", "tool=~(", "--duration", "1h", "--author", "a", "--reason", "r"],
        ["silence", "add", "--label", "novalue", "--duration", "1h", "--author", "a", "--reason", "r"],
        [
            "silence",
            "add",
            "--rule",
            "x",
            "--duration",
            "1h",
            "--author",
            "a",
            "--reason",
            "r",
            "--starts-at",
            "2026-11-21T10:00:00",
        ],
        ["silence", "expire", "missing"],
    ],
)
def test_bad_input_exits_2_with_a_message(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run([*argv, "--silences-file", str(tmp_path / "s.json")])
    assert code == 2
    assert capsys.readouterr().err.startswith("agentmon silence: ")


def test_top_level_config_is_not_overwritten_by_the_subcommand() -> None:
    args = agentmon().parse_args(["--config", "x.toml", "silence", "list"])
    assert args.config == "x.toml"
