"""Run `agentmon alerts run` as a real subprocess for integration tests, in a working directory of
its own (which a test may delete: the pipeline keeps nothing there), and read its JSON log lines.
Stopped by PID in every case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from monitor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def alerts_env(settings: Settings, slack_url: str, token: str, **extra: str) -> dict[str, str]:
    t = settings.topics
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTMON_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "AGENTMON_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "AGENTMON_TOPICS__ALERTS": t.alerts,
            "AGENTMON_TOPICS__SILENCES": t.silences,
            "AGENTMON_TOPICS__NOTIFICATIONS": t.notifications,
            "AGENTMON_TOPICS__EVENTS_PARTITIONS": str(t.events_partitions),
            "AGENTMON_SLACK__BOT_TOKEN": token,
            "AGENTMON_SLACK__CHANNEL": "#agent-alerts",
            "AGENTMON_SLACK__API_URL": slack_url,
            "AGENTMON_ALERTING__GROUP_WAIT_S": "0",
            "AGENTMON_ALERTING__HTTP_PORT": "0",
            "AGENTMON_ALERTING__RUNBOOKS_DIR": str(ROOT / "runbooks"),
            "AGENTMON_ALERTING__RETRY__BASE_DELAY_S": "0.2",
            "AGENTMON_ALERTING__RETRY__REQUEST_TIMEOUT_S": "10",
            "AGENTMON_RUNBOOK_BASE_URL": "https://runbooks.example.test/agentmon",
        }
    )
    env.update(extra)
    return env


class AlertsProcess:
    def __init__(self, workdir: Path, env: dict[str, str], group_id: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir.parent / f"{workdir.name}.log"  # outside the directory a test deletes
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli.main", "alerts", "run", "--group-id", group_id],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,
        )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    out.append(json.loads(raw))
                except ValueError:
                    continue
        return out

    def owned(self) -> set[int]:
        """The partitions it holds now, from its own assigned/revoked log lines."""
        held: set[int] = set()
        for line in self.lines():
            if line.get("decision") == "assigned":
                held.add(int(line["partition"]))
            elif line.get("decision") == "revoked":
                held.discard(int(line["partition"]))
        return held

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self, timeout_s: float = 30) -> int:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


def wait_until(predicate: Any, timeout_s: float, what: str, tail: Any = lambda: "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{tail()}")


def wait_sharing(first: AlertsProcess, second: AlertsProcess, partitions: int = 3, timeout_s: float = 90) -> None:
    """Until two instances both own partitions and together own all of them (the group settled)."""
    wait_until(
        lambda: bool(first.owned()) and bool(second.owned())
        and first.owned() | second.owned() == set(range(partitions)),
        timeout_s,
        f"both instances to share the {partitions} partitions",
        lambda: first.tail() + second.tail(),
    )
