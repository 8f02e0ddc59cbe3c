"""Run `agentmon worker` as a real subprocess for integration tests, and watch it from outside
(its /state page), as an operator would. Stopped by PID in every case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.local.broker import free_port
from monitor.settings import Settings
from monitor.stream.worker import worker_environment

ROOT = Path(__file__).resolve().parents[2]


def worker_env(settings: Settings, app_id: str, web_port: int, **extra: str) -> dict[str, str]:
    """Fast checkpoints, ticks and failover for tests, on top of the worker's own environment."""
    env = worker_environment(settings, app_id, web_port)
    env.update({
        "AGENTMON_WORKER__CHECKPOINT_INTERVAL_S": "1", "AGENTMON_WORKER__TICK_INTERVAL_S": "1",
        "AGENTMON_WORKER__SESSION_TIMEOUT_S": "6", "AGENTMON_WORKER__IDLE_AFTER_S": "0",
    })
    env.update(extra)
    return env


class WorkerProcess:
    def __init__(self, settings: Settings, app_id: str, log_path: Path, **extra_env: str) -> None:
        self.web_port = free_port()
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        # faust's data directory beside the log, not in the repository (the worker's working directory)
        extra = {"AGENTMON_WORKER__DATA_DIR": str(log_path.with_suffix(".data")), **extra_env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli.main", "worker"], cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            env=worker_env(settings, app_id, self.web_port, **extra), start_new_session=True)

    def state(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/state", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        state: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode} waiting for {what}; log:\n"
                                     + self.log_tail())
            state = self.state()
            if state is not None and predicate(state):
                return state
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last state {state}; log:\n"
                             + self.log_tail())

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM, and SIGKILL if it has not stopped within `timeout_s`. Returns the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
