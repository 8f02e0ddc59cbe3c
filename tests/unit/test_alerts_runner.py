"""`agentmon alerts run --from-file`: the backtest's alerts JSONL through the pipeline to the console."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts.config import AlertingConfig
from alerts.runner import run_alerts_from_file, warn_placeholder_runbooks
from monitor.settings import Settings
from tests.support.alert_factory import make_alert

REPO = Path(__file__).resolve().parents[2]


def test_jsonl_to_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alerts.jsonl"
    alerts = [
        make_alert("quality_drop", "support-bot", minutes=0),
        make_alert("agent_silent", "lead\x1b[31m-evil", minutes=1),
        make_alert("quality_drop", "support-bot", "resolved", minutes=40),
    ]
    path.write_bytes(b"\n".join(a.to_json() for a in alerts) + b"\nnot json\n")
    settings = Settings(
        alerting=AlertingConfig.model_validate(
            {
                "receivers": [{"name": "console", "kind": "console"}],
                "default_receiver": "console",
                "notification_log_path": tmp_path / "log.sqlite3",
                "runbooks_dir": REPO / "runbooks",
            }
        )
    )
    assert run_alerts_from_file(settings, path, console=False) == 0
    out = capsys.readouterr().out
    assert "[FIRING] P1 quality_drop \u00b7 support-bot  (first notification)" in out
    assert "[RESOLVED] P1 quality_drop" in out
    assert "first action: Compare the scores" in out
    assert "\x1b" not in out and "lead\\x1b[31m-evil" in out


def test_the_placeholder_runbook_base_url_is_warned_about_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    assert warn_placeholder_runbooks(Settings()) is True
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warning) == 1 and "placeholder" in warning[0] and "AGENTMON_RUNBOOK_BASE_URL" in warning[0]
    caplog.clear()
    assert warn_placeholder_runbooks(Settings(runbook_base_url="https://git.example.com/ops/agentmon")) is False
    assert not caplog.records
