"""Every documented bad input through the `agentmon` command line: the documented exit code (2 bad
usage or settings, 1 Kafka unreachable) and one line on stderr that says what was wrong, never a
traceback; and the global `--config` honoured by the command after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli.main import main

EVENTS = Path(__file__).resolve().parents[2] / "examples" / "events.jsonl"


def files(tmp_path: Path) -> dict[str, str]:
    written = {
        "typo": "[worker]\ncheckpoint_intervl_s = 3\n",
        "zero": "[topics]\nevents_partitions = 0\n",
        "broken": "bad = [toml\n",
        "floor2027": '[detection]\nmin_occurred_at = "2027-01-01T00:00:00Z"\n',
    }
    for name, text in written.items():
        (tmp_path / f"{name}.toml").write_text(text)
    return {name: str(tmp_path / f"{name}.toml") for name in [*written, "missing"]}


CASES = [
    # (id, environment, argv, exit code, what the one line says)
    ("env value not a number", {"AGENTMON_WORKER__CHECKPOINT_INTERVAL_S": "abc"}, ["topics", "create"], 2,
     "worker.checkpoint_interval_s: Input should be a valid number"),
    ("env names the variable", {"AGENTMON_WORKER__CHECKPOINT_INTERVAL_S": "abc"}, ["topics", "create"], 2,
     "[AGENTMON_WORKER__CHECKPOINT_INTERVAL_S]"),
    ("misspelled key", {}, ["--config", "{typo}", "topics", "create"], 2,
     "worker.checkpoint_intervl_s: unknown setting"),
    ("zero partitions", {}, ["--config", "{zero}", "topics", "create"], 2,
     "topics.events_partitions: Input should be greater than or equal to 1 (got 0)"),
    ("malformed TOML", {}, ["--config", "{broken}", "emit", "-"], 2, "is not valid TOML"),
    ("missing config file", {}, ["--config", "{missing}", "schema"], 2, "does not exist"),
    ("global --config before backtest", {}, ["--config", "{typo}", "backtest", "--events", "{events}",
                                           "--alerts-out", "{out}"], 2, "unknown setting"),
    ("backtest events missing", {}, ["backtest", "--events", "{missing}", "--alerts-out", "{out}"], 2,
     "does not exist"),
    ("broker unreachable: topics", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ["topics", "create"], 1,
     "Kafka at 127.0.0.1:1 is unreachable"),
    ("broker unreachable: emit", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ["emit", "{events}"], 1,
     "Kafka at 127.0.0.1:1 is unreachable"),
]


@pytest.mark.parametrize("env,argv,code,says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_gives_its_exit_code_and_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    env: dict[str, str], argv: list[str], code: int, says: str,
) -> None:
    monkeypatch.delenv("AGENTMON_CONFIG", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    paths = files(tmp_path) | {"events": str(EVENTS), "out": str(tmp_path / "alerts.jsonl")}
    assert main([arg.format(**paths) for arg in argv]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"agentmon {argv[2] if argv[0] == '--config' else argv[0]}: ") and says in err[0]


def test_a_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["topics", "frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_the_global_config_is_honoured_by_backtest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AGENTMON_CONFIG", raising=False)
    paths = files(tmp_path)
    out = str(tmp_path / "alerts.jsonl")
    assert main(["backtest", "--events", str(EVENTS), "--alerts-out", out, "--no-progress"]) == 0
    assert "events: 5 valid, 1 invalid" in capsys.readouterr().out  # the examples hold one naive timestamp
    assert main(["--config", paths["floor2027"], "backtest", "--events", str(EVENTS), "--alerts-out", out,
                 "--no-progress"]) == 0
    assert "events: 0 valid, 6 invalid" in capsys.readouterr().out  # the file's floor refuses every time
