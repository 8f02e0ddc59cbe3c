"""Every documented bad input through the `agentmon` command line: the documented exit code (2 bad
usage or settings, 1 Kafka unreachable) and one line on stderr that says what was wrong, never a
traceback; and the global `--config` honoured by the command after it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main as cli
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
    ("missing file before an unreachable broker", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"},
     ["emit", "{missing}"], 2, "no such file"),
    ("broker unreachable: worker", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ["worker"], 1,
     "Kafka at 127.0.0.1:1 is unreachable"),
    ("broker unreachable: alerts run", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"},
     ["alerts", "run", "--console"], 1, "Kafka at 127.0.0.1:1 is unreachable"),
    ("broker unreachable: silence", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ["silence", "list"], 1,
     "Kafka at 127.0.0.1:1 is unreachable"),
    ("broker unreachable: baselines", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}, ["baselines", "list"],
     1, "Kafka at 127.0.0.1:1 is unreachable"),
    ("broker unreachable: report", {"AGENTMON_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"},
     ["report", "--week", "2026-W48"], 1, "Kafka at 127.0.0.1:1 is unreachable"),
    ("misspelled section in env", {"AGENTMON_WORKERS__CHECKPOINT_INTERVAL_S": "3"}, ["topics", "create"], 2,
     "AGENTMON_WORKERS__CHECKPOINT_INTERVAL_S: unknown setting"),
    ("misspelled key in env", {"AGENTMON_WORKER__CHECKPOINT_INTERVL_S": "3"}, ["worker"], 2,
     "worker.checkpoint_intervl_s: unknown setting [AGENTMON_WORKER__CHECKPOINT_INTERVL_S]"),
    ("zero partitions in env", {"AGENTMON_TOPICS__EVENTS_PARTITIONS": "0"}, ["emit", "{events}"], 2,
     "topics.events_partitions: Input should be greater than or equal to 1"),
    ("bad env under the global --config", {"AGENTMON_WORKER__CHECKPOINT_INTERVAL_S": "abc"},
     ["--config", "{zero}", "alerts", "run"], 2, "worker.checkpoint_interval_s"),
    ("global --config before silence", {}, ["--config", "{typo}", "silence", "list"], 2, "unknown setting"),
    ("global --config before baselines", {}, ["--config", "{typo}", "baselines", "list"], 2, "unknown setting"),
    ("global --config before report", {}, ["--config", "{typo}", "report", "--week", "2026-W48"], 2,
     "unknown setting"),
    ("global --config before worker", {}, ["--config", "{broken}", "worker"], 2, "is not valid TOML"),
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


@pytest.mark.parametrize("argv,says", [
    (["topics", "frobnicate"], "invalid choice: 'frobnicate'"),
    (["topics", "create", "--partitions", "0"], "argument --partitions: must be 1 or more (got 0)"),
    (["worker", "--web-port", "99999"], "argument --web-port: a port is 1-65535 (got 99999)"),
    (["broker", "status", "--port", "abc"], "argument --port: invalid port_number value: 'abc'"),
    (["worker", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_a_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    prog = "agentmon" if "unrecognized" in says else f"agentmon {argv[0]}"
    assert err[0].startswith(f"{prog}: ") and says in err[0], err
    assert err[0].endswith("--help)")


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


@pytest.fixture
def mute_kafka() -> Iterator[str]:
    """A port that accepts connections and never answers: a broker that hangs, or a firewall."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("argv", [["topics", "create"], ["emit", str(EVENTS)], ["worker"], ["silence", "list"],
                                  ["baselines", "list"]], ids=lambda argv: argv[0])
def test_a_broker_that_never_answers_is_unreachable_within_the_timeout(
    mute_kafka: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
) -> None:
    monkeypatch.delenv("AGENTMON_CONFIG", raising=False)
    monkeypatch.setenv("AGENTMON_KAFKA__BOOTSTRAP_SERVERS", mute_kafka)
    monkeypatch.setattr(cli, "PREFLIGHT_TIMEOUT_S", 1.5)
    started = time.monotonic()
    assert main(argv) == 1
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"agentmon {argv[0]}: Kafka at {mute_kafka} is unreachable (KafkaTimeoutError: no answer within "
                   "1.5 s); start the local one with `agentmon broker start`, or set kafka.bootstrap_servers"]
