"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, installed by
scripts/test-deps.sh) for tests: started on 127.0.0.1 free ports with a minimal config in a tmp
dir, clustering off, stopped by its PID."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from monitor.local.broker import free_port

BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")


def alertmanager_binary() -> str | None:
    return next((found for name in BINARY_NAMES if (found := shutil.which(name))), None)


class LocalAlertmanager:
    def __init__(self, workdir: Path, config: str) -> None:
        binary = alertmanager_binary()
        if binary is None:
            raise RuntimeError("no prometheus-alertmanager on PATH: run scripts/test-deps.sh")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "alertmanager.yml").write_text(config)
        self._log = (workdir / "alertmanager.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # one node: no gossip port
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout_s: float = 30) -> LocalAlertmanager:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"alertmanager not ready after {timeout_s}s: {self.log_text()[-2000:]}")

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (Alertmanager lists alerts that have not ended)."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as response:  # noqa: S310
            return list(json.loads(response.read()))

    def log_text(self) -> str:
        return (self.workdir / "alertmanager.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
